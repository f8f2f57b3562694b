/**
 * SQLite adapter of the audit's roster reads (`./types.ts`), on the roster store's
 * connection. Every read is an index probe:
 * - links of a student: `guardian_links_student (district_id, student_sourced_id)`;
 * - links of a parent: the primary key `(district_id, parent_id, student_sourced_id, origin)`;
 * - accounts by id / Unique ID / normalized email: the primary key, `parent_accounts_unique_id`,
 *   `parent_accounts_sis_email` (which serves every email lookup since migration 11); their
 *   sources: `parent_sources_parent`;
 * - students by sourcedId: the primary key (key lists bound as one JSON array, `json_each`);
 * - accounts by name prefix: two indexes of its own, `parent_accounts_given_name_ci` and
 *   `parent_accounts_family_name_ci` (`COLLATE NOCASE`), created by `init()` (idempotent);
 *   the search is the union of two range scans.
 */
import type { Database, Statement } from 'better-sqlite3';
import { settle, StatementCache } from '../sqlite/adapter.js';
import {
  groupSources,
  toLink,
  toParent,
  toStudent,
  type LinkRow,
  type ParentRow,
  type SourceRow,
  type StudentRow,
} from '../sqlite/rows.js';
import type { GuardianLink, ParentAccount, StoredStudent } from '../types.js';
import { MAX_EMAIL_MATCHES, type AuditReads } from './types.js';

/** Ids of the accounts whose first or last name is in [lo, hi) (NOCASE), minus `exclude`. */
const NAME_HITS = `WITH hits AS (
    SELECT id FROM parent_accounts WHERE district_id = @district
      AND given_name >= @lo COLLATE NOCASE AND given_name < @hi COLLATE NOCASE
    UNION
    SELECT id FROM parent_accounts WHERE district_id = @district
      AND family_name >= @lo COLLATE NOCASE AND family_name < @hi COLLATE NOCASE
    EXCEPT SELECT value FROM json_each(@exclude))`;

/** Highest code point: every text starting with `p` sorts below `p + MAX`. */
const MAX = '\u{10ffff}';

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
  parentsByNamePrefix: `${NAME_HITS} SELECT p.* FROM hits CROSS JOIN parent_accounts AS p
    ON p.district_id = @district AND p.id = hits.id
    ORDER BY p.family_name COLLATE NOCASE, p.given_name COLLATE NOCASE, p.id
    LIMIT @limit OFFSET @offset`,
  countParentsByNamePrefix: `${NAME_HITS} SELECT count(*) FROM hits`,
  students: `SELECT s.* FROM json_each(?) AS k CROSS JOIN students AS s
    ON s.district_id = ? AND s.sourced_id = k.value ORDER BY s.sourced_id`,
} as const;

/** `AuditReads` on the roster store's SQLite database. */
export class SqliteAuditReads implements AuditReads {
  private readonly statements: StatementCache;

  constructor(private readonly db: Database) {
    this.statements = new StatementCache(db);
  }

  init(): Promise<void> {
    return settle(() => {
      const found = this.db
        .prepare(
          `SELECT count(*) FROM sqlite_master WHERE type = 'table'
           AND name IN ('guardian_links', 'parent_accounts', 'parent_sources', 'students')`,
        )
        .pluck()
        .get() as number;
      if (found !== 4) throw new Error('the roster tables are missing: initialise the store first');
      this.db.exec(`
        CREATE INDEX IF NOT EXISTS parent_accounts_given_name_ci
          ON parent_accounts (district_id, given_name COLLATE NOCASE);
        CREATE INDEX IF NOT EXISTS parent_accounts_family_name_ci
          ON parent_accounts (district_id, family_name COLLATE NOCASE);`);
    });
  }

  linksOfStudent(districtId: string, studentSourcedId: string): Promise<GuardianLink[]> {
    return settle(() =>
      (this.stmt(SQL.linksOfStudent).all(districtId, studentSourcedId) as LinkRow[]).map(toLink),
    );
  }

  linksOfParent(districtId: string, parentId: string): Promise<GuardianLink[]> {
    return settle(() =>
      (this.stmt(SQL.linksOfParent).all(districtId, parentId) as LinkRow[]).map(toLink),
    );
  }

  parentsByIds(districtId: string, ids: readonly string[]): Promise<ParentAccount[]> {
    return settle(() => {
      const unique = [...new Set(ids)];
      if (unique.length === 0) return [];
      return this.withSources(
        districtId,
        this.stmt(SQL.parentsByIds).all(JSON.stringify(unique), districtId) as ParentRow[],
      );
    });
  }

  parentByUniqueId(districtId: string, uniqueId: string): Promise<ParentAccount | undefined> {
    return settle(() => {
      const row = this.stmt(SQL.parentByUniqueId).get(districtId, uniqueId) as
        ParentRow | undefined;
      return row ? this.withSources(districtId, [row])[0] : undefined;
    });
  }

  parentsByEmail(districtId: string, emailNormalized: string): Promise<ParentAccount[]> {
    return settle(() =>
      this.withSources(
        districtId,
        this.stmt(SQL.parentsByEmail).all(districtId, emailNormalized) as ParentRow[],
      ),
    );
  }

  parentsByNamePrefix(
    districtId: string,
    prefix: string,
    page: { exclude: readonly string[]; offset: number; limit: number },
  ): Promise<{ total: number; items: ParentAccount[] }> {
    return settle(() => {
      const args = {
        district: districtId,
        lo: prefix,
        hi: prefix + MAX,
        exclude: JSON.stringify([...page.exclude]),
      };
      const total = this.stmt(SQL.countParentsByNamePrefix).pluck().get(args) as number;
      const rows = this.stmt(SQL.parentsByNamePrefix).all({
        ...args,
        limit: page.limit,
        offset: page.offset,
      }) as ParentRow[];
      return { total, items: this.withSources(districtId, rows) };
    });
  }

  studentsBySourcedIds(districtId: string, ids: readonly string[]): Promise<StoredStudent[]> {
    return settle(() => {
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
    const sources = groupSources(
      this.stmt(SQL.sources).all(JSON.stringify(rows.map(r => r.id)), districtId) as SourceRow[],
    );
    return rows.map(r => toParent(r, sources.get(r.id) ?? []));
  }

  private stmt(sql: string): Statement {
    return this.statements.get(sql);
  }
}
