/**
 * MongoDB adapter of the audit's roster reads (`./types.ts`), on the roster store's private
 * mongoose connection, using the roster models the store registered (`Student`,
 * `ParentAccount`, `GuardianLink`). Every read uses an index of the roster collections:
 * links by `district_student` / `district_parent_student_origin` (prefix), accounts by
 * `district_id` / `district_uniqueId` / `district_email`, students by `district_sourcedId`.
 * It creates no index of its own.
 */
import type { Connection, Model } from 'mongoose';
import { rosterModel, type LinkDoc, type ParentDoc, type StudentDoc } from '../mongo/schemas.js';
import { linkFromDoc, parentFromDoc, studentFromDoc } from '../mongo/store.js';
import type { GuardianLink, ParentAccount, StoredStudent } from '../types.js';
import { MAX_EMAIL_MATCHES, type AuditReads } from './types.js';

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
    return docs.map(linkFromDoc);
  }

  async linksOfParent(districtId: string, parentId: string): Promise<GuardianLink[]> {
    const docs = await this.links
      .find({ districtId, parentId }, { _id: 0 })
      .sort({ studentSourcedId: 1, origin: 1 })
      .lean<LinkDoc[]>();
    return docs.map(linkFromDoc);
  }

  async parentsByIds(districtId: string, ids: readonly string[]): Promise<ParentAccount[]> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const docs = await this.parents
      .find({ districtId, id: { $in: unique } }, { _id: 0 })
      .sort({ id: 1 })
      .lean<ParentDoc[]>();
    return docs.map(parentFromDoc);
  }

  async parentByUniqueId(districtId: string, uniqueId: string): Promise<ParentAccount | undefined> {
    const d = await this.parents.findOne({ districtId, uniqueId }, { _id: 0 }).lean<ParentDoc>();
    return d ? parentFromDoc(d) : undefined;
  }

  async parentsByEmail(districtId: string, emailNormalized: string): Promise<ParentAccount[]> {
    const docs = await this.parents
      .find({ districtId, emailNormalized }, { _id: 0 })
      .sort({ id: 1 })
      .limit(MAX_EMAIL_MATCHES)
      .lean<ParentDoc[]>();
    return docs.map(parentFromDoc);
  }

  async studentsBySourcedIds(districtId: string, ids: readonly string[]): Promise<StoredStudent[]> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const docs = await this.students
      .find({ districtId, sourcedId: { $in: unique } }, { _id: 0 })
      .sort({ sourcedId: 1 })
      .lean<StudentDoc[]>();
    return docs.map(studentFromDoc);
  }
}
