/**
 * SQLite adapter of the access-code repository, on the roster store's better-sqlite3
 * connection. Tables are created with `CREATE … IF NOT EXISTS` in `init()`; every write runs
 * in `db.transaction(...).immediate()` (write lock taken up front). Roster tables
 * (students, schools, parent_accounts, guardian_links) are only read. Codes issued and
 * revoked are logged (`appendChanges`) inside the transaction that writes them.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { RecordStatus } from '../../mapping/canonical.js';
import { appendChanges } from '../changes/sqlite.js';
import type { NewChange } from '../changes/types.js';
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
import { settle } from '../sqlite/adapter.js';

export const ACCESS_CODE_DDL = `
  CREATE TABLE IF NOT EXISTS access_codes (
    code               TEXT PRIMARY KEY,  -- invariant 8: unique across all districts
    district_id        TEXT NOT NULL,
    student_sourced_id TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('active', 'revoked')),
    created_at         TEXT NOT NULL,
    revoked_at         TEXT,
    reset_id           TEXT
  );
  -- one active code per student; also serves "has an active code" probes and exports
  CREATE UNIQUE INDEX IF NOT EXISTS access_codes_one_active
    ON access_codes (district_id, student_sourced_id) WHERE status = 'active';
  -- a student's code history (active and revoked)
  CREATE INDEX IF NOT EXISTS access_codes_student
    ON access_codes (district_id, student_sourced_id, created_at);

  CREATE TABLE IF NOT EXISTS access_code_settings (
    district_id  TEXT PRIMARY KEY,
    enabled      INTEGER,  -- NULL: use the district file
    default_role TEXT,
    issue_to     TEXT CHECK (issue_to IN ('unlinked', 'all')),
    updated_at   TEXT NOT NULL,
    updated_by   TEXT NOT NULL
  );

  CREATE TABLE IF NOT EXISTS access_code_resets (
    id          TEXT PRIMARY KEY,
    district_id TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL,
    scope       TEXT NOT NULL CHECK (scope IN ('student', 'list', 'district')),
    requested   INTEGER NOT NULL,
    revoked     INTEGER NOT NULL,
    issued      INTEGER NOT NULL
  );
  -- listResets (newest first)
  CREATE INDEX IF NOT EXISTS access_code_resets_district ON access_code_resets (district_id, at);

  CREATE TABLE IF NOT EXISTS access_code_redemptions (
    district_id        TEXT NOT NULL,
    code               TEXT NOT NULL,
    parent_id          TEXT NOT NULL,
    student_sourced_id TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('register', 'add-child')),
    at                 TEXT NOT NULL,
    PRIMARY KEY (district_id, parent_id, student_sourced_id, code)  -- redeeming twice: one row
  );

  CREATE TABLE IF NOT EXISTS access_code_accounts (
    district_id         TEXT NOT NULL,
    parent_id           TEXT NOT NULL,
    username            TEXT,
    username_normalized TEXT,
    created_at          TEXT NOT NULL,
    PRIMARY KEY (district_id, parent_id)
  );
  -- one account per username and district
  CREATE UNIQUE INDEX IF NOT EXISTS access_code_accounts_username
    ON access_code_accounts (district_id, username_normalized) WHERE username_normalized IS NOT NULL;
`;

interface CodeRow {
  code: string;
  district_id: string;
  student_sourced_id: string;
  status: 'active' | 'revoked';
  created_at: string;
  revoked_at: string | null;
  reset_id: string | null;
}

interface ExportRow {
  sourced_id: string;
  unique_id: string;
  given_name: string;
  family_name: string;
  grade: string | null;
  school_sourced_ids: string;
  status: RecordStatus;
  code: string | null;
}

const SQL = {
  needingAll: `SELECT s.sourced_id, EXISTS (SELECT 1 FROM access_codes c
        WHERE c.district_id = s.district_id AND c.student_sourced_id = s.sourced_id
          AND c.status = 'active') AS has_code, 0 AS has_link
      FROM students s
      WHERE s.district_id = @districtId AND s.status = 'active' AND s.sourced_id > @after
      ORDER BY s.sourced_id LIMIT @limit`,
  needingUnlinked: `SELECT s.sourced_id, EXISTS (SELECT 1 FROM access_codes c
        WHERE c.district_id = s.district_id AND c.student_sourced_id = s.sourced_id
          AND c.status = 'active') AS has_code,
      EXISTS (SELECT 1 FROM guardian_links l
        WHERE l.district_id = s.district_id AND l.student_sourced_id = s.sourced_id
          AND l.status = 'active') AS has_link
      FROM students s
      WHERE s.district_id = @districtId AND s.status = 'active' AND s.sourced_id > @after
      ORDER BY s.sourced_id LIMIT @limit`,
  // issueCodes: one statement per page (and per retry of the collided ones), not per student
  holdersOf: `SELECT c.student_sourced_id FROM json_each(@keys) AS k CROSS JOIN access_codes AS c
    ON c.district_id = @districtId AND c.student_sourced_id = k.value AND c.status = 'active'`,
  insertCodes: `INSERT INTO access_codes (code, district_id, student_sourced_id, status, created_at)
    SELECT json_extract(j.value, '$[0]'), @districtId, json_extract(j.value, '$[1]'), 'active', @at
      FROM json_each(@rows) AS j WHERE true
    ON CONFLICT DO NOTHING RETURNING student_sourced_id, code`,
  revoke: `UPDATE access_codes SET status = 'revoked', revoked_at = ?, reset_id = ?
    WHERE district_id = ? AND student_sourced_id = ? AND status = 'active' RETURNING code`,
  withCodes: `SELECT student_sourced_id FROM access_codes
    WHERE district_id = @districtId AND status = 'active' AND student_sourced_id > @after
    ORDER BY student_sourced_id LIMIT @limit`,
  findCode: `SELECT * FROM access_codes WHERE code = ?`,
  codesOfStudent: `SELECT * FROM access_codes WHERE district_id = ? AND student_sourced_id = ?
    ORDER BY created_at DESC, rowid DESC`,
  countActive: `SELECT count(*) FROM access_codes WHERE district_id = ? AND status = 'active'`,
  studentStatus: `SELECT status FROM students WHERE district_id = ? AND sourced_id = ?`,
  byUniqueId: `SELECT s.unique_id, s.sourced_id FROM json_each(@keys) AS k CROSS JOIN students AS s
    ON s.district_id = @districtId AND s.unique_id = k.value ORDER BY s.status = 'active'`,
  exportPage: `SELECT s.sourced_id, s.unique_id, s.given_name, s.family_name, s.grade,
      s.school_sourced_ids, s.status, c.code
    FROM students s LEFT JOIN access_codes c ON c.district_id = s.district_id
      AND c.student_sourced_id = s.sourced_id AND c.status = 'active'
    WHERE s.district_id = @districtId AND s.status = 'active' AND s.sourced_id > @after
    ORDER BY s.sourced_id LIMIT @limit`,
  exportOf: `SELECT s.sourced_id, s.unique_id, s.given_name, s.family_name, s.grade,
      s.school_sourced_ids, s.status, c.code
    FROM json_each(@keys) AS k CROSS JOIN students AS s
      ON s.district_id = @districtId AND s.sourced_id = k.value
    LEFT JOIN access_codes c ON c.district_id = s.district_id
      AND c.student_sourced_id = s.sourced_id AND c.status = 'active'`,
  schools: `SELECT sourced_id, name FROM schools WHERE district_id = ?`,
  parentStatus: `SELECT status FROM parent_accounts WHERE district_id = ? AND id = ?`,
  parentsByEmail: `SELECT id FROM parent_accounts WHERE district_id = ? AND email_normalized = ?
    ORDER BY id`,
  hasLink: `SELECT 1 FROM guardian_links WHERE district_id = ? AND parent_id = ?
    AND student_sourced_id = ? AND status = 'active' LIMIT 1`,
  accountByUsername: `SELECT * FROM access_code_accounts WHERE district_id = ?
    AND username_normalized = ?`,
  accountById: `SELECT * FROM access_code_accounts WHERE district_id = ? AND parent_id = ?`,
  insertAccount: `INSERT INTO access_code_accounts (district_id, parent_id, username,
      username_normalized, created_at) VALUES (?, ?, ?, ?, ?)`,
  insertRedemption: `INSERT INTO access_code_redemptions (district_id, code, parent_id,
      student_sourced_id, kind, at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  redemptions: `SELECT * FROM access_code_redemptions WHERE district_id = ? ORDER BY at, rowid`,
  getSettings: `SELECT * FROM access_code_settings WHERE district_id = ?`,
  putSettings: `INSERT INTO access_code_settings (district_id, enabled, default_role, issue_to,
      updated_at, updated_by) VALUES (@districtId, @enabled, @defaultRole, @issueTo, @updatedAt,
      @updatedBy)
    ON CONFLICT (district_id) DO UPDATE SET enabled = excluded.enabled,
      default_role = excluded.default_role, issue_to = excluded.issue_to,
      updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
  insertReset: `INSERT INTO access_code_resets (id, district_id, actor, at, scope, requested,
      revoked, issued) VALUES (@id, @districtId, @actor, @at, @scope, @requested, @revoked,
      @issued) ON CONFLICT (id) DO NOTHING`,
  listResets: `SELECT * FROM access_code_resets WHERE district_id = ?
    ORDER BY at DESC, rowid DESC LIMIT ?`,
} as const;

function toCode(r: CodeRow): AccessCodeRecord {
  const out: AccessCodeRecord = {
    code: r.code,
    districtId: r.district_id,
    studentSourcedId: r.student_sourced_id,
    status: r.status,
    createdAt: r.created_at,
  };
  if (r.revoked_at !== null) out.revokedAt = r.revoked_at;
  if (r.reset_id !== null) out.resetId = r.reset_id;
  return out;
}

function toExportRow(r: ExportRow): StudentCodeRow {
  const out: StudentCodeRow = {
    sourcedId: r.sourced_id,
    uniqueId: r.unique_id,
    givenName: r.given_name,
    familyName: r.family_name,
    schoolSourcedIds: (JSON.parse(r.school_sourced_ids) as unknown[]).map(String),
    status: r.status,
  };
  if (r.grade !== null) out.grade = r.grade;
  if (r.code !== null) out.code = r.code;
  return out;
}

interface AccountRow {
  district_id: string;
  parent_id: string;
  username: string | null;
  username_normalized: string | null;
  created_at: string;
}

function toAccount(r: AccountRow): AccessCodeAccount {
  const a: AccessCodeAccount = {
    districtId: r.district_id,
    parentId: r.parent_id,
    createdAt: r.created_at,
  };
  if (r.username !== null) a.username = r.username;
  if (r.username_normalized !== null) a.usernameNormalized = r.username_normalized;
  return a;
}

function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** `AccessCodeRepository` on SQLite. */
export class SqliteAccessCodeRepository implements AccessCodeRepository {
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly db: Database) {}

  init(): Promise<void> {
    return this.run(() => {
      this.db.exec(ACCESS_CODE_DDL);
    });
  }

  /** Run synchronous better-sqlite3 code, turning throws into rejections. */
  private run<T>(fn: () => T): Promise<T> {
    return settle(fn);
  }

  private stmt(name: keyof typeof SQL): Statement {
    let s = this.statements.get(name);
    if (!s) {
      s = this.db.prepare(SQL[name]);
      this.statements.set(name, s);
    }
    return s;
  }

  studentsNeedingCodes(
    districtId: string,
    opts: { includeLinked: boolean; after?: string | undefined; limit: number },
  ): Promise<IdPage> {
    return this.run(() => {
      const rows = this.stmt(opts.includeLinked ? 'needingAll' : 'needingUnlinked').all({
        districtId,
        after: opts.after ?? '',
        limit: Math.max(1, opts.limit),
      }) as { sourced_id: string; has_code: number; has_link: number }[];
      const ids = rows.filter(r => r.has_code === 0 && r.has_link === 0).map(r => r.sourced_id);
      const last = rows[rows.length - 1];
      return {
        ids,
        next: rows.length < Math.max(1, opts.limit) ? undefined : last?.sourced_id,
      };
    });
  }

  issueCodes(
    districtId: string,
    studentSourcedIds: string[],
    opts: IssueOptions,
  ): Promise<{ issued: { studentSourcedId: string; code: string }[]; skipped: string[] }> {
    return this.run(() => {
      const max = opts.maxAttempts ?? 8;
      const holdersOf = this.stmt('holdersOf').pluck();
      const insert = this.stmt('insertCodes').raw();
      const all = [...new Set(studentSourcedIds)];
      const issued: { studentSourcedId: string; code: string }[] = [];
      const skipped: string[] = [];
      this.db
        .transaction(() => {
          issued.length = 0;
          skipped.length = 0;
          // One read of the page's holders and one multi-row insert; a code that collides
          // (DO NOTHING on the code's unique index: the holders check rules out the
          // one-active-code index inside this transaction) is retried with a new code.
          const holding = new Set(
            holdersOf.all({ districtId, keys: JSON.stringify(all) }) as string[],
          );
          const codeOf = new Map<string, string>();
          let pending = all.filter(sid => !holding.has(sid));
          for (let attempt = 1; attempt <= max && pending.length > 0; attempt++) {
            const rows = pending.map(sid => [opts.generate(), sid]);
            const done = insert.all({
              districtId,
              at: opts.at,
              rows: JSON.stringify(rows),
            }) as [string, string][];
            for (const [sid, code] of done) codeOf.set(sid, code);
            pending = pending.filter(sid => !codeOf.has(sid));
          }
          if (pending[0] !== undefined) throw new AccessCodeCollisionError(pending[0], max);
          for (const sid of all) {
            const code = codeOf.get(sid);
            if (code === undefined) skipped.push(sid);
            else issued.push({ studentSourcedId: sid, code });
          }
          appendChanges(
            this.db,
            districtId,
            opts.change,
            issued.map(c => codeIssueChange(c.code, c.studentSourcedId)),
          );
        })
        .immediate();
      return { issued, skipped };
    });
  }

  revokeCodes(
    districtId: string,
    studentSourcedIds: string[],
    opts: RevokeOptions,
  ): Promise<number> {
    return this.run(() => {
      const revoke = this.stmt('revoke').pluck();
      const n = this.db
        .transaction(() => {
          const entries: NewChange[] = [];
          for (const sid of new Set(studentSourcedIds))
            for (const code of revoke.all(opts.at, opts.resetId, districtId, sid) as string[])
              entries.push(codeRevokeChange(code, sid));
          appendChanges(this.db, districtId, opts.change, entries);
          return entries.length;
        })
        .immediate();
      return n;
    });
  }

  studentsWithActiveCodes(
    districtId: string,
    opts: { after?: string | undefined; limit: number },
  ): Promise<IdPage> {
    return this.run(() => {
      const limit = Math.max(1, opts.limit);
      const ids = this.stmt('withCodes')
        .pluck()
        .all({ districtId, after: opts.after ?? '', limit })
        .map(String);
      return { ids, next: ids.length < limit ? undefined : ids[ids.length - 1] };
    });
  }

  findCode(code: string): Promise<AccessCodeRecord | undefined> {
    return this.run(() => {
      const row = this.stmt('findCode').get(code) as CodeRow | undefined;
      return row && toCode(row);
    });
  }

  codesOfStudent(districtId: string, studentSourcedId: string): Promise<AccessCodeRecord[]> {
    return this.run(() => {
      return (this.stmt('codesOfStudent').all(districtId, studentSourcedId) as CodeRow[]).map(
        toCode,
      );
    });
  }

  countActiveCodes(districtId: string): Promise<number> {
    return this.run(() => {
      return this.stmt('countActive').pluck().get(districtId) as number;
    });
  }

  studentStatus(districtId: string, sourcedId: string): Promise<RecordStatus | undefined> {
    return this.run(() => {
      return this.stmt('studentStatus').pluck().get(districtId, sourcedId) as
        RecordStatus | undefined;
    });
  }

  studentIdsByUniqueId(districtId: string, uniqueIds: string[]): Promise<Map<string, string>> {
    return this.run(() => {
      const rows = this.stmt('byUniqueId').all({
        districtId,
        keys: JSON.stringify([...new Set(uniqueIds)]),
      }) as { unique_id: string; sourced_id: string }[];
      // Active students sort last, so an active record wins over an inactive one.
      return new Map(rows.map(r => [r.unique_id, r.sourced_id]));
    });
  }

  studentCodeRows(
    districtId: string,
    opts: { after?: string | undefined; limit: number },
  ): Promise<StudentCodeRow[]> {
    return this.run(() => {
      const rows = this.stmt('exportPage').all({
        districtId,
        after: opts.after ?? '',
        limit: Math.max(1, opts.limit),
      }) as ExportRow[];
      return rows.map(toExportRow);
    });
  }

  studentCodeRowsOf(districtId: string, studentSourcedIds: string[]): Promise<StudentCodeRow[]> {
    return this.run(() => {
      if (studentSourcedIds.length === 0) return [];
      const rows = this.stmt('exportOf').all({
        districtId,
        keys: JSON.stringify([...new Set(studentSourcedIds)]),
      }) as ExportRow[];
      return rows.map(toExportRow);
    });
  }

  schoolNames(districtId: string): Promise<Map<string, string>> {
    return this.run(() => {
      const rows = this.stmt('schools').all(districtId) as { sourced_id: string; name: string }[];
      return new Map(rows.map(r => [r.sourced_id, r.name]));
    });
  }

  parentStatus(districtId: string, parentId: string): Promise<RecordStatus | undefined> {
    return this.run(() => {
      return this.stmt('parentStatus').pluck().get(districtId, parentId) as
        RecordStatus | undefined;
    });
  }

  parentIdsByEmail(districtId: string, emailNormalized: string): Promise<string[]> {
    return this.run(() => {
      return this.stmt('parentsByEmail').pluck().all(districtId, emailNormalized).map(String);
    });
  }

  hasActiveLink(districtId: string, parentId: string, studentSourcedId: string): Promise<boolean> {
    return this.run(() => {
      return this.stmt('hasLink').get(districtId, parentId, studentSourcedId) !== undefined;
    });
  }

  accountByUsername(
    districtId: string,
    usernameNormalized: string,
  ): Promise<AccessCodeAccount | undefined> {
    return this.run(() => {
      const row = this.stmt('accountByUsername').get(districtId, usernameNormalized) as
        AccountRow | undefined;
      return row && toAccount(row);
    });
  }

  recordAccount(account: AccessCodeAccount): Promise<void> {
    return this.run(() => {
      this.db
        .transaction(() => {
          const existing = this.stmt('accountById').get(account.districtId, account.parentId) as
            AccountRow | undefined;
          if (existing) {
            if ((existing.username_normalized ?? undefined) !== account.usernameNormalized)
              throw new UsernameTakenError(account.districtId);
            return;
          }
          try {
            this.stmt('insertAccount').run(
              account.districtId,
              account.parentId,
              account.username ?? null,
              account.usernameNormalized ?? null,
              account.createdAt,
            );
          } catch (err) {
            if (isUniqueViolation(err)) throw new UsernameTakenError(account.districtId);
            throw err;
          }
        })
        .immediate();
      return;
    });
  }

  recordRedemption(r: AccessCodeRedemption): Promise<void> {
    return this.run(() => {
      this.db
        .transaction(() =>
          this.stmt('insertRedemption').run(
            r.districtId,
            r.code,
            r.parentId,
            r.studentSourcedId,
            r.kind,
            r.at,
          ),
        )
        .immediate();
      return;
    });
  }

  listRedemptions(districtId: string): Promise<AccessCodeRedemption[]> {
    return this.run(() => {
      const rows = this.stmt('redemptions').all(districtId) as {
        district_id: string;
        code: string;
        parent_id: string;
        student_sourced_id: string;
        kind: AccessCodeRedemption['kind'];
        at: string;
      }[];
      return rows.map(r => ({
        districtId: r.district_id,
        code: r.code,
        parentId: r.parent_id,
        studentSourcedId: r.student_sourced_id,
        kind: r.kind,
        at: r.at,
      }));
    });
  }

  getSettingsOverride(districtId: string): Promise<AccessCodeSettingsOverride | undefined> {
    return this.run(() => {
      const r = this.stmt('getSettings').get(districtId) as
        | {
            district_id: string;
            enabled: number | null;
            default_role: string | null;
            issue_to: 'unlinked' | 'all' | null;
            updated_at: string;
            updated_by: string;
          }
        | undefined;
      if (!r) return;
      const o: AccessCodeSettingsOverride = {
        districtId: r.district_id,
        updatedAt: r.updated_at,
        updatedBy: r.updated_by,
      };
      if (r.enabled !== null) o.enabled = r.enabled === 1;
      if (r.default_role !== null) o.defaultRole = r.default_role;
      if (r.issue_to !== null) o.issueTo = r.issue_to;
      return o;
    });
  }

  putSettingsOverride(o: AccessCodeSettingsOverride): Promise<void> {
    return this.run(() => {
      this.db
        .transaction(() =>
          this.stmt('putSettings').run({
            districtId: o.districtId,
            enabled: o.enabled === undefined ? null : o.enabled ? 1 : 0,
            defaultRole: o.defaultRole ?? null,
            issueTo: o.issueTo ?? null,
            updatedAt: o.updatedAt,
            updatedBy: o.updatedBy,
          }),
        )
        .immediate();
      return;
    });
  }

  recordReset(r: AccessCodeReset): Promise<void> {
    return this.run(() => {
      this.db.transaction(() => this.stmt('insertReset').run({ ...r })).immediate();
      return;
    });
  }

  listResets(districtId: string, limit: number): Promise<AccessCodeReset[]> {
    return this.run(() => {
      const rows = this.stmt('listResets').all(districtId, Math.max(0, limit)) as {
        id: string;
        district_id: string;
        actor: string;
        at: string;
        scope: AccessCodeReset['scope'];
        requested: number;
        revoked: number;
        issued: number;
      }[];
      return rows.map(r => ({
        id: r.id,
        districtId: r.district_id,
        actor: r.actor,
        at: r.at,
        scope: r.scope,
        requested: r.requested,
        revoked: r.revoked,
        issued: r.issued,
      }));
    });
  }
}
