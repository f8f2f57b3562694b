/**
 * MongoDB adapter of the audit's roster reads (`./types.ts`), on the roster store's private
 * mongoose connection, using the roster models the store registered (`Student`,
 * `ParentAccount`, `GuardianLink`). Every read uses an index of the roster collections:
 * links by `district_student` / `district_parent_student_origin` (prefix), accounts by
 * `district_id` / `district_uniqueId` / `district_email`, students by `district_sourcedId`.
 * The name-prefix search of accounts uses two collated indexes of its own
 * (`district_givenName_ci`, `district_familyName_ci`; `en`, strength 2: case ignored, accents
 * count), created by `init()`.
 */
import type { Connection, Model } from 'mongoose';
import { rosterModel, type LinkDoc, type ParentDoc, type StudentDoc } from '../mongo/schemas.js';
import { linkFromDoc, parentFromDoc, studentFromDoc } from '../mongo/store.js';
import type { GuardianLink, ParentAccount, StoredStudent } from '../types.js';
import { MAX_EMAIL_MATCHES, type AuditReads } from './types.js';

/** Case-insensitive, accent-sensitive (as SQLite's NOCASE for ASCII names). */
const PARENT_NAME_COLLATION = { locale: 'en', strength: 2 } as const;

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

  async init(): Promise<void> {
    await this.parents.collection.createIndex(
      { districtId: 1, givenName: 1 },
      { name: 'district_givenName_ci', collation: PARENT_NAME_COLLATION },
    );
    await this.parents.collection.createIndex(
      { districtId: 1, familyName: 1 },
      { name: 'district_familyName_ci', collation: PARENT_NAME_COLLATION },
    );
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

  async parentsByNamePrefix(
    districtId: string,
    prefix: string,
    page: { exclude: readonly string[]; offset: number; limit: number },
  ): Promise<{ total: number; items: ParentAccount[] }> {
    const range = { $gte: prefix, $lt: `${prefix}\u{10ffff}` };
    const filter = {
      districtId,
      $or: [{ givenName: range }, { familyName: range }],
      ...(page.exclude.length > 0 ? { id: { $nin: [...page.exclude] } } : {}),
    };
    const [total, docs] = await Promise.all([
      this.parents.countDocuments(filter).collation(PARENT_NAME_COLLATION),
      this.parents
        .find(filter, { _id: 0 })
        .collation(PARENT_NAME_COLLATION)
        .sort({ familyName: 1, givenName: 1, id: 1 })
        .skip(page.offset)
        .limit(page.limit)
        .lean<ParentDoc[]>(),
    ]);
    return { total, items: docs.map(parentFromDoc) };
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
