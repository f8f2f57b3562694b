/**
 * The sync pipeline's job handlers: trigger → roster-pull → roster-apply (per chunk) →
 * roster-finalize. Handlers take `(payload, ctx)` and throw on failure; the workers
 * (src/workers) turn non-retryable errors into BullMQ `UnrecoverableError`.
 */
import { randomBytes } from 'node:crypto';
import { DelayedError, type Job } from 'bullmq';
import type { AppContext } from '../app.js';
import { describeError, RunStateError } from '../errors.js';
import { decideFinalize } from '../reconcile/finalize.js';
import { chunkKeys, planChunk } from '../reconcile/plan.js';
import { describeSyncMode, syncModeAt } from '../reconcile/freeze.js';
import type { ChunkPlan, Reject, RunCounts, SyncRun } from '../models/types.js';
import { ActiveRunExistsError } from '../models/types.js';
import { processMetrics } from '../workers/metrics.js';
import { jobId } from '../workers/queues.js';
import { FINALIZE_HOOKS, type FinalizeHookInput } from './finalize-hooks.js';
import { loadDeltaState, scopeFinalizeInput, snapshotMeta } from './connector-state.js';
import { mergeCounts } from './ledger.js';
import { kickChanges, runCountsFromLog, ROSTER_COUNT_ENTITIES } from './changes.js';
import { ACTIVATION_COUNT, releaseHeldActivations } from './notifications.js';
import { accessCodesFinalizeHook } from '../access-codes/finalize-hook.js';
import type { ChangeContext } from '../models/changes/types.js';
import { applyChunkExtras } from './chunk-extras.js';
import { EXCLUDED_PREFIX, exclusionCounts, uniqueRejects } from './rejects.js';
import { ApplyPayload, FinalizePayload, PullPayload, type TriggerPayload } from './payloads.js';

/** Default BullMQ options per step: retries with exponential backoff and jitter. */
export const JOB_OPTIONS = {
  pull: { attempts: 2, backoff: { type: 'exponential', delay: 5000, jitter: 0.5 } },
  // Chunk payloads are large (≈ 1 MB per 1,000 students): keep only a few finished ones in
  // Redis (a re-added chunk is simply applied again: applying is idempotent).
  apply: {
    attempts: 5,
    backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
    removeOnComplete: { count: 10 },
  },
  finalize: { attempts: 5, backoff: { type: 'exponential', delay: 1000, jitter: 0.5 } },
} as const;

/** Maximum apply jobs waiting before the pull pauses (keeps snapshot data out of Redis). */
const MAX_WAITING_CHUNKS = 40;

export function newRunId(now = new Date()): string {
  return `r${now.getTime().toString(36)}${randomBytes(4).toString('hex')}`;
}

/**
 * Start a run for a district, or return the one already queued/running (invariant 3).
 * Returns `{ run, started }`; `started` is false when an active run was returned.
 * Throws `ConfigError` for an unknown district.
 */
export async function triggerSync(
  ctx: AppContext,
  req: TriggerPayload,
): Promise<{ run: SyncRun; started: boolean }> {
  const district = ctx.district(req.districtId);
  const now = new Date();
  const candidate: SyncRun = {
    id: newRunId(now),
    districtId: district.id,
    connector: district.connector.kind,
    status: 'queued',
    dryRun: req.dryRun,
    trigger: req.trigger,
    actor: req.actor ?? req.trigger,
    createdAt: now.toISOString(),
    counts: {},
    rejectCount: 0,
    timings: {},
  };
  let run: SyncRun;
  try {
    run = await ctx.store.createRun(candidate);
  } catch (err) {
    if (err instanceof ActiveRunExistsError) return { run: err.activeRun, started: false };
    throw err;
  }
  const payload: PullPayload = { districtId: run.districtId, runId: run.id };
  await ctx.queues.pull.add('pull', payload, {
    jobId: jobId.pull(run.districtId, run.id),
    ...JOB_OPTIONS.pull,
  });
  ctx.logger.info(
    {
      districtId: run.districtId,
      runId: run.id,
      dryRun: run.dryRun,
      trigger: run.trigger,
      actor: run.actor,
    },
    'run queued',
  );
  return { run, started: true };
}

/** roster-pull: stream the snapshot from the SIS into apply jobs. */
export async function handlePull(
  ctx: AppContext,
  job: Job,
  signal?: AbortSignal,
  token?: string,
): Promise<{ chunks: number }> {
  try {
    return await pullSnapshot(ctx, job, signal);
  } catch (err) {
    // Shutdown, not failure: hand the pull back to the queue without using up an attempt.
    if (signal?.aborted && token) {
      await job.moveToDelayed(Date.now() + 1000, token);
      throw new DelayedError();
    }
    throw err;
  }
}

async function pullSnapshot(
  ctx: AppContext,
  job: Job,
  signal?: AbortSignal,
): Promise<{ chunks: number }> {
  const { districtId, runId } = PullPayload.parse(job.data);
  const district = ctx.district(districtId);
  const log = ctx.logger.child({ districtId, runId, step: 'pull', attempt: job.attemptsMade + 1 });
  const started = Date.now();
  const previous = await ctx.store.getRun(runId);
  await ctx.store.updateRun(runId, {
    status: 'running',
    // a retried or resumed pull keeps the run's first start, so timings stay honest
    startedAt: previous?.startedAt ?? new Date(started).toISOString(),
  });
  // Every pull attempt starts a new ledger generation: chunks of an earlier attempt
  // (whose pages may have shifted since) are ignored, never mixed with this one's.
  const generation = await ctx.ledger.startGeneration(runId);
  const connector = ctx.connectorFor(district);
  let pending: Reject[] = [];
  const pullCtx = {
    logger: log,
    signal: signal ?? new AbortController().signal,
    reject: (r: Reject) => void pending.push(r),
    deltaState: await loadDeltaState(ctx, districtId, connector),
  };
  const run = await ctx.store.getRun(runId);
  const dryRun = run?.dryRun ?? false;

  const schools = await connector.readSchools(pullCtx);
  if (!dryRun) await ctx.store.upsertSchools(districtId, schools);

  let n = 0;
  // Chunk n is added to the queue while the connector reads chunk n+1 (one add in flight at
  // most); a failed add surfaces at the next await, before anything else is enqueued.
  let adding: Promise<unknown> = Promise.resolve();
  for await (const chunk of connector.readRoster(pullCtx)) {
    await adding;
    await ctx.ledger.recordPullRejects(runId, String(n).padStart(8, '0'), pending);
    pending = [];
    const payload: ApplyPayload = { districtId, runId, chunkNo: n, generation, chunk };
    adding = ctx.queues.apply.add('apply', payload, {
      jobId: jobId.chunk(districtId, runId, generation, n),
      ...JOB_OPTIONS.apply,
    });
    adding.catch(() => undefined); // handled by the await above / below
    n++;
    if (n % 10 === 0) await waitForApplyBacklog(ctx, signal);
  }
  await adding;
  await ctx.ledger.recordPullRejects(runId, 'end', pending);
  const stats = connector.stats();
  processMetrics(ctx).recordPull(districtId, connector.kind, stats);
  await ctx.ledger.setTotal(runId, n, {
    pullMs: String(Date.now() - started),
    httpRequests: String(stats.httpRequests),
    schools: String(schools.length),
    ...snapshotMeta(stats),
  });
  log.info(
    { chunks: n, httpRequests: stats.httpRequests, ms: Date.now() - started },
    'pull complete',
  );
  await maybeFinalize(ctx, districtId, runId);
  return { chunks: n };
}

async function waitForApplyBacklog(ctx: AppContext, signal?: AbortSignal): Promise<void> {
  while ((await ctx.queues.apply.getWaitingCount()) > MAX_WAITING_CHUNKS) {
    if (signal?.aborted) return;
    await new Promise(r => setTimeout(r, 100));
  }
}

/** Entity → action → n for one chunk plan. */
export function countPlan(plan: ChunkPlan): RunCounts {
  const c: RunCounts = {};
  const inc = (e: string, a: string, k = 1) => {
    const t = (c[e] ??= {});
    t[a] = (t[a] ?? 0) + k;
  };
  for (const s of plan.students) inc('student', s.action);
  if (plan.parentCreates.length) inc('parent', 'create', plan.parentCreates.length);
  for (const p of plan.parentUpdates) inc('parent', p.action);
  for (const l of plan.links) inc('link', l.action);
  return c;
}

/** Cause and actor of the changes a sync run makes (change log). */
export function runChange(run: SyncRun): ChangeContext {
  return {
    cause: { kind: 'sync', id: run.id, trigger: run.trigger },
    actor: run.actor ?? run.trigger,
  };
}

/**
 * roster-apply: plan and write one chunk atomically (with its change-log entries), then
 * record what it saw in the ledger.
 */
export async function handleApply(ctx: AppContext, job: Job): Promise<RunCounts> {
  const p = ApplyPayload.parse(job.data);
  const district = ctx.district(p.districtId);
  const run = await ctx.store.getRun(p.runId);
  if (!run) throw new Error(`run ${p.runId} not found`);
  if ((await ctx.ledger.generation(p.runId)) !== p.generation) {
    // A chunk of an earlier pull attempt of this run: its data may be stale, skip it.
    ctx.logger.info(
      { districtId: p.districtId, runId: p.runId, chunk: p.chunkNo, generation: p.generation },
      'stale chunk skipped',
    );
    return {};
  }
  const planCtx = {
    districtId: p.districtId,
    connector: district.connector.kind,
    parentRole: district.policies.parentRole,
    guardiansWithoutLogin: district.policies.guardiansWithoutLogin,
  };
  const plan = await ctx.store.reconcileChunk(
    p.districtId,
    chunkKeys(p.chunk, planCtx.connector),
    state => planChunk(p.chunk, state, planCtx),
    { dryRun: run.dryRun, change: runChange(run) },
  );
  const planCounts = countPlan(plan);
  const counts = mergeCounts(
    mergeCounts({}, planCounts),
    await applyChunkExtras(ctx, p, plan, run.dryRun),
  );
  const seenParents = new Set(Object.values(plan.guardianAccounts));
  const recorded = await ctx.ledger.recordChunk(p.runId, p.generation, {
    chunkNo: p.chunkNo,
    seenStudents: p.chunk.students.filter(s => s.status === 'active').map(s => s.sourcedId),
    seenParents: [...seenParents],
    linkRemovals: plan.linkRemovals,
    counts,
    rejects: plan.rejects,
  });
  if (!run.dryRun && Object.keys(planCounts).length > 0) {
    await kickChanges(ctx, p.districtId);
    // The run may have been failed while this chunk was being written (its other jobs gave
    // up): its counts were taken from the log before this chunk's entries; take them again.
    const now = await ctx.store.getRun(p.runId);
    if (now?.status === 'failed')
      await ctx.store.updateRun(p.runId, { counts: await runCounts(ctx, now, {}, []) });
  }
  if (recorded) await maybeFinalize(ctx, p.districtId, p.runId);
  return counts;
}

/** Enqueue finalize once the pull is done and every chunk is applied (idempotent job id). */
export async function maybeFinalize(
  ctx: AppContext,
  districtId: string,
  runId: string,
): Promise<void> {
  if (!(await ctx.ledger.isComplete(runId))) return;
  const payload: FinalizePayload = { districtId, runId };
  await ctx.queues.finalize.add('finalize', payload, {
    jobId: jobId.finalize(districtId, runId),
    ...JOB_OPTIONS.finalize,
  });
}

/**
 * roster-finalize: deactivate what a complete snapshot no longer has (or hold it for
 * approval), store rejects and counts, close the run.
 */
export async function handleFinalize(ctx: AppContext, job: Job): Promise<SyncRun> {
  const { districtId, runId } = FinalizePayload.parse(job.data);
  const district = ctx.district(districtId);
  const run = await ctx.store.getRun(runId);
  if (!run) throw new Error(`run ${runId} not found`);
  if (run.status !== 'running' && run.status !== 'queued') return run; // already finalized
  const started = Date.now();
  // Where finalize spends its time, by step (ms): kept on the run next to pull/total.
  const steps: Record<string, number> = {};
  let stepStart = started;
  const step = (name: string) => {
    const now = Date.now();
    steps[`finalize.${name}`] = now - stepStart;
    stepStart = now;
  };
  const [seen, linkRemovals, counts, pulledRejects, meta, activeStudentIds, activeSisParentIds] =
    await Promise.all([
      ctx.ledger.seen(runId),
      ctx.ledger.linkRemovals(runId),
      ctx.ledger.counts(runId),
      ctx.ledger.rejects(runId),
      ctx.ledger.meta(runId),
      ctx.store.listActiveStudentIds(districtId),
      ctx.store.listActiveSisParentIds(districtId),
    ]);
  // A guardian shared by siblings in two chunks is reported by both: keep each reject once.
  const rejects = uniqueRejects(pulledRejects);
  step('read');
  // A delta, or a feed that does not list every guardian, removes nothing for absence.
  const decision = decideFinalize(
    scopeFinalizeInput(
      {
        activeStudentIds,
        activeSisParentIds,
        seenStudents: seen.students,
        seenParents: seen.parents,
        linkRemovals,
        thresholdPercent: district.policies.deletionThresholdPercent,
      },
      meta,
      ctx.connectorFor(district).capabilities,
    ),
  );
  const d = decision.deactivations;
  // Links go with the students and parents they belong to; they come back with them too.
  d.links = unionLinks(
    d.links,
    await ctx.store.listActiveSisLinks(districtId, {
      studentSourcedIds: d.studentSourcedIds,
      parentIds: d.parentIds,
    }),
  );
  // Add-only (district policy, or a freeze window when the run was created): nothing is
  // deactivated and nothing is held; the counts say what was skipped.
  const mode = syncModeAt(district, new Date(run.createdAt));
  const addOnly = mode.mode !== 'normal';
  const held = decision.hold && !run.dryRun && !addOnly;
  // Deactivations that are not applied are counted with a suffix saying why (dry run: what
  // it would do; held: waiting for approval; add-only: skipped); applied ones are counted
  // from the change log like every other change of the run.
  const sfx = addOnly ? '-skipped' : held ? '-held' : run.dryRun ? '' : undefined;
  const deactCounts: RunCounts = {};
  if (sfx !== undefined) {
    if (d.studentSourcedIds.length)
      deactCounts.student = { [`deactivate${sfx}`]: d.studentSourcedIds.length };
    if (d.parentIds.length) deactCounts.parent = { [`deactivate${sfx}`]: d.parentIds.length };
    if (d.links.length) deactCounts.link = { [`remove${sfx}`]: d.links.length };
  }
  step('decide');
  if (!decision.hold && !run.dryRun && !addOnly)
    await ctx.store.applyDeactivations(districtId, d, runChange(run));
  step('deactivate');
  if (addOnly) ctx.logger.info({ districtId, runId, mode: describeSyncMode(mode) }, 'add-only run');

  const hookCounts: RunCounts = {};
  if (FINALIZE_HOOKS.length) {
    const input: FinalizeHookInput = {
      run,
      district,
      capabilities: ctx.connectorFor(district).capabilities,
      dryRun: run.dryRun,
      held,
    };
    for (const hook of FINALIZE_HOOKS) {
      const c = await hook.run(ctx, input);
      if (c) mergeCounts(hookCounts, c);
      step(hook.name);
    }
  }

  await ctx.store.addRejects(runId, rejects);
  const finishedAt = new Date();
  const timings: Record<string, number> = {
    ...run.timings,
    ...steps,
    pull: Number(meta.pullMs ?? 0),
    finalize: Date.now() - started,
    total: finishedAt.getTime() - Date.parse(run.startedAt ?? run.createdAt),
  };
  // A dry run says how many activation emails the real run would queue (one per new account).
  if (run.dryRun && district.notifications?.activationEmails && counts.parent?.create)
    mergeCounts(hookCounts, { activation: { [ACTIVATION_COUNT.planned]: counts.parent.create } });
  const status = held ? 'needs-approval' : 'succeeded';
  const updated = await ctx.store.updateRun(runId, {
    status,
    finishedAt: finishedAt.toISOString(),
    counts: await runCounts(ctx, run, counts, [deactCounts, hookCounts, exclusionCounts(rejects)]),
    // records refused; exclusions are counted per reason in `counts` (`excluded:<reason>`)
    rejectCount: rejects.filter(r => r.kind !== 'excluded').length,
    timings,
    held: held ? d : undefined,
    error: held
      ? `held by deletion safeguard: ${decision.holdReason}`
      : run.dryRun && decision.hold
        ? `dry run: the deletion safeguard would hold this run: ${decision.holdReason}`
        : undefined,
  });
  await ctx.ledger.clear(runId);
  // Activation emails held with the run go out now that it succeeded (the change-log
  // consumer does the same if this process dies here).
  if (status === 'succeeded' && !run.dryRun) await releaseHeldActivations(ctx, districtId, runId);
  if (!run.dryRun) await kickChanges(ctx, districtId);
  processMetrics(ctx).recordRun(updated);
  ctx.logger.info(
    {
      districtId,
      runId,
      status,
      counts: updated.counts,
      rejects: rejects.length,
      ms: timings.total,
    },
    'run finished',
  );
  return updated;
}

/**
 * A run's counts (entity → action → n). Roster changes (students, parents, links, codes) of a
 * real run come from the change log, so a retried, re-pulled or failed run reports exactly
 * what it changed; a dry run's come from its plans (`planned`, the ledger's sum). `extras`
 * are counts of things that are not changes (held or skipped deactivations, emails, sections);
 * their roster-change actions are dropped in favour of the log's.
 */
async function runCounts(
  ctx: AppContext,
  run: SyncRun,
  planned: RunCounts,
  extras: RunCounts[],
): Promise<RunCounts> {
  const out: RunCounts = {};
  if (run.dryRun) mergeCounts(out, planned);
  else {
    mergeCounts(out, await runCountsFromLog(ctx, run.districtId, run.id));
    for (const [entity, actions] of Object.entries(planned))
      if (!ROSTER_COUNT_ENTITIES.has(entity)) mergeCounts(out, { [entity]: actions });
  }
  for (const extra of extras) {
    for (const [entity, actions] of Object.entries(extra)) {
      const kept: Record<string, number> = {};
      for (const [action, n] of Object.entries(actions))
        if (run.dryRun || !isLoggedAction(entity, action)) kept[action] = n;
      if (Object.keys(kept).length) mergeCounts(out, { [entity]: kept });
    }
  }
  return out;
}

/** True for a count label that the change log already counts for a real run. */
function isLoggedAction(entity: string, action: string): boolean {
  return (
    ROSTER_COUNT_ENTITIES.has(entity) &&
    !/-(held|skipped)$/.test(action) &&
    action !== 'held' &&
    !action.startsWith(EXCLUDED_PREFIX)
  );
}

/** `counts` without the labels of held work (`*-held`, `held`). */
function withoutHeld(counts: RunCounts): RunCounts {
  const out: RunCounts = {};
  for (const [entity, actions] of Object.entries(counts))
    for (const [action, n] of Object.entries(actions))
      if (action !== 'held' && !action.endsWith('-held'))
        mergeCounts(out, { [entity]: { [action]: n } });
  return out;
}

function unionLinks(
  a: { parentId: string; studentSourcedId: string }[],
  b: { parentId: string; studentSourcedId: string }[],
): { parentId: string; studentSourcedId: string }[] {
  const out = new Map<string, { parentId: string; studentSourcedId: string }>();
  for (const l of [...a, ...b]) out.set(`${l.parentId}\u0000${l.studentSourcedId}`, l);
  return [...out.values()];
}

/**
 * Apply the deactivations a `needs-approval` run holds, as `actor` (recorded on the run as
 * `decidedBy` and in the change log with cause `approval`). Throws when the run is not held,
 * or when a newer run of the district exists (its snapshot supersedes the held list: a
 * student held for deactivation may be back by now — start a new sync instead).
 */
export async function approveRun(
  ctx: AppContext,
  runId: string,
  actor = 'system',
): Promise<SyncRun> {
  const run = await heldRun(ctx, runId);
  const [latest] = await ctx.store.listRuns(run.districtId, 1);
  if (latest && latest.id !== run.id) {
    throw new RunStateError(
      `run ${runId} is superseded by the newer run ${latest.id} (${latest.status}); its held ` +
        'list may be stale: discard it, and approve a held run from a fresh sync instead',
    );
  }
  await ctx.store.applyDeactivations(
    run.districtId,
    run.held ?? { studentSourcedIds: [], parentIds: [], links: [] },
    { cause: { kind: 'approval', id: run.id, trigger: run.trigger }, actor },
  );
  const district = ctx.district(run.districtId);
  const codes = await accessCodesFinalizeHook(ctx, {
    run,
    district,
    capabilities: ctx.connectorFor(district).capabilities,
    dryRun: false,
    held: false,
  });
  const updated = await ctx.store.updateRun(runId, {
    status: 'succeeded',
    error: undefined,
    held: undefined,
    // What was held is now done (and in the log); the run's other figures stay.
    counts: await runCounts(ctx, run, {}, [withoutHeld(run.counts), withoutHeld(codes ?? {})]),
    decidedBy: actor,
    decidedAt: new Date().toISOString(),
  });
  // Activation emails this held run kept back go out now.
  await releaseHeldActivations(ctx, run.districtId, run.id);
  await kickChanges(ctx, run.districtId);
  processMetrics(ctx).recordRun(updated);
  return updated;
}

/**
 * Drop the held deactivations of a `needs-approval` run (nothing is deactivated), as
 * `actor` (recorded on the run as `decidedBy`). What the run did apply (additions, updates)
 * stays, and its counts still say so.
 */
export async function discardRun(
  ctx: AppContext,
  runId: string,
  actor = 'system',
): Promise<SyncRun> {
  await heldRun(ctx, runId);
  const updated = await ctx.store.updateRun(runId, {
    status: 'discarded',
    held: undefined,
    decidedBy: actor,
    decidedAt: new Date().toISOString(),
  });
  processMetrics(ctx).recordRun(updated);
  return updated;
}

async function heldRun(ctx: AppContext, runId: string): Promise<SyncRun> {
  const run = await ctx.store.getRun(runId);
  if (!run) throw new RunStateError(`no run ${runId}`);
  if (run.status !== 'needs-approval' || !run.held)
    throw new RunStateError(`run ${runId} is ${run.status}, not waiting for approval`);
  return run;
}

/**
 * Mark a run failed with the reason (called when a pull/apply/finalize job fails for good).
 * What its applied chunks changed stays (nothing is rolled back or deactivated) and is
 * counted from the change log; the accounts they created get their activation emails.
 */
export async function failRun(ctx: AppContext, runId: string, err: unknown): Promise<void> {
  const run = await ctx.store.getRun(runId);
  if (!run || (run.status !== 'running' && run.status !== 'queued')) return;
  let failed = await ctx.store.updateRun(runId, {
    status: 'failed',
    finishedAt: new Date().toISOString(),
    error: describeError(err),
    counts: await runCounts(ctx, run, {}, []),
  });
  // An apply job may have committed between the counts' read and the status write, and
  // re-read the run while it was still `running`: count once more now that it is `failed`
  // (any later commit sees `failed` and re-counts itself, see `handleApply`).
  const again = await runCounts(ctx, failed, {}, []);
  if (JSON.stringify(again) !== JSON.stringify(failed.counts))
    failed = await ctx.store.updateRun(runId, { counts: again });
  await ctx.ledger.clear(runId);
  if (!run.dryRun) {
    await releaseHeldActivations(ctx, run.districtId, runId);
    await kickChanges(ctx, run.districtId);
  }
  processMetrics(ctx).recordRun(failed);
}

const TERMINAL = new Set(['succeeded', 'failed', 'needs-approval', 'discarded']);

/**
 * Resolve with the run once it leaves `queued`/`running`. Checks the store every
 * `intervalMs`; rejects after `timeoutMs` with the run's last status.
 */
export async function waitForRun(
  ctx: Pick<AppContext, 'store'>,
  runId: string,
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<SyncRun> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10 * 60 * 1000);
  for (;;) {
    const run = await ctx.store.getRun(runId);
    if (run && TERMINAL.has(run.status)) return run;
    if (Date.now() > deadline)
      throw new Error(`run ${runId} did not finish in time (status ${run?.status ?? 'unknown'})`);
    await new Promise(r => setTimeout(r, opts.intervalMs ?? 100));
  }
}
