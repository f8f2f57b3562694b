/**
 * `guardian-sync held <runId> [students|parents|links] [--offset n] [--limit n] [--json|--csv]`:
 * what a needs-approval run holds, with names and Unique IDs (src/jobs/held.ts), so an admin
 * can decide before `approve` / `discard`. A table by default, one page of JSON with
 * `--json`, the whole list as CSV on stdout with `--csv`.
 */
import { pipeline } from 'node:stream/promises';
import { InvalidArgumentError, type Command } from 'commander';
import type { AppContext } from '../app.js';
import { CliNotFoundError, UsageError } from './exit.js';
import { heldCsv, heldItems, heldTotal } from '../jobs/held.js';
import type { HeldKind } from '../models/types.js';
import { table } from './audit.js';

type WithApp = <T>(fn: (ctx: AppContext) => Promise<T>) => Promise<T>;

const KINDS: Record<string, HeldKind> = { students: 'student', parents: 'parent', links: 'link' };

function wholeNumber(min: number, max: number): (v: string) => number {
  return v => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}, got "${v}"`);
    return n;
  };
}

/** Register `held` on `program`. */
export function registerHeldCommands(program: Command, withApp: WithApp): void {
  program
    .command('held <runId> [list]')
    .description(
      'list what a needs-approval run holds: students (default), parents or links, with names and Unique IDs',
    )
    .option('--offset <n>', 'first record (0-based)', wholeNumber(0, Number.MAX_SAFE_INTEGER), 0)
    .option('--limit <n>', 'records per page', wholeNumber(1, 1000), 100)
    .option('--json', 'one page as JSON')
    .option('--csv', 'the whole list as CSV')
    .action(
      async (
        runId: string,
        list: string | undefined,
        opts: { offset: number; limit: number; json?: boolean; csv?: boolean },
      ) => {
        const name = list ?? 'students';
        const kind = KINDS[name];
        if (!kind) throw new UsageError(`unknown list "${name}": use students, parents or links`);
        await withApp(async ctx => {
          const run = await ctx.store.getRun(runId);
          if (!run) throw new CliNotFoundError(`no run ${runId}`);
          if (opts.csv) {
            await pipeline(heldCsv(ctx, run, kind), process.stdout, { end: false });
            return;
          }
          const total = heldTotal(run, kind);
          const items = await heldItems(ctx, run, kind, opts.offset, opts.limit);
          if (opts.json) {
            const { offset, limit } = opts;
            const page = { runId, status: run.status, kind: name, total, offset, limit, items };
            console.log(JSON.stringify(page, null, 2));
            return;
          }
          console.log(
            `run ${run.id} (${run.status}) holds ${total} ${name}; showing ${items.length} from ${opts.offset}`,
          );
          if (!items.length) return;
          console.log(
            table(
              ['student', 'unique id', 'name', 'parent', 'unique id', 'name', 'reason'],
              items.map(i => [
                i.studentSourcedId ?? '',
                i.studentUniqueId ?? '',
                i.studentName ?? '',
                i.parentId ?? '',
                i.parentUniqueId ?? '',
                i.parentName ?? '',
                i.reason,
              ]),
            ),
          );
        });
      },
    );
}
