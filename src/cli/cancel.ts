/**
 * `guardian-sync cancel <runId>`: end a queued or running run (src/jobs/sync.ts `cancelRun`),
 * and the helpers of `sync --wait --timeout <s>` and `run` for a run nobody takes: a wait
 * that gives up (exit status `WAIT_TIMEOUT_EXIT_CODE`, the run keeps going) and the note on a
 * queued run no worker can take (src/jobs/worker-wait.ts).
 */
import type { Command } from 'commander';
import type { AppContext } from '../app.js';
import { cancelRun, RunWaitTimeoutError, waitForRun } from '../jobs/sync.js';
import { workerWait } from '../jobs/worker-wait.js';
import { runStall } from '../jobs/run-liveness.js';
import type { SyncRun } from '../models/types.js';
import { cliActor } from './actor.js';
import { CliNotFoundError, commandPrefix, EXIT } from './exit.js';
import { formatRun } from './format.js';

type WithApp = <T>(fn: (ctx: AppContext) => Promise<T>) => Promise<T>;

/** Exit status of `sync --wait --timeout <s>` when the run has not ended in time. */
export const WAIT_TIMEOUT_EXIT_CODE = EXIT.timeout;

/** Register `cancel` on `program`. */
export function registerCancelCommands(program: Command, withApp: WithApp): void {
  program
    .command('cancel <runId>')
    .description(
      'cancel a queued or running run: a queued run leaves the queue, a running one stops at the next chunk; nothing is deactivated, what it wrote stays',
    )
    .action(async (runId: string) => {
      await withApp(async ctx => {
        if (!(await ctx.store.getRun(runId))) throw new CliNotFoundError(`no run ${runId}`);
        console.log(formatRun(await cancelRun(ctx, runId, cliActor())));
      });
    });
}

/**
 * Wait for run `runId` to end, at most `timeoutSeconds` (none: the 10-minute default of
 * `waitForRun`). Returns the ended run, or undefined after printing
 * on stderr that the run is still queued/running and keeps going, with the exit status set
 * to `WAIT_TIMEOUT_EXIT_CODE`. Other errors are thrown.
 */
export async function waitWithTimeout(
  ctx: AppContext,
  runId: string,
  timeoutSeconds: number | undefined,
): Promise<SyncRun | undefined> {
  try {
    return await waitForRun(
      ctx,
      runId,
      timeoutSeconds === undefined ? {} : { timeoutMs: timeoutSeconds * 1000 },
    );
  } catch (err) {
    if (!(err instanceof RunWaitTimeoutError)) throw err;
    const run = await ctx.store.getRun(runId);
    const wait = run && (await workerWait(ctx, run));
    const stall = run && (await runStall(ctx, run));
    console.error(
      `timeout: run ${runId} is still ${run?.status ?? err.status} after ${Math.round(err.timeoutMs / 1000)} s; ` +
        `it keeps going (${commandPrefix()} run ${runId} to follow it, ${commandPrefix()} cancel ${runId} to stop it)` +
        (wait ? `\nnote: ${wait.note}` : '') +
        (stall ? `\nnote: ${stall.message}` : ''),
    );
    process.exitCode = WAIT_TIMEOUT_EXIT_CODE;
    return undefined;
  }
}

/** The note `guardian-sync run` prints under a queued run that no worker can take, if any. */
export async function workerWaitNote(ctx: AppContext, run: SyncRun): Promise<string | undefined> {
  const wait = await workerWait(ctx, run);
  return wait && `waiting for a worker since ${wait.since}: ${wait.note}`;
}
