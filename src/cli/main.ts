#!/usr/bin/env node
/**
 * `guardian-sync` command line: worker, sync, runs, run, rejects, remap, approve, discard,
 * cancel, demo.
 * Errors print `error: …` on stderr and exit with the code of src/cli/exit.ts (0 ok, 1
 * failure, 2 usage/configuration, 3 decision needed, 4 not found, 5 still running after
 * `--timeout`, 6 cancelled). `runCli` runs the program
 * in-process (tests); the module runs it on `process.argv` only when it is the entry point.
 */
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pipeline } from 'node:stream/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { config as loadDotenv } from 'dotenv';
import { createApp, type AppContext } from '../app.js';
import { parseEnv } from '../config/env.js';
import { registerStoreCommands } from './store.js';
import { districtFileWarning } from '../config/district.js';
import { districtSecretProblems, watchDistrictFiles } from '../config/reload.js';
import { ConfigError, describeError, explainError } from '../errors.js';
import type { RunConfig } from '../models/types.js';
import { approveRun, discardRun, triggerSync } from '../jobs/sync.js';
import { rejectsCsv } from '../jobs/rejects.js';
import { checkWebhookSecrets, upsertWebhookSchedulers } from '../jobs/webhooks.js';
import { createLogger } from '../logger.js';
import { closeOnSignals, startWorkers, syncSchedules } from '../workers/index.js';
import { cliActor } from './actor.js';
import { registerApiCommands } from './api.js';
import { registerAuditCommands } from './audit.js';
import { registerCancelCommands, waitWithTimeout, workerWaitNote } from './cancel.js';
import { runStall } from '../jobs/run-liveness.js';
import { runQueueWait } from '../shared/api-schemas.js';
import { registerCodesCommands } from './codes.js';
import { runDemo } from './demo.js';
import { registerHeldCommands } from './held.js';
import { registerImportCommands } from './imports.js';
import { registerActivationCommands } from './notifications.js';
import { registerSandboxCommands } from './sandbox.js';
import { CliNotFoundError, commandPrefix, EXIT, exitCodeFor, toJson } from './exit.js';
import { formatRemap, formatRun, formatRunList } from './format.js';

/** Parse a whole-number option; commander reports the option name on error. */
export function intOption(min = 0): (value: string) => number {
  return value => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min)
      throw new InvalidArgumentError(`must be a whole number ≥ ${min}, got "${value}"`);
    return n;
  };
}

/**
 * The `version` of guardian-sync's package.json: two levels up from src/cli/main.ts (tsx), three
 * from dist/src/cli/main.js (the built bin). `unknown` only when neither is readable.
 * `moduleUrl`: where this module runs from (default `import.meta.url`).
 */
export function packageVersion(moduleUrl: string | URL = import.meta.url): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const raw = readFileSync(new URL(rel, moduleUrl), 'utf8');
      const pkg = JSON.parse(raw) as { name?: unknown; version?: unknown };
      if (pkg.name === 'guardian-sync' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not there: try the next candidate
    }
  }
  return 'unknown';
}

/** Exit status of `sync --wait` per run status (documented in the README). */
export const WAIT_EXIT_CODES: Record<string, number> = {
  failed: EXIT.failure,
  'needs-approval': EXIT.decision,
  cancelled: EXIT.cancelled,
};

/** The run `runId` names; `CliNotFoundError` (exit code 4) when there is none. */
async function requireRun(ctx: AppContext, runId: string) {
  const run = await ctx.store.getRun(runId);
  if (!run) throw new CliNotFoundError(`no run ${runId}`);
  return run;
}

/**
 * The district the running command is about (its first argument is `<district>`), set by the
 * program's preAction hook; undefined for other commands.
 */
let commandDistrict: string | undefined;

async function withApp<T>(fn: (ctx: AppContext) => Promise<T>): Promise<T> {
  const env = parseEnv();
  // Command output goes to stdout; logs go to stderr so the two never mix. A command logs
  // warnings and errors only, unless LOG_LEVEL is set (environment or .env).
  const level = process.env.LOG_LEVEL ? env.LOG_LEVEL : 'warn';
  const logger = createLogger(level, { format: env.LOG_FORMAT });
  // One bad district file must not stop commands for the other districts (or read-only
  // ones): each is named in one warning line; commands for its district exit 2 with all
  // of its problems (`ctx.district`).
  const ctx = await createApp({ env, logger, tolerateBadDistrictFiles: true });
  for (const p of ctx.districtProblems.values())
    if (p.districtId !== commandDistrict) console.error(`warning: ${districtFileWarning(p)}`);
  try {
    // A command about one district: an unknown one lists the known ones (exit 4), one whose
    // file cannot be used names the file and its problems (exit 2), before anything runs.
    if (commandDistrict !== undefined) ctx.district(commandDistrict);
    return await fn(ctx);
  } finally {
    await ctx.close();
  }
}

/**
 * `sync`: the run configuration to record, or a `ConfigError` (exit 2) when the district's
 * file names a secret that is not set here and `previousConfig` was not given. A district
 * admin who edited the file expects that file to be used; a worker cannot use it (its reload
 * was refused, or it would refuse it) and would sync with the configuration it loaded before,
 * so the sync is refused and the way to go ahead with the previous configuration is named.
 */
function syncConfig(
  ctx: AppContext,
  districtId: string,
  previousConfig: boolean,
): RunConfig | undefined {
  const d = ctx.district(districtId);
  const missing = districtSecretProblems(ctx, d);
  if (missing.length === 0) return undefined;
  const file = ctx.districtSources.get(d.id)?.file ?? `district ${d.id}`;
  if (!previousConfig)
    throw new ConfigError(`the district file ${file} cannot be used by a worker`, [
      ...missing,
      `a running worker keeps the configuration it loaded before this change, so the sync was not started. Set the variable (in the environment or .env of the worker and of this command), or start the sync with the previous configuration: ${commandPrefix()} sync ${d.id} --previous-config`,
    ]);
  console.error(
    `warning: the district file ${file} cannot be used (${missing.join('; ')}): the worker runs this sync with the configuration it loaded before; the run records which (${commandPrefix()} run <runId>)`,
  );
  const src = ctx.districtSources.get(d.id);
  return {
    ...(src?.file !== undefined ? { file: src.file } : {}),
    refused: {
      file,
      sha256: src?.sha256,
      at: new Date().toISOString(),
      problems: missing,
    },
  };
}

export function buildProgram(): Command {
  // exitOverride: commander throws instead of exiting (subcommands inherit it), so `runCli`
  // decides the exit code; usage errors exit 2.
  const program = new Command('guardian-sync')
    .description('Keeps parent accounts and guardian links in step with a district SIS')
    .version(packageVersion())
    .exitOverride()
    .showHelpAfterError()
    .hook('preAction', (_program, action) => {
      commandDistrict =
        action.registeredArguments[0]?.name() === 'district'
          ? (action.args[0] ?? undefined)
          : undefined;
    });

  program
    .command('worker')
    .description("run the queue workers and the districts' cron schedules until SIGTERM/SIGINT")
    .option('--concurrency <n>', 'apply jobs in parallel', intOption(1))
    .action(async (opts: { concurrency?: number }) => {
      const env = parseEnv();
      const logger = createLogger(env.LOG_LEVEL, { format: env.LOG_FORMAT });
      const ctx = await createApp({ env, logger });
      try {
        // Fail at start, not at 2 a.m.: every district's secrets must be there now.
        for (const d of ctx.districts.values()) ctx.connectorFor(d);
        checkWebhookSecrets(ctx);
      } catch (err) {
        await ctx.close();
        throw err;
      }
      const schedules = await syncSchedules(ctx);
      await upsertWebhookSchedulers(ctx); // webhook sweep and change-log retention
      const running = startWorkers(ctx, { concurrency: opts.concurrency });
      // District files added or changed later: reloaded, and the cron schedules follow.
      watchDistrictFiles(ctx, { onReload: () => syncSchedules(ctx).then(() => undefined) });
      closeOnSignals(ctx, running);
      logger.info(
        {
          districts: [...ctx.districts.keys()],
          schedules: schedules.scheduled,
          // the effective settings, so an operator can see that a change took
          pullConcurrency: ctx.env.PULL_CONCURRENCY,
          applyConcurrency: opts.concurrency ?? ctx.env.WORKER_CONCURRENCY,
          chunksAhead: ctx.env.SYNC_CHUNKS_AHEAD,
          priorityMaxWaitMs: ctx.env.SYNC_PRIORITY_MAX_WAIT_MS,
        },
        'worker started',
      );
    });

  program
    .command('sync <district>')
    .description('start a sync run for a district (a worker must be running)')
    .option('--dry-run', 'compute the plan without writing anything', false)
    .option('--wait', 'wait for the run to finish and print its summary', false)
    .option(
      '--timeout <s>',
      'with --wait: stop waiting after s seconds (exit status 5; the run keeps going)',
      intOption(1),
    )
    .option(
      '--previous-config',
      'sync even though the district file names a secret that is not set: the worker uses the configuration it loaded before (recorded on the run)',
      false,
    )
    .action(
      async (
        districtId: string,
        opts: { dryRun: boolean; wait: boolean; timeout?: number; previousConfig: boolean },
      ) => {
        await withApp(async ctx => {
          const config = syncConfig(ctx, districtId, opts.previousConfig);
          const { run, started } = await triggerSync(
            ctx,
            { districtId, dryRun: opts.dryRun, trigger: 'cli', actor: cliActor() },
            config ? { config } : {},
          );
          console.log(
            started
              ? `run ${run.id} queued`
              : `run ${run.id} is already ${run.status}; not starting another`,
          );
          if (opts.wait) {
            if ((await ctx.queues.pull.getWorkers()).length === 0)
              console.error(
                `warning: no worker is connected to the queues; the run starts when one is (${commandPrefix()} worker)`,
              );
            const done = await waitWithTimeout(ctx, run.id, opts.timeout);
            if (!done) return;
            console.log(formatRun(done));
            process.exitCode = WAIT_EXIT_CODES[done.status] ?? 0;
          }
        });
      },
    );

  program
    .command('runs <district>')
    .description('list recent runs of a district')
    .option('-n, --limit <n>', 'how many', intOption(1), 20)
    .option('--json', 'print the runs as JSON (for scripts)', false)
    .action(async (districtId: string, opts: { limit: number; json: boolean }) => {
      await withApp(async ctx => {
        ctx.district(districtId);
        const runs = await ctx.store.listRuns(districtId, opts.limit);
        console.log(opts.json ? toJson(runs) : formatRunList(runs));
      });
    });

  program
    .command('run <runId>')
    .description('show one run')
    .option('--json', 'print the run as JSON (for scripts)', false)
    .action(async (runId: string, opts: { json: boolean }) => {
      await withApp(async ctx => {
        const run = await requireRun(ctx, runId);
        const stall = await runStall(ctx, run);
        if (opts.json)
          console.log(
            toJson({ ...run, queueWait: runQueueWait(run), ...(stall ? { stalled: stall } : {}) }),
          );
        else {
          console.log(formatRun(run));
          const note = await workerWaitNote(ctx, run);
          if (note) console.log(note);
          if (stall) console.log(`stalled  ${stall.message}`);
        }
      });
    });

  program
    .command('remap <runId>')
    .description('show the remap (old sourcedId → new) a run held as a probable re-key proposes')
    .action(async (runId: string) => {
      await withApp(async ctx => {
        const run = await requireRun(ctx, runId);
        const totals = await ctx.store.countDeferredStudents(runId);
        const rows = await ctx.store.listDeferredStudents(runId, { onlyRemapped: true });
        console.log(formatRemap(run, totals, rows));
      });
    });

  program
    .command('rejects <runId>')
    .description(
      "list a run's rejects (records refused) and exclusions (records left out by a rule) as CSV",
    )
    .addOption(
      new Option('--kind <kind>', 'only one kind').choices(['rejected', 'excluded'] as const),
    )
    .action(async (runId: string, opts: { kind?: 'rejected' | 'excluded' }) => {
      await withApp(async ctx => {
        const run = await requireRun(ctx, runId);
        await pipeline(rejectsCsv(ctx.store, run.id, { kind: opts.kind }), process.stdout, {
          end: false,
        });
      });
    });

  program
    .command('approve <runId>')
    .description('apply the deactivations a needs-approval run holds')
    .action(async (runId: string) => {
      await withApp(async ctx => {
        await requireRun(ctx, runId);
        console.log(formatRun(await approveRun(ctx, runId, cliActor())));
      });
    });

  program
    .command('discard <runId>')
    .description('drop the deactivations a needs-approval run holds')
    .action(async (runId: string) => {
      await withApp(async ctx => {
        await requireRun(ctx, runId);
        console.log(formatRun(await discardRun(ctx, runId, cliActor())));
      });
    });

  program
    .command('demo')
    .description(
      'sync a seeded district from a local fake PowerSchool into SQLite and print the runs',
    )
    .option('--students <n>', 'district size', intOption(1), 1500)
    .option('--seed <n>', 'generator seed', intOption(0), 7)
    .option(
      '--activation-rate-per-hour <n>',
      'cap on activation emails per hour (default 500, shows deferral; 0: no cap)',
      v => Number(v),
    )
    .action(async (opts: { students: number; seed: number }) => {
      await runDemo(opts);
    });
  registerApiCommands(program);
  registerActivationCommands(program, withApp);
  registerCodesCommands(program, withApp);
  registerImportCommands(program, withApp);
  registerAuditCommands(program, withApp);
  registerHeldCommands(program, withApp);
  registerStoreCommands(program, () => parseEnv().storeUrl);
  registerCancelCommands(program, withApp);
  registerSandboxCommands(program);
  return program;
}

/**
 * Run the CLI on `argv` (as `process.argv`: node, script, then the arguments) in this process
 * and resolve to its exit code (table in src/cli/exit.ts); never calls `process.exit`. Errors
 * are printed on stderr as `error: …` (admin-grade, see `explainError`; with
 * LOG_LEVEL=debug|trace also the class name). `loadEnvFile`: read `.env` from the working
 * directory first (the entry point does; tests pass false).
 */
export async function runCli(argv: readonly string[], opts: { loadEnvFile?: boolean } = {}) {
  if (opts.loadEnvFile !== false) loadDotenv({ quiet: true });
  const before = process.exitCode;
  process.exitCode = undefined;
  commandDistrict = undefined;
  try {
    await buildProgram().parseAsync([...argv]);
    const set = process.exitCode;
    return typeof set === 'number' ? set : Number(set ?? 0);
  } catch (err) {
    // Commander printed its own message (usage error) or the help / version.
    if (err instanceof CommanderError) return exitCodeFor(err);
    if (process.env.LOG_LEVEL === 'debug' || process.env.LOG_LEVEL === 'trace')
      console.error(`debug: ${describeError(err)}`);
    console.error(`error: ${explainError(err)}`);
    return exitCodeFor(err);
  } finally {
    process.exitCode = before;
  }
}

/** True when this module is the program node started (tsx or the built bin, symlinks resolved). */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  // A reader that stops early (`… --json | head`) closes our stdout: that is not an error of
  // the command, so leave quietly like other Unix tools instead of reporting EPIPE.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
  const code = await runCli(process.argv);
  // Exit at once on errors (open handles must not keep a failed command alive).
  if (code !== 0) process.exit(code);
}
