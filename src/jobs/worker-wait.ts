/**
 * A queued run that no worker can take: `sync` only queues the pull job, a `guardian-sync
 * worker` process runs it. While no worker is connected to the pull queue a queued run waits
 * (for ever, if none is started); this is reported on the run (API `waitingForWorkerSince`,
 * `guardian-sync run`) and in `/metrics` (`guardian_sync_runs_queued_without_worker`) instead
 * of blocking silently. `cancel <runId>` frees the district (src/jobs/sync.ts `cancelRun`).
 */
import type { AppContext } from '../app.js';
import type { SyncRun } from '../models/types.js';

/** Why and since when a queued run waits for a worker. */
export interface WorkerWait {
  /** When the run was queued (ISO): it has waited for a worker since then. */
  since: string;
  /** Operator note: what to do about it. */
  note: string;
}

/**
 * The wait of `run` when it is `queued` and no worker is connected to the pull queue
 * (BullMQ `getWorkers`: the queue's Redis client list); undefined otherwise (a connected
 * worker takes queued runs in turn). Throws when Redis fails.
 */
export async function workerWait(
  ctx: Pick<AppContext, 'queues'>,
  run: SyncRun,
): Promise<WorkerWait | undefined> {
  if (run.status !== 'queued') return undefined;
  if ((await ctx.queues.pull.getWorkers()).length > 0) return undefined;
  return {
    since: run.createdAt,
    note:
      'no worker is connected to the queues: the run starts when a worker does (the `worker` ' +
      `command); cancelling run ${run.id} frees the district`,
  };
}
