/**
 * MongoDB adapter of the audit's roster reads (`./types.ts`), on the roster store's private
 * mongoose connection, using the roster models the store registered (`Student`,
 * `ParentAccount`, `GuardianLink`). Every read uses an index of the roster collections:
 * links by `district_student` / `district_parent_student_origin` (prefix), accounts by
 * `district_id` / `district_uniqueId` / `district_email`, students by `district_sourcedId`.
 * It creates no index of its own.
 */
import type { Connection, Model } from 'mongoose';
import type { LinkDoc, ParentDoc, StudentDoc } from '../mongo/schemas.js';
import type { GuardianLink, ParentAccount, StoredStudent } from '../types.js';
import { MAX_EMAIL_MATCHES, type AuditReads } from './types.js';

function rosterModel<T>(conn: Connection, name: string): Model<T> {
  const m = conn.models[name] as Model<T> | undefined;
  if (!m) throw new Error(`MongoDB roster model ${name} is not registered on this connection`);
  return m;
}

function toLink(d: LinkDoc): GuardianLink {
  const l: GuardianLink = {
    districtId: d.districtId,
    parentId: d.parentId,
    studentSourcedId: d.studentSourcedId,
    origin: d.origin,
    status: d.status,
  };
  if (d.relationship != null) l.relationship = d.relationship;
  return l;
}

function toParent(d: ParentDoc): ParentAccount {
  const p: ParentAccount = {
    districtId: d.districtId,
    id: d.id,
    givenName: d.givenName ?? '',
    familyName: d.familyName ?? '',
    role: d.role,
    status: d.status,
    origin: d.origin,
    sources: (d.sources ?? []).map(s => ({ connector: s.connector, sourcedId: s.sourcedId })),
    lockedFields: [...(d.lockedFields ?? [])],
  };
  if (d.uniqueId != null) p.uniqueId = d.uniqueId;
  if (d.email != null) p.email = d.email;
  if (d.emailNormalized != null) p.emailNormalized = d.emailNormalized;
  if (d.phone != null) p.phone = d.phone;
  if (d.sisRole != null) p.sisRole = d.sisRole;
  return p;
}

function toStudent(d: StudentDoc): StoredStudent {
  const s: StoredStudent = {
    districtId: d.districtId,
    sourcedId: d.sourcedId,
    uniqueId: d.uniqueId,
    givenName: d.givenName ?? '',
    familyName: d.familyName ?? '',
    schoolSourcedIds: [...(d.schoolSourcedIds ?? [])],
    status: d.status,
  };
  if (d.email != null) s.email = d.email;
  if (d.grade != null) s.grade = d.grade;
  return s;
}

/** `AuditReads` on the roster store's MongoDB connection. */
export class MongoAuditReads implements AuditReads {
  private readonly students: Model<StudentDoc>;
  private readonly parents: Model<ParentDoc>;
  private readonly links: Model<LinkDoc>;

  constructor(conn: Connection) {
    this.students = rosterModel<StudentDoc>(conn, 'Student');
    this.parents = rosterModel<ParentDoc>(conn, 'ParentAccount');
    this.links = rosterModel<LinkDoc>(conn, 'GuardianLink');
  }

  init(): Promise<void> {
    return Promise.resolve();
  }

  async linksOfStudent(districtId: string, studentSourcedId: string): Promise<GuardianLink[]> {
    const docs = await this.links
      .find({ districtId, studentSourcedId }, { _id: 0 })
      .sort({ parentId: 1, origin: 1 })
      .lean<LinkDoc[]>();
    return docs.map(toLink);
  }

  async linksOfParent(districtId: string, parentId: string): Promise<GuardianLink[]> {
    const docs = await this.links
      .find({ districtId, parentId }, { _id: 0 })
      .sort({ studentSourcedId: 1, origin: 1 })
      .lean<LinkDoc[]>();
    return docs.map(toLink);
  }

  async parentsByIds(districtId: string, ids: readonly string[]): Promise<ParentAccount[]> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const docs = await this.parents
      .find({ districtId, id: { $in: unique } }, { _id: 0 })
      .sort({ id: 1 })
      .lean<ParentDoc[]>();
    return docs.map(toParent);
  }

  async parentByUniqueId(districtId: string, uniqueId: string): Promise<ParentAccount | undefined> {
    const d = await this.parents.findOne({ districtId, uniqueId }, { _id: 0 }).lean<ParentDoc>();
    return d ? toParent(d) : undefined;
  }

  async parentsByEmail(districtId: string, emailNormalized: string): Promise<ParentAccount[]> {
    const docs = await this.parents
      .find({ districtId, emailNormalized }, { _id: 0 })
      .sort({ id: 1 })
      .limit(MAX_EMAIL_MATCHES)
      .lean<ParentDoc[]>();
    return docs.map(toParent);
  }

  async studentsBySourcedIds(districtId: string, ids: readonly string[]): Promise<StoredStudent[]> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const docs = await this.students
      .find({ districtId, sourcedId: { $in: unique } }, { _id: 0 })
      .sort({ sourcedId: 1 })
      .lean<StudentDoc[]>();
    return docs.map(toStudent);
  }
}
