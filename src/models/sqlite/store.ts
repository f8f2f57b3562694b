/**
 * SQLite adapter of the `RosterStore` port (better-sqlite3 12): the embedded default store.
 *
 * - WAL mode, `busy_timeout`, `synchronous=NORMAL`, bounded WAL (`wal_autocheckpoint` +
 *   `journal_size_limit`), foreign keys on.
 * - Every write runs in `db.transaction(...).immediate()` (BEGIN IMMEDIATE): the write lock is
 *   taken up front, so a chunk's load → plan → write cannot interleave with another writer.
 * - All roster writes are change-detecting upserts/updates (`... WHERE old IS NOT new`), so
 *   re-applying a plan writes zero rows and `writeCount()` is exactly the rows changed.
 * - Large key lists are bound as one JSON array parameter and expanded with `json_each(?)`.
 * - Schema version lives in `PRAGMA user_version`; `MIGRATIONS[i]` upgrades to version i+1.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreConflictError } from '../../errors.js';
import {
  chunkChanges,
  linkChange,
  linkDeactivateChange,
  parentCreateChange,
  statusChange,
} from '../changes/derive.js';
import { appendChanges, AUDIT_INDEX_MIGRATION, CHANGE_LOG_DDL } from '../changes/sqlite.js';
import { SYSTEM_CHANGE, type ChangeContext, type NewChange } from '../changes/types.js';
import { codeMoveChange } from '../access-codes/changes.js';
import { allIds, deferredPlan } from '../shared.js';
import {
  applyRunPatch,
  assertPlanInDistrict,
  heldSlice,
  heldSummary,
  orphansOf,
  isActiveRunStatus,
  ownerlessParentIds,
  parentUpdateEntries,
  type ParentUpdateField,
} from '../shared.js';
import {
  ACTIVE_ID_PAGE,
  ActiveRunExistsError,
  type ActiveIdKind,
  type ChunkKeys,
  type ChunkPlan,
  type ChunkPlanner,
  type NarrowedChunk,
  type UnchangedCheck,
  type ChunkState,
  type Deactivations,
  type GuardianLink,
  HELD_PAGE_SIZE,
  type HeldKind,
  type HeldSummary,
  type ParentAccount,
  type ParentSource,
  type ParentUpdate,
  type Reject,
  type RunConfig,
  type RunWait,
  type RejectFilter,
  type RosterStore,
  type StoreTestHooks,
  IDENTITY_DUPLICATES_LISTED,
  type IdentityIndexStatus,
  type RunDeferredStudent,
  type StoreHandle,
  type StoreIndex,
  byCollectionAndName,
  type RunStatus,
  type StoredStudent,
  type SyncRun,
  type SyncRunPatch,
} from '../types.js';
import {
  groupSources,
  parseJson,
  setOpt,
  toLink,
  toParent,
  toStudent,
  type LinkRow,
  type ParentRow,
  type SourceRow,
  type StudentRow,
} from './rows.js';
import { settle } from './adapter.js';

/** Ordered schema migrations; index i brings the database to `user_version` i+1. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE schools (
    district_id TEXT NOT NULL,
    sourced_id  TEXT NOT NULL,
    name        TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
  );

  CREATE TABLE students (
    district_id        TEXT NOT NULL,
    sourced_id         TEXT NOT NULL,
    unique_id          TEXT NOT NULL,
    given_name         TEXT NOT NULL,
    family_name        TEXT NOT NULL,
    email              TEXT,
    school_sourced_ids TEXT NOT NULL DEFAULT '[]', -- JSON array
    grade              TEXT,
    status             TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    PRIMARY KEY (district_id, sourced_id)          -- chunk loads, upserts
  );
  -- countActive (replaced by students_active_ids in migration 9)
  CREATE INDEX students_district_status ON students (district_id, status);

  CREATE TABLE parent_accounts (
    district_id      TEXT NOT NULL,
    id               TEXT NOT NULL,
    unique_id        TEXT,
    given_name       TEXT NOT NULL,
    family_name      TEXT NOT NULL,
    email            TEXT,
    email_normalized TEXT,
    phone            TEXT,
    role             TEXT NOT NULL,
    sis_role         TEXT CHECK (sis_role IN ('parent', 'guardian', 'relative')),
    status           TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    origin           TEXT NOT NULL CHECK (origin IN ('sis', 'import', 'access-code', 'manual')),
    locked_fields    TEXT NOT NULL DEFAULT '[]', -- JSON array
    PRIMARY KEY (district_id, id)
  );
  -- identity match by uniqueId (invariant 7); one account per uniqueId
  CREATE UNIQUE INDEX parent_accounts_unique_id ON parent_accounts (district_id, unique_id)
    WHERE unique_id IS NOT NULL;
  -- identity match by normalized email (not unique: ambiguity is reported, not prevented)
  CREATE INDEX parent_accounts_email ON parent_accounts (district_id, email_normalized)
    WHERE email_normalized IS NOT NULL;
  -- countActive (replaced by parent_accounts_active_ids in migration 9)
  CREATE INDEX parent_accounts_status_origin ON parent_accounts (district_id, status, origin);

  CREATE TABLE parent_sources (
    district_id TEXT NOT NULL,
    connector   TEXT NOT NULL,
    sourced_id  TEXT NOT NULL,
    parent_id   TEXT NOT NULL,
    PRIMARY KEY (district_id, connector, sourced_id), -- identity match by source; one owner
    FOREIGN KEY (district_id, parent_id) REFERENCES parent_accounts (district_id, id)
  );
  -- sources of loaded accounts
  CREATE INDEX parent_sources_parent ON parent_sources (district_id, parent_id);

  CREATE TABLE guardian_links (
    district_id        TEXT NOT NULL,
    parent_id          TEXT NOT NULL,
    student_sourced_id TEXT NOT NULL,
    origin             TEXT NOT NULL CHECK (origin IN ('sis', 'import', 'access-code', 'manual')),
    relationship       TEXT,
    status             TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    PRIMARY KEY (district_id, parent_id, student_sourced_id, origin)
  );
  -- all links of a chunk's students
  CREATE INDEX guardian_links_student ON guardian_links (district_id, student_sourced_id);

  CREATE TABLE sync_runs (
    id           TEXT PRIMARY KEY,
    district_id  TEXT NOT NULL,
    connector    TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN
                   ('queued', 'running', 'succeeded', 'failed', 'needs-approval', 'discarded')),
    dry_run      INTEGER NOT NULL,
    run_trigger  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT,
    counts       TEXT NOT NULL DEFAULT '{}', -- JSON
    reject_count INTEGER NOT NULL DEFAULT 0,
    timings      TEXT NOT NULL DEFAULT '{}', -- JSON
    held         TEXT,                       -- JSON Deactivations
    error        TEXT
  );
  -- invariant 3: one queued/running run per district
  CREATE UNIQUE INDEX sync_runs_one_active ON sync_runs (district_id)
    WHERE status IN ('queued', 'running');
  -- listRuns (newest first)
  CREATE INDEX sync_runs_district_created ON sync_runs (district_id, created_at);

  CREATE TABLE run_rejects (
    run_id      TEXT NOT NULL REFERENCES sync_runs (id),
    district_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    entity      TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq),                   -- listRejects paging in insertion order
    UNIQUE (run_id, entity, record_id, reason)   -- a retried chunk does not duplicate rejects
  );
  `,
  // 2: the change log (src/models/changes), who started a run and who decided a held one.
  `
  ${CHANGE_LOG_DDL}
  ALTER TABLE sync_runs ADD COLUMN actor TEXT;
  ALTER TABLE sync_runs ADD COLUMN decided_by TEXT;
  ALTER TABLE sync_runs ADD COLUMN decided_at TEXT;
  `,
  // 3: students matched by Unique ID (a re-keyed student moves), and the new students a run
  // keeps back until finalize (created then, or held with a proposed remap; ADR 0004).
  `
  CREATE INDEX students_unique_id ON students (district_id, unique_id);
  CREATE TABLE run_deferred_students (
    run_id      TEXT NOT NULL,
    district_id TEXT NOT NULL,
    sourced_id  TEXT NOT NULL,
    record      TEXT NOT NULL,             -- JSON StoredStudent
    links       TEXT NOT NULL DEFAULT '[]', -- JSON [{parentId, relationship?}]
    remap_from  TEXT,                      -- proposed old sourcedId (held re-key)
    PRIMARY KEY (run_id, sourced_id)       -- a retried chunk keeps one row per student
  );
  `,
  // 4: held deactivations leave the run row for pages of their own (docs/decisions/0006);
  // `sync_runs.held` keeps only the list sizes. Lists held before are moved as one page each.
  `
  CREATE TABLE held_pages (
    run_id  TEXT NOT NULL REFERENCES sync_runs (id),
    kind    TEXT NOT NULL CHECK (kind IN ('student', 'parent', 'link')),
    start   INTEGER NOT NULL,  -- position of the page's first record in the held list
    n       INTEGER NOT NULL,  -- records in the page
    items   TEXT NOT NULL,     -- JSON array: sourcedIds, account ids, {parentId, studentSourcedId}
    PRIMARY KEY (run_id, kind, start)  -- listHeld: the pages overlapping [offset, offset+limit)
  );
  INSERT INTO held_pages (run_id, kind, start, n, items)
    SELECT id, 'student', 0, json_array_length(held, '$.studentSourcedIds'),
      json_extract(held, '$.studentSourcedIds') FROM sync_runs
    WHERE held IS NOT NULL AND json_array_length(held, '$.studentSourcedIds') > 0;
  INSERT INTO held_pages (run_id, kind, start, n, items)
    SELECT id, 'parent', 0, json_array_length(held, '$.parentIds'),
      json_extract(held, '$.parentIds') FROM sync_runs
    WHERE held IS NOT NULL AND json_array_length(held, '$.parentIds') > 0;
  INSERT INTO held_pages (run_id, kind, start, n, items)
    SELECT id, 'link', 0, json_array_length(held, '$.links'), json_extract(held, '$.links')
    FROM sync_runs WHERE held IS NOT NULL AND json_array_length(held, '$.links') > 0;
  UPDATE sync_runs SET held = json_object(
      'students', coalesce(json_array_length(held, '$.studentSourcedIds'), 0),
      'parents', coalesce(json_array_length(held, '$.parentIds'), 0),
      'links', coalesce(json_array_length(held, '$.links'), 0))
    WHERE held IS NOT NULL AND json_type(held, '$.studentSourcedIds') IS NOT NULL;
  `,
  // 5: a pull waiting for the SIS (429 with a long Retry-After): JSON RunWait.
  `
  ALTER TABLE sync_runs ADD COLUMN waiting TEXT;
  `,
  // 6: a reject may be an exclusion (a valid record left out by a rule; docs/decisions/0005).
  `
  ALTER TABLE run_rejects ADD COLUMN kind TEXT NOT NULL DEFAULT 'rejected'
    CHECK (kind IN ('rejected', 'excluded'));
  -- listRejects filtered by kind, in insertion order
  CREATE INDEX run_rejects_kind ON run_rejects (run_id, kind, seq);
  `,
  // 7: a run can be cancelled (status `cancelled`, terminal; not in the one-active-run index).
  // SQLite cannot alter a CHECK constraint; widening one changes no stored row, so the table's
  // definition is rewritten in place (SQLite's documented procedure for loosening a
  // constraint, https://sqlite.org/lang_altertable.html §"otheralter"); rebuilding the table
  // would trip the foreign keys of run_rejects and held_pages. The throw-away table makes
  // every other open connection reload the schema. Runs in unsafe mode (`UNSAFE_MIGRATIONS`).
  `
  PRAGMA writable_schema = ON;
  UPDATE sqlite_schema
    SET sql = replace(sql, '''needs-approval'', ''discarded'')',
                           '''needs-approval'', ''discarded'', ''cancelled'')')
    WHERE type = 'table' AND name = 'sync_runs';
  PRAGMA writable_schema = RESET;
  CREATE TABLE schema_reload (x INTEGER);
  DROP TABLE schema_reload;
  `,
  // 8: the digest of the SIS data a sync last applied to each student (docs/decisions/0014):
  // a resync skips students whose digest is unchanged. The sync writes it last in the chunk's
  // transaction; the triggers clear it whenever anything changes the student, one of its
  // links, or an account (or source of one) linked to it, so every change made outside the
  // sync (manual associations, imports, codes, approvals, finalize, admin edits) and every
  // change of a shared account in another chunk sends the student back to a full diff.
  `
  ALTER TABLE students ADD COLUMN sync_digest TEXT;
  CREATE TRIGGER students_digest_stale
    AFTER UPDATE OF sourced_id, unique_id, given_name, family_name, email, school_sourced_ids,
      grade, status ON students
    WHEN NEW.sync_digest IS NOT NULL
  BEGIN
    UPDATE students SET sync_digest = NULL
      WHERE district_id = NEW.district_id AND sourced_id = NEW.sourced_id;
  END;
  CREATE TRIGGER guardian_links_digest_insert AFTER INSERT ON guardian_links BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = NEW.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = NEW.district_id AND parent_id = NEW.parent_id);
  END;
  CREATE TRIGGER guardian_links_digest_update AFTER UPDATE ON guardian_links BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND (sourced_id = OLD.student_sourced_id
        OR sourced_id IN (SELECT student_sourced_id FROM guardian_links
          WHERE district_id = OLD.district_id AND parent_id IN (OLD.parent_id, NEW.parent_id)));
  END;
  CREATE TRIGGER guardian_links_digest_delete AFTER DELETE ON guardian_links BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND (sourced_id = OLD.student_sourced_id
        OR sourced_id IN (SELECT student_sourced_id FROM guardian_links
          WHERE district_id = OLD.district_id AND parent_id = OLD.parent_id));
  END;
  CREATE TRIGGER parent_accounts_digest_update AFTER UPDATE ON parent_accounts BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = OLD.district_id
          AND parent_id IN (OLD.id, NEW.id));
  END;
  CREATE TRIGGER parent_accounts_digest_delete AFTER DELETE ON parent_accounts BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = OLD.district_id AND parent_id = OLD.id);
  END;
  CREATE TRIGGER parent_sources_digest_insert AFTER INSERT ON parent_sources BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = NEW.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = NEW.district_id AND parent_id = NEW.parent_id);
  END;
  CREATE TRIGGER parent_sources_digest_update AFTER UPDATE ON parent_sources BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = OLD.district_id
          AND parent_id IN (OLD.parent_id, NEW.parent_id));
  END;
  CREATE TRIGGER parent_sources_digest_delete AFTER DELETE ON parent_sources BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = OLD.district_id AND parent_id = OLD.parent_id);
  END;
  `,
  // 9: finalize streams the district's active ids through covering indexes (no table row
  // is read; docs/decisions/0012). Each replaces the index it extends (its prefix serves the
  // active counts as before), so a write still updates one status index.
  `
  DROP INDEX IF EXISTS students_district_status;
  CREATE INDEX IF NOT EXISTS students_active_ids ON students (district_id, status, sourced_id);
  DROP INDEX IF EXISTS parent_accounts_status_origin;
  CREATE INDEX IF NOT EXISTS parent_accounts_active_ids
    ON parent_accounts (district_id, status, origin, id);
  `,
  // 10: cheaper chunk writes (docs/decisions/0014, "migration 10").
  // (a) A CHECK of the form `x IN ('a', 'b', 'c')` (three or more values) builds a temporary
  // b-tree of the list for every row written (SQLite codes no run-once guard in a CHECK);
  // they are rewritten as the equivalent `x = 'a' OR x = 'b' OR …` (same result for NULL:
  // neither fails). Only the CHECK text changes, no stored row, so the table definitions are
  // edited in place as in migration 7 (unsafe mode), and every row already satisfies them.
  // (b) The digest triggers of migration 8 stand aside while a sync writes a chunk with
  // digests: the sync then clears the digests its own writes make stale itself, once per
  // chunk (\`sync_digest_writer\` holds the district's row only inside that transaction).
  `
  PRAGMA writable_schema = ON;
  UPDATE sqlite_schema SET sql = replace(replace(sql,
      'CHECK (sis_role IN (''parent'', ''guardian'', ''relative''))',
      'CHECK (sis_role = ''parent'' OR sis_role = ''guardian'' OR sis_role = ''relative'')'),
      'CHECK (origin IN (''sis'', ''import'', ''access-code'', ''manual''))',
      'CHECK (origin = ''sis'' OR origin = ''import'' OR origin = ''access-code'' OR origin = ''manual'')')
    WHERE type = 'table' AND name IN ('parent_accounts', 'guardian_links');
  UPDATE sqlite_schema SET sql = replace(sql,
      'CHECK (entity IN (''parent'', ''link'', ''student'', ''code''))',
      'CHECK (entity = ''parent'' OR entity = ''link'' OR entity = ''student'' OR entity = ''code'')')
    WHERE type = 'table' AND name = 'change_log';
  PRAGMA writable_schema = RESET;
  CREATE TABLE schema_reload (x INTEGER);
  DROP TABLE schema_reload;

  CREATE TABLE sync_digest_writer (district_id TEXT PRIMARY KEY) WITHOUT ROWID;
  DROP TRIGGER guardian_links_digest_insert;
  DROP TRIGGER guardian_links_digest_update;
  DROP TRIGGER guardian_links_digest_delete;
  DROP TRIGGER parent_accounts_digest_update;
  DROP TRIGGER parent_accounts_digest_delete;
  DROP TRIGGER parent_sources_digest_insert;
  DROP TRIGGER parent_sources_digest_update;
  DROP TRIGGER parent_sources_digest_delete;
  CREATE TRIGGER guardian_links_digest_insert AFTER INSERT ON guardian_links
    WHEN NOT EXISTS (SELECT 1 FROM sync_digest_writer WHERE district_id = NEW.district_id)
  BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = NEW.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = NEW.district_id AND parent_id = NEW.parent_id);
  END;
  CREATE TRIGGER guardian_links_digest_update AFTER UPDATE ON guardian_links
    WHEN NOT EXISTS (SELECT 1 FROM sync_digest_writer WHERE district_id = OLD.district_id)
  BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND (sourced_id = OLD.student_sourced_id
        OR sourced_id IN (SELECT student_sourced_id FROM guardian_links
          WHERE district_id = OLD.district_id AND parent_id IN (OLD.parent_id, NEW.parent_id)));
  END;
  CREATE TRIGGER guardian_links_digest_delete AFTER DELETE ON guardian_links
    WHEN NOT EXISTS (SELECT 1 FROM sync_digest_writer WHERE district_id = OLD.district_id)
  BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND (sourced_id = OLD.student_sourced_id
        OR sourced_id IN (SELECT student_sourced_id FROM guardian_links
          WHERE district_id = OLD.district_id AND parent_id = OLD.parent_id));
  END;
  CREATE TRIGGER parent_accounts_digest_update AFTER UPDATE ON parent_accounts
    WHEN NOT EXISTS (SELECT 1 FROM sync_digest_writer WHERE district_id = OLD.district_id)
  BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = OLD.district_id
          AND parent_id IN (OLD.id, NEW.id));
  END;
  CREATE TRIGGER parent_accounts_digest_delete AFTER DELETE ON parent_accounts
    WHEN NOT EXISTS (SELECT 1 FROM sync_digest_writer WHERE district_id = OLD.district_id)
  BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = OLD.district_id AND parent_id = OLD.id);
  END;
  CREATE TRIGGER parent_sources_digest_insert AFTER INSERT ON parent_sources
    WHEN NOT EXISTS (SELECT 1 FROM sync_digest_writer WHERE district_id = NEW.district_id)
  BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = NEW.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = NEW.district_id AND parent_id = NEW.parent_id);
  END;
  CREATE TRIGGER parent_sources_digest_update AFTER UPDATE ON parent_sources
    WHEN NOT EXISTS (SELECT 1 FROM sync_digest_writer WHERE district_id = OLD.district_id)
  BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = OLD.district_id
          AND parent_id IN (OLD.parent_id, NEW.parent_id));
  END;
  CREATE TRIGGER parent_sources_digest_delete AFTER DELETE ON parent_sources
    WHEN NOT EXISTS (SELECT 1 FROM sync_digest_writer WHERE district_id = OLD.district_id)
  BEGIN
    UPDATE students SET sync_digest = NULL WHERE district_id = OLD.district_id
      AND sync_digest IS NOT NULL AND sourced_id IN (SELECT student_sourced_id
        FROM guardian_links WHERE district_id = OLD.district_id AND parent_id = OLD.parent_id);
  END;
  `,
  // 11: one email index on parent_accounts instead of two (docs/decisions/0017). The partial
  // unique index of invariant 7 (created by `ensureIdentityIndex`, not by a migration) gets a
  // new definition under its name, which also serves every lookup by normalized email; the
  // old form is dropped here so that `init()` can create the new one, which then drops
  // `parent_accounts_email` (kept while the new index cannot be built: duplicates).
  `
  DROP INDEX IF EXISTS parent_accounts_sis_email;
  `,
  // 12: the audit's indexes of the change log (by parent, by student) leave the write
  // transaction: a derived table filled by the change-log consumer (docs/decisions/0019).
  AUDIT_INDEX_MIGRATION,
  // 13: which district configuration a run used (file, sha256, loaded at; a file on disk it
  // could not use, with the problems): JSON RunConfig (docs/decisions/0022).
  `
  ALTER TABLE sync_runs ADD COLUMN config TEXT;
  `,
];

/** Migrations (0-based `MIGRATIONS` indexes) that write `sqlite_schema` (better-sqlite3 unsafe mode). */
const UNSAFE_MIGRATIONS = new Set([6, 9]);

/** Options of the SQLite store. */
export interface SqliteStoreOptions {
  /** Milliseconds a writer waits for the lock before SQLITE_BUSY (default 5000). */
  busyTimeoutMs?: number;
  /**
   * Called with every statement the connection executes, parameters expanded
   * (better-sqlite3's `verbose` option). For diagnostics and tests: query plans of what a
   * call really ran, and how many statements it took.
   */
  onStatement?: (sql: string) => void;
}

interface RunRow {
  id: string;
  district_id: string;
  connector: string;
  status: string;
  dry_run: number;
  run_trigger: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  counts: string;
  reject_count: number;
  timings: string;
  held: string | null;
  error: string | null;
  actor: string | null;
  decided_by: string | null;
  decided_at: string | null;
  waiting: string | null;
  config: string | null;
}

interface RejectRow {
  entity: string;
  record_id: string;
  reason: string;
  kind: string;
}

type Params = Record<string, string | number | null>;

const PARENT_COLUMNS: Record<ParentUpdateField, string> = {
  givenName: 'given_name',
  familyName: 'family_name',
  email: 'email',
  emailNormalized: 'email_normalized',
  phone: 'phone',
  sisRole: 'sis_role',
  status: 'status',
  uniqueId: 'unique_id',
};

/** Every fixed statement the store prepares (exported for query-plan tests). */
export const SQL = {
  // Key lists drive the loads: `json_each(?) CROSS JOIN table` makes SQLite loop over the
  // keys and probe the index per key, whatever its (missing) statistics say. Callers pass
  // de-duplicated lists.
  loadStudents: `SELECT s.* FROM json_each(@keys) AS k CROSS JOIN students AS s
    ON s.district_id = @districtId AND s.sourced_id = k.value ORDER BY s.sourced_id`,
  loadStudentsByUniqueId: `SELECT s.* FROM json_each(@keys) AS k CROSS JOIN students AS s
    ON s.district_id = @districtId AND s.unique_id = k.value ORDER BY s.sourced_id`,
  studentExists: `SELECT 1 FROM students WHERE district_id = ? AND sourced_id = ?`,
  loadDigests: `SELECT s.sourced_id, s.sync_digest FROM json_each(@keys) AS k
    CROSS JOIN students AS s ON s.district_id = @districtId AND s.sourced_id = k.value
    WHERE s.sync_digest IS NOT NULL`,
  setDigest: `UPDATE students SET sync_digest = ? WHERE district_id = ? AND sourced_id = ?
    AND sync_digest IS NOT ?`,
  // The digest triggers stand aside for this district's writes (migration 10): only inside a
  // chunk's transaction, removed before it commits.
  pauseDigestTriggers: `INSERT INTO sync_digest_writer (district_id) VALUES (?)`,
  resumeDigestTriggers: `DELETE FROM sync_digest_writer WHERE district_id = ?`,
  // What the paused triggers would have cleared: every student linked to the accounts whose
  // links, sources or fields the chunk changed.
  clearLinkedDigests: `UPDATE students SET sync_digest = NULL WHERE rowid IN (
    SELECT s.rowid FROM json_each(@keys) AS k CROSS JOIN guardian_links AS l
      ON l.district_id = @districtId AND l.parent_id = k.value
    CROSS JOIN students AS s ON s.district_id = @districtId AND s.sourced_id = l.student_sourced_id
    WHERE s.sync_digest IS NOT NULL)`,
  linkedParents: `SELECT parent_id FROM guardian_links WHERE district_id = ?
    AND student_sourced_id = ?`,
  sourceAccounts: `SELECT ps.sourced_id, ps.parent_id FROM json_each(@keys) AS k
    CROSS JOIN parent_sources AS ps ON ps.district_id = @districtId
      AND ps.connector = @connector AND ps.sourced_id = k.value`,
  moveStudent: `UPDATE students SET sourced_id = @to
    WHERE district_id = @districtId AND sourced_id = @from`,
  moveLinks: `UPDATE OR IGNORE guardian_links SET student_sourced_id = @to
    WHERE district_id = @districtId AND student_sourced_id = @from`,
  upsertDeferred: `INSERT INTO run_deferred_students (run_id, district_id, sourced_id, record,
      links) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (run_id, sourced_id) DO UPDATE SET record = excluded.record,
      links = excluded.links`,
  listDeferred: `SELECT * FROM run_deferred_students WHERE run_id = @runId
    AND (@onlyRemapped = 0 OR remap_from IS NOT NULL) ORDER BY sourced_id LIMIT @limit OFFSET @offset`,
  countDeferred: `SELECT count(*) AS students, count(remap_from) AS remapped
    FROM run_deferred_students WHERE run_id = ?`,
  clearRemap: `UPDATE run_deferred_students SET remap_from = NULL WHERE run_id = ?`,
  setRemap: `UPDATE run_deferred_students SET remap_from = ? WHERE run_id = ? AND sourced_id = ?`,
  countActiveSisLinks: `SELECT count(*) AS n FROM guardian_links WHERE district_id = ?
    AND origin = 'sis' AND status = 'active'`,
  loadParents: `SELECT * FROM parent_accounts WHERE district_id = @districtId AND id IN (
      SELECT s.parent_id FROM json_each(@sourcedIds) AS k CROSS JOIN parent_sources AS s
        ON s.district_id = @districtId AND s.connector = @connector AND s.sourced_id = k.value
      UNION
      SELECT p.id FROM json_each(@uniqueIds) AS k CROSS JOIN parent_accounts AS p
        ON p.district_id = @districtId AND p.unique_id = k.value
      UNION
      SELECT p.id FROM json_each(@emails) AS k CROSS JOIN parent_accounts AS p
        ON p.district_id = @districtId AND p.email_normalized = k.value
    ) ORDER BY id`,
  loadSources: `SELECT s.parent_id, s.connector, s.sourced_id
    FROM json_each(@keys) AS k CROSS JOIN parent_sources AS s
    ON s.district_id = @districtId AND s.parent_id = k.value ORDER BY s.rowid`,
  accountLinks: `SELECT l.* FROM json_each(@keys) AS k CROSS JOIN guardian_links AS l
    ON l.district_id = @districtId AND l.parent_id = k.value
    WHERE l.origin = 'sis' AND l.status = 'active'
    ORDER BY l.parent_id, l.student_sourced_id`,
  loadLinks: `SELECT l.* FROM json_each(@keys) AS k CROSS JOIN guardian_links AS l
    ON l.district_id = @districtId AND l.student_sourced_id = k.value
    ORDER BY l.parent_id, l.student_sourced_id, l.origin`,
  upsertStudent: `INSERT INTO students (district_id, sourced_id, unique_id, given_name, family_name,
      email, school_sourced_ids, grade, status)
    VALUES (@districtId, @sourcedId, @uniqueId, @givenName, @familyName, @email,
      @schoolSourcedIds, @grade, @status)
    ON CONFLICT (district_id, sourced_id) DO UPDATE SET
      unique_id = excluded.unique_id, given_name = excluded.given_name,
      family_name = excluded.family_name, email = excluded.email,
      school_sourced_ids = excluded.school_sourced_ids, grade = excluded.grade,
      status = excluded.status
    WHERE students.unique_id IS NOT excluded.unique_id
      OR students.given_name IS NOT excluded.given_name
      OR students.family_name IS NOT excluded.family_name
      OR students.email IS NOT excluded.email
      OR students.school_sourced_ids IS NOT excluded.school_sourced_ids
      OR students.grade IS NOT excluded.grade
      OR students.status IS NOT excluded.status`,
  insertParent: `INSERT INTO parent_accounts (district_id, id, unique_id, given_name, family_name,
      email, email_normalized, phone, role, sis_role, status, origin, locked_fields)
    VALUES (@districtId, @id, @uniqueId, @givenName, @familyName, @email, @emailNormalized,
      @phone, @role, @sisRole, @status, @origin, @lockedFields)`,
  // A re-applied create of an existing account is a no-op (at-least-once delivery); a
  // uniqueId taken by another account still fails.
  insertParentIfAbsent: `INSERT INTO parent_accounts (district_id, id, unique_id, given_name,
      family_name, email, email_normalized, phone, role, sis_role, status, origin, locked_fields)
    VALUES (@districtId, @id, @uniqueId, @givenName, @familyName, @email, @emailNormalized,
      @phone, @role, @sisRole, @status, @origin, @lockedFields)
    ON CONFLICT (district_id, id) DO NOTHING`,
  parentExists: `SELECT 1 FROM parent_accounts WHERE district_id = ? AND id = ?`,
  insertSourceIfAbsent: `INSERT INTO parent_sources (district_id, connector, sourced_id, parent_id)
    VALUES (?, ?, ?, ?) ON CONFLICT (district_id, connector, sourced_id) DO NOTHING`,
  sourceOwner: `SELECT parent_id FROM parent_sources
    WHERE district_id = ? AND connector = ? AND sourced_id = ?`,
  upsertLink: `INSERT INTO guardian_links (district_id, parent_id, student_sourced_id, origin,
      relationship, status)
    VALUES (@districtId, @parentId, @studentSourcedId, @origin, @relationship, @status)
    ON CONFLICT (district_id, parent_id, student_sourced_id, origin) DO UPDATE SET
      relationship = excluded.relationship, status = excluded.status
    WHERE guardian_links.relationship IS NOT excluded.relationship
      OR guardian_links.status IS NOT excluded.status`,
  upsertSchool: `INSERT INTO schools (district_id, sourced_id, name) VALUES (?, ?, ?)
    ON CONFLICT (district_id, sourced_id) DO UPDATE SET name = excluded.name
    WHERE schools.name IS NOT excluded.name`,
  deactivateStudents: `UPDATE students SET status = 'inactive' WHERE rowid IN (
    SELECT s.rowid FROM json_each(@keys) AS k CROSS JOIN students AS s
    ON s.district_id = @districtId AND s.sourced_id = k.value WHERE s.status = 'active')
    RETURNING sourced_id`,
  deactivateParents: `UPDATE parent_accounts SET status = 'inactive' WHERE rowid IN (
    SELECT p.rowid FROM json_each(@keys) AS k CROSS JOIN parent_accounts AS p
    ON p.district_id = @districtId AND p.id = k.value WHERE p.status = 'active')
    RETURNING id`,
  parentsByIds: `SELECT p.* FROM json_each(@keys) AS k CROSS JOIN parent_accounts AS p
    ON p.district_id = @districtId AND p.id = k.value ORDER BY p.id`,
  getLink: `SELECT * FROM guardian_links WHERE district_id = ? AND parent_id = ?
    AND student_sourced_id = ? AND origin = ?`,
  deactivateSisLink: `UPDATE guardian_links SET status = 'inactive' WHERE district_id = ?
    AND parent_id = ? AND student_sourced_id = ? AND origin = 'sis' AND status = 'active'`,
  activeSisLinksOfStudents: `SELECT l.parent_id, l.student_sourced_id
    FROM json_each(@keys) AS k CROSS JOIN guardian_links AS l
    ON l.district_id = @districtId AND l.student_sourced_id = k.value
    WHERE l.origin = 'sis' AND l.status = 'active'`,
  activeSisLinksOfParents: `SELECT l.parent_id, l.student_sourced_id
    FROM json_each(@keys) AS k CROSS JOIN guardian_links AS l
    ON l.district_id = @districtId AND l.parent_id = k.value
    WHERE l.origin = 'sis' AND l.status = 'active'`,
  // activeIdPages: keyset pages over the covering indexes of migration 9 (no row lookups)
  activeStudentIdPage: `SELECT sourced_id FROM students WHERE district_id = @districtId
    AND status = 'active' AND sourced_id > @after ORDER BY sourced_id LIMIT @limit`,
  activeSisParentIdPage: `SELECT id FROM parent_accounts WHERE district_id = @districtId
    AND status = 'active' AND origin = 'sis' AND id > @after ORDER BY id LIMIT @limit`,
  countActiveStudents: `SELECT count(*) AS n FROM students WHERE district_id = ?
    AND status = 'active'`,
  countActiveParents: `SELECT count(*) AS n FROM parent_accounts WHERE district_id = ?
    AND status = 'active'`,
  allStudents: `SELECT * FROM students WHERE district_id = ? ORDER BY sourced_id`,
  allParents: `SELECT * FROM parent_accounts WHERE district_id = ? ORDER BY id`,
  allSources: `SELECT parent_id, connector, sourced_id FROM parent_sources WHERE district_id = ?
    ORDER BY rowid`,
  allLinks: `SELECT * FROM guardian_links WHERE district_id = ?
    ORDER BY parent_id, student_sourced_id, origin`,
  insertRun: `INSERT INTO sync_runs (id, district_id, connector, status, dry_run, run_trigger,
      created_at, started_at, finished_at, counts, reject_count, timings, held, error, actor,
      decided_by, decided_at, waiting, config)
    VALUES (@id, @districtId, @connector, @status, @dryRun, @trigger, @createdAt, @startedAt,
      @finishedAt, @counts, @rejectCount, @timings, @held, @error, @actor, @decidedBy,
      @decidedAt, @waiting, @config)`,
  updateRun: `UPDATE sync_runs SET status = @status, dry_run = @dryRun, run_trigger = @trigger,
      started_at = @startedAt, finished_at = @finishedAt, counts = @counts,
      reject_count = @rejectCount, timings = @timings, held = @held, error = @error,
      actor = @actor, decided_by = @decidedBy, decided_at = @decidedAt, waiting = @waiting,
      config = @config
    WHERE id = @id`,
  getRun: `SELECT * FROM sync_runs WHERE id = ?`,
  activeRun: `SELECT * FROM sync_runs WHERE district_id = ? AND status IN ('queued', 'running')`,
  listRuns: `SELECT * FROM sync_runs WHERE district_id = ?
    ORDER BY created_at DESC, rowid DESC LIMIT ?`,
  runDistrict: `SELECT district_id FROM sync_runs WHERE id = ?`,
  maxRejectSeq: `SELECT coalesce(max(seq), 0) AS n FROM run_rejects WHERE run_id = ?`,
  insertReject: `INSERT INTO run_rejects (run_id, district_id, seq, entity, record_id, reason,
      kind)
    VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, entity, record_id, reason) DO NOTHING`,
  listRejects: `SELECT entity, record_id, reason, kind FROM run_rejects WHERE run_id = ?
    ORDER BY seq LIMIT ? OFFSET ?`,
  insertHeldPage: `INSERT INTO held_pages (run_id, kind, start, n, items) VALUES (?, ?, ?, ?, ?)`,
  deleteHeldPages: `DELETE FROM held_pages WHERE run_id = ?`,
  heldPages: `SELECT start, items FROM held_pages WHERE run_id = @runId AND kind = @kind
    AND start < @end AND start + n > @offset ORDER BY start`,
  // Orphaned-parent candidates: parents of ending links or of any inactive link (so each has
  // at least one link), still active and sync-owned.
  orphanCandidates: `SELECT DISTINCT p.id FROM (
      SELECT value AS parent_id FROM json_each(@endingParents)
      UNION SELECT parent_id FROM guardian_links WHERE district_id = @districtId
        AND status = 'inactive'
    ) AS c CROSS JOIN parent_accounts AS p ON p.district_id = @districtId AND p.id = c.parent_id
    WHERE p.status = 'active' AND p.origin = 'sis' ORDER BY p.id`,
  activeLinksOfParents: `SELECT l.parent_id, l.student_sourced_id, l.origin
    FROM json_each(@keys) AS k CROSS JOIN guardian_links AS l
    ON l.district_id = @districtId AND l.parent_id = k.value WHERE l.status = 'active'`,
  listRejectsOfKind: `SELECT entity, record_id, reason, kind FROM run_rejects
    WHERE run_id = ? AND kind = ? ORDER BY seq LIMIT ? OFFSET ?`,
} as const;

type SqlName = keyof typeof SQL;

/**
 * Rejects per multi-row insert (`addRejects`): 7 parameters each, far below SQLite's limit;
 * 30,000 rejects cost 0.65 × the CPU of one statement per row (docs/performance.md).
 */
const REJECT_ROWS_PER_INSERT = 100;

/** `insertReject` with `rows` rows of values. */
const insertRejectsSql = (rows: number): string =>
  `INSERT INTO run_rejects (run_id, district_id, seq, entity, record_id, reason, kind)
    VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, ?, ?, ?, ?)').join(', ')}
    ON CONFLICT (run_id, entity, record_id, reason) DO NOTHING`;

/** True for SQLite UNIQUE / PRIMARY KEY constraint violations. */
/**
 * The unique index that carries design invariant 7 (`ensureIdentityIndex`) and serves every
 * lookup by normalized email (migration 11, docs/decisions/0017). Its third column is 1 for
 * an active `sis` account and NULL for every other one: NULLs never collide in a unique index,
 * so at most one active `sis` account per (district, email) and any number of others, as
 * the partial index `WHERE status = 'active' AND origin = 'sis'` it replaces; and one index
 * over every account with an email instead of two (each chunk's account inserts dirtied leaf
 * pages of both: docs/performance.md, "One email index").
 */
const IDENTITY_INDEX_SQL = `CREATE UNIQUE INDEX IF NOT EXISTS parent_accounts_sis_email
  ON parent_accounts (district_id, email_normalized,
    (CASE WHEN status = 'active' AND origin = 'sis' THEN 1 END))
  WHERE email_normalized IS NOT NULL`;

/**
 * The lookup by normalized email while `IDENTITY_INDEX_SQL` cannot be built (duplicates):
 * migration 1's index, dropped once the unique one exists.
 */
const EMAIL_LOOKUP_INDEX_SQL = `CREATE INDEX IF NOT EXISTS parent_accounts_email
  ON parent_accounts (district_id, email_normalized) WHERE email_normalized IS NOT NULL`;

export { IDENTITY_DUPLICATES_LISTED, type IdentityIndexStatus };

function isUniqueViolation(err: unknown): boolean {
  // By name, not `instanceof`: the native addon keeps the SqliteError class of the first copy
  // of better-sqlite3 that loaded it (Jest gives each test file its own copy and globals).
  if (typeof err !== 'object' || err === null) return false;
  const { name, code } = err as { name?: unknown; code?: unknown };
  return (
    name === 'SqliteError' &&
    (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY')
  );
}

const json = (value: unknown): string => JSON.stringify(value);
/** JSON array of the distinct values (a key list bound to one `json_each(?)` parameter). */
const uniqueJson = (values: readonly string[]): string => JSON.stringify([...new Set(values)]);
const nul = <T>(value: T | undefined): T | null => (value === undefined ? null : value);

function toRun(r: RunRow): SyncRun {
  const run: SyncRun = {
    id: r.id,
    districtId: r.district_id,
    connector: r.connector,
    status: r.status as RunStatus,
    dryRun: r.dry_run !== 0,
    trigger: r.run_trigger,
    createdAt: r.created_at,
    counts: parseJson<SyncRun['counts']>(r.counts, {}),
    rejectCount: r.reject_count,
    timings: parseJson<SyncRun['timings']>(r.timings, {}),
  };
  setOpt(run, 'startedAt', r.started_at);
  setOpt(run, 'finishedAt', r.finished_at);
  setOpt(run, 'held', parseJson<HeldSummary | null>(r.held, null));
  setOpt(run, 'error', r.error);
  setOpt(run, 'actor', r.actor);
  setOpt(run, 'decidedBy', r.decided_by);
  setOpt(run, 'decidedAt', r.decided_at);
  setOpt(run, 'waiting', parseJson<RunWait | null>(r.waiting, null));
  setOpt(run, 'config', parseJson<RunConfig | null>(r.config, null));
  return run;
}

function studentParams(districtId: string, s: StoredStudent): Params {
  return {
    districtId,
    sourcedId: s.sourcedId,
    uniqueId: s.uniqueId,
    givenName: s.givenName,
    familyName: s.familyName,
    email: nul(s.email),
    schoolSourcedIds: json(s.schoolSourcedIds),
    grade: nul(s.grade),
    status: s.status,
  };
}

function parentParams(districtId: string, p: ParentAccount): Params {
  return {
    districtId,
    id: p.id,
    uniqueId: nul(p.uniqueId),
    givenName: p.givenName,
    familyName: p.familyName,
    email: nul(p.email),
    emailNormalized: nul(p.emailNormalized),
    phone: nul(p.phone),
    role: p.role,
    sisRole: nul(p.sisRole),
    status: p.status,
    origin: p.origin,
    lockedFields: json(p.lockedFields),
  };
}

function linkParams(districtId: string, l: GuardianLink): Params {
  return {
    districtId,
    parentId: l.parentId,
    studentSourcedId: l.studentSourcedId,
    origin: l.origin,
    relationship: nul(l.relationship),
    status: l.status,
  };
}

function runParams(run: SyncRun): Params {
  return {
    id: run.id,
    districtId: run.districtId,
    connector: run.connector,
    status: run.status,
    dryRun: run.dryRun ? 1 : 0,
    trigger: run.trigger,
    createdAt: run.createdAt,
    startedAt: nul(run.startedAt),
    finishedAt: nul(run.finishedAt),
    counts: json(run.counts),
    rejectCount: run.rejectCount,
    timings: json(run.timings),
    held: run.held === undefined ? null : json(run.held),
    error: nul(run.error),
    actor: nul(run.actor),
    decidedBy: nul(run.decidedBy),
    decidedAt: nul(run.decidedAt),
    waiting: run.waiting === undefined ? null : json(run.waiting),
    config: run.config === undefined ? null : json(run.config),
  };
}

interface DeferredSqlRow {
  run_id: string;
  sourced_id: string;
  record: string;
  links: string;
  remap_from: string | null;
}

function toDeferred(r: DeferredSqlRow): RunDeferredStudent {
  const out: RunDeferredStudent = {
    runId: r.run_id,
    record: JSON.parse(r.record) as StoredStudent,
    links: parseJson<RunDeferredStudent['links']>(r.links, []),
  };
  setOpt(out, 'remapFrom', r.remap_from);
  return out;
}

/** `RosterStore` on one SQLite database file (or `:memory:`). */
export class SqliteRosterStore implements RosterStore {
  private readonly db: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private writes = 0;
  /** Fault injection for tests only (`StoreTestHooks`). */
  readonly testHooks: StoreTestHooks = {};
  private identity: IdentityIndexStatus | undefined;

  /**
   * Open (creating if needed, with its parent folder) the database at `file`.
   * `:memory:` gives a private in-memory database. Call `init()` before use.
   */
  /** The better-sqlite3 connection, for feature repositories sharing this file. */
  handle(): StoreHandle {
    return { kind: 'sqlite', db: this.db };
  }

  constructor(
    readonly file: string,
    options: SqliteStoreOptions = {},
  ) {
    const inMemory = file === ':memory:' || file === '';
    if (!inMemory) mkdirSync(dirname(file), { recursive: true });
    const trace = options.onStatement;
    this.db = new Database(file, trace ? { verbose: (sql: unknown) => trace(String(sql)) } : {});
    this.db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
    if (!inMemory) this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    // Keep the WAL bounded: checkpoint every 16,000 pages (64 MiB at 4 KiB pages), truncate
    // the file back to 64 MiB. A chunk writes thousands of pages; checkpointing after every
    // 1,000 (SQLite's default) cost two fsyncs per chunk and doubled the sync's wall time at
    // 500,000 students (docs/performance.md).
    this.db.pragma('wal_autocheckpoint = 16000');
    this.db.pragma(`journal_size_limit = ${64 * 1024 * 1024}`);
  }

  /** Schema version (`PRAGMA user_version`) the database is at. */
  schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  /** Connection settings in effect (for diagnostics and tests). */
  settings(): {
    journalMode: string;
    busyTimeoutMs: number;
    synchronous: number;
    foreignKeys: boolean;
    walAutocheckpoint: number;
  } {
    const get = (name: string): unknown => this.db.pragma(name, { simple: true });
    return {
      journalMode: String(get('journal_mode')),
      busyTimeoutMs: Number(get('busy_timeout')),
      synchronous: Number(get('synchronous')),
      foreignKeys: Number(get('foreign_keys')) === 1,
      walAutocheckpoint: Number(get('wal_autocheckpoint')),
    };
  }

  /** Every index in `sqlite_master` (automatic ones of primary keys included). */
  listIndexes(): Promise<StoreIndex[]> {
    const rows = this.db
      .prepare(`SELECT tbl_name AS collection, name FROM sqlite_master WHERE type = 'index'`)
      .all() as StoreIndex[];
    return Promise.resolve(rows.sort(byCollectionAndName));
  }

  /** Apply pending migrations (idempotent). Refuses a database newer than this code. */
  init(): Promise<void> {
    const current = this.schemaVersion();
    if (current > MIGRATIONS.length) {
      return Promise.reject(
        new Error(
          `database ${this.file} has schema version ${current}, newer than this build (${MIGRATIONS.length})`,
        ),
      );
    }
    for (let version = current; version < MIGRATIONS.length; version++) {
      const sql = MIGRATIONS[version] ?? '';
      this.db
        .transaction(() => {
          // Another process (worker and API starting together) may have migrated while we
          // waited for the write lock: re-read the version under the lock.
          if (this.schemaVersion() > version) return;
          if (!UNSAFE_MIGRATIONS.has(version)) this.db.exec(sql);
          else {
            this.db.unsafeMode(true);
            try {
              this.db.exec(sql);
            } finally {
              this.db.unsafeMode(false);
            }
          }
          this.db.pragma(`user_version = ${version + 1}`);
        })
        .immediate();
    }
    this.identity = this.ensureIdentityIndex();
    return Promise.resolve();
  }

  /**
   * Whether design invariant 7 is carried by the schema (see `ensureIdentityIndex`): `unique`
   * when the index exists; otherwise the groups of active `sis` accounts that share a
   * normalized email (at most `IDENTITY_DUPLICATES_LISTED`), which an admin must merge or
   * deactivate. Undefined before `init()`.
   */
  identityIndex(): IdentityIndexStatus | undefined {
    return this.identity;
  }

  /**
   * Design invariant 7 in the schema: at most one active `sis` account per normalized email
   * in a district (unique index `parent_accounts_sis_email`, `IDENTITY_INDEX_SQL`: accounts of
   * other origins, inactive ones and ones without email do not collide). Created when the data
   * allows it; it also serves the lookups by email, so migration 1's `parent_accounts_email`
   * is then dropped. When active `sis` accounts already share an email (written before a
   * district's chunks took turns, docs/decisions/0011) the index is not created (the plain
   * email index is kept, or created again), nothing is merged or deleted, the duplicates are
   * reported, and the next `init()` tries again; until
   * then the pipeline's one writer per district and the planner (an email two accounts share
   * is a reject, `ambiguous identity`) still keep new duplicates out.
   */
  private ensureIdentityIndex(): IdentityIndexStatus {
    try {
      this.db.exec(IDENTITY_INDEX_SQL);
      // the unique index serves the email lookups too: the plain one goes (migration 11)
      this.db.exec('DROP INDEX IF EXISTS parent_accounts_email');
      return { unique: true, duplicates: [] };
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      // the lookups by email keep an index meanwhile
      this.db.exec(EMAIL_LOOKUP_INDEX_SQL);
      const rows = this.db
        .prepare(
          `SELECT district_id, email_normalized, group_concat(id, ' ') AS ids
             FROM parent_accounts
            WHERE status = 'active' AND origin = 'sis' AND email_normalized IS NOT NULL
            GROUP BY district_id, email_normalized HAVING count(*) > 1
            ORDER BY district_id, email_normalized LIMIT ${IDENTITY_DUPLICATES_LISTED}`,
        )
        .all() as { district_id: string; email_normalized: string; ids: string }[];
      return {
        unique: false,
        duplicates: rows.map(r => ({
          districtId: r.district_id,
          emailNormalized: r.email_normalized,
          parentIds: r.ids.split(' ').sort(),
        })),
      };
    }
  }

  /** Close the database (idempotent). */
  close(): Promise<void> {
    if (this.db.open) {
      try {
        this.db.pragma('optimize'); // refresh planner statistics where useful (cheap)
      } catch {
        // best effort only
      }
      this.db.close();
    }
    this.statements.clear();
    return Promise.resolve();
  }

  /** Throws when the database is closed or unreadable. */
  ping(): Promise<void> {
    return this.run(() => {
      this.db.prepare('SELECT 1').get();
    });
  }

  /** Roster rows written (inserted or changed) since open; runs and rejects not counted. */
  writeCount(): number {
    return this.writes;
  }

  /** Insert or rename schools (not counted as roster writes). */
  upsertSchools(districtId: string, schools: { sourcedId: string; name: string }[]): Promise<void> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const stmt = this.stmt('upsertSchool');
          for (const s of schools) stmt.run(districtId, s.sourcedId, s.name);
        })
        .immediate(),
    );
  }

  /**
   * In one transaction (BEGIN IMMEDIATE, or a read transaction for a dry run): load the
   * chunk's state, call the pure `planner`, write the plan unless `dryRun`. A planner that
   * throws, or any failing write, rolls the whole chunk back. Unique-key conflicts surface
   * as `StoreConflictError`.
   */
  reconcileChunk(
    districtId: string,
    keys: ChunkKeys,
    planner: ChunkPlanner,
    options: {
      dryRun: boolean;
      change?: ChangeContext | undefined;
      runId?: string | undefined;
      unchanged?: UnchangedCheck | undefined;
    },
  ): Promise<ChunkPlan> {
    return this.run(() => {
      const tx = this.db.transaction(() => {
        // Unchanged students (ADR 0014): only the rest of the chunk is loaded and planned.
        const part =
          options.unchanged && !options.dryRun
            ? this.narrowUnchanged(districtId, keys.connector, options.unchanged)
            : undefined;
        const state =
          part &&
          part.keys.studentSourcedIds.length === 0 &&
          part.keys.guardianSourcedIds.length === 0
            ? { students: [], parents: [], links: [] }
            : this.loadChunkState(districtId, part?.keys ?? keys);
        const plan = (part?.planner ?? planner)(state);
        assertPlanInDistrict(districtId, plan);
        if (options.dryRun) return { plan, written: 0 };
        const entries = chunkChanges(this.withPlanTargets(districtId, state, plan), plan);
        let written: number;
        if (part) {
          // The digest triggers stand aside while the plan is written; the accounts it
          // changed are collected and their students' digests cleared in one statement
          // (the chunk's own planned students get theirs below).
          const touched = new Set<string>();
          this.stmt('pauseDigestTriggers').run(districtId);
          written = this.writePlan(districtId, plan, entries, touched);
          this.stmt('resumeDigestTriggers').run(districtId);
          if (touched.size > 0)
            this.stmt('clearLinkedDigests').run({ districtId, keys: json([...touched]) });
        } else written = this.writePlan(districtId, plan, entries);
        this.keepDeferred(districtId, plan, options.runId);
        appendChanges(this.db, districtId, options.change ?? SYSTEM_CHANGE, entries);
        if (part) {
          // last: whatever the writes above made stale was cleared
          const set = this.stmt('setDigest');
          for (const [sid, digest] of part.digestsAfter(plan))
            set.run(digest, districtId, sid, digest);
          Object.assign(plan.guardianAccounts, part.skippedGuardianAccounts);
          if (part.unchangedStudents > 0) plan.unchangedStudents = part.unchangedStudents;
        }
        return { plan, written };
      });
      try {
        const { plan, written } = options.dryRun ? tx.deferred() : tx.immediate();
        this.writes += written;
        return plan;
      } catch (err) {
        if (isUniqueViolation(err)) {
          throw new StoreConflictError(`chunk write conflicts with existing data: ${String(err)}`, {
            cause: err,
          });
        }
        throw err;
      }
    });
  }

  /** sourcedIds of the district's active students, sorted (all pages of `activeIdPages`). */
  listActiveStudentIds(districtId: string): Promise<string[]> {
    return allIds(this.activeIdPages(districtId, 'student'));
  }

  /** Ids of the active accounts with origin `sis`, sorted (all pages of `activeIdPages`). */
  listActiveSisParentIds(districtId: string): Promise<string[]> {
    return allIds(this.activeIdPages(districtId, 'sis-parent'));
  }

  /**
   * Active student sourcedIds or active `sis` account ids of the district, in id order, in
   * pages of at most `pageSize`. Each page is one statement over a covering index, resuming
   * after the previous page's last id (keyset), so the connection is never held between
   * pages: other store calls (other districts' chunks) interleave freely, and memory is one
   * page. The page is one `pluck().all()` (the ids as an array of strings): 2.4 × less CPU than
   * filling it row by row from `iterate()` (240,000 ids: 42 vs 100 ms; docs/performance.md).
   */
  async *activeIdPages(
    districtId: string,
    kind: ActiveIdKind,
    pageSize: number = ACTIVE_ID_PAGE,
  ): AsyncGenerator<string[]> {
    const limit = Math.max(1, Math.floor(pageSize));
    const stmt = this.stmt(kind === 'student' ? 'activeStudentIdPage' : 'activeSisParentIdPage');
    // '' sorts before every id (ids are non-empty strings)
    for (let after = ''; ;) {
      // TEXT columns: every value is a string
      const page = await this.run(() => stmt.pluck().all({ districtId, after, limit }) as string[]);
      if (page.length === 0) return;
      after = page[page.length - 1] ?? after;
      yield page;
      if (page.length < limit) return;
    }
  }

  /** Active `sis` links of the given students or parents, each once. */
  listActiveSisLinks(
    districtId: string,
    of: { studentSourcedIds: string[]; parentIds: string[] },
  ): Promise<{ parentId: string; studentSourcedId: string }[]> {
    return this.run(() => {
      const out = new Map<string, { parentId: string; studentSourcedId: string }>();
      const collect = (
        name: 'activeSisLinksOfStudents' | 'activeSisLinksOfParents',
        keys: string[],
      ) => {
        if (keys.length === 0) return;
        const rows = this.stmt(name).all({ districtId, keys: uniqueJson(keys) }) as {
          parent_id: string;
          student_sourced_id: string;
        }[];
        for (const r of rows)
          out.set(`${r.parent_id}\u0000${r.student_sourced_id}`, {
            parentId: r.parent_id,
            studentSourcedId: r.student_sourced_id,
          });
      };
      collect('activeSisLinksOfStudents', of.studentSourcedIds);
      collect('activeSisLinksOfParents', of.parentIds);
      return [...out.values()];
    });
  }

  /** Number of active students and active parent accounts. */
  countActive(districtId: string): Promise<{ students: number; parents: number }> {
    return this.run(() => {
      const students = this.stmt('countActiveStudents').pluck().get(districtId) as number;
      const parents = this.stmt('countActiveParents').pluck().get(districtId) as number;
      return { students, parents };
    });
  }

  /** Number of the district's active `sis` links. */
  countActiveSisLinks(districtId: string): Promise<number> {
    return this.run(() => this.stmt('countActiveSisLinks').pluck().get(districtId) as number);
  }

  /** A page of a run's deferred students, by sourcedId. */
  listDeferredStudents(
    runId: string,
    opts: { onlyRemapped?: boolean; offset?: number; limit?: number } = {},
  ): Promise<RunDeferredStudent[]> {
    return this.run(() =>
      (
        this.stmt('listDeferred').all({
          runId,
          onlyRemapped: opts.onlyRemapped ? 1 : 0,
          limit: Math.max(0, opts.limit ?? -1) || -1,
          offset: Math.max(0, opts.offset ?? 0),
        }) as DeferredSqlRow[]
      ).map(toDeferred),
    );
  }

  /** Number of a run's deferred students and of those with a proposed remap. */
  countDeferredStudents(runId: string): Promise<{ students: number; remapped: number }> {
    return this.run(() => {
      const r = this.stmt('countDeferred').get(runId) as { students: number; remapped: number };
      return { students: r.students, remapped: r.remapped };
    });
  }

  /** Replace a run's proposed remap (deferred sourcedId → old sourcedId). */
  setRemap(runId: string, pairs: { sourcedId: string; remapFrom: string }[]): Promise<void> {
    return this.run(() =>
      this.db
        .transaction(() => {
          this.stmt('clearRemap').run(runId);
          const set = this.stmt('setRemap');
          for (const p of pairs) set.run(p.remapFrom, runId, p.sourcedId);
        })
        .immediate(),
    );
  }

  /**
   * Write a run's deferred students (moves of their proposed old records when `remap`, else
   * creations) and their `sis` links in one transaction with their change-log entries.
   */
  applyDeferredStudents(
    districtId: string,
    runId: string,
    change: ChangeContext,
    opts: { remap: boolean },
  ): Promise<number> {
    return this.run(() => {
      const written = this.db
        .transaction(() => {
          const rows = (
            this.stmt('listDeferred').all({
              runId,
              onlyRemapped: 0,
              limit: -1,
              offset: 0,
            }) as DeferredSqlRow[]
          ).map(toDeferred);
          if (rows.length === 0) return 0;
          const plan = deferredPlan(districtId, rows, opts.remap);
          const state = this.loadChunkState(districtId, {
            connector: '',
            studentSourcedIds: [
              ...rows.map(r => r.record.sourcedId),
              ...plan.students.flatMap(s => (s.from === undefined ? [] : [s.from])),
            ],
            guardianSourcedIds: [],
            guardianUniqueIds: [],
            emailsNormalized: [],
          });
          const entries = chunkChanges(state, plan);
          const n = this.writePlan(districtId, plan, entries);
          appendChanges(this.db, districtId, change, entries);
          return n;
        })
        .immediate();
      this.writes += written;
      return written;
    });
  }

  /**
   * Set `inactive` on the listed active students and parents and on the listed active
   * `sis`-origin links (other origins are never touched). Never deletes. Returns rows changed.
   */
  applyDeactivations(
    districtId: string,
    d: Deactivations,
    change: ChangeContext = SYSTEM_CHANGE,
  ): Promise<number> {
    return this.run(() => {
      const changed = this.db
        .transaction(() => {
          const entries: NewChange[] = [];
          if (d.studentSourcedIds.length > 0) {
            const ids = this.stmt('deactivateStudents')
              .pluck()
              .all({ districtId, keys: uniqueJson(d.studentSourcedIds) }) as string[];
            for (const id of ids.sort()) entries.push(statusChange('student', id, 'deactivate'));
          }
          if (d.parentIds.length > 0) {
            const ids = this.stmt('deactivateParents')
              .pluck()
              .all({ districtId, keys: uniqueJson(d.parentIds) }) as string[];
            for (const id of ids.sort()) entries.push(statusChange('parent', id, 'deactivate'));
          }
          const link = this.stmt('deactivateSisLink');
          for (const l of d.links) {
            if (link.run(districtId, l.parentId, l.studentSourcedId).changes > 0)
              entries.push(linkDeactivateChange('sis', l.parentId, l.studentSourcedId));
          }
          appendChanges(this.db, districtId, change, entries);
          return entries.length;
        })
        .immediate();
      this.writes += changed;
      return changed;
    });
  }

  /** All students of a district, by sourcedId. */
  getStudents(districtId: string): Promise<StoredStudent[]> {
    return this.run(() =>
      (this.stmt('allStudents').all(districtId) as StudentRow[]).map(toStudent),
    );
  }

  /** All parent accounts of a district (with sources), by id. */
  getParents(districtId: string): Promise<ParentAccount[]> {
    return this.run(() => {
      const rows = this.stmt('allParents').all(districtId) as ParentRow[];
      const sources = groupSources(this.stmt('allSources').all(districtId) as SourceRow[]);
      return rows.map(r => toParent(r, sources.get(r.id) ?? []));
    });
  }

  /** All links of a district, by (parentId, studentSourcedId, origin). */
  getLinks(districtId: string): Promise<GuardianLink[]> {
    return this.run(() => (this.stmt('allLinks').all(districtId) as LinkRow[]).map(toLink));
  }

  /** Insert the link, or update status/relationship of the existing link of that origin. */
  addLink(link: GuardianLink, change: ChangeContext = SYSTEM_CHANGE): Promise<boolean> {
    return this.run(() => {
      const changes = this.db
        .transaction(() => {
          const prevRow = this.stmt('getLink').get(
            link.districtId,
            link.parentId,
            link.studentSourcedId,
            link.origin,
          ) as LinkRow | undefined;
          const n = this.stmt('upsertLink').run(linkParams(link.districtId, link)).changes;
          if (n > 0) {
            const prev = prevRow && toLink(prevRow);
            const action = !prev
              ? 'create'
              : prev.status !== link.status
                ? link.status === 'active'
                  ? 'reactivate'
                  : 'deactivate'
                : 'update';
            appendChanges(this.db, link.districtId, change, [linkChange(action, link, prev)]);
          }
          return n;
        })
        .immediate();
      this.writes += changes;
      return changes > 0;
    });
  }

  /**
   * Insert an account with its sources. Throws `StoreConflictError` when the id, uniqueId
   * or a source is already taken in the district.
   */
  createParent(account: ParentAccount, change: ChangeContext = SYSTEM_CHANGE): Promise<void> {
    return this.run(() => {
      try {
        const changes = this.db
          .transaction(() => {
            let n = this.stmt('insertParent').run(
              parentParams(account.districtId, account),
            ).changes;
            for (const s of account.sources) {
              n += this.insertSource(account.districtId, account.id, s);
            }
            appendChanges(this.db, account.districtId, change, [parentCreateChange(account)]);
            return n;
          })
          .immediate();
        this.writes += changes;
      } catch (err) {
        if (isUniqueViolation(err)) {
          throw new StoreConflictError(
            `parent account ${account.id} conflicts with an existing account`,
            { cause: err },
          );
        }
        throw err;
      }
    });
  }

  /**
   * Insert a run. Throws `ActiveRunExistsError` (carrying the active run) when the district
   * already has a queued/running run, `StoreConflictError` when the id is taken.
   */
  createRun(run: SyncRun): Promise<SyncRun> {
    return this.run(() =>
      this.db
        .transaction(() => {
          try {
            this.stmt('insertRun').run(runParams(run));
          } catch (err) {
            if (!isUniqueViolation(err)) throw err;
            const active = this.activeRun(run.districtId);
            if (active && active.id !== run.id && isActiveRunStatus(run.status)) {
              throw new ActiveRunExistsError(active);
            }
            throw new StoreConflictError(`run ${run.id} already exists`, { cause: err });
          }
          return this.mustGetRun(run.id);
        })
        .immediate(),
    );
  }

  /**
   * Patch a run (present keys replace; `undefined` clears optional fields). Throws when the
   * run is unknown, `ActiveRunExistsError` when it would become a second active run.
   */
  updateRun(id: string, patch: SyncRunPatch): Promise<SyncRun> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const next = applyRunPatch(this.mustGetRun(id), patch);
          try {
            this.stmt('updateRun').run(runParams(next));
          } catch (err) {
            const active = isUniqueViolation(err) ? this.activeRun(next.districtId) : undefined;
            if (active) throw new ActiveRunExistsError(active);
            throw err;
          }
          return this.mustGetRun(id);
        })
        .immediate(),
    );
  }

  /** The run with `id`, if any. */
  getRun(id: string): Promise<SyncRun | undefined> {
    return this.run(() => {
      const row = this.stmt('getRun').get(id) as RunRow | undefined;
      return row && toRun(row);
    });
  }

  /** The district's queued/running run, if any. */
  findActiveRun(districtId: string): Promise<SyncRun | undefined> {
    return this.run(() => this.activeRun(districtId));
  }

  /** The district's runs, newest first, at most `limit`. */
  listRuns(districtId: string, limit: number): Promise<SyncRun[]> {
    return this.run(() =>
      (this.stmt('listRuns').all(districtId, Math.max(0, limit)) as RunRow[]).map(toRun),
    );
  }

  /**
   * Append rejects to a run in order. An identical reject (same entity, record id and reason)
   * already stored for the run is skipped, so a retried chunk does not duplicate rejects (its
   * `seq` is then left unused: `seq` orders, it does not count). Inserted
   * `REJECT_ROWS_PER_INSERT` rows per statement. Throws when the run is unknown.
   */
  addRejects(runId: string, rejects: Reject[]): Promise<void> {
    return this.run(() => {
      if (rejects.length === 0) return;
      this.db
        .transaction(() => {
          const districtId = this.stmt('runDistrict').pluck().get(runId) as string | undefined;
          if (districtId === undefined) throw new Error(`run ${runId} not found`);
          let seq = this.stmt('maxRejectSeq').pluck().get(runId) as number;
          const row = (r: Reject, out: unknown[]) =>
            out.push(
              runId,
              districtId,
              ++seq,
              r.entity,
              r.recordId,
              r.reason,
              r.kind ?? 'rejected',
            );
          let i = 0;
          if (rejects.length >= REJECT_ROWS_PER_INSERT) {
            const many = this.cached('insertRejects', insertRejectsSql(REJECT_ROWS_PER_INSERT));
            for (; i + REJECT_ROWS_PER_INSERT <= rejects.length; i += REJECT_ROWS_PER_INSERT) {
              const values: unknown[] = [];
              for (let j = i; j < i + REJECT_ROWS_PER_INSERT; j++)
                row(rejects[j] as Reject, values);
              many.run(values);
            }
          }
          const one = this.stmt('insertReject');
          for (; i < rejects.length; i++) {
            const values: unknown[] = [];
            row(rejects[i] as Reject, values);
            one.run(values);
          }
        })
        .immediate();
    });
  }

  /** A page of a run's rejects in insertion order, optionally of one `kind` only. */
  listRejects(
    runId: string,
    offset: number,
    limit: number,
    filter: RejectFilter = {},
  ): Promise<Reject[]> {
    return this.run(() => {
      const page = [Math.max(0, limit), Math.max(0, offset)];
      const rows = (
        filter.kind
          ? this.stmt('listRejectsOfKind').all(runId, filter.kind, ...page)
          : this.stmt('listRejects').all(runId, ...page)
      ) as RejectRow[];
      return rows.map(r => ({
        entity: r.entity as Reject['entity'],
        recordId: r.record_id,
        reason: r.reason,
        ...(r.kind === 'excluded' ? { kind: 'excluded' as const } : {}),
      }));
    });
  }

  /**
   * In one transaction: replace the run's held pages with `held` (pages of `HELD_PAGE_SIZE`)
   * and patch the run to `needs-approval` with the list sizes.
   */
  holdRun(id: string, patch: SyncRunPatch, held: Deactivations): Promise<SyncRun> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const current = this.mustGetRun(id);
          this.stmt('deleteHeldPages').run(id);
          const insert = this.stmt('insertHeldPage');
          const lists: [HeldKind, unknown[]][] = [
            ['student', held.studentSourcedIds],
            ['parent', held.parentIds],
            ['link', held.links],
          ];
          for (const [kind, list] of lists)
            for (let start = 0; start < list.length; start += HELD_PAGE_SIZE) {
              const page = list.slice(start, start + HELD_PAGE_SIZE);
              insert.run(id, kind, start, page.length, json(page));
            }
          const next = applyRunPatch(current, {
            ...patch,
            status: 'needs-approval',
            held: heldSummary(held),
          });
          this.stmt('updateRun').run(runParams(next));
          return this.mustGetRun(id);
        })
        .immediate(),
    );
  }

  /** A slice of one held list, read from the pages that overlap it. */
  listHeld(runId: string, kind: HeldKind, offset: number, limit: number): Promise<Deactivations> {
    return this.run(() => {
      const from = Math.max(0, offset);
      const end = from + Math.max(0, limit);
      const out: unknown[] = [];
      if (end > from) {
        const rows = this.stmt('heldPages').all({ runId, kind, offset: from, end }) as {
          start: number;
          items: string;
        }[];
        for (const r of rows) {
          const items = parseJson<unknown[]>(r.items, []);
          out.push(...items.slice(Math.max(0, from - r.start), Math.max(0, end - r.start)));
        }
      }
      return heldSlice(kind, out);
    });
  }

  /** Patch the run, clear `held` and drop its held pages, in one transaction. */
  settleHeldRun(id: string, patch: SyncRunPatch): Promise<SyncRun> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const next = applyRunPatch(this.mustGetRun(id), { ...patch, held: undefined });
          this.stmt('updateRun').run(runParams(next));
          this.stmt('deleteHeldPages').run(id);
          return this.mustGetRun(id);
        })
        .immediate(),
    );
  }

  /** Students and accounts (with sources) by id, any status. */
  findRecords(
    districtId: string,
    ids: { studentSourcedIds: string[]; parentIds: string[] },
  ): Promise<{ students: StoredStudent[]; parents: ParentAccount[] }> {
    return this.run(() => {
      const students = ids.studentSourcedIds.length
        ? (
            this.stmt('loadStudents').all({
              districtId,
              keys: uniqueJson(ids.studentSourcedIds),
            }) as StudentRow[]
          ).map(toStudent)
        : [];
      if (!ids.parentIds.length) return { students, parents: [] };
      const rows = this.stmt('parentsByIds').all({
        districtId,
        keys: uniqueJson(ids.parentIds),
      }) as ParentRow[];
      const sources = groupSources(
        this.stmt('loadSources').all({
          districtId,
          keys: json(rows.map(r => r.id)),
        }) as SourceRow[],
      );
      return { students, parents: rows.map(r => toParent(r, sources.get(r.id) ?? [])) };
    });
  }

  /** Active sis accounts left without an active link once `ending` is applied. */
  listOrphanedSisParentIds(
    districtId: string,
    ending: { parentId: string; studentSourcedId: string }[],
  ): Promise<string[]> {
    return this.run(() => {
      const candidates = this.stmt('orphanCandidates')
        .pluck()
        .all({ districtId, endingParents: uniqueJson(ending.map(l => l.parentId)) }) as string[];
      if (candidates.length === 0) return [];
      const active = this.stmt('activeLinksOfParents').all({
        districtId,
        keys: json(candidates),
      }) as { parent_id: string; student_sourced_id: string; origin: string }[];
      return orphansOf(
        candidates,
        active.map(r => ({
          parentId: r.parent_id,
          studentSourcedId: r.student_sourced_id,
          origin: r.origin,
        })),
        ending,
      );
    });
  }

  // --- internals ----------------------------------------------------------------------

  /** Run synchronous store code, turning throws into rejections. */
  private run<T>(fn: () => T): Promise<T> {
    return settle(fn);
  }

  private stmt(name: SqlName): Database.Statement {
    return this.cached(name, SQL[name]);
  }

  private cached(key: string, sql: string): Database.Statement {
    let stmt = this.statements.get(key);
    if (!stmt) {
      stmt = this.db.prepare(sql);
      this.statements.set(key, stmt);
    }
    return stmt;
  }

  /**
   * `state` plus the current rows of every record the plan writes that `state` lacks (a
   * planner may touch records its keys did not load), so the change log gets their true
   * before-values. The real planner loads everything it writes: then this reads nothing.
   */
  private withPlanTargets(districtId: string, state: ChunkState, plan: ChunkPlan): ChunkState {
    const haveParents = new Set(state.parents.map(p => p.id));
    const parentIds = [
      ...plan.parentCreates.map(p => p.id),
      ...plan.parentUpdates.map(u => u.update.id),
    ].filter(id => !haveParents.has(id));
    const haveStudents = new Set(state.students.map(s => s.sourcedId));
    const studentIds = [
      ...plan.students.map(s => s.record.sourcedId),
      ...plan.links.map(l => l.link.studentSourcedId),
    ].filter(id => !haveStudents.has(id));
    if (parentIds.length === 0 && studentIds.length === 0) return state;
    const parents = [...state.parents];
    if (parentIds.length > 0) {
      const rows = this.stmt('parentsByIds').all({
        districtId,
        keys: uniqueJson(parentIds),
      }) as ParentRow[];
      const sources = groupSources(
        this.stmt('loadSources').all({
          districtId,
          keys: json(rows.map(r => r.id)),
        }) as SourceRow[],
      );
      for (const r of rows) parents.push(toParent(r, sources.get(r.id) ?? []));
    }
    const students = [...state.students];
    const links = [...state.links];
    if (studentIds.length > 0) {
      const keys = uniqueJson(studentIds);
      students.push(
        ...(this.stmt('loadStudents').all({ districtId, keys }) as StudentRow[]).map(toStudent),
      );
      links.push(...(this.stmt('loadLinks').all({ districtId, keys }) as LinkRow[]).map(toLink));
    }
    return { parents, students, links };
  }

  /** `check.narrow` with the stored digests and the accounts of the chunk's guardians. */
  private narrowUnchanged(
    districtId: string,
    connector: string,
    check: UnchangedCheck,
  ): NarrowedChunk {
    const stored = new Map<string, string>();
    for (const r of this.stmt('loadDigests')
      .raw()
      .all({ districtId, keys: uniqueJson(check.studentSourcedIds) }) as [string, string][])
      stored.set(r[0], r[1]);
    const accounts = new Map<string, string>();
    if (stored.size > 0)
      for (const r of this.stmt('sourceAccounts')
        .raw()
        .all({ districtId, connector, keys: uniqueJson(check.guardianSourcedIds) }) as [
        string,
        string,
      ][])
        accounts.set(r[0], r[1]);
    return check.narrow(stored, accounts);
  }

  private loadChunkState(districtId: string, keys: ChunkKeys): ChunkState {
    const students = (
      this.stmt('loadStudents').all({
        districtId,
        keys: uniqueJson(keys.studentSourcedIds),
      }) as StudentRow[]
    ).map(toStudent);
    if (keys.studentUniqueIds?.length) {
      const have = new Set(students.map(st => st.sourcedId));
      const rows = this.stmt('loadStudentsByUniqueId').all({
        districtId,
        keys: uniqueJson(keys.studentUniqueIds),
      }) as StudentRow[];
      for (const r of rows) if (!have.has(r.sourced_id)) students.push(toStudent(r));
    }
    const studentIds = uniqueJson([...keys.studentSourcedIds, ...students.map(st => st.sourcedId)]);
    const parentRows = this.stmt('loadParents').all({
      districtId,
      connector: keys.connector,
      sourcedIds: uniqueJson(keys.guardianSourcedIds),
      uniqueIds: uniqueJson(keys.guardianUniqueIds),
      emails: uniqueJson(keys.emailsNormalized),
    }) as ParentRow[];
    const links = (this.stmt('loadLinks').all({ districtId, keys: studentIds }) as LinkRow[]).map(
      toLink,
    );
    // Accounts `sis`-linked to the chunk's students that no key matched (a re-keyed contact:
    // the planner may match it by name and student). Usually none: nothing more is read.
    const loaded = new Set(parentRows.map(r => r.id));
    const linkedOnly = [
      ...new Set(
        links.filter(l => l.origin === 'sis' && !loaded.has(l.parentId)).map(l => l.parentId),
      ),
    ];
    if (linkedOnly.length > 0)
      parentRows.push(
        ...(this.stmt('parentsByIds').all({ districtId, keys: json(linkedOnly) }) as ParentRow[]),
      );
    const sources =
      parentRows.length === 0
        ? new Map<string, ParentSource[]>()
        : groupSources(
            this.stmt('loadSources').all({
              districtId,
              keys: json(parentRows.map(r => r.id)),
            }) as SourceRow[],
          );
    const parents = parentRows.map(r => toParent(r, sources.get(r.id) ?? []));
    const owners = ownerlessParentIds(parents, keys);
    if (owners.length === 0) return { students, parents, links };
    const inChunk = new Set(keys.studentSourcedIds);
    const accountLinks = (
      this.stmt('accountLinks').all({ districtId, keys: json(owners) }) as LinkRow[]
    )
      .map(toLink)
      .filter(l => !inChunk.has(l.studentSourcedId));
    return accountLinks.length
      ? { students, parents, links, accountLinks }
      : { students, parents, links };
  }

  /**
   * Write a plan inside the caller's transaction; returns roster rows changed. Moved students'
   * access codes are moved here too; their change-log entries are appended to `entries`.
   *
   * `touched` (when given) receives the ids of the accounts that existed before this plan and
   * whose links, sources or fields it changed (and those linked to a moved student): the
   * accounts whose students' digests the paused triggers would have cleared. An account the
   * plan creates is left out: all its links are to this chunk's students.
   */
  private writePlan(
    districtId: string,
    plan: ChunkPlan,
    entries: NewChange[],
    touched?: Set<string>,
  ): number {
    let n = 0;
    for (const { action, record, from } of plan.students)
      if (action === 'move' && from !== undefined) {
        n += this.moveStudent(districtId, from, record.sourcedId, entries);
        if (touched)
          for (const id of this.stmt('linkedParents')
            .pluck()
            .all(districtId, record.sourcedId) as string[])
            touched.add(id);
      }
    const insertParent = this.stmt('insertParentIfAbsent');
    const created = new Set<string>();
    let first = true;
    for (const p of plan.parentCreates) {
      // A re-applied create of an existing account is a no-op (at-least-once delivery).
      const inserted = insertParent.run(parentParams(districtId, p)).changes;
      n += inserted;
      if (inserted > 0) created.add(p.id);
      if (first) {
        first = false;
        this.testHooks.afterFirstPlanWrite?.();
      }
      let added = 0;
      for (const s of p.sources) added += this.insertSource(districtId, p.id, s);
      n += added;
      if (added > 0 && inserted === 0) touched?.add(p.id);
    }
    if (first) this.testHooks.afterFirstPlanWrite?.();
    for (const { update } of plan.parentUpdates) {
      if (this.stmt('parentExists').get(districtId, update.id) === undefined) {
        throw new Error(`plan updates unknown parent account ${update.id}`);
      }
      let changed = this.updateParent(districtId, update.id, update.set);
      for (const s of update.addSources) changed += this.insertSource(districtId, update.id, s);
      n += changed;
      if (changed > 0) touched?.add(update.id);
    }
    const upsertStudent = this.stmt('upsertStudent');
    for (const { record } of plan.students) {
      n += upsertStudent.run(studentParams(districtId, record)).changes;
    }
    const upsertLink = this.stmt('upsertLink');
    for (const { link } of plan.links) {
      const changed = upsertLink.run(linkParams(districtId, link)).changes;
      n += changed;
      if (changed > 0 && !created.has(link.parentId)) touched?.add(link.parentId);
    }
    return n;
  }

  /**
   * Give the student `from` the sourcedId `to` (same record: the SIS re-keyed it), with its
   * links and access codes (and their redemption history). Nothing when `from` is gone or
   * `to` already exists (a re-applied move). Returns roster rows changed.
   */
  private moveStudent(districtId: string, from: string, to: string, entries: NewChange[]): number {
    const exists = this.stmt('studentExists');
    if (exists.get(districtId, from) === undefined || exists.get(districtId, to) !== undefined)
      return 0;
    let n = this.stmt('moveStudent').run({ districtId, from, to }).changes;
    n += this.stmt('moveLinks').run({ districtId, from, to }).changes;
    if (this.hasTable('access_codes')) {
      const codes = this.db
        .prepare(
          `UPDATE access_codes SET student_sourced_id = ? WHERE district_id = ?
            AND student_sourced_id = ? RETURNING code`,
        )
        .pluck()
        .all(to, districtId, from) as string[];
      for (const code of codes.sort()) entries.push(codeMoveChange(code, from, to));
      n += codes.length;
    }
    if (this.hasTable('access_code_redemptions'))
      this.db
        .prepare(
          `UPDATE OR IGNORE access_code_redemptions SET student_sourced_id = ?
            WHERE district_id = ? AND student_sourced_id = ?`,
        )
        .run(to, districtId, from);
    return n;
  }

  /** True when the database has the table (feature repositories create theirs lazily). */
  private hasTable(name: string): boolean {
    return (
      this.db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !==
      undefined
    );
  }

  /** Keep a plan's deferred students with the run (inside the caller's transaction). */
  private keepDeferred(districtId: string, plan: ChunkPlan, runId: string | undefined): void {
    const deferred = plan.deferredStudents ?? [];
    if (deferred.length === 0) return;
    if (runId === undefined) throw new Error('a plan with deferred students needs a run id');
    const upsert = this.stmt('upsertDeferred');
    for (const d of deferred)
      upsert.run(runId, districtId, d.record.sourcedId, json(d.record), json(d.links));
  }

  /** Update only the fields present in `set`, and only when one of them differs. */
  private updateParent(districtId: string, id: string, set: ParentUpdate['set']): number {
    const entries = parentUpdateEntries(set);
    if (entries.length === 0) return 0;
    const fields = entries.map(([field]) => field);
    const sql =
      `UPDATE parent_accounts SET ${fields.map(f => `${PARENT_COLUMNS[f]} = @${f}`).join(', ')}` +
      ` WHERE district_id = @districtId AND id = @id AND (` +
      fields.map(f => `${PARENT_COLUMNS[f]} IS NOT @${f}`).join(' OR ') +
      ')';
    const params: Params = { districtId, id };
    for (const [field, value] of entries) params[field] = nul(value);
    return this.cached(`updateParent:${fields.join(',')}`, sql).run(params).changes;
  }

  /** Attach a source; 0 when already attached here; StoreConflictError when owned elsewhere. */
  private insertSource(districtId: string, parentId: string, s: ParentSource): number {
    const changes = this.stmt('insertSourceIfAbsent').run(
      districtId,
      s.connector,
      s.sourcedId,
      parentId,
    ).changes;
    if (changes > 0) return changes;
    const owner = this.stmt('sourceOwner').pluck().get(districtId, s.connector, s.sourcedId);
    if (owner !== parentId) {
      throw new StoreConflictError(
        `source ${s.connector}:${s.sourcedId} already belongs to parent account ${String(owner)}`,
      );
    }
    return 0;
  }

  private activeRun(districtId: string): SyncRun | undefined {
    const row = this.stmt('activeRun').get(districtId) as RunRow | undefined;
    return row && toRun(row);
  }

  private mustGetRun(id: string): SyncRun {
    const row = this.stmt('getRun').get(id) as RunRow | undefined;
    if (!row) throw new Error(`run ${id} not found`);
    return toRun(row);
  }
}
