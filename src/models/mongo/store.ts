/**
 * MongoDB adapter of the `RosterStore` port (mongoose 9), the production store for fleets.
 *
 * - A private connection (`mongoose.createConnection()`), never the global mongoose.
 * - Reads are `.lean()` and mapped field by field to the port's plain types: no mongoose
 *   documents, `_id` or `__v` escape.
 * - Plan writes are `bulkWrite({ ordered: false })` of upserts keyed by the unique indexes,
 *   with `$set` of full values, so re-applying a plan modifies nothing (MongoDB does not count
 *   no-op updates) and `writeCount()` stays exact.
 * - Every roster write (`reconcileChunk`, `applyDeactivations`, `addLink`, `createParent`)
 *   runs in a multi-document transaction together with its change-log entries
 *   (`withChangeTransaction` in `../changes/mongo.ts`): the change and its entries commit
 *   together or not at all (design invariant 13). A chunk is atomic: its state is loaded in
 *   the transaction, planned, written and logged; a planner that throws or a failing write
 *   aborts everything. The transaction first writes the district's change-log counter, which
 *   makes writers of one district take turns (a second one gets a write conflict, which the
 *   driver retries with backoff), so a chunk plans on a snapshot holding every earlier
 *   chunk's commit.
 * - Transactions need a replica set or a sharded cluster: `init()` refuses a standalone server
 *   (the `hello` reply has neither `setName` nor `msg: 'isdbgrid'`).
 * - A transaction body may be run again by the driver (transient errors), so it only returns
 *   what it wrote; `writeCount()` adds it once the transaction has committed.
 * - A duplicate-key error (another writer won a unique key outside the district's turn, e.g.
 *   a uniqueId taken in between) aborts the chunk's transaction; the chunk is then re-loaded
 *   and re-planned (at most `MAX_REPLANS` times, then `StoreConflictError`).
 */
import mongoose, {
  type AnyBulkWriteOperation,
  type ClientSession,
  type Connection,
} from 'mongoose';
import type { RecordStatus } from '../../mapping/canonical.js';
import { StoreConflictError } from '../../errors.js';
import {
  chunkChanges,
  linkChange,
  linkDeactivateChange,
  parentCreateChange,
  statusChange,
} from '../changes/derive.js';
import {
  appendChangesMongo,
  changeLogModels,
  initChangeLog,
  withChangeTransaction,
  type ChangeLogModels,
} from '../changes/mongo.js';
import { SYSTEM_CHANGE, type ChangeContext, type NewChange } from '../changes/types.js';
import { codeMoveChange } from '../access-codes/changes.js';
import {
  ACTIVE_RUN_STATUSES,
  deferredPlan,
  OPTIONAL_RUN_FIELDS,
  assertPlanInDistrict,
  allIds,
  chunked,
  heldSlice,
  heldSummary,
  isActiveRunStatus,
  orphansOf,
  ownerlessParentIds,
  parentUpdateEntries,
} from '../shared.js';
import {
  ACTIVE_ID_PAGE,
  ActiveRunExistsError,
  type ActiveIdKind,
  type ChunkKeys,
  type ChunkPlan,
  type ChunkPlanner,
  type ChunkState,
  type Deactivations,
  type GuardianLink,
  HELD_PAGE_SIZE,
  type HeldKind,
  type HeldSummary,
  type ParentAccount,
  type ParentUpdate,
  type Reject,
  type RejectFilter,
  type RosterStore,
  type StoreTestHooks,
  IDENTITY_DUPLICATES_LISTED,
  type IdentityIndexStatus,
  type RunDeferredStudent,
  type StoreHandle,
  type StoreIndex,
  byCollectionAndName,
  type StoredStudent,
  type SyncRun,
  type SyncRunPatch,
} from '../types.js';
import {
  ACTIVE_SIS_PARENT_IDS_INDEX,
  ACTIVE_STUDENT_IDS_INDEX,
  SIS_EMAIL_UNIQUE_INDEX,
  registerModels,
  type DeferredStudentDoc,
  type HeldPageDoc,
  type LinkDoc,
  type ParentDoc,
  type RejectDoc,
  type RosterModels,
  type RunDoc,
  type StudentDoc,
} from './schemas.js';
import { ensureIndexes } from './indexes.js';

/** How often `reconcileChunk` re-loads and re-plans after a duplicate-key error. */
export const MAX_REPLANS = 3;
/** Largest `$in` list sent in one query/update. */
const IN_BATCH = 5000;
/**
 * Records deactivated per transaction by `applyDeactivations`: a held run approved for a
 * whole district can be large, and a transaction must stay well inside MongoDB's 60 s
 * lifetime limit and its cache.
 */
const DEACTIVATION_BATCH = 1000;

/** Options of the MongoDB store. */
export interface MongoStoreOptions {
  /** How long to wait for a reachable server (ms, default 10000). */
  serverSelectionTimeoutMS?: number;
  /**
   * Emit the driver's command monitoring events (`commandStarted`…) on the connection's
   * client (default false). For diagnostics and tests: explain what a call really sent, and
   * count its round trips.
   */
  monitorCommands?: boolean;
}

// --- errors ------------------------------------------------------------------------------

interface CodedError {
  code?: unknown;
  writeErrors?: unknown;
}

function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as CodedError).code : undefined;
}

function writeErrorsOf(err: unknown): { code?: unknown }[] {
  if (typeof err !== 'object' || err === null) return [];
  const w = (err as CodedError).writeErrors;
  if (Array.isArray(w)) return w as { code?: unknown }[];
  if (typeof w === 'object' && w !== null) return [w];
  return [];
}

/** True when `err` is (or contains) a MongoDB duplicate-key error (E11000). */
export function isDuplicateKeyError(err: unknown): boolean {
  const code = codeOf(err);
  if (code === 11000 || code === 11001) return true;
  return writeErrorsOf(err).some(w => w.code === 11000 || w.code === 11001);
}

/** True when every write error in `err` is a duplicate key (and there is at least one). */
function onlyDuplicateKeyErrors(err: unknown): boolean {
  const errors = writeErrorsOf(err);
  if (errors.length === 0) return isDuplicateKeyError(err);
  return errors.every(w => w.code === 11000 || w.code === 11001);
}

interface WriteCounts {
  insertedCount?: unknown;
  upsertedCount?: unknown;
  modifiedCount?: unknown;
}

/** Documents inserted + upserted + modified by a bulk write result. */
export function writtenDocuments(result: WriteCounts | null | undefined): number {
  if (!result) return 0;
  const n = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  return n(result.insertedCount) + n(result.upsertedCount) + n(result.modifiedCount);
}

/**
 * Refuse a server that cannot run multi-document transactions, from its `hello` reply: a
 * replica-set member has `setName`, a mongos answers `msg: 'isdbgrid'`. Throws an Error
 * saying what to do otherwise (never echoing the URL, which may carry credentials).
 */
export function assertTransactionsSupported(hello: Record<string, unknown>): void {
  const setName = hello.setName;
  if (typeof setName === 'string' && setName !== '') return;
  if (hello.msg === 'isdbgrid') return;
  throw new Error(
    'the MongoDB store needs a replica set (or a sharded cluster): it writes every roster ' +
      'change and its change-log entries in one multi-document transaction, which a ' +
      'standalone mongod cannot run. Start mongod with --replSet and initiate the set once ' +
      "(docker-compose.yml runs mongo with '--replSet rs0' and its healthcheck calls " +
      'rs.initiate()); a single-node replica set is enough. Then add replicaSet=<name> ' +
      '(e.g. replicaSet=rs0) to the store URL.',
  );
}

// --- mapping: documents → port types (explicit fields; nothing else escapes) -------------

type Lean<T> = T & { _id?: unknown; __v?: unknown };

/** Assign `value` to `target[key]` only when present (absent optional fields stay absent). */
function setOpt<T extends object, K extends keyof T>(
  target: T,
  key: K,
  value: T[K] | null | undefined,
): void {
  if (value !== null && value !== undefined) target[key] = value;
}

const strings = (v: readonly unknown[] | null | undefined): string[] =>
  (v ?? []).map(x => String(x));

/** Map a lean student document to `StoredStudent`. */
export function studentFromDoc(d: Lean<StudentDoc>): StoredStudent {
  const s: StoredStudent = {
    districtId: d.districtId,
    sourcedId: d.sourcedId,
    uniqueId: d.uniqueId,
    givenName: d.givenName,
    familyName: d.familyName,
    schoolSourcedIds: strings(d.schoolSourcedIds),
    status: d.status,
  };
  setOpt(s, 'email', d.email);
  setOpt(s, 'grade', d.grade);
  return s;
}

/** Map a lean parent-account document to `ParentAccount`. */
export function parentFromDoc(d: Lean<ParentDoc>): ParentAccount {
  const p: ParentAccount = {
    districtId: d.districtId,
    id: d.id,
    givenName: d.givenName,
    familyName: d.familyName,
    role: d.role,
    status: d.status,
    origin: d.origin,
    sources: (d.sources ?? []).map(s => ({ connector: s.connector, sourcedId: s.sourcedId })),
    lockedFields: strings(d.lockedFields),
  };
  setOpt(p, 'uniqueId', d.uniqueId);
  setOpt(p, 'email', d.email);
  setOpt(p, 'emailNormalized', d.emailNormalized);
  setOpt(p, 'phone', d.phone);
  setOpt(p, 'sisRole', d.sisRole);
  return p;
}

/** Map a lean link document to `GuardianLink`. */
export function linkFromDoc(d: Lean<LinkDoc>): GuardianLink {
  const l: GuardianLink = {
    districtId: d.districtId,
    parentId: d.parentId,
    studentSourcedId: d.studentSourcedId,
    origin: d.origin,
    status: d.status,
  };
  setOpt(l, 'relationship', d.relationship);
  return l;
}

/** Map a lean run document to `SyncRun` (drops `active`, `rejectSeq`). */
export function runFromDoc(d: Lean<RunDoc>): SyncRun {
  const r: SyncRun = {
    id: d.id,
    districtId: d.districtId,
    connector: d.connector,
    status: d.status,
    dryRun: d.dryRun,
    trigger: d.trigger,
    createdAt: d.createdAt,
    counts: d.counts ?? {},
    rejectCount: d.rejectCount ?? 0,
    timings: d.timings ?? {},
  };
  setOpt(r, 'startedAt', d.startedAt);
  setOpt(r, 'finishedAt', d.finishedAt);
  setOpt(r, 'held', d.held && heldSummaryOf(d.held));
  setOpt(r, 'error', d.error);
  setOpt(r, 'actor', d.actor);
  setOpt(r, 'decidedBy', d.decidedBy);
  setOpt(r, 'decidedAt', d.decidedAt);
  setOpt(r, 'waiting', d.waiting);
  setOpt(r, 'config', d.config);
  return r;
}

/**
 * The list sizes of a run document's `held`: a summary, or (documents written before held
 * lists moved to `held_pages`) the lists themselves, which `listHeld` still reads.
 */
function heldSummaryOf(held: HeldSummary | Partial<Deactivations>): HeldSummary {
  if ('students' in held) return held;
  const legacy = held;
  return heldSummary({
    studentSourcedIds: legacy.studentSourcedIds ?? [],
    parentIds: legacy.parentIds ?? [],
    links: legacy.links ?? [],
  });
}

/** Map a lean reject document to `Reject`. */
export function rejectFromDoc(d: Lean<RejectDoc>): Reject {
  return {
    entity: d.entity,
    recordId: d.recordId,
    reason: d.reason,
    ...(d.kind === 'excluded' ? { kind: 'excluded' as const } : {}),
  };
}

// --- mapping: plan → bulk operations (pure; unit-tested without a server) ---------------

/** Split optional values into `$set` (defined) and `$unset` (undefined) parts. */
function setUnset(values: Record<string, unknown>): {
  $set?: Record<string, unknown>;
  $unset?: Record<string, ''>;
} {
  const $set: Record<string, unknown> = {};
  const $unset: Record<string, ''> = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || v === null) $unset[k] = '';
    else $set[k] = v;
  }
  return {
    ...(Object.keys($set).length > 0 ? { $set } : {}),
    ...(Object.keys($unset).length > 0 ? { $unset } : {}),
  };
}

/** Upsert of a full student record keyed by {districtId, sourcedId}. */
export function studentWriteOp(
  districtId: string,
  s: StoredStudent,
): AnyBulkWriteOperation<StudentDoc> {
  return {
    updateOne: {
      filter: { districtId, sourcedId: s.sourcedId },
      update: setUnset({
        uniqueId: s.uniqueId,
        givenName: s.givenName,
        familyName: s.familyName,
        email: s.email,
        schoolSourcedIds: [...s.schoolSourcedIds],
        grade: s.grade,
        status: s.status,
      }),
      upsert: true,
    },
  };
}

/** Insert-if-absent of a new account (with its sources) keyed by {districtId, id}. */
export function parentCreateOp(
  districtId: string,
  p: ParentAccount,
): AnyBulkWriteOperation<ParentDoc> {
  const doc: Record<string, unknown> = {};
  const fields: Record<string, unknown> = {
    uniqueId: p.uniqueId,
    givenName: p.givenName,
    familyName: p.familyName,
    email: p.email,
    emailNormalized: p.emailNormalized,
    phone: p.phone,
    role: p.role,
    sisRole: p.sisRole,
    status: p.status,
    origin: p.origin,
    sources: p.sources.map(s => ({ connector: s.connector, sourcedId: s.sourcedId })),
    lockedFields: [...p.lockedFields],
  };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && v !== null) doc[k] = v;
  return {
    updateOne: { filter: { districtId, id: p.id }, update: { $setOnInsert: doc }, upsert: true },
  };
}

/**
 * Field-level update of an existing account: `$set` present fields, `$unset` fields set to
 * `undefined`, `$addToSet` new sources. Not an upsert: it never creates an account.
 * Returns undefined when the update changes nothing at all.
 */
export function parentUpdateOp(
  districtId: string,
  u: ParentUpdate,
): AnyBulkWriteOperation<ParentDoc> | undefined {
  const update: Record<string, unknown> = setUnset(Object.fromEntries(parentUpdateEntries(u.set)));
  if (u.addSources.length > 0) {
    update.$addToSet = {
      sources: {
        $each: u.addSources.map(s => ({ connector: s.connector, sourcedId: s.sourcedId })),
      },
    };
  }
  if (Object.keys(update).length === 0) return undefined;
  return { updateOne: { filter: { districtId, id: u.id }, update } };
}

/** Upsert of a link keyed by {districtId, parentId, studentSourcedId, origin}. */
export function linkWriteOp(districtId: string, l: GuardianLink): AnyBulkWriteOperation<LinkDoc> {
  return {
    updateOne: {
      filter: {
        districtId,
        parentId: l.parentId,
        studentSourcedId: l.studentSourcedId,
        origin: l.origin,
      },
      update: setUnset({ status: l.status, relationship: l.relationship }),
      upsert: true,
    },
  };
}

/** `$set`/`$unset` for a run patch; keeps `active` in step with `status`. */
export function runPatchUpdate(patch: SyncRunPatch): Record<string, unknown> {
  const optional = new Set<string>(OPTIONAL_RUN_FIELDS);
  const $set: Record<string, unknown> = {};
  const $unset: Record<string, ''> = {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) {
      if (optional.has(k)) $unset[k] = '';
    } else {
      $set[k] = v;
    }
  }
  if (patch.status !== undefined) $set.active = isActiveRunStatus(patch.status);
  return {
    ...(Object.keys($set).length > 0 ? { $set } : {}),
    ...(Object.keys($unset).length > 0 ? { $unset } : {}),
  };
}

/** The run document stored by `createRun`. */
export function runDocFrom(run: SyncRun): RunDoc {
  const doc: RunDoc = {
    id: run.id,
    districtId: run.districtId,
    connector: run.connector,
    status: run.status,
    dryRun: run.dryRun,
    trigger: run.trigger,
    createdAt: run.createdAt,
    counts: run.counts,
    rejectCount: run.rejectCount,
    timings: run.timings,
    active: isActiveRunStatus(run.status),
    rejectSeq: 0,
  };
  setOpt(doc, 'startedAt', run.startedAt);
  setOpt(doc, 'finishedAt', run.finishedAt);
  setOpt(doc, 'held', run.held);
  setOpt(doc, 'error', run.error);
  setOpt(doc, 'actor', run.actor);
  setOpt(doc, 'decidedBy', run.decidedBy);
  setOpt(doc, 'decidedAt', run.decidedAt);
  setOpt(doc, 'waiting', run.waiting);
  setOpt(doc, 'config', run.config);
  return doc;
}

/** bulkWrite options: unordered, and validation failures throw instead of skipping ops. */
const BULK = { ordered: false, throwOnValidationError: true } as const;

/** Options of a dry run's read-only transaction: one snapshot of the chunk's state. */
const READ_TRANSACTION = { readConcern: { level: 'snapshot' }, readPreference: 'primary' } as const;

const INACTIVE = { $set: { status: 'inactive' as RecordStatus } };

/**
 * What `addLink(link)` does to the existing link `prev` of that origin (SQLite's rule):
 * `create` when there is none, `reactivate`/`deactivate` when the status changes, `update`
 * when only the relationship does; undefined when nothing changes (pure).
 */
export function addLinkAction(
  prev: GuardianLink | undefined,
  link: GuardianLink,
): 'create' | 'update' | 'reactivate' | 'deactivate' | undefined {
  if (!prev) return 'create';
  if (prev.status !== link.status) return link.status === 'active' ? 'reactivate' : 'deactivate';
  return (prev.relationship ?? undefined) === (link.relationship ?? undefined)
    ? undefined
    : 'update';
}

/** Inside a transaction that read the records first, every update must change them all. */
function expectModified(what: string, modified: number, expected: number): void {
  if (modified !== expected) {
    throw new Error(
      `deactivated ${modified} ${what} where ${expected} were read as active in the same transaction`,
    );
  }
}

/** `RosterStore` on MongoDB through a private mongoose connection. */
export class MongoRosterStore implements RosterStore {
  private readonly conn: Connection;
  private readonly m: RosterModels;
  /** The change log's models (written in the roster transactions). */
  private readonly cl: ChangeLogModels;
  private opening: Promise<void> | undefined;
  private writes = 0;
  /** Fault injection for tests only (`StoreTestHooks`). */
  readonly testHooks: StoreTestHooks = {};

  /** The private mongoose connection, for feature repositories sharing it. */
  handle(): StoreHandle {
    return { kind: 'mongo', connection: this.conn };
  }

  /** Prepare a store for `url` (`mongodb://…` or `mongodb+srv://…`); `init()` connects. */
  constructor(
    private readonly url: string,
    private readonly options: MongoStoreOptions = {},
  ) {
    this.conn = mongoose.createConnection();
    this.m = registerModels(this.conn);
    this.cl = changeLogModels(this.conn);
  }

  /**
   * Connect (once) and check that the server can run transactions; creates nothing (`init()`
   * does; `store migrate --dry-run` only connects). Throws when the server is unreachable,
   * and an Error naming the fix when it is a standalone server.
   */
  async connect(): Promise<void> {
    this.opening ??= this.conn
      .openUri(this.url, {
        autoIndex: false,
        autoCreate: false,
        serverSelectionTimeoutMS: this.options.serverSelectionTimeoutMS ?? 10_000,
        monitorCommands: this.options.monitorCommands ?? false,
      })
      .then(() => undefined);
    try {
      await this.opening;
    } catch (err) {
      this.opening = undefined;
      throw err;
    }
    const db = this.conn.db;
    if (!db) throw new Error('MongoDB store is not connected');
    assertTransactionsSupported(await db.command({ hello: 1 }));
  }

  /**
   * Connect (once), check that the server can run transactions, and create the roster's and
   * the change log's collections and missing indexes (`ensureIndexes`). Idempotent. Never
   * drops an index: one no schema declares stays (`store migrate` lists it), and a declared
   * one held by an index of another definition makes it throw `IndexMigrationNeededError`
   * (`store migrate` rebuilds it). Throws when the server is unreachable, and an Error naming
   * the fix when it is a standalone server (see `assertTransactionsSupported`).
   */
  async init(): Promise<void> {
    await this.connect();
    let blocked: string[] = [];
    for (const model of Object.values(this.m) as mongoose.Model<unknown>[])
      blocked = blocked.concat((await ensureIndexes(model)).blocked ?? []);
    this.identity = blocked.includes(SIS_EMAIL_UNIQUE_INDEX)
      ? { unique: false, duplicates: await this.sharedSisEmails() }
      : { unique: true, duplicates: [] };
    // Transactions cannot create collections with their indexes: the log's exist up front.
    await initChangeLog(this.cl);
  }

  private identity: IdentityIndexStatus | undefined;

  /**
   * Whether design invariant 7 is carried by the partial unique index
   * `district_sis_email_unique` (see `IdentityIndexStatus`). When active `sis` accounts
   * already share an email, `init()` leaves the index out, merges or deletes nothing, and
   * lists them here; the next `init()` (or `store migrate`) tries again. Undefined before
   * `init()`.
   */
  identityIndex(): IdentityIndexStatus | undefined {
    return this.identity;
  }

  /** Groups of active `sis` accounts sharing a normalized email (the index's key), capped. */
  private async sharedSisEmails(): Promise<IdentityIndexStatus['duplicates']> {
    const rows = await this.m.parents
      .aggregate<{ _id: { districtId: string; email: string }; ids: string[] }>([
        { $match: { status: 'active', origin: 'sis', emailNormalized: { $type: 'string' } } },
        {
          $group: {
            _id: { districtId: '$districtId', email: '$emailNormalized' },
            ids: { $push: '$id' },
            n: { $sum: 1 },
          },
        },
        { $match: { n: { $gt: 1 } } },
        { $sort: { '_id.districtId': 1, '_id.email': 1 } },
        { $limit: IDENTITY_DUPLICATES_LISTED },
      ])
      .allowDiskUse(true);
    return rows.map(r => ({
      districtId: r._id.districtId,
      emailNormalized: r._id.email,
      parentIds: [...r.ids].sort(),
    }));
  }

  /**
   * Every index of every collection of the store's database (as the server lists them, not
   * as the schemas declare them), sorted by collection then name.
   */
  async listIndexes(): Promise<StoreIndex[]> {
    const db = this.conn.db;
    if (!db) throw new Error('MongoDB store is not connected (call init())');
    const out: StoreIndex[] = [];
    for (const c of await db.listCollections({}, { nameOnly: true }).toArray()) {
      if (c.name.startsWith('system.')) continue;
      for (const i of await db.collection(c.name).indexes())
        out.push({ collection: c.name, name: String(i.name) });
    }
    return out.sort(byCollectionAndName);
  }

  /** Close the connection. */
  async close(): Promise<void> {
    await this.conn.close();
  }

  /** `ping` command; throws when the server is unreachable or the store is not open. */
  async ping(): Promise<void> {
    const db = this.conn.db;
    if (!db) throw new Error('MongoDB store is not connected (call init())');
    await db.command({ ping: 1 });
  }

  /** Drop the store's whole database (tests only). */
  async dropDatabase(): Promise<void> {
    await this.conn.dropDatabase();
  }

  /** Roster documents inserted, upserted or modified since open (runs/rejects not counted). */
  writeCount(): number {
    return this.writes;
  }

  /** Insert or rename schools (not counted as roster writes). */
  async upsertSchools(
    districtId: string,
    schools: { sourcedId: string; name: string }[],
  ): Promise<void> {
    if (schools.length === 0) return;
    await this.m.schools.bulkWrite(
      schools.map(s => ({
        updateOne: {
          filter: { districtId, sourcedId: s.sourcedId },
          update: { $set: { name: s.name } },
          upsert: true,
        },
      })),
      BULK,
    );
  }

  /**
   * In one transaction: load the chunk's state, call the pure `planner`, and unless `dryRun`
   * write the plan with idempotent upserts and append its change-log entries (cause and actor
   * from `options.change`, default `SYSTEM_CHANGE`). A planner that throws or a failing write
   * aborts the whole chunk, entries included. A duplicate-key error (a unique key taken by a
   * writer outside the district's turn) re-loads and re-plans, up to `MAX_REPLANS` times; then
   * `StoreConflictError`. A dry run reads a snapshot and writes nothing.
   *
   * `options.unchanged` (skip students by digest, docs/decisions/0014) is not implemented for
   * MongoDB yet: every student is planned (same result, no speed-up). MongoDB has no triggers,
   * so each write path outside the sync would have to clear the digests itself.
   */
  async reconcileChunk(
    districtId: string,
    keys: ChunkKeys,
    planner: ChunkPlanner,
    options: { dryRun: boolean; change?: ChangeContext | undefined; runId?: string | undefined },
  ): Promise<ChunkPlan> {
    if (options.dryRun) {
      return this.conn.transaction(async session => {
        const plan = planner(await this.loadChunkState(districtId, keys, session));
        assertPlanInDistrict(districtId, plan);
        return plan;
      }, READ_TRANSACTION);
    }
    const change = options.change ?? SYSTEM_CHANGE;
    for (let attempt = 0; ; attempt++) {
      try {
        const { plan, written } = await withChangeTransaction(
          this.cl,
          districtId,
          async session => {
            const state = await this.loadChunkState(districtId, keys, session);
            const plan = planner(state);
            assertPlanInDistrict(districtId, plan);
            // Entries from the state before the writes (with any record the plan touches
            // that the keys did not load), like SQLite.
            const before = await this.withPlanTargets(districtId, state, plan, session);
            const entries = chunkChanges(before, plan);
            const written = await this.writePlan(districtId, plan, session, entries);
            await this.keepDeferred(districtId, plan, options.runId, session);
            await appendChangesMongo(this.cl, session, districtId, change, entries);
            return { plan, written };
          },
        );
        this.writes += written;
        return plan;
      } catch (err) {
        if (!isDuplicateKeyError(err)) throw err;
        if (attempt >= MAX_REPLANS) {
          throw new StoreConflictError(
            `chunk of district ${districtId} still conflicts after ${MAX_REPLANS} re-plans`,
            { cause: err },
          );
        }
      }
    }
  }

  /** Active `sis` links of the given students or parents, each once. */
  async listActiveSisLinks(
    districtId: string,
    of: { studentSourcedIds: string[]; parentIds: string[] },
  ): Promise<{ parentId: string; studentSourcedId: string }[]> {
    const out = new Map<string, { parentId: string; studentSourcedId: string }>();
    const batches: Record<string, unknown>[] = [];
    for (const ids of chunked([...new Set(of.studentSourcedIds)], IN_BATCH))
      batches.push({ studentSourcedId: { $in: ids } });
    for (const ids of chunked([...new Set(of.parentIds)], IN_BATCH))
      batches.push({ parentId: { $in: ids } });
    for (const filter of batches) {
      const docs = await this.m.links
        .find(
          { districtId, origin: 'sis', status: 'active', ...filter },
          { parentId: 1, studentSourcedId: 1, _id: 0 },
        )
        .lean<{ parentId: string; studentSourcedId: string }[]>();
      for (const d of docs)
        out.set(`${d.parentId}\u0000${d.studentSourcedId}`, {
          parentId: d.parentId,
          studentSourcedId: d.studentSourcedId,
        });
    }
    return [...out.values()];
  }

  /** sourcedIds of the district's active students, sorted (all pages of `activeIdPages`). */
  listActiveStudentIds(districtId: string): Promise<string[]> {
    return allIds(this.activeIdPages(districtId, 'student'));
  }

  /** Ids of the active accounts with origin `sis`, sorted (all pages of `activeIdPages`). */
  listActiveSisParentIds(districtId: string): Promise<string[]> {
    return allIds(this.activeIdPages(districtId, 'sis-parent'));
  }

  /**
   * Active student sourcedIds or active `sis` account ids of the district, in id order, in
   * pages of at most `pageSize`: one cursor (driver batches of `pageSize`) whose filter, sort
   * and projection (`_id` excluded) are all in the hinted index `district_status_sourcedId` /
   * `district_status_origin_id` (declared in `schemas.ts`), so the plan is a covered IXSCAN
   * (no FETCH, no in-memory SORT) and memory is one batch. The cursor is closed when the
   * caller stops early.
   */
  async *activeIdPages(
    districtId: string,
    kind: ActiveIdKind,
    pageSize: number = ACTIVE_ID_PAGE,
  ): AsyncGenerator<string[]> {
    const limit = Math.max(1, Math.floor(pageSize));
    const ids = (
      kind === 'student'
        ? this.m.students
            .find({ districtId, status: 'active' }, { sourcedId: 1, _id: 0 })
            .sort({ sourcedId: 1 })
            .hint(ACTIVE_STUDENT_IDS_INDEX)
            .lean<{ sourcedId: string }>()
            .cursor({ batchSize: limit })
            .map(d => d.sourcedId)
        : this.m.parents
            .find({ districtId, status: 'active', origin: 'sis' }, { id: 1, _id: 0 })
            .sort({ id: 1 })
            .hint(ACTIVE_SIS_PARENT_IDS_INDEX)
            .lean<{ id: string }>()
            .cursor({ batchSize: limit })
            .map(d => d.id)
    ) as AsyncIterable<string> & { close(): Promise<void> };
    let page: string[] = [];
    try {
      for await (const id of ids) {
        page.push(id);
        if (page.length >= limit) {
          yield page;
          page = [];
        }
      }
      if (page.length > 0) yield page;
    } finally {
      await ids.close();
    }
  }

  /** Number of active students and active parent accounts. */
  async countActive(districtId: string): Promise<{ students: number; parents: number }> {
    const [students, parents] = await Promise.all([
      this.m.students.countDocuments({ districtId, status: 'active' }),
      this.m.parents.countDocuments({ districtId, status: 'active' }),
    ]);
    return { students, parents };
  }

  /**
   * Set `inactive` on the listed active students and parents and on the listed active
   * `sis`-origin links (other origins are never touched). Never deletes. Logs one entry per
   * record whose status changed (students by sourcedId, then accounts by id, then links in
   * the given order, like SQLite), cause and actor from `change`. Works in transactions of
   * `DEACTIVATION_BATCH` records, each holding its records' changes and entries: a call that
   * fails part-way leaves whole batches applied and logged, and calling it again finishes the
   * rest (only records still active change). Returns the number of records changed.
   */
  async applyDeactivations(
    districtId: string,
    d: Deactivations,
    change: ChangeContext = SYSTEM_CHANGE,
  ): Promise<number> {
    let n = 0;
    for (const ids of chunked(unique(d.studentSourcedIds).sort(), DEACTIVATION_BATCH)) {
      n += await this.deactivateBatch(districtId, change, async session => {
        const active = await this.m.students
          .find(
            { districtId, status: 'active', sourcedId: { $in: ids } },
            { sourcedId: 1, _id: 0 },
            { session },
          )
          .lean<{ sourcedId: string }[]>();
        const found = active.map(x => x.sourcedId).sort();
        if (found.length === 0) return [];
        const r = await this.m.students.updateMany(
          { districtId, status: 'active', sourcedId: { $in: found } },
          INACTIVE,
          { session },
        );
        expectModified('students', r.modifiedCount, found.length);
        return found.map(id => statusChange('student', id, 'deactivate'));
      });
    }
    for (const ids of chunked(unique(d.parentIds).sort(), DEACTIVATION_BATCH)) {
      n += await this.deactivateBatch(districtId, change, async session => {
        const active = await this.m.parents
          .find({ districtId, status: 'active', id: { $in: ids } }, { id: 1, _id: 0 }, { session })
          .lean<{ id: string }[]>();
        const found = active.map(x => x.id).sort();
        if (found.length === 0) return [];
        const r = await this.m.parents.updateMany(
          { districtId, status: 'active', id: { $in: found } },
          INACTIVE,
          { session },
        );
        expectModified('parent accounts', r.modifiedCount, found.length);
        return found.map(id => statusChange('parent', id, 'deactivate'));
      });
    }
    const pairs = new Map<string, { parentId: string; studentSourcedId: string }>();
    for (const l of d.links) pairs.set(`${l.parentId}\u0000${l.studentSourcedId}`, l);
    for (const links of chunked([...pairs.values()], DEACTIVATION_BATCH)) {
      n += await this.deactivateBatch(districtId, change, async session => {
        const active = await this.m.links
          .find(
            {
              districtId,
              origin: 'sis',
              status: 'active',
              studentSourcedId: { $in: unique(links.map(l => l.studentSourcedId)) },
              parentId: { $in: unique(links.map(l => l.parentId)) },
            },
            { parentId: 1, studentSourcedId: 1, _id: 0 },
            { session },
          )
          .lean<{ parentId: string; studentSourcedId: string }[]>();
        const isActive = new Set(active.map(l => `${l.parentId}\u0000${l.studentSourcedId}`));
        const found = links.filter(l => isActive.has(`${l.parentId}\u0000${l.studentSourcedId}`));
        if (found.length === 0) return [];
        const ops: AnyBulkWriteOperation<LinkDoc>[] = found.map(l => ({
          updateOne: {
            filter: {
              districtId,
              parentId: l.parentId,
              studentSourcedId: l.studentSourcedId,
              origin: 'sis',
              status: 'active',
            },
            update: INACTIVE,
          },
        }));
        const r = await this.m.links.bulkWrite(ops, { ...BULK, session });
        expectModified('links', writtenDocuments(r), found.length);
        return found.map(l => linkDeactivateChange('sis', l.parentId, l.studentSourcedId));
      });
    }
    return n;
  }

  /**
   * One transaction of `applyDeactivations`: `body` deactivates and returns the entries of
   * what it changed (one per record); they are logged in the same transaction. Returns the
   * number of records changed, counted as writes once committed.
   */
  private async deactivateBatch(
    districtId: string,
    change: ChangeContext,
    body: (session: ClientSession) => Promise<NewChange[]>,
  ): Promise<number> {
    const entries = await withChangeTransaction(this.cl, districtId, async session => {
      const out = await body(session);
      await appendChangesMongo(this.cl, session, districtId, change, out);
      return out;
    });
    this.writes += entries.length;
    return entries.length;
  }

  /** All students of a district, by sourcedId. */
  async getStudents(districtId: string): Promise<StoredStudent[]> {
    const docs = await this.m.students
      .find({ districtId })
      .sort({ sourcedId: 1 })
      .lean<Lean<StudentDoc>[]>();
    return docs.map(studentFromDoc);
  }

  /** All parent accounts of a district (with sources), by id. */
  async getParents(districtId: string): Promise<ParentAccount[]> {
    const docs = await this.m.parents
      .find({ districtId })
      .sort({ id: 1 })
      .lean<Lean<ParentDoc>[]>();
    return docs.map(parentFromDoc);
  }

  /** All links of a district, by (parentId, studentSourcedId, origin). */
  async getLinks(districtId: string): Promise<GuardianLink[]> {
    const docs = await this.m.links
      .find({ districtId })
      .sort({ parentId: 1, studentSourcedId: 1, origin: 1 })
      .lean<Lean<LinkDoc>[]>();
    return docs.map(linkFromDoc);
  }

  /**
   * Insert the link, or update status/relationship of the existing link of that origin, and
   * log it (create / update / reactivate / deactivate, like SQLite) in the same transaction.
   * Returns true when the link changed; a link already in that state writes and logs nothing.
   */
  async addLink(link: GuardianLink, change: ChangeContext = SYSTEM_CHANGE): Promise<boolean> {
    const written = await withChangeTransaction(this.cl, link.districtId, async session => {
      const prevDoc = await this.m.links
        .findOne(
          {
            districtId: link.districtId,
            parentId: link.parentId,
            studentSourcedId: link.studentSourcedId,
            origin: link.origin,
          },
          null,
          { session },
        )
        .lean<Lean<LinkDoc>>();
      const prev = prevDoc ? linkFromDoc(prevDoc) : undefined;
      const action = addLinkAction(prev, link);
      if (action === undefined) return 0;
      const r = await this.m.links.bulkWrite([linkWriteOp(link.districtId, link)], {
        ...BULK,
        session,
      });
      const n = writtenDocuments(r);
      if (n > 0) {
        await appendChangesMongo(this.cl, session, link.districtId, change, [
          linkChange(action, link, prev),
        ]);
      }
      return n;
    });
    this.writes += written;
    return written > 0;
  }

  /**
   * Insert an account with its sources and log its creation, in one transaction. Throws
   * `StoreConflictError` when the id, uniqueId or a source is already taken in the district
   * (nothing is written or logged then).
   */
  async createParent(account: ParentAccount, change: ChangeContext = SYSTEM_CHANGE): Promise<void> {
    const doc: ParentDoc = { ...account, sources: account.sources.map(s => ({ ...s })) };
    try {
      await withChangeTransaction(this.cl, account.districtId, async session => {
        await this.m.parents.insertMany([stripUndefined(doc)], { session, ordered: true });
        await appendChangesMongo(this.cl, session, account.districtId, change, [
          parentCreateChange(account),
        ]);
      });
    } catch (err) {
      if (isDuplicateKeyError(err)) {
        throw new StoreConflictError(
          `parent account ${account.id} conflicts with an existing account`,
          { cause: err },
        );
      }
      throw err;
    }
    this.writes += 1;
  }

  /**
   * Insert a run. Throws `ActiveRunExistsError` (carrying the active run) when the district
   * already has a queued/running run — detected by the partial unique index, so two
   * concurrent callers cannot both succeed — and `StoreConflictError` when the id is taken.
   */
  async createRun(run: SyncRun): Promise<SyncRun> {
    const doc = runDocFrom(run);
    // A race with a run that finishes between our insert and our read is retried.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.m.runs.create(doc);
        return runFromDoc(doc);
      } catch (err) {
        if (!isDuplicateKeyError(err)) throw err;
        const active = doc.active ? await this.findActiveRun(run.districtId) : undefined;
        if (active && active.id !== run.id) throw new ActiveRunExistsError(active);
        if ((await this.getRun(run.id)) !== undefined || attempt >= 2) {
          throw new StoreConflictError(`run ${run.id} already exists`, { cause: err });
        }
      }
    }
  }

  /**
   * Patch a run (present keys replace; `undefined` clears optional fields). Throws when the
   * run is unknown, `ActiveRunExistsError` when it would become a second active run.
   */
  async updateRun(id: string, patch: SyncRunPatch): Promise<SyncRun> {
    const update = runPatchUpdate(patch);
    let doc: Lean<RunDoc> | null;
    try {
      doc =
        Object.keys(update).length === 0
          ? await this.m.runs.findOne({ id }).lean<Lean<RunDoc>>()
          : await this.m.runs
              .findOneAndUpdate({ id }, update, { returnDocument: 'after' })
              .lean<Lean<RunDoc>>();
    } catch (err) {
      if (isDuplicateKeyError(err)) {
        const current = await this.getRun(id);
        const active = current && (await this.findActiveRun(current.districtId));
        if (active) throw new ActiveRunExistsError(active);
      }
      throw err;
    }
    if (!doc) throw new Error(`run ${id} not found`);
    return runFromDoc(doc);
  }

  /** The run with `id`, if any. */
  async getRun(id: string): Promise<SyncRun | undefined> {
    const doc = await this.m.runs.findOne({ id }).lean<Lean<RunDoc>>();
    return doc ? runFromDoc(doc) : undefined;
  }

  /** The district's queued/running run, if any. */
  async findActiveRun(districtId: string): Promise<SyncRun | undefined> {
    const doc = await this.m.runs
      .findOne({ districtId, active: true, status: { $in: [...ACTIVE_RUN_STATUSES] } })
      .lean<Lean<RunDoc>>();
    return doc ? runFromDoc(doc) : undefined;
  }

  /** The district's runs, newest first, at most `limit`. */
  async listRuns(districtId: string, limit: number): Promise<SyncRun[]> {
    if (limit <= 0) return [];
    const docs = await this.m.runs
      .find({ districtId })
      .sort({ createdAt: -1, _id: -1 })
      .limit(limit)
      .lean<Lean<RunDoc>[]>();
    return docs.map(runFromDoc);
  }

  /**
   * Append rejects to a run in order. Sequence numbers are allocated atomically on the run
   * (`$inc`), so concurrent chunk jobs never collide. An identical reject (same entity,
   * record id and reason) already stored for the run is skipped. Throws when the run is
   * unknown.
   */
  async addRejects(runId: string, rejects: Reject[]): Promise<void> {
    if (rejects.length === 0) return;
    const run = await this.m.runs
      .findOneAndUpdate(
        { id: runId },
        { $inc: { rejectSeq: rejects.length } },
        { returnDocument: 'after', projection: { districtId: 1, rejectSeq: 1, _id: 0 } },
      )
      .lean<Pick<RunDoc, 'districtId' | 'rejectSeq'>>();
    if (!run) throw new Error(`run ${runId} not found`);
    const first = run.rejectSeq - rejects.length + 1;
    const ops: AnyBulkWriteOperation<RejectDoc>[] = rejects.map((r, i) => ({
      insertOne: {
        document: {
          runId,
          districtId: run.districtId,
          seq: first + i,
          entity: r.entity,
          recordId: r.recordId,
          reason: r.reason,
          kind: r.kind ?? 'rejected',
        },
      },
    }));
    try {
      await this.m.rejects.bulkWrite(ops, BULK);
    } catch (err) {
      if (!onlyDuplicateKeyErrors(err)) throw err;
    }
  }

  /** A page of a run's rejects in insertion order, optionally of one `kind` only. */
  async listRejects(
    runId: string,
    offset: number,
    limit: number,
    filter: RejectFilter = {},
  ): Promise<Reject[]> {
    if (limit <= 0) return [];
    // Documents stored before kinds existed have none: they are `rejected`.
    const query: mongoose.QueryFilter<RejectDoc> = { runId };
    if (filter.kind === 'excluded') query.kind = 'excluded';
    else if (filter.kind === 'rejected') query.kind = { $ne: 'excluded' };
    const docs = await this.m.rejects
      .find(query)
      .sort({ seq: 1 })
      .skip(Math.max(0, offset))
      .limit(limit)
      .lean<Lean<RejectDoc>[]>();
    return docs.map(rejectFromDoc);
  }

  /** Number of the district's active `sis` links. */
  async countActiveSisLinks(districtId: string): Promise<number> {
    return this.m.links.countDocuments({ districtId, origin: 'sis', status: 'active' });
  }

  /** A page of a run's deferred students, by sourcedId. */
  async listDeferredStudents(
    runId: string,
    opts: { onlyRemapped?: boolean; offset?: number; limit?: number } = {},
  ): Promise<RunDeferredStudent[]> {
    let q = this.m.deferredStudents
      .find(opts.onlyRemapped ? { runId, remapFrom: { $exists: true } } : { runId })
      .sort({ sourcedId: 1 })
      .skip(Math.max(0, opts.offset ?? 0));
    if (opts.limit !== undefined && opts.limit > 0) q = q.limit(opts.limit);
    return (await q.lean<Lean<DeferredStudentDoc>[]>()).map(deferredFromDoc);
  }

  /** Number of a run's deferred students and of those with a proposed remap. */
  async countDeferredStudents(runId: string): Promise<{ students: number; remapped: number }> {
    const [students, remapped] = await Promise.all([
      this.m.deferredStudents.countDocuments({ runId }),
      this.m.deferredStudents.countDocuments({ runId, remapFrom: { $exists: true } }),
    ]);
    return { students, remapped };
  }

  /** Replace a run's proposed remap (deferred sourcedId → old sourcedId), in one transaction. */
  async setRemap(runId: string, pairs: { sourcedId: string; remapFrom: string }[]): Promise<void> {
    await this.conn.transaction(async session => {
      await this.m.deferredStudents.updateMany(
        { runId },
        { $unset: { remapFrom: 1 } },
        { session },
      );
      for (const batch of chunked(pairs, IN_BATCH)) {
        if (batch.length === 0) continue;
        await this.m.deferredStudents.bulkWrite(
          batch.map(p => ({
            updateOne: {
              filter: { runId, sourcedId: p.sourcedId },
              update: { $set: { remapFrom: p.remapFrom } },
            },
          })),
          { ...BULK, session },
        );
      }
    });
  }

  /**
   * Write a run's deferred students (moves of their proposed old records when `remap`, else
   * creations) and their `sis` links in one change-log transaction.
   */
  async applyDeferredStudents(
    districtId: string,
    runId: string,
    change: ChangeContext,
    opts: { remap: boolean },
  ): Promise<number> {
    const rows = await this.listDeferredStudents(runId);
    if (rows.length === 0) return 0;
    const plan = deferredPlan(districtId, rows, opts.remap);
    const written = await withChangeTransaction(this.cl, districtId, async session => {
      const state = await this.loadChunkState(
        districtId,
        {
          connector: '',
          studentSourcedIds: [
            ...rows.map(r => r.record.sourcedId),
            ...plan.students.flatMap(st => (st.from === undefined ? [] : [st.from])),
          ],
          guardianSourcedIds: [],
          guardianUniqueIds: [],
          emailsNormalized: [],
        },
        session,
      );
      const entries = chunkChanges(state, plan);
      const n = await this.writePlan(districtId, plan, session, entries);
      await appendChangesMongo(this.cl, session, districtId, change, entries);
      return n;
    });
    this.writes += written;
    return written;
  }

  /**
   * Store `held` in pages of `HELD_PAGE_SIZE` (upserts keyed by run, kind and start, so a
   * retried finalize rewrites the same pages; pages past the new lists' ends are removed),
   * then patch the run to `needs-approval` with the list sizes in one atomic update. Pages
   * are not written in one transaction with the status: a district-sized list would outlast
   * MongoDB's transaction limits. Until the status changes, nothing reads them.
   */
  async holdRun(id: string, patch: SyncRunPatch, held: Deactivations): Promise<SyncRun> {
    const run = await this.getRun(id);
    if (!run) throw new Error(`run ${id} not found`);
    const lists: [HeldKind, unknown[]][] = [
      ['student', held.studentSourcedIds],
      ['parent', held.parentIds],
      ['link', held.links],
    ];
    for (const [kind, list] of lists) {
      const ops: AnyBulkWriteOperation<HeldPageDoc>[] = [];
      for (let start = 0; start < list.length; start += HELD_PAGE_SIZE) {
        const items = list.slice(start, start + HELD_PAGE_SIZE);
        ops.push({
          replaceOne: {
            filter: { runId: id, kind, start },
            replacement: {
              runId: id,
              districtId: run.districtId,
              kind,
              start,
              n: items.length,
              items,
            },
            upsert: true,
          },
        });
      }
      // ≈ 50 pages (≤ 50,000 ids, a few MB) per round trip
      for (const batch of chunked(ops, 50)) await this.m.heldPages.bulkWrite(batch, BULK);
      await this.m.heldPages.deleteMany({ runId: id, kind, start: { $gte: list.length } });
    }
    return this.updateRun(id, { ...patch, status: 'needs-approval', held: heldSummary(held) });
  }

  /** A slice of one held list, from the pages that overlap it (or a legacy in-run list). */
  async listHeld(
    runId: string,
    kind: HeldKind,
    offset: number,
    limit: number,
  ): Promise<Deactivations> {
    const from = Math.max(0, offset);
    const end = from + Math.max(0, limit);
    if (end <= from) return heldSlice(kind, []);
    const pages = await this.m.heldPages
      .find({ runId, kind, start: { $gt: from - HELD_PAGE_SIZE, $lt: end } })
      .sort({ start: 1 })
      .lean<Lean<HeldPageDoc>[]>();
    const out: unknown[] = [];
    for (const p of pages)
      out.push(...p.items.slice(Math.max(0, from - p.start), Math.max(0, end - p.start)));
    if (pages.length === 0) {
      const doc = await this.m.runs
        .findOne({ id: runId }, { held: 1, _id: 0 })
        .lean<{ held?: Partial<Deactivations> }>();
      const legacy = doc?.held;
      const list =
        kind === 'student'
          ? legacy?.studentSourcedIds
          : kind === 'parent'
            ? legacy?.parentIds
            : legacy?.links;
      if (Array.isArray(list)) out.push(...(list as unknown[]).slice(from, end));
    }
    return heldSlice(kind, out);
  }

  /** Patch the run (clearing `held`), then drop its held pages. */
  async settleHeldRun(id: string, patch: SyncRunPatch): Promise<SyncRun> {
    const run = await this.updateRun(id, { ...patch, held: undefined });
    await this.m.heldPages.deleteMany({ runId: id });
    return run;
  }

  /** Students and accounts (with sources) by id, any status, in batches of `IN_BATCH`. */
  async findRecords(
    districtId: string,
    ids: { studentSourcedIds: string[]; parentIds: string[] },
  ): Promise<{ students: StoredStudent[]; parents: ParentAccount[] }> {
    const students: StoredStudent[] = [];
    for (const batch of chunked(unique(ids.studentSourcedIds), IN_BATCH)) {
      const docs = await this.m.students
        .find({ districtId, sourcedId: { $in: batch } })
        .lean<Lean<StudentDoc>[]>();
      students.push(...docs.map(studentFromDoc));
    }
    const parents: ParentAccount[] = [];
    for (const batch of chunked(unique(ids.parentIds), IN_BATCH)) {
      const docs = await this.m.parents
        .find({ districtId, id: { $in: batch } })
        .lean<Lean<ParentDoc>[]>();
      parents.push(...docs.map(parentFromDoc));
    }
    students.sort((a, b) => (a.sourcedId < b.sourcedId ? -1 : a.sourcedId > b.sourcedId ? 1 : 0));
    parents.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { students, parents };
  }

  /**
   * Active sis accounts left without an active link once `ending` is applied. Candidates are
   * the parents of ending links and of inactive links (streamed), filtered to active `sis`
   * accounts; then their active links are read (index `district_parent_student_origin`).
   */
  async listOrphanedSisParentIds(
    districtId: string,
    ending: { parentId: string; studentSourcedId: string }[],
  ): Promise<string[]> {
    const seen = new Set(ending.map(l => l.parentId));
    const inactive = this.m.links
      .find({ districtId, status: 'inactive' }, { parentId: 1, _id: 0 })
      .lean<{ parentId: string }>()
      .cursor();
    for await (const l of inactive) seen.add(l.parentId);
    const candidates: string[] = [];
    for (const batch of chunked([...seen], IN_BATCH)) {
      const docs = await this.m.parents
        .find(
          { districtId, id: { $in: batch }, status: 'active', origin: 'sis' },
          { id: 1, _id: 0 },
        )
        .lean<{ id: string }[]>();
      candidates.push(...docs.map(d => d.id));
    }
    candidates.sort();
    const active: { parentId: string; studentSourcedId: string; origin: string }[] = [];
    for (const batch of chunked(candidates, IN_BATCH)) {
      const docs = await this.m.links
        .find(
          { districtId, parentId: { $in: batch }, status: 'active' },
          { parentId: 1, studentSourcedId: 1, origin: 1, _id: 0 },
        )
        .lean<{ parentId: string; studentSourcedId: string; origin: string }[]>();
      active.push(...docs);
    }
    return orphansOf(candidates, active, ending);
  }

  // --- internals ----------------------------------------------------------------------

  /** Keep a plan's deferred students with the run, in `session`'s transaction. */
  private async keepDeferred(
    districtId: string,
    plan: ChunkPlan,
    runId: string | undefined,
    session: ClientSession,
  ): Promise<void> {
    const deferred = plan.deferredStudents ?? [];
    if (deferred.length === 0) return;
    if (runId === undefined) throw new Error('a plan with deferred students needs a run id');
    await this.m.deferredStudents.bulkWrite(
      deferred.map(d => ({
        updateOne: {
          filter: { runId, sourcedId: d.record.sourcedId },
          update: {
            $set: {
              districtId,
              record: stripUndefined({ ...d.record }),
              links: d.links.map(l => stripUndefined({ ...l })),
            },
          },
          upsert: true,
        },
      })),
      { ...BULK, session },
    );
  }

  /**
   * Give the student `from` the sourcedId `to` (the SIS re-keyed it), with its links and
   * access codes (and their redemptions), in `session`'s transaction. Nothing when `from` is
   * gone or `to` exists (a re-applied move). Code entries are appended to `entries`.
   * Returns roster documents changed.
   */
  private async moveStudent(
    districtId: string,
    from: string,
    to: string,
    session: ClientSession,
    entries: NewChange[],
  ): Promise<number> {
    const found = await this.m.students
      .find({ districtId, sourcedId: { $in: [from, to] } }, { sourcedId: 1, _id: 0 }, { session })
      .lean<{ sourcedId: string }[]>();
    const ids = new Set(found.map(f => f.sourcedId));
    if (!ids.has(from) || ids.has(to)) return 0;
    let n = (
      await this.m.students.updateOne(
        { districtId, sourcedId: from },
        { $set: { sourcedId: to } },
        { session },
      )
    ).modifiedCount;
    n += (
      await this.m.links.updateMany(
        { districtId, studentSourcedId: from },
        { $set: { studentSourcedId: to } },
        { session },
      )
    ).modifiedCount;
    const db = this.conn.db;
    if (db) {
      const codes = db.collection<{ code: string }>(CODE_COLLECTIONS.codes);
      const moved = await codes
        .find({ districtId, studentSourcedId: from }, { projection: { code: 1, _id: 0 }, session })
        .toArray();
      if (moved.length > 0) {
        await codes.updateMany(
          { districtId, studentSourcedId: from },
          { $set: { studentSourcedId: to } },
          { session },
        );
        for (const c of moved.map(m => m.code).sort()) entries.push(codeMoveChange(c, from, to));
        n += moved.length;
      }
      await db.collection(CODE_COLLECTIONS.redemptions).updateMany(
        { districtId, studentSourcedId: from },
        { $set: { studentSourcedId: to } },
        {
          session,
        },
      );
    }
    return n;
  }

  /**
   * The chunk's state, read in `session`'s transaction. Reads run one after another: a
   * session runs one operation at a time (never `Promise.all` inside a transaction).
   */
  private async loadChunkState(
    districtId: string,
    keys: ChunkKeys,
    session: ClientSession,
  ): Promise<ChunkState> {
    const studentIds = unique(keys.studentSourcedIds);
    const or: mongoose.QueryFilter<ParentDoc>[] = [];
    const guardianIds = unique(keys.guardianSourcedIds);
    const uniqueIds = unique(keys.guardianUniqueIds);
    const emails = unique(keys.emailsNormalized);
    if (guardianIds.length > 0) {
      or.push({
        sources: { $elemMatch: { connector: keys.connector, sourcedId: { $in: guardianIds } } },
      });
    }
    if (uniqueIds.length > 0) or.push({ uniqueId: { $in: uniqueIds } });
    if (emails.length > 0) or.push({ emailNormalized: { $in: emails } });

    const studentUniqueIds = unique(keys.studentUniqueIds ?? []);
    const studentOr: mongoose.QueryFilter<StudentDoc>[] = [];
    if (studentIds.length > 0) studentOr.push({ sourcedId: { $in: studentIds } });
    if (studentUniqueIds.length > 0) studentOr.push({ uniqueId: { $in: studentUniqueIds } });
    const students =
      studentOr.length === 0
        ? []
        : await this.m.students
            .find({ districtId, $or: studentOr }, null, { session })
            .sort({ sourcedId: 1 })
            .lean<Lean<StudentDoc>[]>();
    // links of every loaded student (a re-keyed one's follow it)
    const linkStudentIds = unique([...studentIds, ...students.map(st => st.sourcedId)]);
    const parents =
      or.length === 0
        ? []
        : await this.m.parents
            .find({ districtId, $or: or }, null, { session })
            .sort({ id: 1 })
            .lean<Lean<ParentDoc>[]>();
    const links =
      linkStudentIds.length === 0
        ? []
        : await this.m.links
            .find({ districtId, studentSourcedId: { $in: linkStudentIds } }, null, { session })
            .sort({ parentId: 1, studentSourcedId: 1, origin: 1 })
            .lean<Lean<LinkDoc>[]>();
    // Accounts `sis`-linked to the chunk's students that no key matched (a re-keyed contact:
    // the planner may match it by name and student). Usually none: nothing more is read.
    const loaded = new Set(parents.map(p => p.id));
    const linkedOnly = unique(
      links.filter(l => l.origin === 'sis' && !loaded.has(l.parentId)).map(l => l.parentId),
    );
    for (const ids of chunked(linkedOnly, IN_BATCH)) {
      parents.push(
        ...(await this.m.parents
          .find({ districtId, id: { $in: ids } }, null, { session })
          .sort({ id: 1 })
          .lean<Lean<ParentDoc>[]>()),
      );
    }
    const state: ChunkState = {
      students: students.map(studentFromDoc),
      parents: parents.map(parentFromDoc),
      links: links.map(linkFromDoc),
    };
    const owners = ownerlessParentIds(state.parents, keys);
    if (owners.length === 0) return state;
    const inChunk = new Set(studentIds);
    const accountLinks: GuardianLink[] = [];
    for (const ids of chunked(owners, IN_BATCH)) {
      const docs = await this.m.links
        .find(
          { districtId, parentId: { $in: ids }, origin: 'sis' as const, status: 'active' as const },
          null,
          {
            session,
          },
        )
        .sort({ parentId: 1, studentSourcedId: 1 })
        .lean<Lean<LinkDoc>[]>();
      for (const d of docs) if (!inChunk.has(d.studentSourcedId)) accountLinks.push(linkFromDoc(d));
    }
    return accountLinks.length ? { ...state, accountLinks } : state;
  }

  /**
   * `state` plus the current documents of every record the plan writes that `state` lacks (a
   * planner may touch records its keys did not load), read in `session`'s transaction before
   * the plan is written, so the change log gets their true before-values (as SQLite does).
   * The real planner loads everything it writes: then this reads nothing.
   */
  private async withPlanTargets(
    districtId: string,
    state: ChunkState,
    plan: ChunkPlan,
    session: ClientSession,
  ): Promise<ChunkState> {
    const haveParents = new Set(state.parents.map(p => p.id));
    const parentIds = unique([
      ...plan.parentCreates.map(p => p.id),
      ...plan.parentUpdates.map(u => u.update.id),
    ]).filter(id => !haveParents.has(id));
    const haveStudents = new Set(state.students.map(s => s.sourcedId));
    const studentIds = unique([
      ...plan.students.map(s => s.record.sourcedId),
      ...plan.links.map(l => l.link.studentSourcedId),
    ]).filter(id => !haveStudents.has(id));
    if (parentIds.length === 0 && studentIds.length === 0) return state;
    const parents = [...state.parents];
    const students = [...state.students];
    const links = [...state.links];
    for (const ids of chunked(parentIds, IN_BATCH)) {
      const docs = await this.m.parents
        .find({ districtId, id: { $in: ids } }, null, { session })
        .sort({ id: 1 })
        .lean<Lean<ParentDoc>[]>();
      parents.push(...docs.map(parentFromDoc));
    }
    for (const ids of chunked(studentIds, IN_BATCH)) {
      const found = await this.m.students
        .find({ districtId, sourcedId: { $in: ids } }, null, { session })
        .sort({ sourcedId: 1 })
        .lean<Lean<StudentDoc>[]>();
      students.push(...found.map(studentFromDoc));
      const linkDocs = await this.m.links
        .find({ districtId, studentSourcedId: { $in: ids } }, null, { session })
        .sort({ parentId: 1, studentSourcedId: 1, origin: 1 })
        .lean<Lean<LinkDoc>[]>();
      links.push(...linkDocs.map(linkFromDoc));
    }
    return { parents, students, links };
  }

  /**
   * Write a plan in `session`'s transaction: parent accounts first, then students, then links
   * (one bulk write each, one after another). Returns the documents written; the caller adds
   * them to `writeCount()` once the transaction has committed.
   */
  private async writePlan(
    districtId: string,
    plan: ChunkPlan,
    session: ClientSession,
    entries: NewChange[],
  ): Promise<number> {
    let moved = 0;
    for (const { action, record, from } of plan.students)
      if (action === 'move' && from !== undefined)
        moved += await this.moveStudent(districtId, from, record.sourcedId, session, entries);
    const parentOps: AnyBulkWriteOperation<ParentDoc>[] = plan.parentCreates.map(p =>
      parentCreateOp(districtId, p),
    );
    for (const { update } of plan.parentUpdates) {
      const op = parentUpdateOp(districtId, update);
      if (op) parentOps.push(op);
    }
    const studentOps = plan.students.map(s => studentWriteOp(districtId, s.record));
    const linkOps = plan.links.map(l => linkWriteOp(districtId, l.link));
    const options = { ...BULK, session };
    let n = moved;
    if (parentOps.length > 0)
      n += writtenDocuments(await this.m.parents.bulkWrite(parentOps, options));
    this.testHooks.afterFirstPlanWrite?.();
    if (studentOps.length > 0)
      n += writtenDocuments(await this.m.students.bulkWrite(studentOps, options));
    if (linkOps.length > 0) n += writtenDocuments(await this.m.links.bulkWrite(linkOps, options));
    return n;
  }
}

/** Collections of the access-code repository whose documents are keyed by student. */
const CODE_COLLECTIONS = { codes: 'access_codes', redemptions: 'access_code_redemptions' };

function deferredFromDoc(d: Lean<DeferredStudentDoc>): RunDeferredStudent {
  const out: RunDeferredStudent = {
    runId: d.runId,
    record: studentFromDoc(d.record),
    links: (d.links ?? []).map(l =>
      stripUndefined({ parentId: l.parentId, relationship: l.relationship }),
    ),
  };
  setOpt(out, 'remapFrom', d.remapFrom);
  return out;
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
