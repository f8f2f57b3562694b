/**
 * SQLite adapter of the audit's roster reads (`./types.ts`), on the roster store's
 * connection. Every read is an index probe:
 * - links of a student: `guardian_links_student (district_id, student_sourced_id)`;
 * - links of a parent: the primary key `(district_id, parent_id, student_sourced_id, origin)`;
 * - accounts by id / Unique ID / normalized email: the primary key, `parent_accounts_unique_id`,
 *   `parent_accounts_email`; their sources: `parent_sources_parent`;
 * - students by sourcedId: the primary key (key lists bound as one JSON array, `json_each`).
 * It creates no table and no index of its own.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { GuardianRole, RecordStatus } from '../../mapping/canonical.js';
import type {
  AccountOrigin,
  GuardianLink,
  LinkOrigin,
  ParentAccount,
  StoredStudent,
} from '../types.js';
import { MAX_EMAIL_MATCHES, type AuditReads } from './types.js';

interface LinkRow {
  district_id: string;
  parent_id: string;
  student_sourced_id: string;
  origin: string;
  relationship: string | null;
  status: string;
}

interface ParentRow {
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
  locked_fields: string;
}

interface StudentRow {
  district_id: string;
  sourced_id: string;
  unique_id: string;
  given_name: string;
  family_name: string;
  email: string | null;
  school_sourced_ids: string;
  grade: string | null;
  status: string;
}

const SQL = {
  linksOfStudent: `SELECT * FROM guardian_links WHERE district_id = ? AND student_sourced_id = ?
    ORDER BY parent_id, origin`,
  linksOfParent: `SELECT * FROM guardian_links WHERE district_id = ? AND parent_id = ?
    ORDER BY student_sourced_id, origin`,
  parentsByIds: `SELECT p.* FROM json_each(?) AS k CROSS JOIN parent_accounts AS p
    ON p.district_id = ? AND p.id = k.value ORDER BY p.id`,
  parentByUniqueId: `SELECT * FROM parent_accounts WHERE district_id = ? AND unique_id = ?`,
  parentsByEmail: `SELECT * FROM parent_accounts WHERE district_id = ? AND email_normalized = ?
    ORDER BY id LIMIT ${MAX_EMAIL_MATCHES}`,
  sources: `SELECT s.parent_id, s.connector, s.sourced_id
    FROM json_each(?) AS k CROSS JOIN parent_sources AS s
    ON s.district_id = ? AND s.parent_id = k.value ORDER BY s.rowid`,
  students: `SELECT s.* FROM json_each(?) AS k CROSS JOIN students AS s
    ON s.district_id = ? AND s.sourced_id = k.value ORDER BY s.sourced_id`,
} as const;

function jsonList(text: string): string[] {
  try {
    const v: unknown = JSON.parse(text);
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  } catch {
    return [];
  }
}

function toLink(r: LinkRow): GuardianLink {
  const l: GuardianLink = {
    districtId: r.district_id,
    parentId: r.parent_id,
    studentSourcedId: r.student_sourced_id,
    origin: r.origin as LinkOrigin,
    status: r.status as RecordStatus,
  };
  if (r.relationship !== null) l.relationship = r.relationship;
  return l;
}

function toStudent(r: StudentRow): StoredStudent {
  const s: StoredStudent = {
    districtId: r.district_id,
    sourcedId: r.sourced_id,
    uniqueId: r.unique_id,
    givenName: r.given_name,
    familyName: r.family_name,
    schoolSourcedIds: jsonList(r.school_sourced_ids),
    status: r.status as RecordStatus,
  };
  if (r.email !== null) s.email = r.email;
  if (r.grade !== null) s.grade = r.grade;
  return s;
}

/** `AuditReads` on the roster store's SQLite database. */
export class SqliteAuditReads implements AuditReads {
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly db: Database) {}

  init(): Promise<void> {
    return this.run(() => {
      const found = this.db
        .prepare(
          `SELECT count(*) FROM sqlite_master WHERE type = 'table'
           AND name IN ('guardian_links', 'parent_accounts', 'parent_sources', 'students')`,
        )
        .pluck()
        .get() as number;
      if (found !== 4) throw new Error('the roster tables are missing: initialise the store first');
    });
  }

  linksOfStudent(districtId: string, studentSourcedId: string): Promise<GuardianLink[]> {
    return this.run(() =>
      (this.stmt(SQL.linksOfStudent).all(districtId, studentSourcedId) as LinkRow[]).map(toLink),
    );
  }

  linksOfParent(districtId: string, parentId: string): Promise<GuardianLink[]> {
    return this.run(() =>
      (this.stmt(SQL.linksOfParent).all(districtId, parentId) as LinkRow[]).map(toLink),
    );
  }

  parentsByIds(districtId: string, ids: readonly string[]): Promise<ParentAccount[]> {
    return this.run(() => {
      const unique = [...new Set(ids)];
      if (unique.length === 0) return [];
      return this.withSources(
        districtId,
        this.stmt(SQL.parentsByIds).all(JSON.stringify(unique), districtId) as ParentRow[],
      );
    });
  }

  parentByUniqueId(districtId: string, uniqueId: string): Promise<ParentAccount | undefined> {
    return this.run(() => {
      const row = this.stmt(SQL.parentByUniqueId).get(districtId, uniqueId) as
        ParentRow | undefined;
      return row ? this.withSources(districtId, [row])[0] : undefined;
    });
  }

  parentsByEmail(districtId: string, emailNormalized: string): Promise<ParentAccount[]> {
    return this.run(() =>
      this.withSources(
        districtId,
        this.stmt(SQL.parentsByEmail).all(districtId, emailNormalized) as ParentRow[],
      ),
    );
  }

  studentsBySourcedIds(districtId: string, ids: readonly string[]): Promise<StoredStudent[]> {
    return this.run(() => {
      const unique = [...new Set(ids)];
      if (unique.length === 0) return [];
      return (this.stmt(SQL.students).all(JSON.stringify(unique), districtId) as StudentRow[]).map(
        toStudent,
      );
    });
  }

  /** Accounts from rows, with their sources (one query for all of them). */
  private withSources(districtId: string, rows: ParentRow[]): ParentAccount[] {
    if (rows.length === 0) return [];
    const sources = this.stmt(SQL.sources).all(JSON.stringify(rows.map(r => r.id)), districtId) as {
      parent_id: string;
      connector: string;
      sourced_id: string;
    }[];
    return rows.map(r => {
      const p: ParentAccount = {
        districtId: r.district_id,
        id: r.id,
        givenName: r.given_name,
        familyName: r.family_name,
        role: r.role,
        status: r.status as RecordStatus,
        origin: r.origin as AccountOrigin,
        sources: sources
          .filter(s => s.parent_id === r.id)
          .map(s => ({ connector: s.connector, sourcedId: s.sourced_id })),
        lockedFields: jsonList(r.locked_fields),
      };
      if (r.unique_id !== null) p.uniqueId = r.unique_id;
      if (r.email !== null) p.email = r.email;
      if (r.email_normalized !== null) p.emailNormalized = r.email_normalized;
      if (r.phone !== null) p.phone = r.phone;
      if (r.sis_role !== null) p.sisRole = r.sis_role as GuardianRole;
      return p;
    });
  }

  private stmt(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private run<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }
}
