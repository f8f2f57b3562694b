/**
 * MongoDB student lookup (see `student-lookup.ts`), on the roster store's private mongoose
 * connection, using the roster models the store registered (`Student`, `ParentAccount`,
 * `GuardianLink`).
 *
 * Name search relies on a collation instead of a key table (MongoDB has no triggers, and a
 * change stream needs a replica set): the roster's `students` schema declares two indexes,
 * `{districtId, givenName}` and `{districtId, familyName}`, with the collation
 * `NAME_COLLATION` = `{locale: 'en', strength: 1, alternate: 'shifted'}` — strength 1 compares
 * base letters only (case and accents ignored), `shifted` ignores spaces and punctuation
 * ("obr" matches "O'Brien"). A prefix is the collated range `[q, q + U+FFFF)`; U+FFFF sorts
 * after every character in the CLDR root collation, which documents it for exactly this use
 * (https://www.unicode.org/reports/tr35/tr35-collation.html#tailored_noncharacter_weights).
 * They, and `{districtId, uniqueId}`, are declared in `../mongo/schemas.ts` (the store's
 * `init()` creates them; nothing here creates or drops an index: docs/decisions/0010).
 * Both range queries use those indexes (the query's collation equals the index's).
 *
 * Difference from SQLite: only the start of the whole first or last name matches, not each
 * word of a multi-word name. The collated `districtId` comparison is case-insensitive too,
 * so results are filtered on the exact district id.
 */
import type { Connection, Model } from 'mongoose';
import { ensureIndexes } from '../mongo/indexes.js';
import {
  NAME_COLLATION,
  rosterModel,
  type LinkDoc,
  type ParentDoc,
  type StudentDoc,
} from '../mongo/schemas.js';
import { linkFromDoc, studentFromDoc } from '../mongo/store.js';
import type { GuardianLink, StoredStudent } from '../types.js';
import type { ParentRef, StudentLookup } from './student-lookup.js';

/** The collation of the name indexes and of every name search (declared with them). */
export { NAME_COLLATION };

const STUDENT_FIELDS = {
  _id: 0,
  districtId: 1,
  sourcedId: 1,
  uniqueId: 1,
  givenName: 1,
  familyName: 1,
  email: 1,
  schoolSourcedIds: 1,
  grade: 1,
  status: 1,
} as const;

export class MongoStudentLookup implements StudentLookup {
  private readonly students: Model<StudentDoc>;
  private readonly parents: Model<ParentDoc>;
  private readonly links: Model<LinkDoc>;

  constructor(conn: Connection) {
    this.students = rosterModel<StudentDoc>(conn, 'Student');
    this.parents = rosterModel<ParentDoc>(conn, 'ParentAccount');
    this.links = rosterModel<LinkDoc>(conn, 'GuardianLink');
  }

  /**
   * Create the `students` indexes the lookup reads (declared in the roster schema) if the
   * store's `init()` has not: creates missing ones only, never drops (`ensureIndexes`).
   */
  async init(): Promise<void> {
    await ensureIndexes(this.students as Model<unknown>);
  }

  /**
   * `keyPrefix` is matched by the collation, so the caller's `nameKey` (letters and digits,
   * lower-case, no accents) compares as the typed text would.
   */
  async searchActive(
    districtId: string,
    keyPrefix: string,
    limit: number,
  ): Promise<StoredStudent[]> {
    const range = { $gte: keyPrefix, $lt: `${keyPrefix}\uffff` };
    const docs = await this.students
      .find(
        { districtId, status: 'active', $or: [{ givenName: range }, { familyName: range }] },
        STUDENT_FIELDS,
      )
      .collation(NAME_COLLATION)
      .sort({ familyName: 1, givenName: 1, sourcedId: 1 })
      .limit(limit * 2)
      .lean<StudentDoc[]>();
    return docs
      .filter(d => d.districtId === districtId)
      .slice(0, limit)
      .map(studentFromDoc);
  }

  async studentsByUniqueId(districtId: string, uniqueId: string): Promise<StoredStudent[]> {
    const docs = await this.students
      .find({ districtId, uniqueId }, STUDENT_FIELDS)
      .sort({ sourcedId: 1 })
      .lean<StudentDoc[]>();
    return docs.map(studentFromDoc);
  }

  async studentBySourcedId(
    districtId: string,
    sourcedId: string,
  ): Promise<StoredStudent | undefined> {
    const d = await this.students
      .findOne({ districtId, sourcedId }, STUDENT_FIELDS)
      .lean<StudentDoc>();
    return d ? studentFromDoc(d) : undefined;
  }

  async parentById(districtId: string, parentId: string): Promise<ParentRef | undefined> {
    const d = await this.parents
      .findOne(
        { districtId, id: parentId },
        { _id: 0, id: 1, uniqueId: 1, givenName: 1, familyName: 1, status: 1 },
      )
      .lean<Pick<ParentDoc, 'id' | 'uniqueId' | 'givenName' | 'familyName' | 'status'>>();
    if (!d) return undefined;
    const p: ParentRef = {
      id: d.id,
      givenName: d.givenName,
      familyName: d.familyName,
      status: d.status,
    };
    if (d.uniqueId != null) p.uniqueId = d.uniqueId;
    return p;
  }

  async linksBetween(
    districtId: string,
    parentId: string,
    studentSourcedId: string,
  ): Promise<GuardianLink[]> {
    const docs = await this.links
      .find({ districtId, parentId, studentSourcedId }, { _id: 0 })
      .sort({ origin: 1 })
      .lean<LinkDoc[]>();
    return docs.map(linkFromDoc);
  }
}
