/**
 * The change log on MongoDB: the `change_log`, `change_seq`, `change_cursors` and
 * `change_audit` (the audit index by parent and by student, filled by `indexAudit` from the
 * change-log consumer: docs/decisions/0019-audit-index-by-consumer.md) collections,
 * the writer `appendChangesMongo` that every roster write calls inside its own multi-document
 * transaction, the transaction runner `withChangeTransaction`, and the reader
 * `MongoChangeLogRepository`. Same semantics as `sqlite.ts`; both pass
 * `test/contract/change-log.contract.ts`.
 *
 * - Transactions need a replica set (or a sharded cluster); the roster store refuses a
 *   standalone server at `init()`.
 * - Sequence numbers come from one counter document per district in `change_seq`,
 *   `$inc`-ed by the number of entries inside the writer's transaction: an aborted transaction
 *   rolls the counter back with its entries, so numbers are gap-free.
 * - The counter document is also the district's write lock. `withChangeTransaction` writes it
 *   as the transaction's first operation; MongoDB aborts a second transaction that writes the
 *   same document before the first commits (WriteConflict, a TransientTransactionError that
 *   the driver retries with backoff). So writers of one district run one at a time, each
 *   reads a snapshot that holds every earlier writer's commit (as SQLite's BEGIN IMMEDIATE
 *   does), entries are numbered in commit order, and a conflict costs a retry of one cheap
 *   operation instead of a whole chunk's writes.
 * - Documents hold exactly the entry's fields (`_id` aside); optional fields are absent, never
 *   `null` (the partial indexes depend on it). `before`/`after` are stored as objects.
 */
import {
  Schema,
  type ClientSession,
  type Connection,
  type Model,
  type QueryFilter,
} from 'mongoose';
import { ensureIndexes } from '../mongo/indexes.js';
import { COLLECTIONS, requiredString, SCHEMA_BASE } from '../mongo/schemas.js';
import {
  CHANGE_ACTIONS,
  CHANGE_ENTITIES,
  MAX_CHANGE_PAGE,
  type ChangeCauseKind,
  type ChangeContext,
  type ChangeCounts,
  type ChangeEntry,
  type ChangeLogRepository,
  type ChangeQuery,
  type ConsumerCursor,
  type NewChange,
  AUDIT_INDEX_CONSUMER,
} from './types.js';

/** Collection names (snake_case, like the SQLite tables). */
export const CHANGE_COLLECTIONS = {
  entries: 'change_log',
  seq: 'change_seq',
  cursors: 'change_cursors',
  audit: 'change_audit',
} as const;

/** Index sequence numbers read per round trip by `list` (the audit-index part). */
const AUDIT_PAGE = 1000;

/** Entries examined per `prune` batch. */
const PRUNE_BATCH = 1000;

/** A stored entry (the port's `ChangeEntry`; `cause` is an embedded document). */
export type ChangeLogDoc = ChangeEntry;

/** A district's counter: last sequence number handed out, and writing transactions so far. */
export interface ChangeSeqDoc {
  districtId: string;
  last: number;
  /** Incremented by every writing transaction first thing: the district's write lock. */
  txns: number;
}

export type ChangeCursorDoc = ConsumerCursor;

/**
 * An audit index row (docs/decisions/0019): entry `seq` of the district names parent `key`
 * (`kind` `p`) or student `key` (`kind` `s`). Written by `indexAudit` only.
 */
export interface ChangeAuditDoc {
  districtId: string;
  kind: 'p' | 's';
  key: string;
  seq: number;
}

const base = SCHEMA_BASE;

const CAUSE_KINDS: readonly ChangeCauseKind[] = [
  'sync',
  'approval',
  'import',
  'manual',
  'redemption',
  'code-issue',
  'code-reset',
  'system',
];

export const changeCauseSchema = new Schema(
  {
    kind: { type: String, enum: CAUSE_KINDS, required: true },
    id: String,
    trigger: String,
    notify: Boolean,
  },
  { _id: false, id: false, versionKey: false, strict: 'throw' },
);

export const changeLogSchema = new Schema<ChangeLogDoc>(
  {
    districtId: requiredString,
    seq: { type: Number, required: true },
    at: requiredString,
    entity: { type: String, enum: CHANGE_ENTITIES, required: true },
    entityId: requiredString,
    action: { type: String, enum: CHANGE_ACTIONS, required: true },
    parentId: String,
    studentSourcedId: String,
    origin: { type: String, enum: ['sis', 'import', 'access-code', 'manual'] },
    before: Schema.Types.Mixed,
    after: Schema.Types.Mixed,
    cause: { type: changeCauseSchema, required: true },
    actor: requiredString,
  },
  // minimize: false keeps `before: {}`/`after: {}` as written (an entry never drops a key).
  { ...base, minimize: false, collection: CHANGE_COLLECTIONS.entries },
);
// The feed: list / countRange / lastSeq-ordered reads are a range scan per district; unique:
// one entry per sequence number (a writer bug that reused a number fails instead of hiding).
changeLogSchema.index({ districtId: 1, seq: 1 }, { unique: true, name: 'district_seq' });
// The audit's reads by parent and by student are not indexes of this collection (they cost
// a third of every append): `change_audit` below, filled by the change-log consumer
// (docs/decisions/0019). `store migrate --drop-unknown-indexes` drops the former
// `district_parent_seq` and `district_student_seq`.
// Run counts: countByCause and list with causeIds (a run's sync + approval + code-issue
// entries). Partial: manual changes have no cause id. Queries say `$exists: true` too so the
// planner can prove they match the partial filter.
changeLogSchema.index(
  { districtId: 1, 'cause.id': 1 },
  { name: 'district_cause', partialFilterExpression: { 'cause.id': { $exists: true } } },
);
// prune: the district's entries written before a date.
changeLogSchema.index({ districtId: 1, at: 1 }, { name: 'district_at' });

export const changeSeqSchema = new Schema<ChangeSeqDoc>(
  {
    districtId: requiredString,
    last: { type: Number, required: true, default: 0 },
    txns: { type: Number, required: true, default: 0 },
  },
  { ...base, collection: CHANGE_COLLECTIONS.seq },
);
// appendChangesMongo / withChangeTransaction / lastSeq: one counter per district; districts()
changeSeqSchema.index({ districtId: 1 }, { unique: true, name: 'district' });

export const changeCursorSchema = new Schema<ChangeCursorDoc>(
  {
    consumer: requiredString,
    districtId: requiredString,
    seq: { type: Number, required: true, default: 0 },
    updatedAt: String,
    state: { type: Schema.Types.Mixed, default: () => ({}) },
  },
  // minimize: false keeps `state: {}`.
  { ...base, minimize: false, collection: CHANGE_COLLECTIONS.cursors },
);
// cursor / advance (compare-and-set) / setState: one cursor per consumer and district;
// cursors(consumer) is a prefix scan. A few documents per district: never sharded, so the
// consumer may come first.
changeCursorSchema.index(
  { consumer: 1, districtId: 1 },
  { unique: true, name: 'consumer_district' },
);

export const changeAuditSchema = new Schema<ChangeAuditDoc>(
  {
    districtId: requiredString,
    kind: { type: String, enum: ['p', 's'], required: true },
    key: requiredString,
    seq: { type: Number, required: true },
  },
  { ...base, collection: CHANGE_COLLECTIONS.audit },
);
// list with parentId / studentSourcedId (the audit; prune's newest create per account): a
// key's entries in seq order. Unique: indexAudit's upserts make a repeated batch a no-op.
changeAuditSchema.index(
  { districtId: 1, kind: 1, key: 1, seq: 1 },
  { unique: true, name: 'district_kind_key_seq' },
);
// prune: the rows of deleted entries.
changeAuditSchema.index({ districtId: 1, seq: 1 }, { name: 'district_seq' });

/** Every change-log schema by collection name (for index checks and `init()`). */
export const CHANGE_SCHEMAS = {
  [CHANGE_COLLECTIONS.entries]: changeLogSchema,
  [CHANGE_COLLECTIONS.seq]: changeSeqSchema,
  [CHANGE_COLLECTIONS.cursors]: changeCursorSchema,
  [CHANGE_COLLECTIONS.audit]: changeAuditSchema,
} as const;

/** The change log's models on one connection. */
export interface ChangeLogModels {
  entries: Model<ChangeLogDoc>;
  seq: Model<ChangeSeqDoc>;
  cursors: Model<ChangeCursorDoc>;
  audit: Model<ChangeAuditDoc>;
}

function model<T>(conn: Connection, name: string, schema: Schema<T>): Model<T> {
  return (conn.models[name] as Model<T> | undefined) ?? conn.model<T>(name, schema);
}

/**
 * The change log's models on `conn` (compiled once per connection, then reused: the roster
 * store and the repository share them). Never touches the global mongoose.
 */
export function changeLogModels(conn: Connection): ChangeLogModels {
  return {
    entries: model(conn, 'ChangeLogEntry', changeLogSchema),
    seq: model(conn, 'ChangeSeq', changeSeqSchema),
    cursors: model(conn, 'ChangeCursor', changeCursorSchema),
    audit: model(conn, 'ChangeAuditRow', changeAuditSchema),
  };
}

function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

const isDuplicateKey = (err: unknown): boolean => {
  const c = codeOf(err);
  return c === 11000 || c === 11001;
};

/**
 * Create the change-log collections and their missing indexes (`ensureIndexes`: never drops
 * one). Idempotent; called by the roster store's `init()` (its transactions write here) and
 * the repository's.
 */
export async function initChangeLog(models: ChangeLogModels): Promise<void> {
  for (const m of Object.values(models) as Model<unknown>[]) await ensureIndexes(m);
}

// --- writing ----------------------------------------------------------------------------

/**
 * Options of every writing transaction: snapshot reads (one consistent view of the roster
 * for load → plan), majority commit, primary reads.
 */
export const CHANGE_TRANSACTION_OPTIONS = {
  readConcern: { level: 'snapshot' },
  writeConcern: { w: 'majority' },
  readPreference: 'primary',
} as const;

/** Districts whose counter document is known to exist, per counter model. */
const knownCounters = new WeakMap<Model<ChangeSeqDoc>, Set<string>>();

/**
 * Make sure the district's counter document exists (outside any transaction; once per
 * process and district). Inside a transaction two writers creating the same new document
 * could fail with a duplicate key instead of a retryable write conflict; creating it up front
 * (an idempotent upsert, a duplicate key meaning someone else created it) rules that out.
 */
export async function ensureChangeSeq(models: ChangeLogModels, districtId: string): Promise<void> {
  let known = knownCounters.get(models.seq);
  if (!known) knownCounters.set(models.seq, (known = new Set()));
  if (known.has(districtId)) return;
  try {
    await models.seq.updateOne(
      { districtId },
      { $setOnInsert: { last: 0, txns: 0 } },
      { upsert: true },
    );
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
  known.add(districtId);
}

/**
 * Take the district's write lock inside `session`'s transaction: write its counter document
 * (`txns + 1`). Must be the transaction's first operation (see the header). Throws when
 * `session` is not in a transaction.
 */
export async function lockDistrict(
  models: ChangeLogModels,
  session: ClientSession,
  districtId: string,
): Promise<void> {
  if (!session.inTransaction()) throw new Error('lockDistrict must run inside a transaction');
  // upsert: a counter deleted behind the cache's back is recreated (at 0 entries).
  await models.seq.updateOne(
    { districtId },
    { $inc: { txns: 1 }, $setOnInsert: { last: 0 } },
    { session, upsert: true },
  );
}

/**
 * Run `body` in a multi-document transaction that holds `districtId`'s write lock (the
 * counter document, written first), and return what the body returned once the transaction
 * committed. The body may run more than once (the driver retries transient errors such as a
 * write conflict with another writer of the district), so it must not change anything outside
 * the transaction: count or report only from the returned value. Pass `{ session }` to every
 * read and write in the body and never run two of them at once (`Promise.all`): a session
 * runs one operation at a time. Errors thrown by the body abort the transaction and are
 * rethrown as they are (never swallow a driver error inside the body).
 */
export async function withChangeTransaction<T>(
  models: ChangeLogModels,
  districtId: string,
  body: (session: ClientSession) => Promise<T>,
): Promise<T> {
  await ensureChangeSeq(models, districtId);
  return models.seq.db.transaction(async session => {
    await lockDistrict(models, session, districtId);
    return body(session);
  }, CHANGE_TRANSACTION_OPTIONS);
}

/**
 * The documents `changes` are stored as, numbered from `firstSeq` in order. Pure; optional
 * fields that are undefined are left out (never null).
 */
export function changeDocs(
  districtId: string,
  context: ChangeContext,
  changes: readonly NewChange[],
  at: string,
  firstSeq: number,
): ChangeLogDoc[] {
  const cause: ChangeLogDoc['cause'] = { kind: context.cause.kind };
  if (context.cause.id !== undefined) cause.id = context.cause.id;
  if (context.cause.trigger !== undefined) cause.trigger = context.cause.trigger;
  if (context.cause.notify !== undefined) cause.notify = context.cause.notify;
  return changes.map((c, i) => {
    const doc: ChangeLogDoc = {
      districtId,
      seq: firstSeq + i,
      at,
      entity: c.entity,
      entityId: c.entityId,
      action: c.action,
      cause: { ...cause },
      actor: context.actor,
    };
    if (c.parentId !== undefined) doc.parentId = c.parentId;
    if (c.studentSourcedId !== undefined) doc.studentSourcedId = c.studentSourcedId;
    if (c.origin !== undefined) doc.origin = c.origin;
    if (c.before !== undefined) doc.before = { ...c.before };
    if (c.after !== undefined) doc.after = { ...c.after };
    return doc;
  });
}

/**
 * Append `changes` to the district's log with the next sequence numbers, in order: `$inc`
 * the district's counter by `changes.length` and insert the entries, both in `session`'s
 * transaction (the caller's, the same one as the change; see `withChangeTransaction`). `at`
 * defaults to now. Returns the last sequence number written (0 when `changes` is empty:
 * nothing is written then). Throws when `session` is not in a transaction, and whatever the
 * driver throws (the caller's transaction then aborts with the change).
 */
export async function appendChangesMongo(
  models: ChangeLogModels,
  session: ClientSession,
  districtId: string,
  context: ChangeContext,
  changes: readonly NewChange[],
  at: string = new Date().toISOString(),
): Promise<number> {
  if (changes.length === 0) return 0;
  if (!session.inTransaction()) {
    throw new Error('appendChangesMongo must run inside the write transaction');
  }
  const counter = await models.seq
    .findOneAndUpdate(
      { districtId },
      { $inc: { last: changes.length }, $setOnInsert: { txns: 0 } },
      { session, upsert: true, returnDocument: 'after', projection: { last: 1, _id: 0 } },
    )
    .lean<Pick<ChangeSeqDoc, 'last'>>();
  if (!counter) throw new Error(`change_seq counter of district ${districtId} was not returned`);
  const last = counter.last;
  await models.entries.insertMany(
    changeDocs(districtId, context, changes, at, last - changes.length + 1),
    { session, ordered: true },
  );
  return last;
}

// --- reading ----------------------------------------------------------------------------

type Lean<T> = T & { _id?: unknown };

/** Map a lean entry document to `ChangeEntry` (explicit fields; `_id` never escapes). */
export function entryFromDoc(d: Lean<ChangeLogDoc>): ChangeEntry {
  const e: ChangeEntry = {
    districtId: d.districtId,
    seq: d.seq,
    at: d.at,
    entity: d.entity,
    entityId: d.entityId,
    action: d.action,
    cause: { kind: d.cause.kind },
    actor: d.actor,
  };
  if (d.parentId != null) e.parentId = d.parentId;
  if (d.studentSourcedId != null) e.studentSourcedId = d.studentSourcedId;
  if (d.origin != null) e.origin = d.origin;
  if (d.before != null) e.before = { ...d.before };
  if (d.after != null) e.after = { ...d.after };
  if (d.cause.id != null) e.cause.id = d.cause.id;
  if (d.cause.trigger != null) e.cause.trigger = d.cause.trigger;
  if (d.cause.notify != null) e.cause.notify = d.cause.notify;
  return e;
}

/** Map a lean cursor document to `ConsumerCursor`. */
export function cursorFromDoc(d: Lean<ChangeCursorDoc>): ConsumerCursor {
  const c: ConsumerCursor = {
    consumer: d.consumer,
    districtId: d.districtId,
    seq: d.seq,
    state: { ...(d.state ?? {}) },
  };
  if (d.updatedAt != null) c.updatedAt = d.updatedAt;
  return c;
}

/** The `find` filter of `list(districtId, q)` (pure). */
export function changeFilter(districtId: string, q: ChangeQuery): QueryFilter<ChangeLogDoc> {
  const seq: Record<string, number> = { $gt: Math.max(0, Math.floor(q.afterSeq ?? 0)) };
  if (q.toSeq !== undefined) seq.$lte = q.toSeq;
  const f: Record<string, unknown> = { districtId, seq };
  if (q.entity !== undefined) f.entity = q.entity;
  if (q.actions !== undefined) f.action = { $in: [...q.actions] };
  if (q.parentId !== undefined) f.parentId = q.parentId;
  if (q.studentSourcedId !== undefined) f.studentSourcedId = q.studentSourcedId;
  if (q.causeIds !== undefined) f['cause.id'] = { $in: [...q.causeIds], $exists: true };
  return f;
}

/** The audit index key that drives `list(q)`: its parent, else its student (none: undefined). */
export function auditKey(q: ChangeQuery): { kind: 'p' | 's'; key: string } | undefined {
  if (q.parentId !== undefined) return { kind: 'p', key: q.parentId };
  if (q.studentSourcedId !== undefined) return { kind: 's', key: q.studentSourcedId };
  return undefined;
}

/** The audit index rows of `entries` (pure): one per parent and one per student named. */
export function auditRows(
  districtId: string,
  entries: readonly Pick<ChangeLogDoc, 'seq' | 'parentId' | 'studentSourcedId'>[],
): ChangeAuditDoc[] {
  const rows: ChangeAuditDoc[] = [];
  for (const e of entries) {
    if (e.parentId != null) rows.push({ districtId, kind: 'p', key: e.parentId, seq: e.seq });
    if (e.studentSourcedId != null)
      rows.push({ districtId, kind: 's', key: e.studentSourcedId, seq: e.seq });
  }
  return rows;
}

/** `ChangeQuery.limit` clamped to 1..10,000. */
export function pageLimit(limit: number): number {
  return Math.min(MAX_CHANGE_PAGE, Math.max(1, Math.floor(limit)));
}

/**
 * The compare-and-set of `advance` as one `findOneAndUpdate` (pure): the filter matches the
 * cursor only at `fromSeq`; from 0 it may also create the cursor (upsert), and an existing
 * cursor elsewhere then makes the insert fail with a duplicate key (lost race).
 */
export function advanceOp(
  consumer: string,
  districtId: string,
  fromSeq: number,
  toSeq: number,
  state: Record<string, unknown> | undefined,
  at: string,
): {
  filter: Record<string, unknown>;
  update: Record<string, unknown>;
  upsert: boolean;
} {
  const $set: Record<string, unknown> = { seq: toSeq, updatedAt: at };
  if (state !== undefined) $set.state = state;
  return {
    filter: { consumer, districtId, seq: fromSeq },
    update: { $set, ...(state === undefined ? { $setOnInsert: { state: {} } } : {}) },
    upsert: fromSeq === 0,
  };
}

function addCount(out: ChangeCounts, entity: string, action: string, n: number): void {
  const t = (out[entity] ??= {});
  t[action] = (t[action] ?? 0) + n;
}

interface CountRow {
  _id: { entity: string; action: string };
  n: number;
}

const linkKey = (parentId: string, studentSourcedId: string, origin: string): string =>
  `${parentId}\u0000${studentSourcedId}\u0000${origin}`;

/** `ChangeLogRepository` on the roster store's mongoose connection. */
export class MongoChangeLogRepository implements ChangeLogRepository {
  private readonly m: ChangeLogModels;

  constructor(private readonly conn: Connection) {
    this.m = changeLogModels(conn);
  }

  /** Create the collections and build their indexes. Idempotent. */
  async init(): Promise<void> {
    await initChangeLog(this.m);
  }

  /** Entries of a district matching `q` (AND of its filters), in sequence order, at most `q.limit` (clamped to 1..10,000). */
  async list(districtId: string, q: ChangeQuery): Promise<ChangeEntry[]> {
    const keyed = auditKey(q);
    if (keyed === undefined) {
      const docs = await this.m.entries
        .find(changeFilter(districtId, q))
        .sort({ seq: 1 })
        .limit(pageLimit(q.limit))
        .lean<Lean<ChangeLogDoc>[]>();
      return docs.map(entryFromDoc);
    }
    return this.listKeyed(districtId, q, keyed);
  }

  /**
   * `list` by parent or student: the audit index up to its cursor, then a scan of the log
   * after it. The cursor is read first: every entry up to it is in the index then and stays
   * there (only prune removes rows, with their entries), and the index part is read up to it
   * only, so the two parts neither overlap nor leave a gap, whatever the consumer does
   * meanwhile. Complete however far the index trails (without a consumer: a scan of the
   * district's whole log).
   */
  private async listKeyed(
    districtId: string,
    q: ChangeQuery,
    keyed: { kind: 'p' | 's'; key: string },
  ): Promise<ChangeEntry[]> {
    const limit = pageLimit(q.limit);
    const after = Math.max(0, Math.floor(q.afterSeq ?? 0));
    const indexed = await this.indexedUpTo(districtId);
    const upTo = q.toSeq === undefined ? indexed : Math.min(indexed, q.toSeq);
    const out: ChangeEntry[] = [];
    let from = after;
    while (out.length < limit && from < upTo) {
      const seqs = (
        await this.m.audit
          .find(
            { districtId, kind: keyed.kind, key: keyed.key, seq: { $gt: from, $lte: upTo } },
            { _id: 0, seq: 1 },
          )
          .sort({ seq: 1 })
          .limit(AUDIT_PAGE)
          .lean<Pick<ChangeAuditDoc, 'seq'>[]>()
      ).map(d => d.seq);
      const lastSeq = seqs[seqs.length - 1];
      if (lastSeq === undefined) break;
      const docs = await this.m.entries
        .find({ ...changeFilter(districtId, q), seq: { $in: seqs } })
        .sort({ seq: 1 })
        .limit(limit - out.length)
        .lean<Lean<ChangeLogDoc>[]>();
      out.push(...docs.map(entryFromDoc));
      from = lastSeq;
      if (seqs.length < AUDIT_PAGE) break;
    }
    if (out.length < limit) {
      const docs = await this.m.entries
        .find(changeFilter(districtId, { ...q, afterSeq: Math.max(after, indexed) }))
        .sort({ seq: 1 })
        .hint({ districtId: 1, seq: 1 })
        .limit(limit - out.length)
        .lean<Lean<ChangeLogDoc>[]>();
      out.push(...docs.map(entryFromDoc));
    }
    return out;
  }

  /** The audit index's cursor in the district (0 when it has none). */
  private async indexedUpTo(districtId: string): Promise<number> {
    const doc = await this.m.cursors
      .findOne({ consumer: AUDIT_INDEX_CONSUMER, districtId }, { _id: 0, seq: 1 })
      .lean<Pick<ChangeCursorDoc, 'seq'>>();
    return doc?.seq ?? 0;
  }

  /**
   * Index the entries after the audit cursor (at most `maxEntries`, up to `toSeq` or the
   * district's last sequence number) in one multi-document transaction with the cursor move:
   * a crash or an error leaves rows and cursor as they were. Two indexers of a district
   * conflict on the cursor document (WriteConflict, retried by the driver: the retry starts
   * from the cursor the winner wrote). Rows are upserts, so a repeated batch adds nothing.
   * Throws on driver errors.
   */
  async indexAudit(
    districtId: string,
    opts: { maxEntries: number; toSeq?: number | undefined },
  ): Promise<{ from: number; to: number }> {
    await this.ensureAuditCursor(districtId);
    return this.m.seq.db.transaction(async session => {
      const cursor = await this.m.cursors
        .findOne({ consumer: AUDIT_INDEX_CONSUMER, districtId }, { _id: 0, seq: 1 })
        .session(session)
        .lean<Pick<ChangeCursorDoc, 'seq'>>();
      const from = cursor?.seq ?? 0;
      const counter = await this.m.seq
        .findOne({ districtId }, { _id: 0, last: 1 })
        .session(session)
        .lean<Pick<ChangeSeqDoc, 'last'>>();
      const last = counter?.last ?? 0;
      const to = Math.min(
        last,
        from + Math.max(1, Math.floor(opts.maxEntries)),
        opts.toSeq ?? last,
      );
      if (to <= from) return { from, to: from };
      const entries = await this.m.entries
        .find(
          { districtId, seq: { $gt: from, $lte: to } },
          { _id: 0, seq: 1, parentId: 1, studentSourcedId: 1 },
        )
        .sort({ seq: 1 })
        .session(session)
        .lean<Pick<ChangeLogDoc, 'seq' | 'parentId' | 'studentSourcedId'>[]>();
      const rows = auditRows(districtId, entries);
      if (rows.length > 0)
        await this.m.audit.bulkWrite(
          rows.map(r => ({
            updateOne: { filter: r, update: { $setOnInsert: r }, upsert: true },
          })),
          { session, ordered: true },
        );
      await this.m.cursors.updateOne(
        { consumer: AUDIT_INDEX_CONSUMER, districtId },
        { $set: { seq: to, updatedAt: new Date().toISOString() } },
        { session },
      );
      return { from, to };
    }, CHANGE_TRANSACTION_OPTIONS);
  }

  /** Create the audit cursor at 0 outside any transaction (see `ensureChangeSeq`). */
  private async ensureAuditCursor(districtId: string): Promise<void> {
    try {
      await this.m.cursors.updateOne(
        { consumer: AUDIT_INDEX_CONSUMER, districtId },
        { $setOnInsert: { seq: 0, state: {} } },
        { upsert: true },
      );
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  /** The district's counter: last sequence number handed out (0 without entries; a prune keeps it). */
  async lastSeq(districtId: string): Promise<number> {
    const doc = await this.m.seq
      .findOne({ districtId }, { last: 1, _id: 0 })
      .lean<Pick<ChangeSeqDoc, 'last'>>();
    return doc?.last ?? 0;
  }

  /** Entries by entity and action among those whose `cause.id` is in `causeIds` (`{}` for none). */
  async countByCause(districtId: string, causeIds: readonly string[]): Promise<ChangeCounts> {
    if (causeIds.length === 0) return {};
    return this.count({ districtId, 'cause.id': { $in: [...causeIds], $exists: true } });
  }

  /** Entries by entity and action with `afterSeq < seq <= toSeq`. */
  async countRange(districtId: string, afterSeq: number, toSeq: number): Promise<ChangeCounts> {
    return this.count({ districtId, seq: { $gt: afterSeq, $lte: toSeq } });
  }

  /** Districts that have logged at least one entry, sorted. */
  async districts(): Promise<string[]> {
    // A counter at 0 was created ahead of a write that logged nothing: no entries.
    const docs = await this.m.seq
      .find({ last: { $gt: 0 } }, { districtId: 1, _id: 0 })
      .sort({ districtId: 1 })
      .lean<Pick<ChangeSeqDoc, 'districtId'>[]>();
    return docs.map(d => d.districtId);
  }

  /** The consumer's cursor in the district (seq 0 and empty state when it has none). */
  async cursor(consumer: string, districtId: string): Promise<ConsumerCursor> {
    const doc = await this.m.cursors
      .findOne({ consumer, districtId })
      .lean<Lean<ChangeCursorDoc>>();
    return doc ? cursorFromDoc(doc) : { consumer, districtId, seq: 0, state: {} };
  }

  /**
   * Compare-and-set: move the cursor from `fromSeq` to `toSeq` (replacing its state when one
   * is given) only if it is still at `fromSeq`; false when another worker moved it first.
   * Throws on any other driver error.
   */
  async advance(
    consumer: string,
    districtId: string,
    fromSeq: number,
    toSeq: number,
    state?: Record<string, unknown>,
  ): Promise<boolean> {
    const op = advanceOp(consumer, districtId, fromSeq, toSeq, state, new Date().toISOString());
    try {
      const doc = await this.m.cursors
        .findOneAndUpdate(op.filter, op.update, {
          upsert: op.upsert,
          returnDocument: 'after',
          projection: { seq: 1, _id: 0 },
        })
        .lean<Pick<ChangeCursorDoc, 'seq'>>();
      return doc !== null;
    } catch (err) {
      // From 0, the cursor exists elsewhere (another worker moved it first): lost race.
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  /** Replace the cursor's state without moving it (creates the cursor at 0 when missing). */
  async setState(
    consumer: string,
    districtId: string,
    state: Record<string, unknown>,
  ): Promise<void> {
    const write = () =>
      this.m.cursors.updateOne(
        { consumer, districtId },
        { $set: { state }, $setOnInsert: { seq: 0 } },
        { upsert: true },
      );
    try {
      await write();
    } catch (err) {
      // Two first writers raced to create the cursor: it exists now, so update it.
      if (!isDuplicateKey(err)) throw err;
      await write();
    }
  }

  /** Every cursor of a consumer, by district. */
  async cursors(consumer: string): Promise<ConsumerCursor[]> {
    const docs = await this.m.cursors
      .find({ consumer })
      .sort({ districtId: 1 })
      .lean<Lean<ChangeCursorDoc>[]>();
    return docs.map(cursorFromDoc);
  }

  /**
   * Delete the district's entries written before `before`, except the newest create or
   * reactivate entry of every active link and active parent account. Works in batches of
   * entries in sequence order (no transaction: an entry is only ever deleted when a newer one
   * explains its record, or its record is inactive, so a concurrent writer can only make a
   * kept entry deletable, never the reverse). Returns how many were deleted.
   */
  async prune(districtId: string, before: string): Promise<number> {
    let deleted = 0;
    let afterSeq = 0;
    for (;;) {
      const batch = await this.m.entries
        .find(
          { districtId, at: { $lt: before }, seq: { $gt: afterSeq } },
          {
            _id: 0,
            seq: 1,
            entity: 1,
            action: 1,
            parentId: 1,
            studentSourcedId: 1,
            origin: 1,
          },
        )
        .sort({ seq: 1 })
        .limit(PRUNE_BATCH)
        .lean<
          Lean<
            Pick<
              ChangeLogDoc,
              'seq' | 'entity' | 'action' | 'parentId' | 'studentSourcedId' | 'origin'
            >
          >[]
        >();
      if (batch.length === 0) return deleted;
      afterSeq = batch[batch.length - 1]?.seq ?? afterSeq;
      const keep = await this.keepers(districtId, batch);
      const doomed = batch.filter(e => !keep.has(e.seq)).map(e => e.seq);
      if (doomed.length > 0) {
        const r = await this.m.entries.deleteMany({ districtId, seq: { $in: doomed } });
        deleted += r.deletedCount;
        // Their audit index rows (the read joins the log, so leftovers would only take space).
        await this.m.audit.deleteMany({ districtId, seq: { $in: doomed } });
      }
      if (batch.length < PRUNE_BATCH) return deleted;
    }
  }

  /**
   * Sequence numbers among `batch` that explain an active record: create/reactivate entries
   * of an active link or account that no newer create/reactivate entry of it supersedes.
   */
  private async keepers(
    districtId: string,
    batch: Pick<
      ChangeLogDoc,
      'seq' | 'entity' | 'action' | 'parentId' | 'studentSourcedId' | 'origin'
    >[],
  ): Promise<Set<number>> {
    const keep = new Set<number>();
    const candidates = batch.filter(
      e =>
        (e.action === 'create' || e.action === 'reactivate') &&
        e.parentId !== undefined &&
        e.parentId !== null &&
        (e.entity === 'parent' ||
          (e.entity === 'link' && e.studentSourcedId != null && e.origin != null)),
    );
    if (candidates.length === 0) return keep;
    const parentIds = [...new Set(candidates.map(e => e.parentId as string))];
    const db = this.conn.db;
    if (!db) throw new Error('MongoDB store is not connected (call init())');

    // Newest create/reactivate per account and per link of these accounts: the entries of
    // these accounts are the audit index's up to its cursor (read first) and the log's after
    // it (as in `list`).
    const indexed = await this.indexedUpTo(districtId);
    const indexedSeqs = (
      await this.m.audit
        .find(
          { districtId, kind: 'p', key: { $in: parentIds }, seq: { $lte: indexed } },
          { _id: 0, seq: 1 },
        )
        .lean<Pick<ChangeAuditDoc, 'seq'>[]>()
    ).map(d => d.seq);
    const newest = new Map<string, number>();
    const rows = await this.m.entries.aggregate<{
      _id: { entity: string; parentId: string; studentSourcedId?: string; origin?: string };
      seq: number;
    }>([
      {
        $match: {
          districtId,
          $or: [
            { seq: { $in: indexedSeqs } },
            { seq: { $gt: indexed }, parentId: { $in: parentIds, $exists: true } },
          ],
          entity: { $in: ['parent', 'link'] },
          action: { $in: ['create', 'reactivate'] },
        },
      },
      {
        $group: {
          _id: {
            entity: '$entity',
            parentId: '$parentId',
            studentSourcedId: '$studentSourcedId',
            origin: '$origin',
          },
          seq: { $max: '$seq' },
        },
      },
    ]);
    for (const r of rows) {
      const k =
        r._id.entity === 'parent'
          ? `p\u0000${r._id.parentId}`
          : `l\u0000${linkKey(r._id.parentId, r._id.studentSourcedId ?? '', r._id.origin ?? '')}`;
      newest.set(k, r.seq);
    }

    const activeParents = new Set(
      (
        await db
          .collection<{ districtId: string; id: string; status: string }>(COLLECTIONS.parents)
          .find(
            { districtId, id: { $in: parentIds }, status: 'active' },
            { projection: { _id: 0, id: 1 } },
          )
          .toArray()
      ).map(p => p.id),
    );
    const activeLinks = new Set(
      (
        await db
          .collection<{
            districtId: string;
            parentId: string;
            studentSourcedId: string;
            origin: string;
            status: string;
          }>(COLLECTIONS.links)
          .find(
            { districtId, parentId: { $in: parentIds }, status: 'active' },
            { projection: { _id: 0, parentId: 1, studentSourcedId: 1, origin: 1 } },
          )
          .toArray()
      ).map(l => linkKey(l.parentId, l.studentSourcedId, l.origin)),
    );

    for (const e of candidates) {
      const pid = e.parentId as string;
      if (e.entity === 'parent') {
        if (activeParents.has(pid) && newest.get(`p\u0000${pid}`) === e.seq) keep.add(e.seq);
      } else {
        const k = linkKey(pid, e.studentSourcedId as string, e.origin as string);
        if (activeLinks.has(k) && newest.get(`l\u0000${k}`) === e.seq) keep.add(e.seq);
      }
    }
    return keep;
  }

  /** Entries matching `match`, counted by entity and action. */
  private async count(match: Record<string, unknown>): Promise<ChangeCounts> {
    const rows = await this.m.entries.aggregate<CountRow>([
      { $match: match },
      { $group: { _id: { entity: '$entity', action: '$action' }, n: { $sum: 1 } } },
    ]);
    const out: ChangeCounts = {};
    for (const r of rows) addCount(out, r._id.entity, r._id.action, r.n);
    return out;
  }
}
