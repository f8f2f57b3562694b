/**
 * The command line's one error style and exit-code table (documented in the README, "Exit
 * codes"). Every command reports failures through `main`, which prints `error: <what went
 * wrong and what to do>` on stderr (never a class name) and exits with `exitCodeFor(err)`:
 *
 * | code | meaning                                                                    |
 * | ---- | -------------------------------------------------------------------------- |
 * | 0    | done                                                                       |
 * | 1    | the operation failed or was refused (SIS error, run failed, refused link…) |
 * | 2    | usage or configuration error (bad option, environment, district file)      |
 * | 3    | a decision is needed: run held for approval; import data changed           |
 * | 4    | not found: district, run, parent, student, section, preview                |
 * | 5    | `sync --wait --timeout`: the run is still queued/running (it keeps going)   |
 * | 6    | `sync --wait`: the run was cancelled                                        |
 */
import { CommanderError } from 'commander';
import { ConfigError, GuardianSyncError } from '../errors.js';

/** The exit codes of every `guardian-sync` command. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  decision: 3,
  notFound: 4,
  timeout: 5,
  cancelled: 6,
} as const;

/** A command was called wrongly (bad or conflicting options). Exit code 2. */
export class UsageError extends GuardianSyncError {
  readonly retryable = false;
}

/** Something the command names does not exist (a run id, a parent…). Exit code 4. */
export class CliNotFoundError extends GuardianSyncError {
  readonly retryable = false;
}

const NOT_FOUND_NAMES = new Set(['NotFoundError', 'UnknownDistrictError', 'CliNotFoundError']);
const USAGE_NAMES = new Set([
  'ConfigError',
  'UsageError',
  'ImportOptionsError',
  'InvalidInputError',
]);

/**
 * The exit code for an error a command threw (see the table above). Errors are classified by
 * `name` and by the stable `problem` code the services attach (`unknown-…`, `not-found` → 4;
 * `invalid-request` → 2), so a subclass or a deserialised error is classified the same way.
 */
export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
  if (!(err instanceof Error)) return EXIT.failure;
  if (NOT_FOUND_NAMES.has(err.name)) return EXIT.notFound;
  const problem = (err as { problem?: unknown }).problem;
  if (typeof problem === 'string') {
    if (problem.startsWith('unknown-') || problem === 'not-found') return EXIT.notFound;
    if (problem === 'invalid-request') return EXIT.usage;
  }
  if (err instanceof ConfigError || USAGE_NAMES.has(err.name)) return EXIT.usage;
  return EXIT.failure;
}

/**
 * How the user started this CLI, to print commands they can paste: `npm run cli --` when run
 * through the package script (npm sets `npm_lifecycle_event` and `npm_lifecycle_script`, see
 * https://docs.npmjs.com/cli/v10/using-npm/scripts#current-lifecycle-event), otherwise the
 * installed bin `guardian-sync`. `env`: the environment (default `process.env`).
 */
export function commandPrefix(env: NodeJS.ProcessEnv = process.env): string {
  const event = env.npm_lifecycle_event;
  if (event && /src\/cli\/main\.ts/.test(env.npm_lifecycle_script ?? '')) {
    // `npm run demo` / `npm run sandbox` run the same CLI; follow-ups go through `cli`.
    return 'npm run cli --';
  }
  return 'guardian-sync';
}

/** `value` as indented JSON (the `--json` output of every command). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
