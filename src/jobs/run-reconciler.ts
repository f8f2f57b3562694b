/**
 * The run reconciler: finds active (`queued`/`running`) runs whose jobs no longer exist in
 * Redis, or that made no progress for `RUN_STALE_AFTER_MS`, and ends them, so the district
 * can sync again (invariant 3 lets a district have one active run; the store's index of it
 * never learns by itself that Redis lost the jobs — e.g. a Redis without persistence that
 * restarted mid-run).
 *
 * Decisions, per district with an active run:
 * - `queued`, no pull job: the pull was never taken up (lost, or never added). It is added
 *   again under its deterministic id (a no-op when it exists) → action `requeued`.
 * - pull job failed for good while the run is still active (the worker died before it
 *   could mark the run failed) → the run is failed with the job's reason.
 * - `running`, no pull job and no ledger generation: Redis lost the run's jobs and its
 *   ledger; nothing can finish it → failed, "its jobs were lost".
 * - the run's progress marker (pull job state and attempts, chunks applied, pull total) did
 *   not change for `RUN_STALE_AFTER_MS` (0: never) → failed, "no progress".
 * A failed run keeps what its applied chunks wrote (counted from the change log, see
 * `failRun`). Every action is logged (`run reconciled`) and counted in
 * `guardian_sync_runs_reconciled_total{district,action}`.
 *
 * Several worker processes may run it: a short Redis lock (`<prefix>:run-reconciler:lock`)
 * lets one pass run at a time; every decision re-reads the run, and `failRun` ignores a run
 * that already ended.
 */
import { randomUUID } from 'node:crypto';
import { Job } from 'bullmq';
import type { AppContext } from '../app.js';
import { describeError } from '../errors.js';
import type { SyncRun } from '../models/types.js';
import { processMetrics } from '../workers/metrics.js';
import { jobId } from '../workers/queues.js';
import type { PullPayload } from './payloads.js';
import { failRun, JOB_OPTIONS } from './sync.js';

/** What the reconciler did with one active run. */
export interface ReconcileAction {
  districtId: string;
  runId: string;
  action: 'failed' | 'requeued';
  reason: string;
}

/** Job states in which the pull job is still going to run or is running. */
const LIVE_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/** Redis hash: runId → JSON `{ marker, since }` (last progress seen and when it changed). */
const progressKey = (prefix: string) => `${prefix}:run-reconciler:progress`;
const lockKey = (prefix: string) => `${prefix}:run-reconciler:lock`;

/**
 * One reconciler pass over every configured district. Returns the actions taken (empty when
 * every active run is alive, or when another process holds the pass lock). `now` (ms since
 * the epoch) is for tests. Throws when Redis or the store fails.
 */
export async function reconcileRuns(
  ctx: AppContext,
  opts: { now?: number } = {},
): Promise<ReconcileAction[]> {
  const owner = randomUUID();
  const lock = await ctx.redis.set(lockKey(ctx.prefix), owner, 'PX', 60_000, 'NX');
  if (lock !== 'OK') return [];
  const actions: ReconcileAction[] = [];
  try {
    const activeIds = new Set<string>();
    for (const districtId of ctx.districts.keys()) {
      const run = await ctx.store.findActiveRun(districtId);
      if (!run) continue;
      activeIds.add(run.id);
      const action = await reconcileRun(ctx, run, opts.now ?? Date.now());
      if (!action) continue;
      actions.push(action);
      processMetrics(ctx).reconciledRuns.inc({ district: districtId, action: action.action });
      processMetrics(ctx).publishSoon();
      ctx.logger.warn(
        { districtId, runId: run.id, action: action.action, reason: action.reason },
        'run reconciled',
      );
    }
    // Forget the progress of runs that are no longer active.
    const tracked = await ctx.redis.hkeys(progressKey(ctx.prefix));
    const gone = tracked.filter(id => !activeIds.has(id));
    if (gone.length) await ctx.redis.hdel(progressKey(ctx.prefix), ...gone);
  } finally {
    // Release only our own lock (a pass longer than the lock's 60 s may have lost it).
    await ctx.redis.eval(
      "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
      1,
      lockKey(ctx.prefix),
      owner,
    );
  }
  return actions;
}

async function reconcileRun(
  ctx: AppContext,
  run: SyncRun,
  now: number,
): Promise<ReconcileAction | undefined> {
  const ids = { districtId: run.districtId, runId: run.id };
  const pull = await Job.fromId(ctx.queues.pull, jobId.pull(run.districtId, run.id));
  const state = pull ? await pull.getState() : 'missing';

  if (state === 'failed') {
    const reason = `its pull job failed (${pull?.failedReason ?? 'no reason recorded'}) and the run was not closed`;
    return fail(ctx, run, reason);
  }
  if (run.status === 'queued' && state === 'missing') {
    const payload: PullPayload = ids;
    await ctx.queues.pull.add('pull', payload, {
      jobId: jobId.pull(run.districtId, run.id),
      ...JOB_OPTIONS.pull,
    });
    return { ...ids, action: 'requeued', reason: 'queued, but its pull job no longer existed' };
  }
  const generation = await ctx.ledger.generation(run.id);
  if (!LIVE_STATES.has(state) && generation === 0) {
    // Still queued with a pull job that completed, or running without a pull job and
    // without a ledger: Redis no longer knows this run.
    return fail(
      ctx,
      run,
      'its jobs were lost: the pull job and the run ledger no longer exist in Redis (was Redis restarted without persistence?)',
    );
  }
  return staleCheck(ctx, run, now, `${state}|${pull?.attemptsMade ?? 0}|${generation}`);
}

/** Fail `run` when its progress marker has not changed for `RUN_STALE_AFTER_MS`. */
async function staleCheck(
  ctx: AppContext,
  run: SyncRun,
  now: number,
  pullMarker: string,
): Promise<ReconcileAction | undefined> {
  const staleMs = ctx.env.RUN_STALE_AFTER_MS;
  if (staleMs === 0) return undefined;
  const { applied, total } = await ctx.ledger.progress(run.id);
  const marker = `${run.status}|${pullMarker}|${applied}|${total ?? ''}`;
  const key = progressKey(ctx.prefix);
  const prev = await ctx.redis.hget(key, run.id);
  let since = now;
  if (prev) {
    const p = JSON.parse(prev) as { marker?: string; since?: number };
    if (p.marker === marker && typeof p.since === 'number') since = p.since;
  }
  if (since === now) await ctx.redis.hset(key, run.id, JSON.stringify({ marker, since }));
  if (now - since < staleMs) return undefined;
  return fail(
    ctx,
    run,
    `no progress for ${Math.round((now - since) / 1000)} s (RUN_STALE_AFTER_MS=${staleMs}): ${applied} chunk(s) applied${total === undefined ? ', pull not finished' : ` of ${total}`}`,
  );
}

/** Fail `run`; undefined when it ended on its own meanwhile (`failRun` then does nothing). */
async function fail(
  ctx: AppContext,
  run: SyncRun,
  reason: string,
): Promise<ReconcileAction | undefined> {
  await failRun(ctx, run.id, new RunLostError(`run reconciler: ${reason}`));
  const after = await ctx.store.getRun(run.id);
  if (after?.status !== 'failed' || !after.error?.includes('run reconciler:')) return undefined;
  return { districtId: run.districtId, runId: run.id, action: 'failed', reason };
}

/** Why the reconciler failed a run (stored as the run's `error`). */
export class RunLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunLostError';
  }
}

/**
 * Run `reconcileRuns` now and then every `RUN_RECONCILE_INTERVAL_MS` until the returned
 * function is called. Errors are logged, never thrown (Redis may be down for a while).
 */
export function startRunReconciler(ctx: AppContext): () => void {
  const log = ctx.logger.child({ component: 'run-reconciler' });
  let stopped = false;
  let running: Promise<void> | undefined;
  const pass = () => {
    if (stopped || running) return;
    running = reconcileRuns(ctx)
      .then(() => undefined)
      .catch((err: unknown) => log.warn({ err: describeError(err) }, 'run reconciler pass failed'))
      .finally(() => (running = undefined));
  };
  pass();
  const timer = setInterval(pass, ctx.env.RUN_RECONCILE_INTERVAL_MS).unref();
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
