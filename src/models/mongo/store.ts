/**
 * MongoDB adapter of the `RosterStore` port (mongoose 9), the production store for fleets.
 *
 * - A private connection (`mongoose.createConnection()`), never the global mongoose.
 * - Reads are `.lean()` and mapped field by field to the port's plain types: no mongoose
 *   documents, `_id` or `__v` escape.
 * - Plan writes are `bulkWrite({ ordered: false })` of upserts keyed by the unique indexes,
 *   with `$set` of full values, so re-applying a plan modifies nothing (MongoDB does not count
 *   no-op updates) and `writeCount()` stays exact.
 * - There are no multi-document transactions (they need a replica set and cost throughput).
 *   `reconcileChunk` relies on the unique indexes instead: a duplicate-key error means another
 *   writer got there first, so the chunk's state is re-loaded and re-planned (at most
 *   `MAX_REPLANS` times, then `StoreConflictError`). Every write is idempotent, so a partly
 *   applied plan followed by a re-plan converges to the same final state (invariant 2).
 */
import mongoose, { type AnyBulkWriteOperation, type Connection } from 'mongoose';
import type { RecordStatus } from '../../mapping/canonical.js';
import { StoreConflictError } from '../../errors.js';
import {
  ACTIVE_RUN_STATUSES,
  OPTIONAL_RUN_FIELDS,
  assertPlanInDistrict,
  chunked,
  isActiveRunStatus,
  parentUpdateEntries,
} from '../shared.js';
import {
  ActiveRunExistsError,
  type ChunkKeys,
  type ChunkPlan,
  type ChunkPlanner,
  type ChunkState,
  type Deactivations,
  type GuardianLink,
  type ParentAccount,
  type ParentUpdate,
  type Reject,
  type RosterStore,
  type StoreHandle,
  type StoredStudent,
  type SyncRun,
  type SyncRunPatch,
} from '../types.js';
import {
  registerModels,
  type LinkDoc,
  type ParentDoc,
  type RejectDoc,
  type RosterModels,
  type RunDoc,
  type StudentDoc,
} from './schemas.js';

/** How often `reconcileChunk` re-loads and re-plans after a duplicate-key error. */
export const MAX_REPLANS = 3;
/** MongoDB error code of `createCollection` on an existing collection. */
const NAMESPACE_EXISTS = 48;
/** Largest `$in` list sent in one query/update. */
const IN_BATCH = 5000;

/** Options of the MongoDB store. */
export interface MongoStoreOptions {
  /** How long to wait for a reachable server (ms, default 10000). */
  serverSelectionTimeoutMS?: number;
}

// --- errors ------------------------------------------------------------------------------

interface CodedError {
  code?: unknown;
  writeErrors?: unknown;
  result?: unknown;
  rawResult?: unknown;
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

/** Documents a failed bulk write still wrote (driver `result` or mongoose `rawResult`). */
function writtenBeforeError(err: unknown): number {
  if (typeof err !== 'object' || err === null) return 0;
  const e = err as CodedError;
  const result = (e.result ?? e.rawResult) as WriteCounts | null | undefined;
  return writtenDocuments(result);
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
  setOpt(r, 'held', d.held);
  setOpt(r, 'error', d.error);
  return r;
}

/** Map a lean reject document to `Reject`. */
export function rejectFromDoc(d: Lean<RejectDoc>): Reject {
  return { entity: d.entity, recordId: d.recordId, reason: d.reason };
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
  return doc;
}

/** bulkWrite options: unordered, and validation failures throw instead of skipping ops. */
const BULK = { ordered: false, throwOnValidationError: true } as const;

/** `RosterStore` on MongoDB through a private mongoose connection. */
export class MongoRosterStore implements RosterStore {
  private readonly conn: Connection;
  private readonly m: RosterModels;
  private opening: Promise<void> | undefined;
  private writes = 0;

  /** Prepare a store for `url` (`mongodb://…` or `mongodb+srv://…`); `init()` connects. */
  /** The private mongoose connection, for feature repositories sharing it. */
  handle(): StoreHandle {
    return { kind: 'mongo', connection: this.conn };
  }

  constructor(
    private readonly url: string,
    private readonly options: MongoStoreOptions = {},
  ) {
    this.conn = mongoose.createConnection();
    this.m = registerModels(this.conn);
  }

  /** Connect (once) and build the schema's indexes (`syncIndexes`). Idempotent. */
  async init(): Promise<void> {
    this.opening ??= this.conn
      .openUri(this.url, {
        autoIndex: false,
        autoCreate: false,
        serverSelectionTimeoutMS: this.options.serverSelectionTimeoutMS ?? 10_000,
      })
      .then(() => undefined);
    try {
      await this.opening;
    } catch (err) {
      this.opening = undefined;
      throw err;
    }
    for (const model of Object.values(this.m) as mongoose.Model<unknown>[]) {
      try {
        await model.createCollection();
      } catch (err) {
        if (codeOf(err) !== NAMESPACE_EXISTS) throw err;
      }
      // Creates missing indexes, rebuilds changed ones, drops ones the schema no longer has.
      await model.syncIndexes();
    }
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
   * Load the chunk's state, call the pure `planner`, and unless `dryRun` write the plan with
   * idempotent upserts. On a duplicate-key error (a concurrent writer won a unique key) the
   * state is re-loaded and re-planned, up to `MAX_REPLANS` times; then `StoreConflictError`.
   */
  async reconcileChunk(
    districtId: string,
    keys: ChunkKeys,
    planner: ChunkPlanner,
    options: { dryRun: boolean },
  ): Promise<ChunkPlan> {
    for (let attempt = 0; ; attempt++) {
      const plan = planner(await this.loadChunkState(districtId, keys));
      assertPlanInDistrict(districtId, plan);
      if (options.dryRun) return plan;
      try {
        await this.writePlan(districtId, plan);
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

  /** sourcedIds of the district's active students, sorted. */
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

  async listActiveStudentIds(districtId: string): Promise<string[]> {
    const docs = await this.m.students
      .find({ districtId, status: 'active' }, { sourcedId: 1, _id: 0 })
      .sort({ sourcedId: 1 })
      .lean<{ sourcedId: string }[]>();
    return docs.map(d => d.sourcedId);
  }

  /** Active accounts with origin `sis`, each with its sources, by id. */
  async listActiveSisParentIds(districtId: string): Promise<string[]> {
    const docs = await this.m.parents
      .find({ districtId, status: 'active', origin: 'sis' }, { id: 1, _id: 0 })
      .sort({ id: 1 })
      .lean<Pick<ParentDoc, 'id'>[]>();
    return docs.map(d => d.id);
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
   * `sis`-origin links (other origins are never touched). Never deletes. Returns documents
   * changed (counted as writes).
   */
  async applyDeactivations(districtId: string, d: Deactivations): Promise<number> {
    let n = 0;
    const inactive = { $set: { status: 'inactive' as RecordStatus } };
    for (const ids of chunked(d.studentSourcedIds, IN_BATCH)) {
      const r = await this.m.students.updateMany(
        { districtId, status: 'active', sourcedId: { $in: ids } },
        inactive,
      );
      n += r.modifiedCount;
      this.writes += r.modifiedCount;
    }
    for (const ids of chunked(d.parentIds, IN_BATCH)) {
      const r = await this.m.parents.updateMany(
        { districtId, status: 'active', id: { $in: ids } },
        inactive,
      );
      n += r.modifiedCount;
      this.writes += r.modifiedCount;
    }
    for (const links of chunked(d.links, IN_BATCH)) {
      const ops: AnyBulkWriteOperation<LinkDoc>[] = links.map(l => ({
        updateOne: {
          filter: {
            districtId,
            parentId: l.parentId,
            studentSourcedId: l.studentSourcedId,
            origin: 'sis',
            status: 'active',
          },
          update: inactive,
        },
      }));
      n += await this.bulk(() => this.m.links.bulkWrite(ops, BULK));
    }
    return n;
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

  /** Insert the link, or update status/relationship of the existing link of that origin. */
  async addLink(link: GuardianLink): Promise<boolean> {
    const ops = [linkWriteOp(link.districtId, link)];
    return (await this.bulk(() => this.m.links.bulkWrite(ops, BULK))) > 0;
  }

  /**
   * Insert an account with its sources. Throws `StoreConflictError` when the id, uniqueId
   * or a source is already taken in the district.
   */
  async createParent(account: ParentAccount): Promise<void> {
    const doc: ParentDoc = { ...account, sources: account.sources.map(s => ({ ...s })) };
    try {
      await this.m.parents.create(stripUndefined(doc));
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
        },
      },
    }));
    try {
      await this.m.rejects.bulkWrite(ops, BULK);
    } catch (err) {
      if (!onlyDuplicateKeyErrors(err)) throw err;
    }
  }

  /** A page of a run's rejects in insertion order. */
  async listRejects(runId: string, offset: number, limit: number): Promise<Reject[]> {
    if (limit <= 0) return [];
    const docs = await this.m.rejects
      .find({ runId })
      .sort({ seq: 1 })
      .skip(Math.max(0, offset))
      .limit(limit)
      .lean<Lean<RejectDoc>[]>();
    return docs.map(rejectFromDoc);
  }

  // --- internals ----------------------------------------------------------------------

  private async loadChunkState(districtId: string, keys: ChunkKeys): Promise<ChunkState> {
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

    const [students, parents, links] = await Promise.all([
      studentIds.length === 0
        ? []
        : this.m.students
            .find({ districtId, sourcedId: { $in: studentIds } })
            .sort({ sourcedId: 1 })
            .lean<Lean<StudentDoc>[]>(),
      or.length === 0
        ? []
        : this.m.parents.find({ districtId, $or: or }).sort({ id: 1 }).lean<Lean<ParentDoc>[]>(),
      studentIds.length === 0
        ? []
        : this.m.links
            .find({ districtId, studentSourcedId: { $in: studentIds } })
            .sort({ parentId: 1, studentSourcedId: 1, origin: 1 })
            .lean<Lean<LinkDoc>[]>(),
    ]);
    return {
      students: students.map(studentFromDoc),
      parents: parents.map(parentFromDoc),
      links: links.map(linkFromDoc),
    };
  }

  /**
   * Write a plan: parent accounts first (so links never point at an account that a failed
   * write left out), then students, then links. Stops at the first failing bulk.
   */
  private async writePlan(districtId: string, plan: ChunkPlan): Promise<void> {
    const parentOps: AnyBulkWriteOperation<ParentDoc>[] = plan.parentCreates.map(p =>
      parentCreateOp(districtId, p),
    );
    for (const { update } of plan.parentUpdates) {
      const op = parentUpdateOp(districtId, update);
      if (op) parentOps.push(op);
    }
    const studentOps = plan.students.map(s => studentWriteOp(districtId, s.record));
    const linkOps = plan.links.map(l => linkWriteOp(districtId, l.link));
    if (parentOps.length > 0) await this.bulk(() => this.m.parents.bulkWrite(parentOps, BULK));
    if (studentOps.length > 0) await this.bulk(() => this.m.students.bulkWrite(studentOps, BULK));
    if (linkOps.length > 0) await this.bulk(() => this.m.links.bulkWrite(linkOps, BULK));
  }

  /** Run one bulk write of roster documents; counts what was written, even on error. */
  private async bulk(write: () => Promise<WriteCounts>): Promise<number> {
    let written: number;
    try {
      written = writtenDocuments(await write());
    } catch (err) {
      this.writes += writtenBeforeError(err);
      throw err;
    }
    this.writes += written;
    return written;
  }
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}

function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
