/**
 * Rows of the SQLite roster tables (`students`, `parent_accounts`, `parent_sources`,
 * `guardian_links`, see `MIGRATIONS` in `./store.ts`) and their mapping to the port's plain
 * types. One copy for every adapter that reads these tables on the roster store's connection:
 * the roster store, the imports repository, the student lookup and the audit reads.
 *
 * Optional port fields are set only when their column is not NULL (they stay absent, never
 * `undefined`). JSON list columns are parsed strictly: a malformed value throws instead of
 * reading as an empty list, so a corrupt row is reported rather than silently losing data.
 */
import type { GuardianRole, RecordStatus } from '../../mapping/canonical.js';
import type {
  AccountOrigin,
  GuardianLink,
  LinkOrigin,
  ParentAccount,
  ParentSource,
  StoredStudent,
} from '../types.js';

/** A row of `students` (`SELECT *`). */
export interface StudentRow {
  district_id: string;
  sourced_id: string;
  unique_id: string;
  given_name: string;
  family_name: string;
  email: string | null;
  /** JSON array of school sourcedIds. */
  school_sourced_ids: string;
  grade: string | null;
  status: string;
}

/** A row of `parent_accounts` (`SELECT *`); its sources are rows of `parent_sources`. */
export interface ParentRow {
  district_id: string;
  id: string;
  unique_id: string | null;
  given_name: string;
  family_name: string;
  email: string | null;
  email_normalized: string | null;
  phone: string | null;
  role: string;
  sis_role: string | null;
  status: string;
  origin: string;
  /** JSON array of field names. */
  locked_fields: string;
}

/** The columns of `parent_sources` that make a `ParentSource` of account `parent_id`. */
export interface SourceRow {
  parent_id: string;
  connector: string;
  sourced_id: string;
}

/** A row of `guardian_links` (`SELECT *`). */
export interface LinkRow {
  district_id: string;
  parent_id: string;
  student_sourced_id: string;
  origin: string;
  relationship: string | null;
  status: string;
}

/**
 * Parse a JSON column; `fallback` for NULL. Malformed JSON throws (a corrupt row is an error,
 * not an empty value).
 */
export function parseJson<T>(text: string | null, fallback: T): T {
  return text === null ? fallback : (JSON.parse(text) as T);
}

/** Put `value` on `target[key]` only when it is not null (optional fields stay absent). */
export function setOpt<T extends object, K extends keyof T>(
  target: T,
  key: K,
  value: T[K] | null,
): void {
  if (value !== null && value !== undefined) target[key] = value;
}

/** Map a `students` row to `StoredStudent`. */
export function toStudent(r: StudentRow): StoredStudent {
  const s: StoredStudent = {
    districtId: r.district_id,
    sourcedId: r.sourced_id,
    uniqueId: r.unique_id,
    givenName: r.given_name,
    familyName: r.family_name,
    schoolSourcedIds: parseJson<string[]>(r.school_sourced_ids, []),
    status: r.status as RecordStatus,
  };
  setOpt(s, 'email', r.email);
  setOpt(s, 'grade', r.grade);
  return s;
}

/** Map a `parent_accounts` row and its sources (see `groupSources`) to `ParentAccount`. */
export function toParent(r: ParentRow, sources: ParentSource[]): ParentAccount {
  const p: ParentAccount = {
    districtId: r.district_id,
    id: r.id,
    givenName: r.given_name,
    familyName: r.family_name,
    role: r.role,
    status: r.status as RecordStatus,
    origin: r.origin as AccountOrigin,
    sources,
    lockedFields: parseJson<string[]>(r.locked_fields, []),
  };
  setOpt(p, 'uniqueId', r.unique_id);
  setOpt(p, 'email', r.email);
  setOpt(p, 'emailNormalized', r.email_normalized);
  setOpt(p, 'phone', r.phone);
  setOpt(p, 'sisRole', r.sis_role as GuardianRole | null);
  return p;
}

/** Map a `guardian_links` row to `GuardianLink`. */
export function toLink(r: LinkRow): GuardianLink {
  const l: GuardianLink = {
    districtId: r.district_id,
    parentId: r.parent_id,
    studentSourcedId: r.student_sourced_id,
    origin: r.origin as LinkOrigin,
    status: r.status as RecordStatus,
  };
  setOpt(l, 'relationship', r.relationship);
  return l;
}

/** Sources by account id, each account's in the order of `rows`. */
export function groupSources(rows: Iterable<SourceRow>): Map<string, ParentSource[]> {
  const map = new Map<string, ParentSource[]>();
  for (const r of rows) {
    let list = map.get(r.parent_id);
    if (!list) map.set(r.parent_id, (list = []));
    list.push({ connector: r.connector, sourcedId: r.sourced_id });
  }
  return map;
}
