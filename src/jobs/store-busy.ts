/**
 * A store locked by another process (SQLite `SQLITE_BUSY`/`SQLITE_LOCKED`: a backup, an
 * operator's `sqlite3` shell, a second deployment) is transient. A pipeline job that meets
 * it is put back in its queue with a growing delay — without using up one of its attempts —
 * until `STORE_BUSY_LIMIT_MS` has passed since its first busy error; only then does it fail
 * for good (and its run with it), naming the limit. Each retry is logged and counted in
 * `guardian_sync_store_busy_retries_total{queue}`.
 *
 * The first busy time and the retry count are kept in the job's progress
 * (`{ storeBusySince, storeBusyRetries }`), so they survive a worker restart.
 */
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import type { AppContext } from '../app.js';
import { describeError } from '../errors.js';
import { processMetrics } from '../workers/metrics.js';

/** First delay after a busy error (ms); doubled per retry up to `BUSY_MAX_DELAY_MS`. */
export const BUSY_FIRST_DELAY_MS = 250;
export const BUSY_MAX_DELAY_MS = 15_000;

/**
 * True for a store "database is locked" error (better-sqlite3 `SqliteError` with code
 * `SQLITE_BUSY*` or `SQLITE_LOCKED*`). Checked by name and code: errors from another copy of
 * the native module fail `instanceof`.
 */
export function isStoreBusy(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { name, code } = err as { name?: unknown; code?: unknown };
  return (
    name === 'SqliteError' &&
    typeof code === 'string' &&
    (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'))
  );
}

interface BusyProgress {
  storeBusySince: number;
  storeBusyRetries: number;
}

function busyProgress(job: Job): BusyProgress | undefined {
  const p = job.progress as Partial<BusyProgress> | number | string | boolean | undefined;
  if (typeof p !== 'object' || p === null) return undefined;
  if (typeof p.storeBusySince !== 'number' || typeof p.storeBusyRetries !== 'number')
    return undefined;
  return { storeBusySince: p.storeBusySince, storeBusyRetries: p.storeBusyRetries };
}

/**
 * Wrap a job processor: a store-busy error delays the job (see the module comment) instead
 * of failing the attempt. Past `STORE_BUSY_LIMIT_MS` it throws `UnrecoverableError` naming
 * the limit. Without a `token` (not run by a Worker) the error is rethrown unchanged.
 * `onDelayed(job, untilMs)` is called once the job is delayed, with the epoch ms at which it
 * becomes runnable again (the apply queue registers it for aging, src/jobs/priority.ts); its
 * error is logged, not thrown (the job is put back either way).
 */
export function retryWhenStoreBusy<T>(
  ctx: AppContext,
  queue: string,
  fn: (job: Job, token?: string) => Promise<T>,
  onDelayed?: (job: Job, untilMs: number) => Promise<void>,
): (job: Job, token?: string) => Promise<T> {
  return async (job, token) => {
    try {
      const out = await fn(job, token);
      return out;
    } catch (err) {
      if (!isStoreBusy(err) || !token) throw err;
      const now = Date.now();
      const prev = busyProgress(job);
      const since = prev?.storeBusySince ?? now;
      const retries = (prev?.storeBusyRetries ?? 0) + 1;
      const limit = ctx.env.STORE_BUSY_LIMIT_MS;
      const log = ctx.logger.child({ queue, jobId: job.id, component: 'store-busy' });
      if (now - since >= limit) {
        log.error({ busyMs: now - since, retries, limit }, 'store still busy: giving up');
        throw new UnrecoverableError(
          `the store stayed locked by another process for ${Math.round((now - since) / 1000)} s ` +
            `(${retries} tries; limit STORE_BUSY_LIMIT_MS=${limit}): ${describeError(err)}`,
        );
      }
      const delay = Math.min(
        BUSY_MAX_DELAY_MS,
        BUSY_FIRST_DELAY_MS * 2 ** Math.min(retries - 1, 16),
        Math.max(BUSY_FIRST_DELAY_MS, limit - (now - since)),
      );
      const progress: BusyProgress = { storeBusySince: since, storeBusyRetries: retries };
      await job.updateProgress({ ...progress });
      processMetrics(ctx).storeBusyRetries.inc({ queue });
      processMetrics(ctx).publishSoon();
      log.warn({ retries, delayMs: delay, busyMs: now - since }, 'store busy: job delayed');
      await job.moveToDelayed(now + delay, token);
      await onDelayed?.(job, now + delay).catch((e: unknown) =>
        log.error({ err: describeError(e) }, 'after the busy delay: hook failed'),
      );
      throw new DelayedError();
    }
  };
}

/**
 * Call `fn` until it does not throw a store-busy error, waiting with the same backoff in
 * between, for at most `limitMs` (then the last error is thrown). Other errors are thrown at
 * once. For bookkeeping outside a job (marking a run failed after its job gave up).
 */
export async function whenStoreFree<T>(fn: () => Promise<T>, limitMs: number): Promise<T> {
  const started = Date.now();
  for (let retries = 0; ; retries++) {
    try {
      return await fn();
    } catch (err) {
      if (!isStoreBusy(err) || Date.now() - started >= limitMs) throw err;
      const delay = Math.min(BUSY_MAX_DELAY_MS, BUSY_FIRST_DELAY_MS * 2 ** Math.min(retries, 16));
      await new Promise(r => setTimeout(r, delay));
    }
  }
}
