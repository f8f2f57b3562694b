/**
 * Job-lock timing of the pipeline workers, in one place: the workers are started with it
 * (src/workers/index.ts) and the run status reads the same figures to tell whether the worker
 * that holds a run's job is still heard from (src/jobs/run-liveness.ts).
 *
 * BullMQ: a worker sets `<job>:lock` with a TTL of `lockMs` when it takes a job and renews it
 * about every `renewMs` (half the lock) while the job runs. A job whose lock expired is moved
 * back to wait by the next stalled check of any worker of the queue (every
 * `stalledIntervalMs`) and taken up again.
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Env } from '../config/env.js';

/**
 * Default job lock of the pull and finalize workers (ms), renewed every half of it while the
 * job runs: a job whose worker died (kill -9) is taken up again once the lock expired and a
 * stalled check saw it twice (`PIPELINE_STALLED_INTERVAL_MS`). `WORKER_LOCK_MS` overrides it.
 */
export const PIPELINE_LOCK_MS = 30_000;

/**
 * Default stalled-check interval of the pull and finalize workers (ms). BullMQ marks the
 * active jobs at one check and moves a marked job whose lock is gone back to wait at the
 * next; the checks of all workers of a queue share one cadence (a Redis key). With BullMQ's
 * 30 s a killed pull waited about 60 s (measured, test/integration/worker-crash-takeover);
 * with 10 s it is the lock's expiry plus at most ~10 s. A live job is never moved (its lock
 * is held); the cost is one small Redis script per worker every 10 s.
 * `WORKER_STALLED_INTERVAL_MS` overrides it.
 */
export const PIPELINE_STALLED_INTERVAL_MS = 10_000;

/** BullMQ's own defaults (the apply and other workers without a setting of ours). */
const BULLMQ_LOCK_MS = 30_000;
const BULLMQ_STALLED_INTERVAL_MS = 30_000;

/** Lock timing of one queue's workers, in ms. */
export interface LockTiming {
  /** TTL the worker gives the job lock at each renewal. */
  lockMs: number;
  /** How often a live worker renews it (BullMQ: half the lock). */
  renewMs: number;
  /** How often the queue's workers look for jobs whose lock expired. */
  stalledIntervalMs: number;
}

/** The queues whose jobs make a run progress. */
export type PipelineQueue = 'pull' | 'apply' | 'finalize';

/**
 * Lock timing of `queue`'s workers: `WORKER_LOCK_MS` / `WORKER_STALLED_INTERVAL_MS` when
 * set, else 30 s / 10 s for pull and finalize and BullMQ's 30 s / 30 s for apply.
 */
export function lockTiming(
  env: Pick<Env, 'WORKER_LOCK_MS' | 'WORKER_STALLED_INTERVAL_MS'>,
  queue: PipelineQueue,
): LockTiming {
  const apply = queue === 'apply';
  const lockMs = env.WORKER_LOCK_MS ?? (apply ? BULLMQ_LOCK_MS : PIPELINE_LOCK_MS);
  return {
    lockMs,
    renewMs: lockMs / 2,
    stalledIntervalMs:
      env.WORKER_STALLED_INTERVAL_MS ??
      (apply ? BULLMQ_STALLED_INTERVAL_MS : PIPELINE_STALLED_INTERVAL_MS),
  };
}

/**
 * A name for the workers one `startWorkers` call starts (`<host>-<pid>-<6 hex>`). BullMQ
 * writes it on each job a worker takes (`processedBy`) and on the worker's Redis connection
 * (`CLIENT LIST`), so the run status can say which process holds a run's job and whether that
 * process is still connected.
 */
export function workerInstanceName(): string {
  return `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
}
