/**
 * MongoDB implementation of the imports repository, on the roster store's private mongoose
 * connection (`RosterStore.handle()`). It registers its own models there
 * (`ImportPreview`, `ImportPreviewPart`, `ParentProfile`) and uses the roster models the
 * store registered (`ParentAccount`, `Student`, `GuardianLink`, `School`).
 *
 * Confirm is one multi-document transaction (`withChangeTransaction`, which first takes the
 * district's change-log write lock, so roster writers of the district take turns and the
 * transaction reads a snapshot holding every earlier writer's commit):
 * 1. mark the preview `applied` if it is `previewed` and not expired (a preview left
 *    `applying` by an older version's crashed confirm may be taken after `CLAIM_LEASE_MS`);
 *    nothing to mark → `unavailable`, nothing written. Two confirms of one preview write the
 *    same document: the second waits (write conflict, retried by the driver), then finds it
 *    applied;
 * 2. re-load the state for the preview's keys (in the transaction) and check it
 *    (`isCurrent`); stale → the transaction is aborted (the preview stays `previewed`);
 * 3. write with bulk operations (account creates are `$setOnInsert` upserts keyed by the
 *    deterministic account id — one that inserts nothing means the id was taken: conflict;
 *    links are upserts keyed by the unique link index; deactivations filter on
 *    `status: 'active'`) and append the change-log entries (`./changes.ts`, derived from the
 *    state of step 2) with `appendChangesMongo`.
 * Everything commits together or not at all. A unique index violated by a writer outside the
 * district's turn (`{districtId, uniqueId}` of accounts, `{districtId, usernameNormalized}` of
 * profiles, the link key) aborts the transaction → `StoreConflictError`; the preview stays
 * `previewed` and the next confirm finds the data changed and re-plans.
 *
 * Reads and writes of an apply pass `{ session }` and run one at a time (a session runs one
 * operation at a time). The transaction body may run more than once (transient errors), so it
 * changes nothing outside the transaction.
 *
 * `meta`, `result` and part data are stored as JSON strings: file values (school names in a
 * value table) may contain `.` or start with `$`, which MongoDB field names must not.
 */
import {
  Schema,
  type AnyBulkWriteOperation,
  type ClientSession,
  type Connection,
  type Model,
} from 'mongoose';
import { normalizeEmail, type RecordStatus } from '../../mapping/canonical.js';
import { StoreConflictError } from '../../errors.js';
import {
  appendChangesMongo,
  changeLogModels,
  withChangeTransaction,
  type ChangeLogModels,
} from '../changes/mongo.js';
import type { NewChange } from '../changes/types.js';
import { ensureIndexes } from '../mongo/indexes.js';
import {
  EMAIL_COLLATION,
  type LinkDoc,
  type ParentDoc,
  type SchoolDoc,
  type StudentDoc,
} from '../mongo/schemas.js';
import {
  isDuplicateKeyError,
  linkFromDoc,
  parentCreateOp,
  parentFromDoc,
  writtenDocuments,
} from '../mongo/store.js';
import type { GuardianLink } from '../types.js';
import { associationImportChanges, parentImportChanges } from './changes.js';
import {
  PART_SIZE,
  type ApplyOutcome,
  type ApplyRequest,
  type AssociationImportKeys,
  type AssociationImportState,
  type AssociationWrite,
  type ImportKind,
  type ImportParentSet,
  type ImportStudentRef,
  type ImportRepository,
  type ParentImportKeys,
  type ParentImportState,
  type ParentImportWrite,
  type ParentProfile,
  type PreviewParts,
  type PreviewStatus,
  type ProfileWrite,
  type SchoolRef,
  type StoredPreview,
} from './types.js';

/**
 * A preview left `applying` (by an older version's confirm, which claimed it before writing)
 * longer than this may be applied again: that confirm crashed.
 */
export const CLAIM_LEASE_MS = 10 * 60 * 1000;
/** Largest `$in` list per query. */
const IN_BATCH = 5000;

interface PreviewDoc {
  id: string;
  districtId: string;
  kind: ImportKind;
  status: PreviewStatus;
  createdAt: string;
  /** Date (not string) so the TTL index can expire it. */
  expiresAt: Date;
  appliedAt?: string;
  supersededBy?: string;
  claimedAt?: Date;
  /** JSON text. */
  meta: string;
  /** JSON text. */
  result?: string;
}

interface PartDoc {
  previewId: string;
  part: string;
  seq: number;
  /** JSON array text. */
  data: string;
  expiresAt: Date;
}

type ProfileDoc = ParentProfile;

const base = {
  versionKey: false,
  id: false,
  strict: 'throw',
  strictQuery: 'throw',
  autoIndex: false,
  autoCreate: false,
} as const;

export const previewSchema = new Schema<PreviewDoc>(
  {
    id: { type: String, required: true },
    districtId: { type: String, required: true },
    kind: { type: String, enum: ['parents', 'associations'], required: true },
    status: {
      type: String,
      enum: ['previewed', 'applying', 'applied', 'superseded'],
      required: true,
    },
    createdAt: { type: String, required: true },
    expiresAt: { type: Date, required: true },
    appliedAt: String,
    supersededBy: String,
    claimedAt: Date,
    meta: { type: String, required: true },
    result: String,
  },
  { ...base, collection: 'import_previews' },
);
// getPreview, claim, supersede, markApplied
previewSchema.index({ id: 1 }, { unique: true, name: 'id' });
// previews expire (MongoDB's TTL monitor deletes them; reads also check expiresAt)
previewSchema.index({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'ttl' });

export const partSchema = new Schema<PartDoc>(
  {
    previewId: { type: String, required: true },
    part: { type: String, required: true },
    seq: { type: Number, required: true },
    data: { type: String, required: true },
    expiresAt: { type: Date, required: true },
  },
  { ...base, collection: 'import_preview_parts' },
);
// getPreviewPart in order; one document per (preview, part, seq)
partSchema.index({ previewId: 1, part: 1, seq: 1 }, { unique: true, name: 'preview_part_seq' });
// parts expire with their preview
partSchema.index({ expiresAt: 1 }, { expireAfterSeconds: 0, name: 'ttl' });

export const profileSchema = new Schema<ProfileDoc>(
  {
    districtId: { type: String, required: true },
    parentId: { type: String, required: true },
    username: String,
    usernameNormalized: String,
    schoolSourcedIds: { type: [String], default: [] },
  },
  { ...base, collection: 'parent_profiles' },
);
// profile upsert key; profiles of loaded accounts
profileSchema.index({ districtId: 1, parentId: 1 }, { unique: true, name: 'district_parent' });
// one username per district; parent import matches by it. Partial: accounts without a
// username do not collide.
profileSchema.index(
  { districtId: 1, usernameNormalized: 1 },
  {
    unique: true,
    name: 'district_username',
    partialFilterExpression: { usernameNormalized: { $type: 'string' } },
  },
);

function model<T>(conn: Connection, name: string, schema: Schema<T>): Model<T> {
  return (conn.models[name] as Model<T> | undefined) ?? conn.model<T>(name, schema);
}

/** A roster model the store registered on this connection. */
function rosterModel<T>(conn: Connection, name: string): Model<T> {
  const m = conn.models[name] as Model<T> | undefined;
  if (!m) throw new Error(`MongoDB roster model ${name} is not registered on this connection`);
  return m;
}

function batches<T>(items: readonly T[], size = IN_BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function toPreview(d: PreviewDoc): StoredPreview {
  const p: StoredPreview = {
    id: d.id,
    districtId: d.districtId,
    kind: d.kind,
    status: d.status,
    createdAt: d.createdAt,
    expiresAt: new Date(d.expiresAt).toISOString(),
    meta: JSON.parse(d.meta) as Record<string, unknown>,
  };
  if (d.appliedAt) p.appliedAt = d.appliedAt;
  if (d.supersededBy) p.supersededBy = d.supersededBy;
  if (d.result) p.result = JSON.parse(d.result) as Record<string, unknown>;
  return p;
}

function toProfile(d: ProfileDoc): ParentProfile {
  const p: ParentProfile = {
    districtId: d.districtId,
    parentId: d.parentId,
    schoolSourcedIds: (d.schoolSourcedIds ?? []).map(String),
  };
  if (d.username) p.username = d.username;
  if (d.usernameNormalized) p.usernameNormalized = d.usernameNormalized;
  return p;
}

// --- pure operation builders (unit-tested offline) --------------------------------------

/** Upsert of an account's complete profile keyed by {districtId, parentId}. */
export function profileWriteOp(
  districtId: string,
  parentId: string,
  p: ProfileWrite,
): AnyBulkWriteOperation<ProfileDoc> {
  const $set: Record<string, unknown> = { schoolSourcedIds: [...p.schoolSourcedIds].sort() };
  const $unset: Record<string, ''> = {};
  if (p.username !== undefined) $set.username = p.username;
  else $unset.username = '';
  if (p.usernameNormalized !== undefined) $set.usernameNormalized = p.usernameNormalized;
  else $unset.usernameNormalized = '';
  return {
    updateOne: {
      filter: { districtId, parentId },
      update: Object.keys($unset).length > 0 ? { $set, $unset } : { $set },
      upsert: true,
    },
  };
}

/** `$set` of the fields an import changes on an existing account; undefined when none. */
export function parentImportUpdateOp(
  districtId: string,
  parentId: string,
  set: ImportParentSet,
): AnyBulkWriteOperation<ParentDoc> | undefined {
  const $set: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(set)) if (v !== undefined) $set[k] = v;
  if (Object.keys($set).length === 0) return undefined;
  return { updateOne: { filter: { districtId, id: parentId }, update: { $set } } };
}

/**
 * Insert an import link, or set the status of the existing link of that origin. Only the
 * status is written: an import never sets or clears a relationship (as in SQLite).
 */
export function importLinkUpsertOp(
  districtId: string,
  l: GuardianLink,
): AnyBulkWriteOperation<LinkDoc> {
  return {
    updateOne: {
      filter: {
        districtId,
        parentId: l.parentId,
        studentSourcedId: l.studentSourcedId,
        origin: l.origin,
      },
      update: { $set: { status: l.status } },
      upsert: true,
    },
  };
}

/**
 * Filter and update that mark a preview applied, inside the apply's transaction: only a
 * `previewed`, unexpired preview (or one an older version's crashed confirm left `applying`
 * longer than `CLAIM_LEASE_MS`).
 */
export function previewApplyOp(
  districtId: string,
  previewId: string,
  now: Date,
  result: Record<string, unknown>,
): { filter: Record<string, unknown>; update: Record<string, unknown> } {
  return {
    filter: {
      id: previewId,
      districtId,
      expiresAt: { $gt: now },
      $or: [
        { status: 'previewed' },
        { status: 'applying', claimedAt: { $lt: new Date(now.getTime() - CLAIM_LEASE_MS) } },
      ],
    },
    update: {
      $set: { status: 'applied', appliedAt: now.toISOString(), result: JSON.stringify(result) },
      $unset: { claimedAt: '' },
    },
  };
}

/** Thrown inside an apply's transaction to abort it when the state is stale. */
class StaleState<S> extends Error {
  constructor(readonly state: S) {
    super('import state changed since the preview');
    this.name = 'StaleState';
  }
}

/** Deactivate one active link of one origin (never deletes). */
export function linkDeactivateOp(
  districtId: string,
  d: AssociationWrite['deactivations'][number],
): AnyBulkWriteOperation<LinkDoc> {
  return {
    updateOne: {
      filter: {
        districtId,
        parentId: d.parentId,
        studentSourcedId: d.studentSourcedId,
        origin: d.origin,
        status: 'active',
      },
      update: { $set: { status: 'inactive' } },
    },
  };
}

/** The imports repository on MongoDB. */
export class MongoImportRepository implements ImportRepository {
  private readonly previews: Model<PreviewDoc>;
  private readonly parts: Model<PartDoc>;
  private readonly profiles: Model<ProfileDoc>;
  private readonly parents: Model<ParentDoc>;
  private readonly students: Model<StudentDoc>;
  private readonly links: Model<LinkDoc>;
  private readonly schoolsModel: Model<SchoolDoc>;
  private readonly changes: ChangeLogModels;

  constructor(conn: Connection) {
    this.changes = changeLogModels(conn);
    this.previews = model(conn, 'ImportPreview', previewSchema);
    this.parts = model(conn, 'ImportPreviewPart', partSchema);
    this.profiles = model(conn, 'ParentProfile', profileSchema);
    this.parents = rosterModel<ParentDoc>(conn, 'ParentAccount');
    this.students = rosterModel<StudentDoc>(conn, 'Student');
    this.links = rosterModel<LinkDoc>(conn, 'GuardianLink');
    this.schoolsModel = rosterModel<SchoolDoc>(conn, 'School');
  }

  /** Create the collections and their missing indexes (`ensureIndexes`: never drops). */
  async init(): Promise<void> {
    for (const m of [this.previews, this.parts, this.profiles] as Model<unknown>[])
      await ensureIndexes(m);
  }

  /** (`session`: inside an apply's transaction; so are the other reads' `session`.) */
  async listSchools(districtId: string, session?: ClientSession): Promise<SchoolRef[]> {
    const docs = await this.schoolsModel
      .find({ districtId })
      .sort({ sourcedId: 1 })
      .session(session ?? null)
      .lean<SchoolDoc[]>();
    return docs.map(d => ({ sourcedId: d.sourcedId, name: d.name }));
  }

  async loadParentImportState(
    districtId: string,
    keys: ParentImportKeys,
    session?: ClientSession,
  ): Promise<ParentImportState> {
    const s = session ?? null;
    const ids = new Set<string>();
    const docs = new Map<string, ParentDoc>();
    const add = (list: ParentDoc[]) => {
      for (const d of list) docs.set(d.id, d);
    };
    for (const b of batches(keys.uniqueIds))
      add(
        await this.parents
          .find({ districtId, uniqueId: { $in: b } })
          .session(s)
          .lean<ParentDoc[]>(),
      );
    for (const b of batches(keys.emailsNormalized))
      add(
        await this.parents
          .find({ districtId, emailNormalized: { $in: b } })
          .session(s)
          .lean<ParentDoc[]>(),
      );
    for (const b of batches(keys.usernamesNormalized)) {
      const owners = await this.profiles
        .find({ districtId, usernameNormalized: { $in: b } }, { parentId: 1, _id: 0 })
        .session(s)
        .lean<{ parentId: string }[]>();
      for (const o of owners) if (!docs.has(o.parentId)) ids.add(o.parentId);
    }
    for (const b of batches([...ids]))
      add(
        await this.parents
          .find({ districtId, id: { $in: b } })
          .session(s)
          .lean<ParentDoc[]>(),
      );
    const parents = [...docs.values()].map(parentFromDoc).sort((a, b) => (a.id < b.id ? -1 : 1));
    return {
      parents,
      profiles: await this.getProfiles(
        districtId,
        parents.map(p => p.id),
        session,
      ),
      schools: await this.listSchools(districtId, session),
      students: await this.studentsByKeys(districtId, keys, s),
    };
  }

  /**
   * Students whose Unique ID or normalized email is one of the keys', sorted by sourcedId.
   * Both are index reads in `IN_BATCH` batches: Unique IDs over `district_uniqueId`, emails
   * over `district_email_ci` (collation `EMAIL_COLLATION`, case-insensitive; student emails are
   * stored trimmed, `mapping/canonical.ts`), each hit then checked with `normalizeEmail`, the
   * comparison the SQLite adapter makes.
   */
  private async studentsByKeys(
    districtId: string,
    keys: ParentImportKeys,
    session: ClientSession | null,
  ): Promise<ImportStudentRef[]> {
    const emails = new Set(keys.emailsNormalized);
    type Row = Omit<ImportStudentRef, 'email'> & { email?: string | null; districtId: string };
    const projection = {
      districtId: 1,
      sourcedId: 1,
      uniqueId: 1,
      givenName: 1,
      familyName: 1,
      email: 1,
      status: 1,
      _id: 0,
    };
    const found = new Map<string, ImportStudentRef>();
    const add = (row: Row) => {
      found.set(row.sourcedId, {
        sourcedId: row.sourcedId,
        uniqueId: row.uniqueId,
        givenName: row.givenName,
        familyName: row.familyName,
        ...(row.email ? { email: row.email } : {}),
        status: row.status,
      });
    };
    for (const b of batches(keys.uniqueIds))
      for (const row of await this.students
        .find({ districtId, uniqueId: { $in: b } }, projection)
        .session(session)
        .lean<Row[]>())
        add(row);
    for (const b of batches(keys.emailsNormalized))
      for (const row of await this.students
        .find({ districtId, email: { $in: b } }, projection)
        .collation(EMAIL_COLLATION)
        .session(session)
        .lean<Row[]>()) {
        const e = normalizeEmail(row.email ?? undefined);
        // the collated districtId comparison is case-insensitive too
        if (row.districtId === districtId && e && emails.has(e)) add(row);
      }
    return [...found.values()].sort((a, b) => (a.sourcedId < b.sourcedId ? -1 : 1));
  }

  async loadAssociationState(
    districtId: string,
    keys: AssociationImportKeys,
    session?: ClientSession,
  ): Promise<AssociationImportState> {
    const s = session ?? null;
    const parents: AssociationImportState['parents'] = [];
    for (const b of batches(keys.parentUniqueIds)) {
      const docs = await this.parents
        .find({ districtId, uniqueId: { $in: b } }, { id: 1, uniqueId: 1, status: 1, _id: 0 })
        .session(s)
        .lean<{ id: string; uniqueId: string; status: RecordStatus }[]>();
      for (const d of docs) parents.push({ id: d.id, uniqueId: d.uniqueId, status: d.status });
    }
    const students: AssociationImportState['students'] = [];
    const projection = { sourcedId: 1, uniqueId: 1, status: 1, _id: 0 };
    type Row = { sourcedId: string; uniqueId: string; status: RecordStatus };
    // Index `district_uniqueId`, in `$in` batches (no scan of the district, however many).
    for (const b of batches([...new Set(keys.studentUniqueIds)])) {
      const docs = await this.students
        .find({ districtId, uniqueId: { $in: b } }, projection)
        .session(s)
        .lean<Row[]>();
      for (const d of docs)
        students.push({ sourcedId: d.sourcedId, uniqueId: d.uniqueId, status: d.status });
    }
    const links: AssociationImportState['links'] = [];
    for (const b of batches([...new Set(students.map(s => s.sourcedId))])) {
      const docs = await this.links
        .find({ districtId, studentSourcedId: { $in: b } })
        .session(s)
        .lean<LinkDoc[]>();
      for (const d of docs) links.push(linkFromDoc(d));
    }
    const known = new Set(parents.map(p => p.id));
    const more = [...new Set(links.map(l => l.parentId))].filter(id => !known.has(id));
    for (const b of batches(more)) {
      const docs = await this.parents
        .find({ districtId, id: { $in: b } }, { id: 1, uniqueId: 1, status: 1, _id: 0 })
        .session(s)
        .lean<{ id: string; uniqueId?: string; status: RecordStatus }[]>();
      for (const d of docs)
        parents.push({
          id: d.id,
          ...(d.uniqueId ? { uniqueId: d.uniqueId } : {}),
          status: d.status,
        });
    }
    return { parents, students, links };
  }

  async getProfiles(
    districtId: string,
    parentIds?: string[],
    session?: ClientSession,
  ): Promise<ParentProfile[]> {
    const out: ParentProfile[] = [];
    if (parentIds === undefined) {
      const docs = await this.profiles
        .find({ districtId })
        .sort({ parentId: 1 })
        .session(session ?? null)
        .lean<ProfileDoc[]>();
      return docs.map(toProfile);
    }
    for (const b of batches([...new Set(parentIds)])) {
      const docs = await this.profiles
        .find({ districtId, parentId: { $in: b } })
        .session(session ?? null)
        .lean<ProfileDoc[]>();
      out.push(...docs.map(toProfile));
    }
    return out.sort((a, b) => (a.parentId < b.parentId ? -1 : 1));
  }

  /**
   * Insert the preview's parts, then the preview (a preview never points at missing parts;
   * leftover parts of a failed save expire with their TTL).
   */
  async savePreview(preview: StoredPreview, parts: PreviewParts, now: Date): Promise<void> {
    const expiresAt = new Date(preview.expiresAt);
    const expired = await this.previews
      .find({ districtId: preview.districtId, expiresAt: { $lte: now } }, { id: 1, _id: 0 })
      .lean<{ id: string }[]>();
    if (expired.length > 0) {
      const ids = expired.map(e => e.id);
      await this.parts.deleteMany({ previewId: { $in: ids } });
      await this.previews.deleteMany({ id: { $in: ids } });
    }
    const docs: PartDoc[] = [];
    for (const [part, items] of Object.entries(parts)) {
      for (let i = 0, seq = 0; i < items.length; i += PART_SIZE, seq++) {
        docs.push({
          previewId: preview.id,
          part,
          seq,
          data: JSON.stringify(items.slice(i, i + PART_SIZE)),
          expiresAt,
        });
      }
    }
    for (const b of batches(docs, 100)) await this.parts.insertMany(b, { ordered: true });
    const doc: PreviewDoc = {
      id: preview.id,
      districtId: preview.districtId,
      kind: preview.kind,
      status: preview.status,
      createdAt: preview.createdAt,
      expiresAt,
      meta: JSON.stringify(preview.meta),
    };
    if (preview.appliedAt) doc.appliedAt = preview.appliedAt;
    if (preview.supersededBy) doc.supersededBy = preview.supersededBy;
    if (preview.result) doc.result = JSON.stringify(preview.result);
    await this.previews.create(doc);
  }

  async getPreview(
    districtId: string,
    id: string,
    session?: ClientSession,
  ): Promise<StoredPreview | undefined> {
    const d = await this.previews
      .findOne({ id, districtId })
      .session(session ?? null)
      .lean<PreviewDoc>();
    return d ? toPreview(d) : undefined;
  }

  async getPreviewPart(previewId: string, part: string): Promise<unknown[]> {
    const out: unknown[] = [];
    const docs = await this.parts.find({ previewId, part }).sort({ seq: 1 }).lean<PartDoc[]>();
    for (const d of docs) for (const item of JSON.parse(d.data) as unknown[]) out.push(item);
    return out;
  }

  async supersedePreview(districtId: string, id: string, by: string): Promise<void> {
    await this.previews.updateOne(
      { id, districtId, status: { $in: ['previewed', 'applying'] } },
      { $set: { status: 'superseded', supersededBy: by }, $unset: { claimedAt: '' } },
    );
  }

  applyParentImport(
    req: ApplyRequest<ParentImportKeys, ParentImportState, ParentImportWrite>,
  ): Promise<ApplyOutcome<ParentImportState>> {
    return this.apply(
      req,
      session => this.loadParentImportState(req.districtId, req.keys, session),
      session => this.writeParents(req.districtId, req.write, session),
      state => parentImportChanges(state, req.write),
    );
  }

  applyAssociationImport(
    req: ApplyRequest<AssociationImportKeys, AssociationImportState, AssociationWrite>,
  ): Promise<ApplyOutcome<AssociationImportState>> {
    return this.apply(
      req,
      session => this.loadAssociationState(req.districtId, req.keys, session),
      session => this.writeLinks(req.districtId, req.write, session),
      state => associationImportChanges(state, req.write),
    );
  }

  // --- internals ------------------------------------------------------------------------

  /** Mark applied, re-load, check, write and log — one transaction (see the header). */
  private async apply<S>(
    req: ApplyRequest<unknown, S, unknown>,
    load: (session: ClientSession) => Promise<S>,
    write: (session: ClientSession) => Promise<number>,
    changes: (state: S) => NewChange[],
  ): Promise<ApplyOutcome<S>> {
    const op = previewApplyOp(req.districtId, req.previewId, req.now, req.result);
    try {
      return await withChangeTransaction(
        this.changes,
        req.districtId,
        async (session): Promise<ApplyOutcome<S>> => {
          const claimed = await this.previews
            .findOneAndUpdate(op.filter, op.update, { session, returnDocument: 'before' })
            .lean<PreviewDoc>();
          if (!claimed)
            return {
              kind: 'unavailable',
              preview: await this.getPreview(req.districtId, req.previewId, session),
            };
          const state = await load(session);
          // Aborts the transaction: the preview stays `previewed`.
          if (!req.isCurrent(state)) throw new StaleState(state);
          // Derived before writing, from the state this transaction loaded and checked.
          const entries = changes(state);
          const writes = await write(session);
          await appendChangesMongo(this.changes, session, req.districtId, req.change, entries);
          const appliedAt = req.now.toISOString();
          return {
            kind: 'applied',
            writes,
            preview: { ...toPreview(claimed), status: 'applied', appliedAt, result: req.result },
          };
        },
      );
    } catch (err) {
      if (err instanceof StaleState) return { kind: 'stale', state: err.state as S };
      if (err instanceof StoreConflictError) throw err;
      if (isDuplicateKeyError(err)) {
        throw new StoreConflictError(
          `import ${req.previewId} conflicts with data written meanwhile: ${String(err)}`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  private async writeParents(
    districtId: string,
    w: ParentImportWrite,
    session: ClientSession,
  ): Promise<number> {
    const parentOps: AnyBulkWriteOperation<ParentDoc>[] = [];
    const profileOps: AnyBulkWriteOperation<ProfileDoc>[] = [];
    for (const { account, profile } of w.creates) {
      if (account.districtId !== districtId)
        throw new Error(`account ${account.id} is not of ${districtId}`);
      parentOps.push(parentCreateOp(districtId, account));
      if (profile.usernameNormalized || profile.schoolSourcedIds.length > 0)
        profileOps.push(profileWriteOp(districtId, account.id, profile));
    }
    for (const u of w.updates) {
      const op = parentImportUpdateOp(districtId, u.parentId, u.set);
      if (op) parentOps.push(op);
      if (u.profile) profileOps.push(profileWriteOp(districtId, u.parentId, u.profile));
    }
    let n = 0;
    const opts = { ordered: true, throwOnValidationError: true, session } as const;
    if (parentOps.length > 0) {
      const r = await this.parents.bulkWrite(parentOps, opts);
      // A create is a `$setOnInsert` upsert: one that inserted nothing found its id taken by
      // an account the import did not plan on (SQLite: primary key violation).
      if (r.upsertedCount !== w.creates.length)
        throw new StoreConflictError(
          `import creates ${w.creates.length} account(s) but ${w.creates.length - r.upsertedCount} id(s) are taken`,
        );
      n += writtenDocuments(r);
    }
    if (profileOps.length > 0)
      n += writtenDocuments(await this.profiles.bulkWrite(profileOps, opts));
    return n;
  }

  private async writeLinks(
    districtId: string,
    w: AssociationWrite,
    session: ClientSession,
  ): Promise<number> {
    const ops: AnyBulkWriteOperation<LinkDoc>[] = w.upserts.map(l => {
      if (l.districtId !== districtId) throw new Error(`link is not of ${districtId}`);
      return importLinkUpsertOp(districtId, l);
    });
    for (const d of w.deactivations) ops.push(linkDeactivateOp(districtId, d));
    if (ops.length === 0) return 0;
    return writtenDocuments(
      await this.links.bulkWrite(ops, { ordered: true, throwOnValidationError: true, session }),
    );
  }
}
