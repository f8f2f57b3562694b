/**
 * The sync pipeline's job handlers: trigger → roster-pull → roster-apply (per chunk) →
 * roster-finalize. Handlers take `(payload, ctx)` and throw on failure; the workers
 * (src/workers) turn non-retryable errors into BullMQ `UnrecoverableError`.
 */
import { randomBytes } from 'node:crypto';
import { DelayedError, Job } from 'bullmq';
import type { AppContext } from '../app.js';
import { explainError, RunStateError, SisRateLimitError } from '../errors.js';
import { z } from 'zod';
import { dryRunParentCounts, dryRunParentsOf } from '../reconcile/dry-run.js';
import {
  decideFinalize,
  proposeRemap,
  scanActive,
  yieldToEventLoop,
  type ActiveBaseline,
} from '../reconcile/finalize.js';
import { chunkKeys, planChunk } from '../reconcile/plan.js';
import { describeSyncMode, syncModeAt } from '../reconcile/freeze.js';
import type {
  ChunkPlan,
  Reject,
  RunConfig,
  RunCounts,
  StoredStudent,
  SyncRun,
  SyncRunPatch,
} from '../models/types.js';
import { ActiveRunExistsError } from '../models/types.js';
import { processMetrics } from '../workers/metrics.js';
import { jobId } from '../workers/queues.js';
import { FINALIZE_HOOKS, type FinalizeHookInput } from './finalize-hooks.js';
import {
  absenceScope,
  loadDeltaState,
  scopeFinalizeInput,
  snapshotMeta,
} from './connector-state.js';
import { mergeCounts } from './ledger.js';
import { APPLY_WAIT_TIMINGS } from '../shared/api-schemas.js';
import { issueChunkCodes } from '../access-codes/chunk-codes.js';
import { countLabel, kickChanges, runCountsFromLog, ROSTER_COUNT_ENTITIES } from './changes.js';
import { ACTIVATION_COUNT, releaseHeldActivations } from './notifications.js';
import { accessCodesFinalizeHook } from '../access-codes/finalize-hook.js';
import type { ChangeContext } from '../models/changes/types.js';
import { applyChunkExtras } from './chunk-extras.js';
import { waitForChunkWindow } from './chunk-turns.js';
import { chunkSenderFor } from './chunk-sender.js';
import { sizePriority } from './priority.js';
import { APPLY_FAILED_RETENTION_SECONDS } from './job-retention.js';
import { EXCLUDED_PREFIX, exclusionCounts, uniqueRejects } from './rejects.js';
import {
  APPLY_PAYLOAD_VERSION,
  FinalizePayload,
  PullPayload,
  trustedApplyPayload,
  type ApplyPayload,
  type TriggerPayload,
} from './payloads.js';
import { unchangedCheck } from '../reconcile/digest.js';
import { refusedConfigNote, runConfigOf } from './run-config.js';

/** Default BullMQ options per step: retries with exponential backoff and jitter. */
export const JOB_OPTIONS = {
  pull: { attempts: 2, backoff: { type: 'exponential', delay: 5000, jitter: 0.5 } },
  // Chunk payloads are roster data (names, emails, phones; ≈ 1 MB per 1,000 students): a
  // completed chunk is removed from Redis at once (a re-added chunk is simply applied again:
  // applying is idempotent); a failed one keeps only counts (src/jobs/job-retention.ts) and
  // is removed after APPLY_FAILED_RETENTION_SECONDS.
  apply: {
    attempts: 5,
    backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
    removeOnComplete: true,
    removeOnFail: { age: APPLY_FAILED_RETENTION_SECONDS, count: 1000 },
  },
  finalize: { attempts: 5, backoff: { type: 'exponential', delay: 1000, jitter: 0.5 } },
} as const;

/** Rejects finalize stores per transaction (the event loop turns between batches). */
const REJECT_WRITE_BATCH = 5000;
/** Held records read and deactivated per transaction when a held run is approved. */
const APPROVE_BATCH = 5000;
/** Departing students read per `findRecords` call when a held re-key proposes its remap. */
const REMAP_READ_BATCH = 5000;
/** Order in which an approval applies the held lists. */
const HELD_KINDS = ['student', 'parent', 'link'] as const;

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
  opts: { config?: RunConfig } = {},
): Promise<{ run: SyncRun; started: boolean }> {
  const district = ctx.district(req.districtId);
  const config = opts.config ?? runConfigOf(ctx, district.id);
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
    config,
  };
  let run: SyncRun;
  try {
    run = await ctx.store.createRun(candidate);
  } catch (err) {
    if (err instanceof ActiveRunExistsError) return { run: err.activeRun, started: false };
    throw err;
  }
  const payload: PullPayload = { districtId: run.districtId, runId: run.id };
  // Smaller districts' pulls first (docs/decisions/0016): sized by the students it holds now.
  const held = await ctx.store.countActive(run.districtId);
  await ctx.queues.pull.add('pull', payload, {
    jobId: jobId.pull(run.districtId, run.id),
    ...JOB_OPTIONS.pull,
    priority: sizePriority(held.students),
  });
  ctx.logger.info(
    {
      districtId: run.districtId,
      runId: run.id,
      dryRun: run.dryRun,
      trigger: run.trigger,
      actor: run.actor,
      configFile: config.file,
      configSha256: config.sha256,
    },
    'run queued',
  );
  // (a caller that passes the configuration has told its user already)
  const note = opts.config ? undefined : refusedConfigNote(config);
  if (note) ctx.logger.warn({ districtId: run.districtId, runId: run.id }, note);
  return { run, started: true };
}

/**
 * How often one run's pull may be rescheduled for a SIS rate limit before the 429 is treated
 * as a failure (the job's normal retries, then a failed run). docs/operations.md.
 */
export const MAX_RATE_LIMIT_RESCHEDULES = 5;

/**
 * roster-pull: stream the snapshot from the SIS into apply jobs. A SIS that answers 429 with
 * a `Retry-After` longer than a client waits in line (`SisRateLimitError`) reschedules the
 * pull: the run stores `waiting` (until when, why), the job is delayed to the server's time
 * (at most `SIS_RETRY_AFTER_MAX_SECONDS` ahead) without using an attempt, and the pull then
 * starts again from the first page (a new ledger generation; docs/decisions/0007).
 */
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
    const limited = rateLimitOf(err);
    if (limited && token) await rescheduleForRateLimit(ctx, job, token, limited);
    throw err;
  }
}

/** The `SisRateLimitError` in `err` or its `cause` chain, if any. */
function rateLimitOf(err: unknown): SisRateLimitError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    if (e instanceof SisRateLimitError) return e;
    e = e.cause;
  }
  return undefined;
}

/**
 * Record the wait on the run and delay the pull job to the SIS's time (capped by
 * `SIS_RETRY_AFTER_MAX_SECONDS`). Throws BullMQ's `DelayedError` (the job is not failed and
 * keeps its attempts), or returns when the run already waited `MAX_RATE_LIMIT_RESCHEDULES`
 * times (the caller rethrows the 429).
 */
async function rescheduleForRateLimit(
  ctx: AppContext,
  job: Job,
  token: string,
  err: SisRateLimitError,
): Promise<void> {
  const { districtId, runId } = PullPayload.parse(job.data);
  const run = await ctx.store.getRun(runId);
  const reschedules = (run?.waiting?.reschedules ?? 0) + 1;
  const log = ctx.logger.child({ districtId, runId, step: 'pull' });
  if (reschedules > MAX_RATE_LIMIT_RESCHEDULES) {
    log.warn({ reschedules: reschedules - 1 }, 'SIS still rate limiting; giving up waiting');
    return;
  }
  const maxMs = ctx.env.SIS_RETRY_AFTER_MAX_SECONDS * 1000;
  const untilMs = Math.min(err.untilMs, Date.now() + maxMs);
  const asked = Math.ceil((err.retryAfterMs ?? 0) / 1000);
  const capped =
    err.untilMs > untilMs ? ` (capped by SIS_RETRY_AFTER_MAX_SECONDS=${maxMs / 1000})` : '';
  const waiting = {
    until: new Date(untilMs).toISOString(),
    reason: `${err.method} ${err.path}: HTTP 429, Retry-After ${asked} s${capped}`,
    reschedules,
  };
  await ctx.store.updateRun(runId, { waiting });
  log.warn(waiting, 'waiting for SIS: pull rescheduled');
  await job.moveToDelayed(untilMs, token);
  throw new DelayedError();
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
  if (previous?.status !== 'queued' && previous?.status !== 'running') {
    // Cancelled (or ended) before a worker took the pull up: nothing to do.
    log.info({ status: previous?.status }, 'run already ended: pull skipped');
    return { chunks: 0 };
  }
  // What this worker really uses (its view may differ from the triggering process's).
  const config = runConfigOf(ctx, districtId);
  const marked = await ctx.store.updateRun(runId, {
    status: 'running',
    // a retried or resumed pull keeps the run's first start, so timings stay honest
    startedAt: previous.startedAt ?? new Date(started).toISOString(),
    config,
  });
  const note = refusedConfigNote(config);
  if (note) log.warn({ configFile: config.file, problems: config.refused?.problems }, note);
  if (marked.decidedAt !== undefined) {
    // Cancelled between the read above and this write (only `cancelRun` decides an active
    // run): put the cancellation back and stop.
    await ctx.store.updateRun(runId, { status: 'cancelled' });
    log.info('run cancelled as its pull started: pull skipped');
    return { chunks: 0 };
  }
  // Every pull attempt starts a new ledger generation: chunks of an earlier attempt
  // (whose pages may have shifted since) are ignored, never mixed with this one's.
  const generation = await ctx.ledger.startGeneration(runId);
  // Students active before this run (what an earlier attempt of it created does not count):
  // when there are any, apply jobs defer new students that match nothing (ADR 0004).
  const [active, own] = await Promise.all([
    ctx.store.countActive(districtId),
    runCountsFromLog(ctx, districtId, runId),
  ]);
  const studentsBefore =
    active.students - (own.student?.create ?? 0) - (own.student?.reactivate ?? 0);
  const parentsBefore = active.parents - (own.parent?.create ?? 0) - (own.parent?.reactivate ?? 0);
  await ctx.ledger.setMeta(runId, {
    baselineStudents: String(Math.max(0, studentsBefore)),
    // with baselineStudents: a first sync issues its access codes at apply (ADR 0018)
    baselineParents: String(Math.max(0, parentsBefore)),
  });
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
  // Schools are written once the roster has produced its first chunk (or ended), not before:
  // a package or feed that fails before that leaves the store untouched.
  let schoolsWritten = dryRun;
  const writeSchools = async () => {
    if (schoolsWritten) return;
    schoolsWritten = true;
    await ctx.store.upsertSchools(districtId, schools);
  };

  // Chunks go to Redis from a worker thread (SYNC_CHUNK_SENDER, docs/decisions/0021).
  const sender = chunkSenderFor(ctx);
  // Chunk n is added to the queue while the connector reads chunk n+1 (one add in flight at
  // most); a failed add surfaces at the next await, before anything else is enqueued.
  let adding: Promise<unknown> = Promise.resolve();
  try {
    let n = 0;
    // Students read so far: with `studentsBefore`, the district's size as known at this chunk,
    // which sets its chunks' priority (smaller districts first, docs/decisions/0016).
    let pulledStudents = 0;
    for await (const chunk of connector.readRoster(pullCtx)) {
      // Cancelled (`cancelRun`): stop at this chunk boundary; what was applied stays.
      if (await runEnded(ctx, runId)) {
        await adding;
        await ctx.ledger.clear(runId);
        log.info({ chunks: n }, 'run ended while pulling: pull stopped');
        return { chunks: n };
      }
      await writeSchools();
      await adding;
      // Take the batch before the round trip: a connector may still report rejects meanwhile
      // (eSchoolPLUS link-less reads its contact files beside the student chunks, ADR 0018);
      // they go to the next batch instead of being dropped with this one.
      const batch = pending;
      pending = [];
      await ctx.ledger.recordPullRejects(runId, String(n).padStart(8, '0'), batch);
      const payload: ApplyPayload = {
        v: APPLY_PAYLOAD_VERSION,
        districtId,
        runId,
        chunkNo: n,
        generation,
        chunk,
      };
      // Parked until the district's previous chunk is done (one writer per district, ADR 0011).
      pulledStudents += chunk.students.length;
      adding = sender.send(payload, {
        ...JOB_OPTIONS.apply,
        priority: sizePriority(Math.max(studentsBefore, pulledStudents)),
      });
      adding.catch(() => undefined); // handled by the await above / below
      n++;
      await waitForChunkWindow(ctx, runId, generation, n, signal);
    }
    await adding;
    await writeSchools();
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
  } finally {
    // A pull that failed part way lets its last add finish (as an inline add would) before
    // it releases the sender.
    await adding.catch(() => undefined);
    await sender.close();
  }
}

/** True when the run is no longer `queued`/`running` (cancelled, or ended by its other jobs). */
async function runEnded(ctx: AppContext, runId: string): Promise<boolean> {
  const run = await ctx.store.getRun(runId);
  return !run || (run.status !== 'running' && run.status !== 'queued');
}

/** Entity → action → n for one chunk plan. */
export function countPlan(plan: ChunkPlan): RunCounts {
  const c: RunCounts = {};
  const inc = (e: string, a: string, k = 1) => {
    const t = (c[e] ??= {});
    t[a] = (t[a] ?? 0) + k;
  };
  // a move is logged as an update of the student (its sourcedId changes)
  for (const s of plan.students) inc('student', s.action === 'move' ? 'update' : s.action);
  if (plan.deferredStudents?.length) inc('student', 'create', plan.deferredStudents.length);
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
  // From enqueued to now: the chunk's wait for a worker slot and its district's turn.
  const applyWaitMs = Date.now() - job.timestamp;
  const p = trustedApplyPayload(job.data);
  const district = ctx.district(p.districtId);
  const run = await ctx.store.getRun(p.runId);
  if (!run) throw new Error(`run ${p.runId} not found`);
  if (run.status === 'cancelled') {
    // Cancelled (`cancelRun`): the chunks still waiting are not applied.
    ctx.logger.info(
      { districtId: p.districtId, runId: p.runId, chunk: p.chunkNo },
      'chunk of a cancelled run skipped',
    );
    return {};
  }
  if ((await ctx.ledger.generation(p.runId)) !== p.generation) {
    // A chunk of an earlier pull attempt of this run: its data may be stale, skip it.
    ctx.logger.info(
      { districtId: p.districtId, runId: p.runId, chunk: p.chunkNo, generation: p.generation },
      'stale chunk skipped',
    );
    return {};
  }
  const meta = await ctx.ledger.meta(p.runId);
  const planCtx = {
    districtId: p.districtId,
    connector: district.connector.kind,
    parentRole: district.policies.parentRole,
    // the district had active students before the run: new students that match nothing wait
    // for finalize (a mass re-key is then held before any of them is written; ADR 0004)
    // (a dry run writes nothing anyway: it plans creations as such)
    deferUnmatched: !run.dryRun && Number(meta.baselineStudents ?? 0) > 0,
    guardiansWithoutLogin: district.policies.guardiansWithoutLogin,
  };
  const plan = await ctx.store.reconcileChunk(
    p.districtId,
    chunkKeys(p.chunk, planCtx.connector),
    state => planChunk(p.chunk, state, planCtx),
    {
      dryRun: run.dryRun,
      change: runChange(run),
      runId: run.id,
      // students whose SIS data is what was last applied are skipped (ADR 0014)
      unchanged: run.dryRun ? undefined : unchangedCheck(p.chunk, planCtx),
    },
  );
  const planCounts = countPlan(plan);
  const counts = mergeCounts(
    mergeCounts({}, planCounts),
    await applyChunkExtras(ctx, p, plan, run.dryRun),
  );
  // A first sync's access codes go out with its chunks, not in a serial pass at finalize
  // (ADR 0018); counted from the change log like the finalize hook's.
  const codesIssued = await issueChunkCodes(ctx, {
    run,
    district,
    meta,
    capabilities: () => ctx.connectorFor(district).capabilities,
    studentSourcedIds: p.chunk.students.filter(s => s.status === 'active').map(s => s.sourcedId),
  });
  const seenParents = new Set(Object.values(plan.guardianAccounts));
  if (run.dryRun)
    await ctx.ledger.recordDryRunParents(p.runId, p.chunkNo, JSON.stringify(dryRunParentsOf(plan)));
  const recorded = await ctx.ledger.recordChunk(p.runId, p.generation, {
    chunkNo: p.chunkNo,
    seenStudents: p.chunk.students.filter(s => s.status === 'active').map(s => s.sourcedId),
    seenParents: [...seenParents],
    linkRemovals: plan.linkRemovals,
    counts,
    rejects: plan.rejects,
    applyWaitMs,
  });
  if (!run.dryRun && (Object.keys(planCounts).length > 0 || codesIssued > 0)) {
    await kickChanges(ctx, p.districtId);
    // The run may have been failed or cancelled while this chunk was being written: its
    // counts were taken from the log before this chunk's entries; take them again.
    const now = await ctx.store.getRun(p.runId);
    if (now?.status === 'failed' || now?.status === 'cancelled') {
      await ctx.store.updateRun(p.runId, { counts: await runCounts(ctx, now, {}, []) });
      await ctx.ledger.clear(p.runId);
      return counts;
    }
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
  if (run.status !== 'running' && run.status !== 'queued') {
    // already finalized, or cancelled after its last chunk (nothing is deactivated)
    if (run.status === 'cancelled') await ctx.ledger.clear(runId);
    return run;
  }
  const started = Date.now();
  // Where finalize spends its time, by step (ms): kept on the run next to pull/total.
  const steps: Record<string, number> = {};
  let stepStart = started;
  const step = (name: string) => {
    const now = Date.now();
    steps[`finalize.${name}`] = now - stepStart;
    stepStart = now;
  };
  const [seen, linkRemovals, counts, pulledRejects, meta, applyWaits] = await Promise.all([
    ctx.ledger.seen(runId),
    ctx.ledger.linkRemovals(runId),
    ctx.ledger.counts(runId),
    ctx.ledger.rejects(runId),
    ctx.ledger.meta(runId),
    ctx.ledger.applyWaits(runId),
  ]);
  step('ledger');
  // A delta, or a feed that does not list every guardian, removes nothing for absence.
  const capabilities = ctx.connectorFor(district).capabilities;
  const scope = absenceScope(meta, capabilities);
  // The district's active ids are streamed page by page through a covering index: only
  // their number and the ones this snapshot did not deliver are kept (ADR 0012). A scan
  // whose absences are out of scope only counts.
  const activeStudents = await scanActive(
    ctx.store.activeIdPages(districtId, 'student'),
    scope.students ? seen.students : undefined,
  );
  const activeSisParents = await scanActive(
    ctx.store.activeIdPages(districtId, 'sis-parent'),
    scope.parents ? seen.parents : undefined,
  );
  step('scan');
  // The safeguard measures against the active state before the run: what this run created
  // or reactivated (in the change log) does not count (ADR 0004).
  const baseline = await activeBaseline(
    ctx,
    districtId,
    runId,
    { students: activeStudents.count, parents: activeSisParents.count },
    // the link measure needs the active links only when the run removes some (a count over
    // every link of the district otherwise: 150 ms at 500,000 students)
    { links: linkRemovals.length > 0 },
  );
  // New students that match nothing: kept with the run (real run) or planned (dry run).
  const unmatchedStudents = run.dryRun
    ? (counts.student?.create ?? 0)
    : (await ctx.store.countDeferredStudents(runId)).students;
  // A guardian shared by siblings in two chunks is reported by both: keep each reject once.
  const rejects = uniqueRejects(pulledRejects);
  step('read');
  // A dry run counts a guardian planned by several chunks as the real run would (once).
  if (run.dryRun) dedupeDryRunParents(counts, await ctx.ledger.dryRunParents(runId));
  const input = scopeFinalizeInput(
    {
      activeStudents,
      activeSisParents,
      seenStudents: seen.students.size,
      linkRemovals,
      thresholdPercent: district.policies.deletionThresholdPercent,
      baseline,
      unmatchedStudents,
    },
    meta,
    capabilities,
  );
  let decision = decideFinalize(input);
  let d = decision.deactivations;
  // Links go with the students and parents they belong to; they come back with them too.
  const withTheirLinks = async (x: typeof d) => {
    x.links = unionLinks(
      x.links,
      await ctx.store.listActiveSisLinks(districtId, {
        studentSourcedIds: x.studentSourcedIds,
        parentIds: x.parentIds,
      }),
    );
  };
  await withTheirLinks(d);
  // A parent account left with no child (every link ended, none of another origin active)
  // is deactivated too, for every connector (issue 18 §5); a guardian this snapshot listed
  // is not (the planner would only bring it back). A delta vouches for no absence: skipped.
  if (meta.snapshot !== 'delta') {
    const already = new Set(d.parentIds);
    const orphans = (await ctx.store.listOrphanedSisParentIds(districtId, d.links)).filter(
      id => !already.has(id) && !seen.parents.has(id),
    );
    if (orphans.length) {
      decision = decideFinalize({
        ...input,
        orphanedParentIds: orphans,
        activeSisParentTotal: activeSisParents.count,
      });
      d = decision.deactivations;
      await withTheirLinks(d);
    }
  }
  step('links');
  // Add-only (district policy, or a freeze window when the run was created): nothing is
  // deactivated and nothing is held; the counts say what was skipped.
  const mode = syncModeAt(district, new Date(run.createdAt));
  const addOnly = mode.mode !== 'normal';
  const held = decision.hold && !run.dryRun && !addOnly;
  // A probable re-key keeps its new students back with the run, with a proposed remap (old →
  // new) for the admin; otherwise the new students the chunks deferred are created now.
  const rekeyHeld = held && decision.rekey;
  let remapProposed = 0;
  if (rekeyHeld) remapProposed = await proposeRunRemap(ctx, districtId, runId, d.studentSourcedIds);
  else if (!run.dryRun && unmatchedStudents > 0)
    await ctx.store.applyDeferredStudents(districtId, runId, runChange(run), { remap: false });
  step('new-students');
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
  if (rekeyHeld) mergeCounts(deactCounts, { student: { 'create-held': unmatchedStudents } });
  step('decide');
  if (!decision.hold && !run.dryRun && !addOnly)
    await ctx.store.applyDeactivations(districtId, d, runChange(run));
  step('deactivate');
  if (addOnly) ctx.logger.info({ districtId, runId, mode: describeSyncMode(mode) }, 'add-only run');

  const hookCounts: RunCounts = {};
  if (FINALIZE_HOOKS.length) {
    const hookInput: FinalizeHookInput = {
      run,
      district,
      capabilities,
      dryRun: run.dryRun,
      held,
    };
    for (const hook of FINALIZE_HOOKS) {
      const c = await hook.run(ctx, hookInput);
      if (c) mergeCounts(hookCounts, c);
      step(hook.name);
    }
  }

  // In batches with a turn of the event loop between them: a 500,000-student district has
  // about 150,000 exclusions, one synchronous SQLite transaction of ~1 s otherwise. Safe to
  // split: `addRejects` skips a reject already stored for the run (a retried finalize).
  for (let i = 0; i < rejects.length; i += REJECT_WRITE_BATCH) {
    await ctx.store.addRejects(runId, rejects.slice(i, i + REJECT_WRITE_BATCH));
    await yieldToEventLoop();
  }
  step('rejects');
  const finishedAt = new Date();
  const timings: Record<string, number> = {
    ...run.timings,
    ...steps,
    pull: Number(meta.pullMs ?? 0),
    // how long the chunks waited to be applied (the run's queue wait, with startedAt − createdAt)
    ...(applyWaits && {
      [APPLY_WAIT_TIMINGS.avg]: applyWaits.avg,
      [APPLY_WAIT_TIMINGS.max]: applyWaits.max,
    }),
    finalize: Date.now() - started,
    total: finishedAt.getTime() - Date.parse(run.startedAt ?? run.createdAt),
  };
  // A dry run says how many activation emails the real run would queue (one per new account).
  if (run.dryRun && district.notifications?.activationEmails && counts.parent?.create)
    mergeCounts(hookCounts, { activation: { [ACTIVATION_COUNT.planned]: counts.parent.create } });
  const status = held ? 'needs-approval' : 'succeeded';
  const patch = {
    status,
    finishedAt: finishedAt.toISOString(),
    counts: await runCounts(ctx, run, counts, [deactCounts, hookCounts, exclusionCounts(rejects)]),
    // records refused; exclusions are counted per reason in `counts` (`excluded:<reason>`)
    rejectCount: rejects.filter(r => r.kind !== 'excluded').length,
    timings,
    held: undefined,
    error: held
      ? `held by deletion safeguard: ${decision.holdReason}` +
        (rekeyHeld
          ? `; remap proposed for ${remapProposed} of ${unmatchedStudents} new students (old → new by name, school and grade; see the run's remap)`
          : '')
      : run.dryRun && decision.hold
        ? `dry run: the deletion safeguard would hold this run: ${decision.holdReason}`
        : undefined,
  } as const;
  // A held run's lists go to the store's held pages with its status change (docs/decisions/
  // 0006): a district-sized list does not fit in the run document.
  const updated = held
    ? await ctx.store.holdRun(runId, patch, d)
    : await ctx.store.updateRun(runId, patch);
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

/**
 * The district's active counts before run `runId` (ADR 0004): active students, `sis` parent
 * accounts and `sis` links now, minus those this run created or reactivated (from the change
 * log, so a retried or resumed run measures the same). `now`: the active students and `sis`
 * accounts counted now. `opts.links` false: the links are not counted (`links` undefined).
 */
export async function activeBaseline(
  ctx: AppContext,
  districtId: string,
  runId: string,
  now: { students: number; parents: number },
  opts: { links: boolean } = { links: true },
): Promise<ActiveBaseline> {
  const [links, ownCounts] = await Promise.all([
    opts.links ? ctx.store.countActiveSisLinks(districtId) : undefined,
    runCountsFromLog(ctx, districtId, runId),
  ]);
  // log counts are labelled for reports (a link `create` is counted as `add`)
  const added = (entity: string) =>
    (ownCounts[entity]?.[countLabel(entity, 'create')] ?? 0) + (ownCounts[entity]?.reactivate ?? 0);
  return {
    students: Math.max(0, now.students - added('student')),
    parents: Math.max(0, now.parents - added('parent')),
    links: links === undefined ? undefined : Math.max(0, links - added('link')),
  };
}

/**
 * Propose and store the remap of a held re-key: the run's deferred students paired with the
 * students it would deactivate by name + school + grade (`proposeRemap`). Returns the
 * number of pairs.
 */
async function proposeRunRemap(
  ctx: AppContext,
  districtId: string,
  runId: string,
  deactivated: string[],
): Promise<number> {
  // Only the departing students are read, by id and in pages (not the whole district).
  const old: StoredStudent[] = [];
  for (let i = 0; i < deactivated.length; i += REMAP_READ_BATCH)
    old.push(
      ...(
        await ctx.store.findRecords(districtId, {
          studentSourcedIds: deactivated.slice(i, i + REMAP_READ_BATCH),
          parentIds: [],
        })
      ).students,
    );
  const deferred = await ctx.store.listDeferredStudents(runId);
  const { pairs, ambiguous } = proposeRemap(
    old,
    deferred.map(r => r.record),
  );
  await ctx.store.setRemap(runId, pairs);
  ctx.logger.info(
    {
      districtId,
      runId,
      deferred: deferred.length,
      proposed: pairs.length,
      ambiguous: ambiguous.length,
    },
    'probable re-key held with a proposed remap',
  );
  return pairs.length;
}

/** Replace the per-chunk parent counts of a dry run by `dryRunParentCounts` of its chunks. */
function dedupeDryRunParents(counts: RunCounts, chunks: string[]): void {
  const merged = dryRunParentCounts(chunks.map(j => DryRunParentsJson.parse(JSON.parse(j))));
  const kept: Record<string, number> = {};
  for (const [action, n] of Object.entries(counts.parent ?? {}))
    if (!PLANNED_PARENT_ACTIONS.has(action)) kept[action] = n;
  Object.assign(kept, merged);
  if (Object.keys(kept).length) counts.parent = kept;
  else delete counts.parent;
}

/** Parent actions a chunk plan counts (`countPlan`), recomputed across chunks for a dry run. */
const PLANNED_PARENT_ACTIONS = new Set(['create', 'match', 'update', 'reactivate']);

/** The ledger's `DryRunParents` JSON (written by `handleApply`). */
const DryRunParentsJson = z.object({
  creates: z.array(z.object({ id: z.string(), keys: z.array(z.string()) })),
  updates: z.array(
    z.object({ id: z.string(), action: z.string(), addSources: z.array(z.string()) }),
  ),
});

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
  // A held re-key: its new students now move the old records the remap pairs them with (links
  // and codes follow, no account is recreated) or are created; nothing when already written.
  const change = { cause: { kind: 'approval', id: run.id, trigger: run.trigger }, actor } as const;
  await ctx.store.applyDeferredStudents(run.districtId, run.id, change, { remap: true });
  // The held lists are streamed from the store's pages in batches (one transaction per
  // batch): a list of millions is never loaded whole. Calling this again after a failure part
  // way finishes the rest (only records still active change).
  for (const kind of HELD_KINDS) {
    for (let offset = 0; ; offset += APPROVE_BATCH) {
      const batch = await ctx.store.listHeld(run.id, kind, offset, APPROVE_BATCH);
      const n = batch.studentSourcedIds.length + batch.parentIds.length + batch.links.length;
      if (n > 0) await ctx.store.applyDeactivations(run.districtId, batch, change);
      if (n < APPROVE_BATCH) break;
    }
  }
  const district = ctx.district(run.districtId);
  const codes = await accessCodesFinalizeHook(ctx, {
    run,
    district,
    capabilities: ctx.connectorFor(district).capabilities,
    dryRun: false,
    held: false,
  });
  const updated = await ctx.store.settleHeldRun(runId, {
    status: 'succeeded',
    error: undefined,
    // What was held is now done (and in the log); the run's other figures stay.
    counts: await runCounts(ctx, run, {}, [withoutHeld(run.counts), withoutHeld(codes ?? {})]),
    decidedBy: actor,
    decidedAt: new Date().toISOString(),
  });
  // Activation emails this held run kept back go out now.
  await releaseHeldActivations(ctx, run.districtId, run.id);
  await kickChanges(ctx, run.districtId);
  processMetrics(ctx).recordRun(updated);
  processMetrics(ctx).recordDecision(run.districtId, 'approved');
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
  const run = await heldRun(ctx, runId);
  // The held pages are dropped; the run's counts still say what was held.
  const updated = await ctx.store.settleHeldRun(runId, {
    status: 'discarded',
    decidedBy: actor,
    decidedAt: new Date().toISOString(),
  });
  processMetrics(ctx).recordRun(updated);
  processMetrics(ctx).recordDecision(run.districtId, 'discarded');
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
  await endActiveRun(ctx, runId, {
    status: 'failed',
    error: explainError(err, { context: 'run' }),
  });
}

/**
 * Cancel a `queued` or `running` run as `actor` (recorded as `decidedBy`/`decidedAt`). A
 * queued run's pull job is removed from the queue; a running one stops at the next chunk
 * boundary: its pull stops reading, the chunks still waiting are skipped, finalize never
 * runs (nothing is deactivated, no new student kept for finalize is created). What it
 * already wrote stays and is counted from the change log, and the activation emails of the
 * accounts it created are released, as for a failed run (`failRun`). The district can sync
 * again at once. Throws `RunStateError` when there is no such run or it already ended.
 */
export async function cancelRun(
  ctx: AppContext,
  runId: string,
  actor = 'system',
): Promise<SyncRun> {
  const run = await ctx.store.getRun(runId);
  if (!run) throw new RunStateError(`no run ${runId}`);
  if (run.status !== 'queued' && run.status !== 'running')
    throw new RunStateError(
      `run ${runId} is ${run.status}; only queued or running runs can be cancelled`,
    );
  const cancelled = await endActiveRun(ctx, runId, {
    status: 'cancelled',
    decidedBy: actor,
    decidedAt: new Date().toISOString(),
  });
  if (!cancelled) throw new RunStateError(`run ${runId} ended meanwhile; it was not cancelled`);
  // A pull job no worker has taken yet leaves the queue (one being processed sees the status
  // at its next chunk and stops; BullMQ refuses to remove a locked job).
  const pull = await Job.fromId(ctx.queues.pull, jobId.pull(run.districtId, run.id));
  if (pull && (await pull.getState()) !== 'active') await pull.remove().catch(() => undefined);
  ctx.logger.info(
    { districtId: run.districtId, runId, was: run.status, actor, counts: cancelled.counts },
    'run cancelled',
  );
  return cancelled;
}

/**
 * End a `queued`/`running` run with `patch` (status `failed` or `cancelled`): counts from the
 * change log, ledger cleared, held activation emails released. Returns the ended run, or
 * undefined when the run was not active (nothing is done).
 */
async function endActiveRun(
  ctx: AppContext,
  runId: string,
  patch: Pick<SyncRunPatch, 'status' | 'error' | 'decidedBy' | 'decidedAt'>,
): Promise<SyncRun | undefined> {
  const run = await ctx.store.getRun(runId);
  if (!run || (run.status !== 'running' && run.status !== 'queued')) return undefined;
  let ended = await ctx.store.updateRun(runId, {
    ...patch,
    finishedAt: new Date().toISOString(),
    counts: await runCounts(ctx, run, {}, []),
  });
  // An apply job may have committed between the counts' read and the status write, and
  // re-read the run while it was still `running`: count once more now that it has ended
  // (any later commit sees the end and re-counts itself, see `handleApply`).
  const again = await runCounts(ctx, ended, {}, []);
  if (JSON.stringify(again) !== JSON.stringify(ended.counts))
    ended = await ctx.store.updateRun(runId, { counts: again });
  await ctx.ledger.clear(runId);
  if (!run.dryRun) {
    await releaseHeldActivations(ctx, run.districtId, runId);
    await kickChanges(ctx, run.districtId);
  }
  processMetrics(ctx).recordRun(ended);
  return ended;
}

const TERMINAL = new Set(['succeeded', 'failed', 'needs-approval', 'discarded', 'cancelled']);

/** `waitForRun` gave up: the run is still `status` after `timeoutMs` (it keeps going). */
export class RunWaitTimeoutError extends Error {
  constructor(
    readonly runId: string,
    readonly status: string,
    readonly timeoutMs: number,
  ) {
    super(`run ${runId} did not finish in time (status ${status})`);
    this.name = 'RunWaitTimeoutError';
  }
}

/**
 * Resolve with the run once it leaves `queued`/`running`. Checks the store every
 * `intervalMs`; rejects with `RunWaitTimeoutError` after `timeoutMs` (default 10 min).
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
      throw new RunWaitTimeoutError(runId, run?.status ?? 'unknown', opts.timeoutMs ?? 600_000);
    await new Promise(r => setTimeout(r, opts.intervalMs ?? 100));
  }
}
