/**
 * Change-log consumers (design invariant 13): side effects derived from the change log, never
 * from the run ledger or process memory, so a retried, re-pulled, killed or failed run never
 * loses or repeats one.
 *
 * One `change-consumers` job per district (`consumeChanges`) reads the entries after its
 * durable cursor (`core`, kept in the store) in sequence order and:
 * - queues one activation email per new parent account that has an email, when its cause
 *   asks for it: a sync run of a district with `notifications.activationEmails` on, or an
 *   import confirmed with "send activation email" (`cause.notify`). Accounts created by a run
 *   that is still going, held by the deletion safeguard or discarded are stored `held` with
 *   the run; they are released when the run succeeds, fails or is approved. The activation
 *   record (one per account, `src/models/notifications/`) makes this exactly once per account;
 * - counts the entries in the metric `guardian_sync_records_processed_total`;
 * - asks for webhook delivery (src/jobs/webhooks.ts);
 * - builds the audit index (entries by parent and by student) up to each batch it handles,
 *   and to the end of the log before it stops (`indexAuditLog`; its own cursor,
 *   `AUDIT_INDEX_CONSUMER`, moved in the same transaction as the rows it adds). The audit
 *   reads the entries the index does not hold yet from the log itself, so it never misses
 *   one (docs/decisions/0019-audit-index-by-consumer.md). While the district has a running
 *   sync, the index waits for the run's end.
 * The cursor moves (compare-and-set) only after those steps, so a consumer that dies repeats
 * its batch, and the idempotent steps make the repetition harmless.
 *
 * A periodic sweep (`CHANGES_SWEEP_ID`, every 30 s) kicks every district, so a kick lost in a
 * race, or a run whose release step died with its worker, is caught up soon after.
 */
import type { Job } from 'bullmq';
import { z } from 'zod';
import type { AppContext } from '../app.js';
import type { DistrictConfig } from '../config/district.js';
import {
  AUDIT_INDEX_CONSUMER,
  changeLogRepository,
  MAX_CHANGE_PAGE,
  type ChangeCounts,
  type ChangeLogRepository,
} from '../models/changes/index.js';
import { activationRepository } from '../models/notifications/index.js';
import type { RunCounts, SyncRun } from '../models/types.js';
import { processMetrics } from '../workers/metrics.js';
import { enqueueActivationEmails, releaseHeldActivations } from './notifications.js';
import { kickWebhooks } from './webhooks.js';

/** The consumer name of the activation/metrics cursor. */
export const CORE_CONSUMER = 'core';
/** Sequence numbers handled per batch. */
const BATCH = 5000;
/** Job scheduler id of the periodic sweep. */
export const CHANGES_SWEEP_ID = 'changes-sweep';
/** How often the sweep runs (ms). */
export const CHANGES_SWEEP_MS = 30_000;

/** Entities whose run counts come from the change log (everything the log records). */
export const ROSTER_COUNT_ENTITIES: ReadonlySet<string> = new Set([
  'student',
  'parent',
  'link',
  'code',
]);

/**
 * The count label of a logged action in run reports and metrics: the log's neutral actions
 * keep the names the run reports always used (a link is `add`ed and `remove`d, a code is
 * `issue`d and `revoke`d).
 */
export function countLabel(entity: string, action: string): string {
  if (entity === 'link')
    return action === 'create' ? 'add' : action === 'deactivate' ? 'remove' : action;
  if (entity === 'code')
    return action === 'create' ? 'issue' : action === 'deactivate' ? 'revoke' : action;
  return action;
}

/** Change counts relabelled for reports (`countLabel`). */
export function labelCounts(counts: ChangeCounts): RunCounts {
  const out: RunCounts = {};
  for (const [entity, actions] of Object.entries(counts))
    for (const [action, n] of Object.entries(actions)) {
      const t = (out[entity] ??= {});
      const label = countLabel(entity, action);
      t[label] = (t[label] ?? 0) + n;
    }
  return out;
}

/**
 * What a run changed, from the change log: every entry whose cause id is the run (its chunks,
 * finalize's deactivations, an approval's, codes issued at its end), relabelled for reports.
 */
export async function runCountsFromLog(
  ctx: Pick<AppContext, 'store'>,
  districtId: string,
  runId: string,
): Promise<RunCounts> {
  const repo = await changeLogRepository(ctx.store);
  return labelCounts(await repo.countByCause(districtId, [runId]));
}

/** BullMQ job id of a district's consumer job (one waiting job per district at a time). */
export function changesJobId(districtId: string): string {
  return `changes.${districtId}`;
}

/**
 * Ask the change-log consumers to catch up with the district's log (after any write that
 * logged changes). Cheap and idempotent: while a job for the district is waiting, adding
 * another is a no-op; the periodic sweep covers a kick lost in between.
 */
export async function kickChanges(
  ctx: Pick<AppContext, 'queues'>,
  districtId: string,
): Promise<void> {
  await ctx.queues.changes.add(
    'consume',
    { districtId },
    { jobId: changesJobId(districtId), removeOnComplete: true, removeOnFail: 100 },
  );
}

/** What one `consumeChanges` call did. */
export interface ConsumeResult {
  districtId: string;
  /** Cursor before and after. */
  from: number;
  to: number;
  /** Activation emails queued, held with a run, and accounts without an email. */
  activation: { queued: number; held: number; noEmail: number };
  /** Held activation emails released because their run ended (succeeded, failed, approved). */
  released: number;
  /** The audit index's cursor before and after (`indexAuditLog`). */
  auditIndex: { from: number; to: number };
}

/**
 * Bring the district's audit index up to `toSeq` (default: the end of its log) in
 * transactions of at most `batch` entries (rows and cursor together). Returns the audit
 * cursor before and after. Throws on store errors (what was committed stays: the next pass
 * continues from there).
 */
export async function indexAuditLog(
  repo: ChangeLogRepository,
  districtId: string,
  opts: { toSeq?: number | undefined; batch?: number | undefined } = {},
): Promise<{ from: number; to: number }> {
  const maxEntries = Math.max(1, Math.min(opts.batch ?? BATCH, MAX_CHANGE_PAGE));
  let first: number | undefined;
  for (;;) {
    const r = await repo.indexAudit(districtId, { maxEntries, toSeq: opts.toSeq });
    first ??= r.from;
    if (r.to === r.from) return { from: first, to: r.to };
  }
}

const RELEASE_STATUSES = new Set(['succeeded', 'failed', 'cancelled']);
const HOLD_STATUSES = new Set(['queued', 'running', 'needs-approval', 'discarded']);

/**
 * Catch the district's core consumer up with its change log (see the module header).
 * Returns what it did. Throws on store/Redis errors (the job is retried; the cursor has not
 * moved past anything unhandled).
 */
export async function consumeChanges(
  ctx: AppContext,
  districtId: string,
  opts: { batch?: number } = {},
): Promise<ConsumeResult> {
  const repo = await changeLogRepository(ctx.store);
  const batch = Math.max(1, Math.min(opts.batch ?? BATCH, MAX_CHANGE_PAGE));
  const district = ctx.districts.get(districtId);
  const start = await repo.cursor(CORE_CONSUMER, districtId);
  const out: ConsumeResult = {
    districtId,
    from: start.seq,
    to: start.seq,
    activation: { queued: 0, held: 0, noEmail: 0 },
    released: 0,
    auditIndex: { from: 0, to: 0 },
  };
  let cursor = start.seq;
  let last = await repo.lastSeq(districtId);
  const audit = await repo.cursor(AUDIT_INDEX_CONSUMER, districtId);
  out.auditIndex = { from: audit.seq, to: audit.seq };
  // While the district's sync is writing chunks, the audit index waits for the run's end
  // (finalize kicks this job; the sweep catches a kick lost meanwhile): building it beside
  // the run would take the CPU and the store's write lock from the run's own pull and apply
  // (measured at 500k on 2 cores: the run took longer, not shorter). Audit reads stay
  // complete: they read what the index does not hold yet from the log (ADR 0019).
  const districtSyncing = async () =>
    (await ctx.store.findActiveRun(districtId))?.status === 'running';
  const deferAudit = await districtSyncing();
  processMetrics(ctx).setAuditIndexLag(districtId, last - audit.seq);
  const runs = new Map<string, SyncRun | undefined>();
  const runOf = async (id: string): Promise<SyncRun | undefined> => {
    if (!runs.has(id)) runs.set(id, await ctx.store.getRun(id));
    return runs.get(id);
  };
  for (;;) {
    if (cursor >= last) {
      // Entries written while this job ran (its kick was a no-op then): take them too.
      last = await repo.lastSeq(districtId);
      if (cursor >= last) break;
    }
    const to = Math.min(last, cursor + batch);
    if (!deferAudit)
      out.auditIndex.to = (await indexAuditLog(repo, districtId, { toSeq: to, batch })).to;
    if (district) await activationsFor(ctx, district, cursor, to, runOf, out);
    const counts = await repo.countRange(districtId, cursor, to);
    if (!(await repo.advance(CORE_CONSUMER, districtId, cursor, to))) {
      // Another worker handled this range first: continue from where it is now.
      cursor = (await repo.cursor(CORE_CONSUMER, districtId)).seq;
      continue;
    }
    processMetrics(ctx).recordChanges(districtId, labelCounts(counts));
    cursor = to;
  }
  out.to = cursor;
  // The core cursor may be ahead of the audit index (a store migrated to version 12, a
  // consumer that died between the two): the index catches up to the end of the log too.
  if (!(await districtSyncing()))
    out.auditIndex.to = (await indexAuditLog(repo, districtId, { batch })).to;
  out.released = await releaseEndedRuns(ctx, districtId);
  if (out.to > out.from) await kickWebhooks(ctx, districtId);
  return out;
}

/** Queue (or hold) activation emails for the accounts created in `(from, to]`. */
async function activationsFor(
  ctx: AppContext,
  district: DistrictConfig,
  from: number,
  to: number,
  runOf: (id: string) => Promise<SyncRun | undefined>,
  out: ConsumeResult,
): Promise<void> {
  const districtId = district.id;
  const repo = await changeLogRepository(ctx.store);
  const entries = await repo.list(districtId, {
    afterSeq: from,
    toSeq: to,
    entity: 'parent',
    actions: ['create', 'update'],
    limit: to - from,
  });
  // Group the accounts by what decides their email: import (queued), or a sync run (queued,
  // or held while the run is going or waiting for approval).
  const imports: string[] = [];
  const byRun = new Map<string, string[]>();
  const gotEmail: string[] = [];
  for (const e of entries) {
    if (!e.parentId) continue;
    if (e.action === 'update') {
      if (e.after?.email && e.before?.email === null) gotEmail.push(e.parentId);
      continue;
    }
    if (e.cause.kind === 'import' && e.cause.notify === true) imports.push(e.parentId);
    else if (e.cause.kind === 'sync' && e.cause.id && district.notifications?.activationEmails) {
      const list = byRun.get(e.cause.id) ?? [];
      list.push(e.parentId);
      byRun.set(e.cause.id, list);
    }
  }
  const tally = (r: { queued: number; held: number; noEmail: string[] }) => {
    out.activation.queued += r.queued;
    out.activation.held += r.held;
    out.activation.noEmail += r.noEmail.length;
  };
  if (imports.length) {
    if (district.notifications)
      tally(await enqueueActivationEmails(ctx, districtId, imports, 'import'));
    else
      // The district's notification settings were removed after the import was confirmed: say
      // so rather than fail the consumer on every pass (nothing else could then proceed).
      ctx.logger.warn(
        { districtId, parentIds: imports.slice(0, 50), accounts: imports.length },
        'activation emails requested by an import not queued: the district has no "notifications" settings',
      );
  }
  for (const [runId, ids] of byRun) {
    const run = await runOf(runId);
    const hold = run !== undefined && HOLD_STATUSES.has(run.status);
    tally(
      await enqueueActivationEmails(ctx, districtId, ids, 'sync', {
        heldRunId: hold ? runId : undefined,
      }),
    );
    if (hold) {
      // The run may have ended between the read above and the held records: read it again
      // so a release that ran in between is not missed.
      const now = await ctx.store.getRun(runId);
      if (now && RELEASE_STATUSES.has(now.status))
        out.released += await releaseHeldActivations(ctx, districtId, runId);
    }
  }
  // An account created without an email that got one later: its `no-email` record moves to
  // `queued` (accounts without an activation record are never emailed on an update).
  if (gotEmail.length && district.notifications) {
    const activations = await activationRepository(ctx.store);
    const waiting: string[] = [];
    for (const id of gotEmail) {
      const r = await activations.get(districtId, id);
      if (r?.status === 'no-email') waiting.push(id);
    }
    if (waiting.length) tally(await enqueueActivationEmails(ctx, districtId, waiting, 'sync'));
  }
}

/** Release held activation emails of runs that have ended (succeeded or failed). */
async function releaseEndedRuns(ctx: AppContext, districtId: string): Promise<number> {
  const activations = await activationRepository(ctx.store);
  let n = 0;
  for (const runId of await activations.heldRunIds(districtId)) {
    const run = await ctx.store.getRun(runId);
    if (run && RELEASE_STATUSES.has(run.status))
      n += await releaseHeldActivations(ctx, districtId, runId);
  }
  return n;
}

const ConsumePayload = z.strictObject({ districtId: z.string().min(1) });

/**
 * The `change-consumers` job: `consume` (one district) or `sweep` (kick every configured
 * district that has log entries).
 */
export async function handleChangesJob(ctx: AppContext, job: Job): Promise<unknown> {
  if (job.name === 'sweep') {
    const repo = await changeLogRepository(ctx.store);
    const districts = (await repo.districts()).filter(d => ctx.districts.has(d));
    for (const d of districts) await kickChanges(ctx, d);
    return { kicked: districts.length };
  }
  const { districtId } = ConsumePayload.parse(job.data);
  return consumeChanges(ctx, districtId);
}

/** Install the periodic sweep (idempotent; every process may call it at start). */
export async function upsertChangesSweep(ctx: Pick<AppContext, 'queues'>): Promise<void> {
  await ctx.queues.changes.upsertJobScheduler(
    CHANGES_SWEEP_ID,
    { every: CHANGES_SWEEP_MS },
    { name: 'sweep', data: {}, opts: { removeOnComplete: 10, removeOnFail: 50 } },
  );
}
