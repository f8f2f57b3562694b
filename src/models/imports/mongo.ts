/**
 * MongoDB implementation of the imports repository, on the roster store's private mongoose
 * connection (`RosterStore.handle()`). It registers its own models there
 * (`ImportPreview`, `ImportPreviewPart`, `ParentProfile`) and uses the roster models the
 * store registered (`ParentAccount`, `Student`, `GuardianLink`, `School`).
 *
 * Confirm without multi-document transactions (they need a replica set):
 * 1. claim the preview atomically: `findOneAndUpdate({status: 'previewed', not expired})`
 *    → `applying` (a second confirm of the same preview finds nothing to claim; a claim
 *    older than `CLAIM_LEASE_MS` — a crashed process — may be taken over);
 * 2. re-load the state for the preview's keys and check it (`isCurrent`); stale → release;
 * 3. write with idempotent bulk operations (account creates are `$setOnInsert` upserts keyed
 *    by the deterministic account id; links are upserts keyed by the unique link index;
 *    deactivations filter on `status: 'active'`), then mark the preview `applied`.
 * Between 2 and 3 another writer may change the same records; the unique indexes on
 * `{districtId, uniqueId}` (accounts), `{districtId, usernameNormalized}` (profiles) and the
 * link key turn the dangerous races into duplicate-key errors (→ `StoreConflictError`, the
 * preview is released, and the next confirm finds the data changed and re-plans).
 *
 * `meta`, `result` and part data are stored as JSON strings: file values (school names in a
 * value table) may contain `.` or start with `$`, which MongoDB field names must not.
 */
import { Schema, type AnyBulkWriteOperation, type Connection, type Model } from 'mongoose';
import type { RecordStatus } from '../../mapping/canonical.js';
import { StoreConflictError } from '../../errors.js';
import type { LinkDoc, ParentDoc, SchoolDoc, StudentDoc } from '../mongo/schemas.js';
import {
  isDuplicateKeyError,
  linkFromDoc,
  linkWriteOp,
  parentCreateOp,
  parentFromDoc,
  writtenDocuments,
} from '../mongo/store.js';
import {
  PART_SIZE,
  type ApplyOutcome,
  type ApplyRequest,
  type AssociationImportKeys,
  type AssociationImportState,
  type AssociationWrite,
  type ImportKind,
  type ImportParentSet,
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

/** A claimed (`applying`) preview older than this may be claimed again (crashed confirm). */
export const CLAIM_LEASE_MS = 10 * 60 * 1000;
/** Largest `$in` list per query. */
const IN_BATCH = 5000;
/** Above this many student Unique IDs, one scan of the district beats repeated `$in` scans. */
const STUDENT_SCAN_THRESHOLD = IN_BATCH;

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

  constructor(conn: Connection) {
    this.previews = model(conn, 'ImportPreview', previewSchema);
    this.parts = model(conn, 'ImportPreviewPart', partSchema);
    this.profiles = model(conn, 'ParentProfile', profileSchema);
    this.parents = rosterModel<ParentDoc>(conn, 'ParentAccount');
    this.students = rosterModel<StudentDoc>(conn, 'Student');
    this.links = rosterModel<LinkDoc>(conn, 'GuardianLink');
    this.schoolsModel = rosterModel<SchoolDoc>(conn, 'School');
  }

  /** Create the collections and build their indexes (idempotent). */
  async init(): Promise<void> {
    for (const m of [this.previews, this.parts, this.profiles] as Model<unknown>[]) {
      try {
        await m.createCollection();
      } catch (err) {
        if ((err as { code?: unknown }).code !== 48) throw err; // NamespaceExists
      }
      await m.syncIndexes();
    }
  }

  async listSchools(districtId: string): Promise<SchoolRef[]> {
    const docs = await this.schoolsModel
      .find({ districtId })
      .sort({ sourcedId: 1 })
      .lean<SchoolDoc[]>();
    return docs.map(d => ({ sourcedId: d.sourcedId, name: d.name }));
  }

  async loadParentImportState(
    districtId: string,
    keys: ParentImportKeys,
  ): Promise<ParentImportState> {
    const ids = new Set<string>();
    const docs = new Map<string, ParentDoc>();
    const add = (list: ParentDoc[]) => {
      for (const d of list) docs.set(d.id, d);
    };
    for (const b of batches(keys.uniqueIds))
      add(await this.parents.find({ districtId, uniqueId: { $in: b } }).lean<ParentDoc[]>());
    for (const b of batches(keys.emailsNormalized))
      add(await this.parents.find({ districtId, emailNormalized: { $in: b } }).lean<ParentDoc[]>());
    for (const b of batches(keys.usernamesNormalized)) {
      const owners = await this.profiles
        .find({ districtId, usernameNormalized: { $in: b } }, { parentId: 1, _id: 0 })
        .lean<{ parentId: string }[]>();
      for (const o of owners) if (!docs.has(o.parentId)) ids.add(o.parentId);
    }
    for (const b of batches([...ids]))
      add(await this.parents.find({ districtId, id: { $in: b } }).lean<ParentDoc[]>());
    const parents = [...docs.values()].map(parentFromDoc).sort((a, b) => (a.id < b.id ? -1 : 1));
    return {
      parents,
      profiles: await this.getProfiles(
        districtId,
        parents.map(p => p.id),
      ),
      schools: await this.listSchools(districtId),
    };
  }

  async loadAssociationState(
    districtId: string,
    keys: AssociationImportKeys,
  ): Promise<AssociationImportState> {
    const parents: AssociationImportState['parents'] = [];
    for (const b of batches(keys.parentUniqueIds)) {
      const docs = await this.parents
        .find({ districtId, uniqueId: { $in: b } }, { id: 1, uniqueId: 1, status: 1, _id: 0 })
        .lean<{ id: string; uniqueId: string; status: RecordStatus }[]>();
      for (const d of docs) parents.push({ id: d.id, uniqueId: d.uniqueId, status: d.status });
    }
    const students: AssociationImportState['students'] = [];
    const projection = { sourcedId: 1, uniqueId: 1, status: 1, _id: 0 };
    type Row = { sourcedId: string; uniqueId: string; status: RecordStatus };
    if (keys.studentUniqueIds.length > STUDENT_SCAN_THRESHOLD) {
      // The roster schema has no {districtId, uniqueId} index: one pass over the district.
      const wanted = new Set(keys.studentUniqueIds);
      for await (const row of this.students
        .find({ districtId }, projection)
        .lean<Row[]>()
        .cursor()) {
        if (wanted.has(row.uniqueId))
          students.push({ sourcedId: row.sourcedId, uniqueId: row.uniqueId, status: row.status });
      }
    } else if (keys.studentUniqueIds.length > 0) {
      const docs = await this.students
        .find({ districtId, uniqueId: { $in: keys.studentUniqueIds } }, projection)
        .lean<Row[]>();
      for (const d of docs)
        students.push({ sourcedId: d.sourcedId, uniqueId: d.uniqueId, status: d.status });
    }
    const links: AssociationImportState['links'] = [];
    for (const b of batches([...new Set(students.map(s => s.sourcedId))])) {
      const docs = await this.links
        .find({ districtId, studentSourcedId: { $in: b } })
        .lean<LinkDoc[]>();
      for (const d of docs) links.push(linkFromDoc(d));
    }
    const known = new Set(parents.map(p => p.id));
    const more = [...new Set(links.map(l => l.parentId))].filter(id => !known.has(id));
    for (const b of batches(more)) {
      const docs = await this.parents
        .find({ districtId, id: { $in: b } }, { id: 1, uniqueId: 1, status: 1, _id: 0 })
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

  async getProfiles(districtId: string, parentIds?: string[]): Promise<ParentProfile[]> {
    const out: ParentProfile[] = [];
    if (parentIds === undefined) {
      const docs = await this.profiles
        .find({ districtId })
        .sort({ parentId: 1 })
        .lean<ProfileDoc[]>();
      return docs.map(toProfile);
    }
    for (const b of batches([...new Set(parentIds)])) {
      const docs = await this.profiles
        .find({ districtId, parentId: { $in: b } })
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

  async getPreview(districtId: string, id: string): Promise<StoredPreview | undefined> {
    const d = await this.previews.findOne({ id, districtId }).lean<PreviewDoc>();
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
      () => this.loadParentImportState(req.districtId, req.keys),
      () => this.writeParents(req.districtId, req.write),
    );
  }

  applyAssociationImport(
    req: ApplyRequest<AssociationImportKeys, AssociationImportState, AssociationWrite>,
  ): Promise<ApplyOutcome<AssociationImportState>> {
    return this.apply(
      req,
      () => this.loadAssociationState(req.districtId, req.keys),
      () => this.writeLinks(req.districtId, req.write),
    );
  }

  // --- internals ------------------------------------------------------------------------

  private async apply<S>(
    req: ApplyRequest<unknown, S, unknown>,
    load: () => Promise<S>,
    write: () => Promise<number>,
  ): Promise<ApplyOutcome<S>> {
    const claimed = await this.previews
      .findOneAndUpdate(
        {
          id: req.previewId,
          districtId: req.districtId,
          expiresAt: { $gt: req.now },
          $or: [
            { status: 'previewed' },
            {
              status: 'applying',
              claimedAt: { $lt: new Date(req.now.getTime() - CLAIM_LEASE_MS) },
            },
          ],
        },
        { $set: { status: 'applying', claimedAt: req.now } },
        { returnDocument: 'after' },
      )
      .lean<PreviewDoc>();
    if (!claimed) {
      return { kind: 'unavailable', preview: await this.getPreview(req.districtId, req.previewId) };
    }
    const release = () =>
      this.previews.updateOne(
        { id: req.previewId, status: 'applying' },
        { $set: { status: 'previewed' }, $unset: { claimedAt: '' } },
      );
    let writes: number;
    try {
      const state = await load();
      if (!req.isCurrent(state)) {
        await release();
        return { kind: 'stale', state };
      }
      writes = await write();
    } catch (err) {
      await release().catch(() => undefined);
      if (isDuplicateKeyError(err)) {
        throw new StoreConflictError(
          `import ${req.previewId} conflicts with data written meanwhile: ${String(err)}`,
          { cause: err },
        );
      }
      throw err;
    }
    const appliedAt = req.now.toISOString();
    await this.previews.updateOne(
      { id: req.previewId },
      {
        $set: { status: 'applied', appliedAt, result: JSON.stringify(req.result) },
        $unset: { claimedAt: '' },
      },
    );
    const preview = toPreview(claimed);
    return {
      kind: 'applied',
      writes,
      preview: { ...preview, status: 'applied', appliedAt, result: req.result },
    };
  }

  private async writeParents(districtId: string, w: ParentImportWrite): Promise<number> {
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
    const opts = { ordered: true, throwOnValidationError: true } as const;
    if (parentOps.length > 0) n += writtenDocuments(await this.parents.bulkWrite(parentOps, opts));
    if (profileOps.length > 0)
      n += writtenDocuments(await this.profiles.bulkWrite(profileOps, opts));
    return n;
  }

  private async writeLinks(districtId: string, w: AssociationWrite): Promise<number> {
    const ops: AnyBulkWriteOperation<LinkDoc>[] = w.upserts.map(l => linkWriteOp(districtId, l));
    for (const d of w.deactivations) ops.push(linkDeactivateOp(districtId, d));
    if (ops.length === 0) return 0;
    return writtenDocuments(
      await this.links.bulkWrite(ops, { ordered: false, throwOnValidationError: true }),
    );
  }
}
