/**
 * Student lookup for manual associations (issue 6, "Manual association"): name-prefix search
 * and the single-record reads `associate` / `removeAssociation` need, as indexed queries (the
 * roster port only offers whole-district reads, which are O(n) for a 500,000-student district).
 *
 * Implementations: `student-lookup-sqlite.ts` (a `student_name_keys` table kept current by
 * SQL triggers on `students`) and `student-lookup-mongo.ts` (a collated index on the roster's
 * `students` collection). Get one with `studentLookup(ctx)`; contract suite:
 * `test/contract/student-lookup.contract.ts`.
 */
import type { GuardianLink, RosterStore, StoredStudent } from '../types.js';
import type { RecordStatus } from '../../mapping/canonical.js';
import { SqliteStudentLookup } from './student-lookup-sqlite.js';

/**
 * The search key of a name or query: Unicode NFD, combining marks removed, lower-case, and
 * everything that is not a letter or digit removed (so "O'Brien" → "obrien", "José" →
 * "jose", "Mary-Ann" → "maryann"). Typing "obr" or "o'br" finds O'Brien.
 */
export function nameKey(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]/gu, '');
}

export interface ParentRef {
  id: string;
  uniqueId?: string | undefined;
  givenName: string;
  familyName: string;
  status: RecordStatus;
}

export interface StudentLookup {
  /** Create tables/indexes (idempotent). The roster store must be initialised. */
  init(): Promise<void>;
  /**
   * Active students of the district whose first or last name's `nameKey` starts with
   * `keyPrefix` (already a `nameKey`, non-empty), ordered by family name, given name,
   * sourcedId; at most `limit`.
   */
  searchActive(districtId: string, keyPrefix: string, limit: number): Promise<StoredStudent[]>;
  /** Students (any status) with this Unique ID (normally one; more is a data problem). */
  studentsByUniqueId(districtId: string, uniqueId: string): Promise<StoredStudent[]>;
  studentBySourcedId(districtId: string, sourcedId: string): Promise<StoredStudent | undefined>;
  parentById(districtId: string, parentId: string): Promise<ParentRef | undefined>;
  /** Every link (any origin, any status) between the parent and the student. */
  linksBetween(
    districtId: string,
    parentId: string,
    studentSourcedId: string,
  ): Promise<GuardianLink[]>;
}

const cache = new WeakMap<RosterStore, Promise<StudentLookup>>();

/** The initialised lookup of `ctx.store` (cached per store; a failed init is retried). */
export function studentLookup(ctx: { store: RosterStore }): Promise<StudentLookup> {
  const store = ctx.store;
  let p = cache.get(store);
  if (!p) {
    p = (async () => {
      const handle = store.handle();
      let r: StudentLookup;
      if (handle.kind === 'sqlite') r = new SqliteStudentLookup(handle.db);
      else {
        const { MongoStudentLookup } = await import('./student-lookup-mongo.js');
        r = new MongoStudentLookup(handle.connection);
      }
      await r.init();
      return r;
    })();
    cache.set(store, p);
    p.catch(() => cache.delete(store));
  }
  return p;
}
