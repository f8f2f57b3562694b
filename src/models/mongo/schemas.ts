/**
 * Mongoose schemas of the MongoDB store, one per collection. Documents hold exactly the
 * port's plain fields (plus `_id`, which the adapter never returns) — no version key, no
 * `id` virtual. Every index is commented with the query it serves; the unique compound
 * indexes carry the invariants (tenant-scoped identity, one active run per district).
 *
 * Every unique index that is not on a run id is prefixed with `districtId`, so the
 * collections can be sharded on `districtId`.
 *
 * Optional fields are never stored as `null`: the adapter `$unset`s them. That matters for
 * the partial unique index on `uniqueId` (a `null` would exist and collide).
 */
import { Schema, type Connection, type Model } from 'mongoose';
import type {
  GuardianLink,
  HeldKind,
  ParentAccount,
  ParentSource,
  Reject,
  StoredStudent,
  SyncRun,
} from '../types.js';

export interface SchoolDoc {
  districtId: string;
  sourcedId: string;
  name: string;
}
export type StudentDoc = StoredStudent;
export type ParentDoc = ParentAccount;
export type LinkDoc = GuardianLink;
/** A run plus adapter bookkeeping. */
export interface RunDoc extends SyncRun {
  /** `status` is queued or running; carries the partial unique index (no `$in` allowed there). */
  active: boolean;
  /** Last reject sequence number handed out (`$inc` allocates ranges atomically). */
  rejectSeq: number;
}

/** A new student a run keeps back until finalize (`run_deferred_students`, ADR 0004). */
export interface DeferredStudentDoc {
  runId: string;
  districtId: string;
  sourcedId: string;
  record: StoredStudent;
  links: { parentId: string; relationship?: string }[];
  /** Proposed old sourcedId (held re-key); absent when none. */
  remapFrom?: string;
}

/**
 * One page of a held list (docs/decisions/0006): `HELD_PAGE_SIZE` records of one kind,
 * `start` being the position of the first. Kept out of the run document, whose 16 MiB limit
 * a district-sized list would break.
 */
export interface HeldPageDoc {
  runId: string;
  districtId: string;
  kind: HeldKind;
  start: number;
  n: number;
  /** sourcedIds, account ids, or `{parentId, studentSourcedId}` for links. */
  items: unknown[];
}

export interface RejectDoc extends Reject {
  runId: string;
  districtId: string;
  seq: number;
}

/** Collection names (snake_case, like the SQLite tables). */
export const COLLECTIONS = {
  schools: 'schools',
  students: 'students',
  parents: 'parent_accounts',
  links: 'guardian_links',
  runs: 'sync_runs',
  rejects: 'run_rejects',
  deferredStudents: 'run_deferred_students',
  heldPages: 'held_pages',
} as const;

const RECORD_STATUS = ['active', 'inactive'];
const ORIGINS = ['sis', 'import', 'access-code', 'manual'];
const RUN_STATUSES = [
  'queued',
  'running',
  'succeeded',
  'failed',
  'needs-approval',
  'discarded',
  'cancelled',
];

/**
 * Shared options: no `__v`, no `id` virtual (two collections have a real `id` field),
 * unknown paths in documents/updates/filters throw instead of being silently dropped;
 * collections and missing indexes are created by the store's `init()` (`ensureIndexes` in
 * ./indexes.ts, which never drops one), never as a side effect of compiling a model. Every
 * index of every collection is declared in a schema (docs/decisions/0010).
 */
export const SCHEMA_BASE = {
  versionKey: false,
  id: false,
  strict: 'throw',
  strictQuery: 'throw',
  autoIndex: false,
  autoCreate: false,
} as const;
const base = SCHEMA_BASE;

/** A required string path. */
export const requiredString = { type: String, required: true } as const;

/** MongoDB error code of `createCollection` on an existing collection. */
export const NAMESPACE_EXISTS = 48;

export const schoolSchema = new Schema<SchoolDoc>(
  {
    districtId: requiredString,
    sourcedId: requiredString,
    name: requiredString,
  },
  { ...base, collection: COLLECTIONS.schools },
);
// upsertSchools (upsert key; one school per SIS id and district)
schoolSchema.index({ districtId: 1, sourcedId: 1 }, { unique: true, name: 'district_sourcedId' });

/**
 * Key of the index that covers finalize's scan of active student ids (`activeIdPages`):
 * filter `{districtId, status}`, sort and projection `sourcedId`.
 */
export const ACTIVE_STUDENT_IDS_INDEX = { districtId: 1, status: 1, sourcedId: 1 } as const;
/** Key of the index covering the scan of active `sis` account ids (filter, sort `id`). */
export const ACTIVE_SIS_PARENT_IDS_INDEX = { districtId: 1, status: 1, origin: 1, id: 1 } as const;

export const studentSchema = new Schema<StudentDoc>(
  {
    districtId: requiredString,
    sourcedId: requiredString,
    uniqueId: requiredString,
    givenName: String,
    familyName: String,
    email: String,
    schoolSourcedIds: { type: [String], default: [] },
    grade: String,
    status: { type: String, enum: RECORD_STATUS, required: true },
  },
  { ...base, collection: COLLECTIONS.students },
);
// reconcileChunk: load the chunk's students by sourcedId; upsert key of plan writes;
// applyDeactivations by sourcedId; getStudents (sorted by sourcedId)
studentSchema.index({ districtId: 1, sourcedId: 1 }, { unique: true, name: 'district_sourcedId' });
// countActive (a prefix of district_status_sourcedId: droppable by an explicit migration)
studentSchema.index({ districtId: 1, status: 1 }, { name: 'district_status' });
// activeIdPages / listActiveStudentIds (finalize): covered, sorted scan of the active ids
// (docs/decisions/0012); `sourcedId` is a string, never an array, so the index is not multikey
studentSchema.index(ACTIVE_STUDENT_IDS_INDEX, { name: 'district_status_sourcedId' });
// reconcileChunk: match a re-keyed student by Unique ID (not unique: duplicates are reported);
// student lookup `studentsByUniqueId`, association import preview/confirm and access-code
// look-ups by Unique ID (`$in` batches)
studentSchema.index({ districtId: 1, uniqueId: 1 }, { name: 'district_uniqueId' });
/**
 * Collation of the student lookup's name indexes and of every name search
 * (src/models/imports/student-lookup-mongo.ts): strength 1 compares base letters only (case
 * and accents ignored), `shifted` ignores spaces and punctuation.
 */
export const NAME_COLLATION = { locale: 'en', strength: 1, alternate: 'shifted' } as const;
/**
 * Collation of the students' email index: strength 2 ignores case only, so `{email: {$in:
 * normalized}}` finds an email stored with capitals (parent imports refuse a row whose email
 * is a student's; hits are re-checked with `normalizeEmail`).
 */
export const EMAIL_COLLATION = { locale: 'en', strength: 2 } as const;
// parent import preview/confirm: students by email (case-insensitive, as SQLite's
// lower(trim(email)) expression index)
studentSchema.index(
  { districtId: 1, email: 1 },
  { name: 'district_email_ci', collation: EMAIL_COLLATION },
);
// student lookup searchActive: collated prefix ranges on first and last name
studentSchema.index(
  { districtId: 1, givenName: 1 },
  { name: 'district_givenName_ci', collation: NAME_COLLATION },
);
studentSchema.index(
  { districtId: 1, familyName: 1 },
  { name: 'district_familyName_ci', collation: NAME_COLLATION },
);

export const parentSourceSchema = new Schema<ParentSource>(
  {
    connector: requiredString,
    sourcedId: requiredString,
  },
  { _id: false, id: false, versionKey: false, strict: 'throw' },
);

export const parentSchema = new Schema<ParentDoc>(
  {
    districtId: requiredString,
    id: requiredString,
    uniqueId: String,
    givenName: String,
    familyName: String,
    email: String,
    emailNormalized: String,
    phone: String,
    role: requiredString,
    sisRole: { type: String, enum: ['parent', 'guardian', 'relative'] },
    status: { type: String, enum: RECORD_STATUS, required: true },
    origin: { type: String, enum: ORIGINS, required: true },
    sources: { type: [parentSourceSchema], default: [] },
    lockedFields: { type: [String], default: [] },
  },
  { ...base, collection: COLLECTIONS.parents },
);
// parent updates / creates (upsert key), applyDeactivations by id, getParents (sorted by id)
parentSchema.index({ districtId: 1, id: 1 }, { unique: true, name: 'district_id' });
// reconcileChunk: match guardians by uniqueId (invariant 7: one account per uniqueId).
// Partial: accounts without a uniqueId do not collide.
parentSchema.index(
  { districtId: 1, uniqueId: 1 },
  {
    unique: true,
    name: 'district_uniqueId',
    partialFilterExpression: { uniqueId: { $exists: true } },
  },
);
// reconcileChunk: match guardians by (connector, SIS sourcedId) via $elemMatch on sources;
// multikey and unique across accounts: one SIS identity belongs to one account.
// Partial: accounts without sources (imports, access codes) do not collide on "missing".
parentSchema.index(
  { districtId: 1, 'sources.connector': 1, 'sources.sourcedId': 1 },
  {
    unique: true,
    name: 'district_source',
    partialFilterExpression: { 'sources.connector': { $exists: true } },
  },
);
// reconcileChunk: match guardians by normalized email (not unique: ambiguity is reported)
parentSchema.index({ districtId: 1, emailNormalized: 1 }, { name: 'district_email' });
/** Name of the partial unique index that carries design invariant 7 (one mailbox, one account). */
export const SIS_EMAIL_UNIQUE_INDEX = 'district_sis_email_unique';
// Design invariant 7 in the schema (docs/decisions/0011): at most one active `sis` account per
// normalized email in a district; other origins, inactive accounts and accounts without an
// email are outside it. Built when the data allows it (`ensureIndexes` lists it as blocked
// otherwise, and the store reports the accounts that share an email).
parentSchema.index(
  { districtId: 1, emailNormalized: 1 },
  {
    unique: true,
    name: SIS_EMAIL_UNIQUE_INDEX,
    partialFilterExpression: {
      status: 'active',
      origin: 'sis',
      emailNormalized: { $type: 'string' },
    },
  },
);
// countActive (a prefix of district_status_origin_id: droppable by an explicit migration)
parentSchema.index({ districtId: 1, status: 1, origin: 1 }, { name: 'district_status_origin' });
// activeIdPages / listActiveSisParentIds (finalize): covered, sorted scan of the active `sis`
// account ids (docs/decisions/0012)
parentSchema.index(ACTIVE_SIS_PARENT_IDS_INDEX, { name: 'district_status_origin_id' });

export const linkSchema = new Schema<LinkDoc>(
  {
    districtId: requiredString,
    parentId: requiredString,
    studentSourcedId: requiredString,
    origin: { type: String, enum: ORIGINS, required: true },
    relationship: String,
    status: { type: String, enum: RECORD_STATUS, required: true },
  },
  { ...base, collection: COLLECTIONS.links },
);
// plan link writes and addLink (upsert key: one link per parent, student and origin);
// applyDeactivations of sis links; getLinks (sorted)
linkSchema.index(
  { districtId: 1, parentId: 1, studentSourcedId: 1, origin: 1 },
  { unique: true, name: 'district_parent_student_origin' },
);
// reconcileChunk: all links (any origin/status) of the chunk's students
linkSchema.index({ districtId: 1, studentSourcedId: 1 }, { name: 'district_student' });

export const runSchema = new Schema<RunDoc>(
  {
    id: requiredString,
    districtId: requiredString,
    connector: requiredString,
    status: { type: String, enum: RUN_STATUSES, required: true },
    dryRun: { type: Boolean, required: true },
    trigger: requiredString,
    actor: String,
    decidedBy: String,
    decidedAt: String,
    createdAt: requiredString,
    startedAt: String,
    finishedAt: String,
    counts: { type: Schema.Types.Mixed, default: () => ({}) },
    rejectCount: { type: Number, default: 0 },
    timings: { type: Schema.Types.Mixed, default: () => ({}) },
    held: Schema.Types.Mixed,
    error: String,
    // RunWait: a pull rescheduled for a SIS rate limit (until, reason, reschedules)
    waiting: Schema.Types.Mixed,
    // RunConfig: which district configuration the run used (docs/decisions/0022)
    config: Schema.Types.Mixed,
    active: { type: Boolean, required: true },
    rejectSeq: { type: Number, default: 0 },
  },
  // minimize: false keeps `counts: {}` / `timings: {}` instead of dropping empty objects.
  { ...base, minimize: false, collection: COLLECTIONS.runs },
);
// getRun, updateRun, addRejects' sequence allocation
runSchema.index({ id: 1 }, { unique: true, name: 'id' });
// invariant 3 — createRun: one queued/running run per district. `active` mirrors
// `status in (queued, running)` because partial filters do not allow $in.
runSchema.index(
  { districtId: 1 },
  { unique: true, name: 'one_active_run', partialFilterExpression: { active: true } },
);
// listRuns: `find({districtId}).sort({createdAt: -1, _id: -1})` — the index carries the whole
// sort (the tie-break on `_id` included), so the newest `limit` runs are read in index order
// with no in-memory SORT stage. Replaces `district_createdAt` ({districtId, createdAt}), which
// left the `_id` tie-break to a blocking sort of every run of the district; `store migrate
// --drop-unknown-indexes` drops that one.
runSchema.index({ districtId: 1, createdAt: -1, _id: -1 }, { name: 'district_createdAt_id' });

export const rejectSchema = new Schema<RejectDoc>(
  {
    runId: requiredString,
    districtId: requiredString,
    seq: { type: Number, required: true },
    entity: {
      type: String,
      enum: [
        'school',
        'student',
        'guardian',
        'relationship',
        'section',
        'enrollment',
        'chunk',
        'run',
      ],
      required: true,
    },
    recordId: { type: String, default: '' },
    reason: { type: String, default: '' },
    // absent on documents stored before exclusions existed: read as `rejected`
    kind: { type: String, enum: ['rejected', 'excluded'] },
  },
  { ...base, collection: COLLECTIONS.rejects },
);
// listRejects filtered by kind, in insertion order
rejectSchema.index({ runId: 1, kind: 1, seq: 1 }, { name: 'run_kind_seq' });
// listRejects: page a run's rejects in insertion order
rejectSchema.index({ runId: 1, seq: 1 }, { unique: true, name: 'run_seq' });
// addRejects: a retried chunk does not store the same reject twice
rejectSchema.index(
  { runId: 1, entity: 1, recordId: 1, reason: 1 },
  { unique: true, name: 'run_reject_identity' },
);

export const deferredStudentSchema = new Schema<DeferredStudentDoc>(
  {
    runId: requiredString,
    districtId: requiredString,
    sourcedId: requiredString,
    record: { type: Schema.Types.Mixed, required: true },
    links: { type: Schema.Types.Mixed, default: () => [] },
    remapFrom: String,
  },
  { ...base, collection: COLLECTIONS.deferredStudents },
);
// reconcileChunk upsert key (a retried chunk keeps one document per student);
// listDeferredStudents / applyDeferredStudents (by run, sorted by sourcedId)
deferredStudentSchema.index({ runId: 1, sourcedId: 1 }, { unique: true, name: 'run_sourcedId' });

export const heldPageSchema = new Schema<HeldPageDoc>(
  {
    runId: requiredString,
    districtId: requiredString,
    kind: { type: String, enum: ['student', 'parent', 'link'], required: true },
    start: { type: Number, required: true },
    n: { type: Number, required: true },
    items: { type: [Schema.Types.Mixed], default: undefined, required: true },
  },
  { ...base, collection: COLLECTIONS.heldPages },
);
// holdRun (idempotent page upserts), listHeld (pages overlapping a range), settleHeldRun
heldPageSchema.index({ runId: 1, kind: 1, start: 1 }, { unique: true, name: 'run_kind_start' });

/** The store's models, compiled on one (private) connection. */
export interface RosterModels {
  schools: Model<SchoolDoc>;
  students: Model<StudentDoc>;
  parents: Model<ParentDoc>;
  links: Model<LinkDoc>;
  runs: Model<RunDoc>;
  rejects: Model<RejectDoc>;
  deferredStudents: Model<DeferredStudentDoc>;
  heldPages: Model<HeldPageDoc>;
}

/** Compile all models on `conn` (never on the global mongoose). */
export function registerModels(conn: Connection): RosterModels {
  return {
    schools: conn.model<SchoolDoc>('School', schoolSchema),
    students: conn.model<StudentDoc>('Student', studentSchema),
    parents: conn.model<ParentDoc>('ParentAccount', parentSchema),
    links: conn.model<LinkDoc>('GuardianLink', linkSchema),
    runs: conn.model<RunDoc>('SyncRun', runSchema),
    rejects: conn.model<RejectDoc>('RunReject', rejectSchema),
    deferredStudents: conn.model<DeferredStudentDoc>('RunDeferredStudent', deferredStudentSchema),
    heldPages: conn.model<HeldPageDoc>('HeldPage', heldPageSchema),
  };
}

/**
 * The model `name` that the roster store registered on `conn` (`registerModels`), for
 * adapters that read the roster collections on the store's connection. Throws when the store
 * has not registered it there.
 */
export function rosterModel<T>(conn: Connection, name: string): Model<T> {
  const m = conn.models[name] as Model<T> | undefined;
  if (!m) throw new Error(`MongoDB roster model ${name} is not registered on this connection`);
  return m;
}

/** Every schema by collection name (for index checks and `init()`). */
export const SCHEMAS = {
  [COLLECTIONS.schools]: schoolSchema,
  [COLLECTIONS.students]: studentSchema,
  [COLLECTIONS.parents]: parentSchema,
  [COLLECTIONS.links]: linkSchema,
  [COLLECTIONS.runs]: runSchema,
  [COLLECTIONS.rejects]: rejectSchema,
  [COLLECTIONS.deferredStudents]: deferredStudentSchema,
  [COLLECTIONS.heldPages]: heldPageSchema,
} as const;
