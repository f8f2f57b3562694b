/**
 * Roster reads of the audit ("who is linked to this student and why", "what happened to this
 * parent account"; `src/audit/service.ts`): indexed single-record and per-student/per-parent
 * reads. The `RosterStore` port only offers whole-district reads (`getParents`, `getLinks`),
 * which are O(n) for a district of 500,000 students; these are O(result).
 *
 * Adapters: `sqlite.ts` (the roster tables' primary keys and indexes) and `mongo.ts` (the
 * roster collections' indexes). Get one with `auditReads(store)` (`./index.ts`).
 */
import type { GuardianLink, ParentAccount, StoredStudent } from '../types.js';

/** Most accounts `parentsByEmail` returns (an email shared by more is reported, not listed). */
export const MAX_EMAIL_MATCHES = 50;

export interface AuditReads {
  /** Indexes the reads need (idempotent). The roster store must be initialised. */
  init(): Promise<void>;
  /** Every link (any origin, any status) of the student, by parent id then origin. */
  linksOfStudent(districtId: string, studentSourcedId: string): Promise<GuardianLink[]>;
  /** Every link (any origin, any status) of the parent account, by student then origin. */
  linksOfParent(districtId: string, parentId: string): Promise<GuardianLink[]>;
  /** The accounts with these ids (any status), with their sources, in id order. */
  parentsByIds(districtId: string, ids: readonly string[]): Promise<ParentAccount[]>;
  /** The account with this Unique ID (unique per district), any status. */
  parentByUniqueId(districtId: string, uniqueId: string): Promise<ParentAccount | undefined>;
  /**
   * Accounts (any status) whose normalized email is `emailNormalized`, in id order; at most
   * `MAX_EMAIL_MATCHES`.
   */
  parentsByEmail(districtId: string, emailNormalized: string): Promise<ParentAccount[]>;
  /**
   * One page of the accounts (any status) whose first or last name starts with `prefix`
   * (letter case ignored: ASCII in SQLite, by the `en` collation at strength 2 in MongoDB;
   * accents count), leaving out the ids in `exclude`, ordered by last name, first name, id;
   * `total` counts every match. Index range scans (SQLite: `parent_accounts_given_name_ci`,
   * `parent_accounts_family_name_ci`; MongoDB: `district_givenName_ci`,
   * `district_familyName_ci`), created by `init()`.
   */
  parentsByNamePrefix(
    districtId: string,
    prefix: string,
    page: { exclude: readonly string[]; offset: number; limit: number },
  ): Promise<{ total: number; items: ParentAccount[] }>;
  /** The students with these sourcedIds (any status), in sourcedId order. */
  studentsBySourcedIds(districtId: string, ids: readonly string[]): Promise<StoredStudent[]>;
}
