/**
 * Is the worker that runs a `running` run still heard from? A worker killed mid-job (kill -9,
 * a lost container) leaves its job `active` in BullMQ until the job's lock expires and a
 * stalled check moves it back to wait (src/workers/locks.ts): about 30-40 s with the default
 * pull/finalize locks, during which the run would read plain `running`. This module reads
 * what BullMQ itself relies on, so the run status can say so (API `stalled`, `guardian-sync
 * run`, the console):
 *
 * - the run's active jobs: its pull, its finalize, and its chunks in the apply queue's active
 *   list (job ids `<district>.<run>.…`, src/workers/queues.ts);
 * - each job's lock TTL (`PTTL <job>:lock`): a live worker renews it every `renewMs`, so
 *   `lockMs - pttl` is how long ago it was last renewed, and a missing lock means it expired;
 * - the worker that took the job (`processedBy`, the name `startWorkers` gives its workers)
 *   and whether that worker is still connected to Redis (`CLIENT LIST` via `getWorkers`): a
 *   killed process's connection closes at once, before its lock runs out.
 *
 * Nothing is written: this is a read, done when a run is shown.
 */
import type { Queue } from 'bullmq';
import type { AppContext } from '../app.js';
import type { SyncRun } from '../models/types.js';
import { lockTiming, type PipelineQueue } from '../workers/locks.js';
import { jobId } from '../workers/queues.js';

/** Why a `running` run's worker is not heard from (see `runStall`). */
export interface RunStall {
  /** The job that is stuck: `pull`, `finalize` or `apply` (one chunk). */
  job: PipelineQueue;
  /** Its BullMQ job id. */
  jobId: string;
  /** The worker process that took it (`<host>-<pid>-<hex>`), when BullMQ recorded one. */
  worker?: string | undefined;
  /** Whether that worker is connected to Redis now (false once its process died). */
  workerConnected: boolean;
  /**
   * ISO time the job's lock was last renewed (from its TTL); when the lock has already
   * expired, the latest it can have been (now − the lock's duration).
   */
  lastHeardAt: string;
  /** Milliseconds since `lastHeardAt`. */
  silentForMs: number;
  /** ISO time the lock expires; absent when it has expired. */
  lockExpiresAt?: string | undefined;
  /**
   * ISO time by which another worker should take the job up (lock expiry + one stalled
   * check); absent when no worker is connected to the job's queue (it is taken up when one
   * starts).
   */
  takeoverExpectedBy?: string | undefined;
  /** The same in a sentence, for an admin. */
  message: string;
}

/** What a job's lock and worker look like at one moment (input of `judgeJob`). */
export interface JobLockState {
  job: PipelineQueue;
  jobId: string;
  /** `PTTL` of the lock in ms: ≥ 0 while held, −2 when the key is gone. */
  lockTtlMs: number;
  worker?: string | undefined;
  /** Names of the workers connected to the job's queue. */
  connected: readonly string[];
}

/**
 * Decide from one job's lock state whether its worker is silent. `nowMs`: the clock. A job
 * is stalled when its lock expired, when the worker that took it is no longer connected, or
 * when its lock has not been renewed for longer than a live worker ever lets it go
 * (`renewMs` plus a third of it for a busy event loop). Returns undefined for a healthy job.
 */
export function judgeJob(
  s: JobLockState,
  timing: { lockMs: number; renewMs: number; stalledIntervalMs: number },
  nowMs: number,
): RunStall | undefined {
  const expired = s.lockTtlMs < 0;
  const silentForMs = expired ? timing.lockMs : Math.max(0, timing.lockMs - s.lockTtlMs);
  const workerConnected = s.worker !== undefined && s.connected.includes(s.worker);
  const gone = s.worker !== undefined && !workerConnected;
  const overdue = silentForMs > timing.renewMs + timing.renewMs / 3;
  if (!expired && !gone && !overdue) return undefined;
  const expiresMs = nowMs + Math.max(0, s.lockTtlMs);
  const takeoverMs = s.connected.length ? expiresMs + timing.stalledIntervalMs : undefined;
  const secs = Math.round(silentForMs / 1000);
  const who = s.worker ? `worker ${s.worker}` : 'its worker';
  const what = s.job === 'apply' ? `a chunk of this run (${s.jobId})` : `the run's ${s.job}`;
  const why = gone
    ? `${who} is no longer connected to Redis; its lock was last renewed ${secs} s ago`
    : expired
      ? `${who} has not renewed its lock for over ${secs} s (expired)`
      : `${who} has not renewed its lock for ${secs} s (a live worker renews it every ${Math.round(timing.renewMs / 1000)} s)`;
  const next =
    takeoverMs === undefined
      ? `no worker is connected to the ${s.job} queue: it is taken up when one starts`
      : `another worker takes it up by about ${new Date(takeoverMs).toISOString()} (lock expiry + stalled check)`;
  return {
    job: s.job,
    jobId: s.jobId,
    worker: s.worker,
    workerConnected,
    lastHeardAt: new Date(nowMs - silentForMs).toISOString(),
    silentForMs,
    lockExpiresAt: expired ? undefined : new Date(expiresMs).toISOString(),
    takeoverExpectedBy: takeoverMs === undefined ? undefined : new Date(takeoverMs).toISOString(),
    message: `worker not heard from: ${what} is stuck — ${why}; ${next}`,
  };
}

/** Worker names (the part after `:w:`) of the clients connected to `queue`. */
async function connectedWorkers(queue: Queue): Promise<string[]> {
  const out: string[] = [];
  for (const c of await queue.getWorkers()) {
    const raw = typeof c.rawname === 'string' ? c.rawname : '';
    const at = raw.indexOf(':w:');
    if (at >= 0) out.push(raw.slice(at + 3));
  }
  return out;
}

/** Lock TTL (ms, −2 when gone) and `processedBy` of each of `ids` in `queue`. */
async function lockStates(
  ctx: Pick<AppContext, 'redis'>,
  queue: Queue,
  ids: readonly string[],
): Promise<{ id: string; ttl: number; worker?: string }[]> {
  if (!ids.length) return [];
  const m = ctx.redis.multi();
  for (const id of ids) m.pttl(`${queue.toKey(id)}:lock`).hget(queue.toKey(id), 'pb');
  const res = (await m.exec()) ?? [];
  return ids.map((id, i) => {
    const ttl = res[2 * i]?.[1];
    const pb = res[2 * i + 1]?.[1];
    return {
      id,
      ttl: typeof ttl === 'number' ? ttl : -2,
      ...(typeof pb === 'string' && pb ? { worker: pb } : {}),
    };
  });
}

/**
 * The stall of `run` when it is `running` and a job of it is active under a worker that is
 * no longer heard from (see the module comment); undefined otherwise (not running, no active
 * job — e.g. chunks waiting for a worker slot — or every active job's worker is alive). When
 * several jobs are stuck, the one silent longest. `nowMs`: the clock. Throws when Redis fails.
 */
export async function runStall(
  ctx: Pick<AppContext, 'redis' | 'queues' | 'env'>,
  run: SyncRun,
  nowMs = Date.now(),
): Promise<RunStall | undefined> {
  if (run.status !== 'running') return undefined;
  const { districtId, id } = run;
  const applyPrefix = `${districtId}.${id}.g`;
  const [pullState, finalizeState, applyActive] = await Promise.all([
    ctx.queues.pull.getJobState(jobId.pull(districtId, id)),
    ctx.queues.finalize.getJobState(jobId.finalize(districtId, id)),
    ctx.redis.lrange(ctx.queues.apply.keys.active ?? '', 0, -1),
  ]);
  const candidates: { job: PipelineQueue; queue: Queue; ids: string[] }[] = [
    {
      job: 'pull',
      queue: ctx.queues.pull,
      ids: pullState === 'active' ? [jobId.pull(districtId, id)] : [],
    },
    {
      job: 'finalize',
      queue: ctx.queues.finalize,
      ids: finalizeState === 'active' ? [jobId.finalize(districtId, id)] : [],
    },
    {
      job: 'apply',
      queue: ctx.queues.apply,
      ids: applyActive.filter(j => j.startsWith(applyPrefix)),
    },
  ];
  let worst: RunStall | undefined;
  for (const c of candidates) {
    if (!c.ids.length) continue;
    const [states, connected] = await Promise.all([
      lockStates(ctx, c.queue, c.ids),
      connectedWorkers(c.queue),
    ]);
    const timing = lockTiming(ctx.env, c.job);
    for (const s of states) {
      const stall = judgeJob(
        { job: c.job, jobId: s.id, lockTtlMs: s.ttl, worker: s.worker, connected },
        timing,
        nowMs,
      );
      if (stall && (!worst || stall.silentForMs > worst.silentForMs)) worst = stall;
    }
  }
  return worst;
}
