/**
 * MongoDB adapter of the access-code repository, on the roster store's private mongoose
 * connection (`RosterStore.handle()`). Own schemas and collections (`access_codes`,
 * `access_code_settings`, `access_code_resets`, `access_code_redemptions`,
 * `access_code_accounts`), created with their indexes by `init()`. The roster collections
 * (`students`, `schools`, `parent_accounts`, `guardian_links`) are only read, through the
 * native driver with projections (`.lean()`-like plain documents; no `_id` escapes).
 *
 * Issuing and revoking run in multi-document transactions with their change-log entries
 * (`withChangeTransaction` + `appendChangesMongo` from `../changes/mongo.ts`; design invariant
 * 13): one transaction per batch of students, which first takes the district's change-log
 * write lock, so issuers of a district take turns and each reads who holds a code from a
 * snapshot holding every earlier issuer's commit. Unique indexes still guard the invariants:
 * - `{code}` unique: a code is unique across the system. A duplicate-key error on insert (a
 *   collision, possibly with another district's issuer) aborts the batch's transaction,
 *   which is then retried with freshly generated codes (`maxAttempts` times).
 * - `{districtId, studentSourcedId}` unique where `status: 'active'`: one active code per
 *   student, whatever the number of concurrent issuers.
 *
 * Sharding note: `access_codes` has a system-wide unique index on `code`, so it can only be
 * sharded on `{code}` (or left unsharded: one small document per student). All other
 * collections here carry `districtId` first in their unique indexes.
 */
import { Schema, type ClientSession, type Connection, type Model, type mongo } from 'mongoose';
import type { RecordStatus } from '../../mapping/canonical.js';
import {
  appendChangesMongo,
  changeLogModels,
  withChangeTransaction,
  type ChangeLogModels,
} from '../changes/mongo.js';
import { ensureIndexes } from '../mongo/indexes.js';
import { COLLECTIONS } from '../mongo/schemas.js';
import { codeIssueChange, codeRevokeChange } from './changes.js';
import {
  AccessCodeCollisionError,
  UsernameTakenError,
  type AccessCodeAccount,
  type AccessCodeRecord,
  type AccessCodeRedemption,
  type AccessCodeRepository,
  type AccessCodeReset,
  type AccessCodeSettingsOverride,
  type IdPage,
  type IssueOptions,
  type RevokeOptions,
  type StudentCodeRow,
} from './types.js';

/** Collection names (snake_case like the SQLite tables). */
export const ACCESS_CODE_COLLECTIONS = {
  codes: 'access_codes',
  settings: 'access_code_settings',
  resets: 'access_code_resets',
  redemptions: 'access_code_redemptions',
  accounts: 'access_code_accounts',
} as const;

const IN_BATCH = 1000;

const base = {
  versionKey: false,
  id: false,
  strict: 'throw',
  strictQuery: 'throw',
  autoIndex: false,
  autoCreate: false,
} as const;
const requiredString = { type: String, required: true } as const;

export const accessCodeSchema = new Schema<AccessCodeRecord>(
  {
    code: requiredString,
    districtId: requiredString,
    studentSourcedId: requiredString,
    status: { type: String, enum: ['active', 'revoked'], required: true },
    createdAt: requiredString,
    revokedAt: String,
    resetId: String,
  },
  { ...base, collection: ACCESS_CODE_COLLECTIONS.codes },
);
// findCode (redemption) and invariant 8: a code is unique across all districts.
accessCodeSchema.index({ code: 1 }, { unique: true, name: 'code' });
// One active code per student (issue/reset races resolve here); also serves
// studentsNeedingCodes / studentsWithActiveCodes / countActiveCodes (queries say status: 'active').
accessCodeSchema.index(
  { districtId: 1, studentSourcedId: 1 },
  {
    unique: true,
    name: 'one_active_per_student',
    partialFilterExpression: { status: 'active' },
  },
);
// codesOfStudent: a student's history, newest first
accessCodeSchema.index(
  { districtId: 1, studentSourcedId: 1, createdAt: -1 },
  { name: 'student_history' },
);

export const settingsSchema = new Schema<AccessCodeSettingsOverride>(
  {
    districtId: requiredString,
    enabled: Boolean,
    defaultRole: String,
    issueTo: { type: String, enum: ['unlinked', 'all'] },
    updatedAt: requiredString,
    updatedBy: requiredString,
  },
  { ...base, collection: ACCESS_CODE_COLLECTIONS.settings },
);
// get/putSettingsOverride: one override document per district
settingsSchema.index({ districtId: 1 }, { unique: true, name: 'district' });

export const resetSchema = new Schema<AccessCodeReset>(
  {
    id: requiredString,
    districtId: requiredString,
    actor: requiredString,
    at: requiredString,
    scope: { type: String, enum: ['student', 'list', 'district'], required: true },
    requested: { type: Number, required: true },
    revoked: { type: Number, required: true },
    issued: { type: Number, required: true },
  },
  { ...base, collection: ACCESS_CODE_COLLECTIONS.resets },
);
// recordReset is idempotent per reset id (district first: shardable on districtId)
resetSchema.index({ districtId: 1, id: 1 }, { unique: true, name: 'district_id' });
// listResets (newest first)
resetSchema.index({ districtId: 1, at: -1 }, { name: 'district_at' });

export const redemptionSchema = new Schema<AccessCodeRedemption>(
  {
    districtId: requiredString,
    code: requiredString,
    parentId: requiredString,
    studentSourcedId: requiredString,
    kind: { type: String, enum: ['register', 'add-child'], required: true },
    at: requiredString,
  },
  { ...base, collection: ACCESS_CODE_COLLECTIONS.redemptions },
);
// recordRedemption: redeeming twice stores one document
redemptionSchema.index(
  { districtId: 1, parentId: 1, studentSourcedId: 1, code: 1 },
  { unique: true, name: 'district_parent_student_code' },
);
// listRedemptions (oldest first)
redemptionSchema.index({ districtId: 1, at: 1 }, { name: 'district_at' });

export const accountSchema = new Schema<AccessCodeAccount>(
  {
    districtId: requiredString,
    parentId: requiredString,
    username: String,
    usernameNormalized: String,
    createdAt: requiredString,
  },
  { ...base, collection: ACCESS_CODE_COLLECTIONS.accounts },
);
// recordAccount: one registration record per account
accountSchema.index({ districtId: 1, parentId: 1 }, { unique: true, name: 'district_parent' });
// accountByUsername; one account per username and district. Partial: accounts registered
// with an email only have no username (never stored as null).
accountSchema.index(
  { districtId: 1, usernameNormalized: 1 },
  {
    unique: true,
    name: 'district_username',
    partialFilterExpression: { usernameNormalized: { $exists: true } },
  },
);

interface Models {
  codes: Model<AccessCodeRecord>;
  settings: Model<AccessCodeSettingsOverride>;
  resets: Model<AccessCodeReset>;
  redemptions: Model<AccessCodeRedemption>;
  accounts: Model<AccessCodeAccount>;
}

function model<T>(conn: Connection, name: string, schema: Schema<T>): Model<T> {
  return (conn.models[name] as Model<T> | undefined) ?? conn.model<T>(name, schema);
}

function codeOf(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

/** True when `err` is (or holds) a duplicate-key error (E11000). */
export function isDuplicateKey(err: unknown): boolean {
  const c = codeOf(err);
  if (c === 11000 || c === 11001) return true;
  const w = (err as { writeErrors?: unknown } | null)?.writeErrors;
  const list: unknown[] = Array.isArray(w) ? w : w ? [w] : [];
  return list.some(e => codeOf(e) === 11000 || codeOf(e) === 11001);
}

/**
 * Indexes (into the inserted batch) of documents a failed unordered `insertMany` did not
 * insert because of a duplicate key. Throws `err` again when anything else went wrong.
 */
export function duplicateIndexes(err: unknown): Set<number> {
  const w = (err as { writeErrors?: unknown } | null)?.writeErrors;
  const list: unknown[] = Array.isArray(w) ? w : w ? [w] : [];
  if (list.length === 0) throw err;
  const out = new Set<number>();
  for (const e of list) {
    const c = codeOf(e);
    const index = (e as { index?: unknown }).index;
    if ((c !== 11000 && c !== 11001) || typeof index !== 'number') throw err;
    out.add(index);
  }
  return out;
}

/** Index (into the inserted batch) of the first failed document of a bulk insert error. */
function firstErrorIndex(err: unknown): number | undefined {
  const w = (err as { writeErrors?: unknown } | null)?.writeErrors;
  const first: unknown = Array.isArray(w) ? w[0] : w;
  const index = (first as { index?: unknown } | undefined)?.index;
  return typeof index === 'number' ? index : undefined;
}

function strip<T extends object>(value: T): T {
  return Object.fromEntries(
    Object.entries(value).filter(([, v]) => v !== undefined && v !== null),
  ) as T;
}

function toCode(d: AccessCodeRecord): AccessCodeRecord {
  return strip({
    code: d.code,
    districtId: d.districtId,
    studentSourcedId: d.studentSourcedId,
    status: d.status,
    createdAt: d.createdAt,
    revokedAt: d.revokedAt,
    resetId: d.resetId,
  });
}

interface StudentDoc {
  sourcedId: string;
  uniqueId: string;
  givenName: string;
  familyName: string;
  grade?: string | null;
  schoolSourcedIds?: string[] | null;
  status: RecordStatus;
}

const STUDENT_FIELDS = {
  _id: 0,
  sourcedId: 1,
  uniqueId: 1,
  givenName: 1,
  familyName: 1,
  grade: 1,
  schoolSourcedIds: 1,
  status: 1,
} as const;

/** `AccessCodeRepository` on MongoDB. */
export class MongoAccessCodeRepository implements AccessCodeRepository {
  private readonly m: Models;
  private readonly changes: ChangeLogModels;

  constructor(private readonly conn: Connection) {
    this.changes = changeLogModels(conn);
    this.m = {
      codes: model(conn, 'AccessCode', accessCodeSchema),
      settings: model(conn, 'AccessCodeSettings', settingsSchema),
      resets: model(conn, 'AccessCodeReset', resetSchema),
      redemptions: model(conn, 'AccessCodeRedemption', redemptionSchema),
      accounts: model(conn, 'AccessCodeAccount', accountSchema),
    };
  }

  /** Create the collections and their missing indexes (`ensureIndexes`: never drops). Idempotent. */
  async init(): Promise<void> {
    for (const m of Object.values(this.m) as Model<unknown>[]) await ensureIndexes(m);
  }

  /** A roster collection through the native driver (read-only here). */
  private roster<T extends mongo.Document>(name: string): mongo.Collection<T> {
    const db = this.conn.db;
    if (!db) throw new Error('MongoDB store is not connected (call init())');
    return db.collection<T>(name);
  }

  async studentsNeedingCodes(
    districtId: string,
    opts: { includeLinked: boolean; after?: string | undefined; limit: number },
  ): Promise<IdPage> {
    const limit = Math.max(1, opts.limit);
    const page = await this.roster<{ sourcedId: string; districtId: string; status: string }>(
      COLLECTIONS.students,
    )
      .find(
        { districtId, status: 'active', sourcedId: { $gt: opts.after ?? '' } },
        { projection: { _id: 0, sourcedId: 1 } },
      )
      .sort({ sourcedId: 1 })
      .limit(limit)
      .toArray();
    const ids = page.map(d => d.sourcedId);
    if (ids.length === 0) return { ids: [], next: undefined };
    const coded = new Set(
      (
        await this.m.codes
          .find(
            { districtId, status: 'active', studentSourcedId: { $in: ids } },
            { studentSourcedId: 1, _id: 0 },
          )
          .lean<{ studentSourcedId: string }[]>()
      ).map(d => d.studentSourcedId),
    );
    const linked = new Set<string>();
    if (!opts.includeLinked) {
      const links = await this.roster<{ studentSourcedId: string }>(COLLECTIONS.links)
        .find(
          { districtId, status: 'active', studentSourcedId: { $in: ids } },
          { projection: { _id: 0, studentSourcedId: 1 } },
        )
        .toArray();
      for (const l of links) linked.add(l.studentSourcedId);
    }
    return {
      ids: ids.filter(id => !coded.has(id) && !linked.has(id)),
      next: ids.length < limit ? undefined : ids[ids.length - 1],
    };
  }

  async issueCodes(
    districtId: string,
    studentSourcedIds: string[],
    opts: IssueOptions,
  ): Promise<{ issued: { studentSourcedId: string; code: string }[]; skipped: string[] }> {
    const max = opts.maxAttempts ?? 8;
    const issued: { studentSourcedId: string; code: string }[] = [];
    const skipped: string[] = [];
    const all = [...new Set(studentSourcedIds)];
    for (let i = 0; i < all.length; i += IN_BATCH) {
      const batch = all.slice(i, i + IN_BATCH);
      for (let attempt = 1; ; attempt++) {
        // The documents of the last run of the body (to name the student of a collision).
        let tried: AccessCodeRecord[] = [];
        try {
          const r = await withChangeTransaction(this.changes, districtId, async session => {
            const holding = await this.activeHolders(districtId, batch, session);
            const docs: AccessCodeRecord[] = batch
              .filter(sid => !holding.has(sid))
              .map(sid => ({
                code: opts.generate(),
                districtId,
                studentSourcedId: sid,
                status: 'active',
                createdAt: opts.at,
              }));
            tried = docs;
            if (docs.length > 0)
              await this.m.codes.collection.insertMany(
                docs.map(d => ({ ...d })),
                { session, ordered: true },
              );
            await appendChangesMongo(
              this.changes,
              session,
              districtId,
              opts.change,
              docs.map(d => codeIssueChange(d.code, d.studentSourcedId)),
            );
            return {
              issued: docs.map(d => ({ studentSourcedId: d.studentSourcedId, code: d.code })),
              skipped: batch.filter(sid => holding.has(sid)),
            };
          });
          issued.push(...r.issued);
          skipped.push(...r.skipped);
          break;
        } catch (err) {
          // A duplicate key aborted the batch: under the district's lock the one-active-code
          // index cannot be the cause, so a code collided. Retry with new codes.
          if (!isDuplicateKey(err)) throw err;
          if (attempt >= max) {
            const index = firstErrorIndex(err);
            throw new AccessCodeCollisionError(
              tried[index ?? 0]?.studentSourcedId ?? batch[0] ?? '',
              max,
            );
          }
        }
      }
    }
    return { issued, skipped };
  }

  private async activeHolders(
    districtId: string,
    ids: string[],
    session?: ClientSession,
  ): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const docs = await this.m.codes
      .find(
        { districtId, status: 'active', studentSourcedId: { $in: ids } },
        { studentSourcedId: 1, _id: 0 },
      )
      .session(session ?? null)
      .lean<{ studentSourcedId: string }[]>();
    return new Set(docs.map(d => d.studentSourcedId));
  }

  async revokeCodes(
    districtId: string,
    studentSourcedIds: string[],
    opts: RevokeOptions,
  ): Promise<number> {
    let n = 0;
    const all = [...new Set(studentSourcedIds)];
    for (let i = 0; i < all.length; i += IN_BATCH) {
      const batch = all.slice(i, i + IN_BATCH);
      n += await withChangeTransaction(this.changes, districtId, async session => {
        const active = await this.m.codes
          .find(
            { districtId, status: 'active', studentSourcedId: { $in: batch } },
            { code: 1, studentSourcedId: 1, _id: 0 },
          )
          .session(session)
          .lean<{ code: string; studentSourcedId: string }[]>();
        if (active.length === 0) return 0;
        const r = await this.m.codes.updateMany(
          { districtId, status: 'active', code: { $in: active.map(c => c.code) } },
          { $set: { status: 'revoked', revokedAt: opts.at, resetId: opts.resetId } },
          { session },
        );
        if (r.modifiedCount !== active.length)
          throw new Error(
            `revoked ${r.modifiedCount} of ${active.length} active codes read in the same transaction`,
          );
        await appendChangesMongo(
          this.changes,
          session,
          districtId,
          opts.change,
          active.map(c => codeRevokeChange(c.code, c.studentSourcedId)),
        );
        return active.length;
      });
    }
    return n;
  }

  async studentsWithActiveCodes(
    districtId: string,
    opts: { after?: string | undefined; limit: number },
  ): Promise<IdPage> {
    const limit = Math.max(1, opts.limit);
    const docs = await this.m.codes
      .find(
        { districtId, status: 'active', studentSourcedId: { $gt: opts.after ?? '' } },
        { studentSourcedId: 1, _id: 0 },
      )
      .sort({ studentSourcedId: 1 })
      .limit(limit)
      .lean<{ studentSourcedId: string }[]>();
    const ids = docs.map(d => d.studentSourcedId);
    return { ids, next: ids.length < limit ? undefined : ids[ids.length - 1] };
  }

  async findCode(code: string): Promise<AccessCodeRecord | undefined> {
    const d = await this.m.codes.findOne({ code }, { _id: 0 }).lean<AccessCodeRecord>();
    return d ? toCode(d) : undefined;
  }

  async codesOfStudent(districtId: string, studentSourcedId: string): Promise<AccessCodeRecord[]> {
    const docs = await this.m.codes
      .find({ districtId, studentSourcedId }, { _id: 0 })
      .sort({ createdAt: -1, _id: -1 })
      .lean<AccessCodeRecord[]>();
    return docs.map(toCode);
  }

  countActiveCodes(districtId: string): Promise<number> {
    return this.m.codes.countDocuments({ districtId, status: 'active' }).exec();
  }

  async studentStatus(districtId: string, sourcedId: string): Promise<RecordStatus | undefined> {
    const d = await this.roster<StudentDoc & { districtId: string }>(COLLECTIONS.students).findOne(
      { districtId, sourcedId },
      { projection: { _id: 0, status: 1 } },
    );
    return d?.status;
  }

  async studentIdsByUniqueId(
    districtId: string,
    uniqueIds: string[],
  ): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const all = [...new Set(uniqueIds)];
    for (let i = 0; i < all.length; i += IN_BATCH) {
      const docs = await this.roster<StudentDoc & { districtId: string }>(COLLECTIONS.students)
        .find(
          { districtId, uniqueId: { $in: all.slice(i, i + IN_BATCH) } },
          { projection: { _id: 0, uniqueId: 1, sourcedId: 1, status: 1 } },
        )
        .toArray();
      // An active record wins over an inactive one with the same Unique ID.
      docs.sort((a, b) => Number(a.status === 'active') - Number(b.status === 'active'));
      for (const d of docs) out.set(d.uniqueId, d.sourcedId);
    }
    return out;
  }

  async studentCodeRows(
    districtId: string,
    opts: { after?: string | undefined; limit: number },
  ): Promise<StudentCodeRow[]> {
    const students = await this.roster<StudentDoc & { districtId: string }>(COLLECTIONS.students)
      .find(
        { districtId, status: 'active', sourcedId: { $gt: opts.after ?? '' } },
        { projection: STUDENT_FIELDS },
      )
      .sort({ sourcedId: 1 })
      .limit(Math.max(1, opts.limit))
      .toArray();
    return this.withCodes(districtId, students);
  }

  async studentCodeRowsOf(
    districtId: string,
    studentSourcedIds: string[],
  ): Promise<StudentCodeRow[]> {
    const out: StudentCodeRow[] = [];
    const all = [...new Set(studentSourcedIds)];
    for (let i = 0; i < all.length; i += IN_BATCH) {
      const students = await this.roster<StudentDoc & { districtId: string }>(COLLECTIONS.students)
        .find(
          { districtId, sourcedId: { $in: all.slice(i, i + IN_BATCH) } },
          { projection: STUDENT_FIELDS },
        )
        .toArray();
      out.push(...(await this.withCodes(districtId, students)));
    }
    return out;
  }

  private async withCodes(districtId: string, students: StudentDoc[]): Promise<StudentCodeRow[]> {
    if (students.length === 0) return [];
    const codes = await this.m.codes
      .find(
        { districtId, status: 'active', studentSourcedId: { $in: students.map(s => s.sourcedId) } },
        { studentSourcedId: 1, code: 1, _id: 0 },
      )
      .lean<{ studentSourcedId: string; code: string }[]>();
    const byStudent = new Map(codes.map(c => [c.studentSourcedId, c.code]));
    return students.map(s =>
      strip<StudentCodeRow>({
        sourcedId: s.sourcedId,
        uniqueId: s.uniqueId,
        givenName: s.givenName,
        familyName: s.familyName,
        grade: s.grade ?? undefined,
        schoolSourcedIds: (s.schoolSourcedIds ?? []).map(String),
        status: s.status,
        code: byStudent.get(s.sourcedId),
      }),
    );
  }

  async schoolNames(districtId: string): Promise<Map<string, string>> {
    const docs = await this.roster<{ districtId: string; sourcedId: string; name: string }>(
      COLLECTIONS.schools,
    )
      .find({ districtId }, { projection: { _id: 0, sourcedId: 1, name: 1 } })
      .toArray();
    return new Map(docs.map(d => [d.sourcedId, d.name]));
  }

  async parentStatus(districtId: string, parentId: string): Promise<RecordStatus | undefined> {
    const d = await this.roster<{ districtId: string; id: string; status: RecordStatus }>(
      COLLECTIONS.parents,
    ).findOne({ districtId, id: parentId }, { projection: { _id: 0, status: 1 } });
    return d?.status;
  }

  async parentIdsByEmail(districtId: string, emailNormalized: string): Promise<string[]> {
    const docs = await this.roster<{ districtId: string; id: string; emailNormalized: string }>(
      COLLECTIONS.parents,
    )
      .find({ districtId, emailNormalized }, { projection: { _id: 0, id: 1 } })
      .sort({ id: 1 })
      .toArray();
    return docs.map(d => d.id);
  }

  async hasActiveLink(
    districtId: string,
    parentId: string,
    studentSourcedId: string,
  ): Promise<boolean> {
    const d = await this.roster<{ districtId: string; parentId: string }>(
      COLLECTIONS.links,
    ).findOne(
      { districtId, parentId, studentSourcedId, status: 'active' },
      { projection: { _id: 1 } },
    );
    return d !== null;
  }

  async accountByUsername(
    districtId: string,
    usernameNormalized: string,
  ): Promise<AccessCodeAccount | undefined> {
    const d = await this.m.accounts
      .findOne({ districtId, usernameNormalized }, { _id: 0 })
      .lean<AccessCodeAccount>();
    return d ? strip({ ...d }) : undefined;
  }

  async recordAccount(account: AccessCodeAccount): Promise<void> {
    const same = async (): Promise<boolean | undefined> => {
      const d = await this.m.accounts
        .findOne({ districtId: account.districtId, parentId: account.parentId }, { _id: 0 })
        .lean<AccessCodeAccount>();
      if (!d) return undefined;
      return (d.usernameNormalized ?? undefined) === account.usernameNormalized;
    };
    const existing = await same();
    if (existing === true) return;
    if (existing === false) throw new UsernameTakenError(account.districtId);
    try {
      await this.m.accounts.collection.insertOne(strip({ ...account }));
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // Either the same registration raced us (fine) or the username is someone else's.
      if ((await same()) !== true) throw new UsernameTakenError(account.districtId);
    }
  }

  async recordRedemption(r: AccessCodeRedemption): Promise<void> {
    try {
      await this.m.redemptions.collection.insertOne({ ...r });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  async listRedemptions(districtId: string): Promise<AccessCodeRedemption[]> {
    const docs = await this.m.redemptions
      .find({ districtId }, { _id: 0 })
      .sort({ at: 1, _id: 1 })
      .lean<AccessCodeRedemption[]>();
    return docs.map(d => ({
      districtId: d.districtId,
      code: d.code,
      parentId: d.parentId,
      studentSourcedId: d.studentSourcedId,
      kind: d.kind,
      at: d.at,
    }));
  }

  async getSettingsOverride(districtId: string): Promise<AccessCodeSettingsOverride | undefined> {
    const d = await this.m.settings
      .findOne({ districtId }, { _id: 0 })
      .lean<AccessCodeSettingsOverride>();
    return d ? strip({ ...d }) : undefined;
  }

  async putSettingsOverride(o: AccessCodeSettingsOverride): Promise<void> {
    await this.m.settings.collection.replaceOne({ districtId: o.districtId }, strip({ ...o }), {
      upsert: true,
    });
  }

  async recordReset(r: AccessCodeReset): Promise<void> {
    try {
      await this.m.resets.collection.insertOne({ ...r });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  async listResets(districtId: string, limit: number): Promise<AccessCodeReset[]> {
    if (limit <= 0) return [];
    const docs = await this.m.resets
      .find({ districtId }, { _id: 0 })
      .sort({ at: -1, _id: -1 })
      .limit(limit)
      .lean<AccessCodeReset[]>();
    return docs.map(d => ({
      id: d.id,
      districtId: d.districtId,
      actor: d.actor,
      at: d.at,
      scope: d.scope,
      requested: d.requested,
      revoked: d.revoked,
      issued: d.issued,
    }));
  }
}
