/**
 * SQLite implementation of the imports repository, on the roster store's better-sqlite3
 * connection (`RosterStore.handle()`).
 *
 * Tables it owns (created in `init()`, `IF NOT EXISTS`): `import_previews`,
 * `import_preview_parts`, `parent_profiles`. It also adds one index to the roster's
 * `students` table (`imports_students_unique_id`) so association files resolve student
 * Unique IDs by index instead of scanning the district.
 *
 * It reads the roster tables (`parent_accounts`, `parent_sources`, `students`,
 * `guardian_links`, `schools`) and writes accounts and links of imports with its own
 * statements, always inside one `BEGIN IMMEDIATE` transaction per confirm: state re-load,
 * freshness check, writes, their change-log entries (`appendChanges`, derived by
 * `./changes.ts` from the re-loaded state) and the preview's `applied` mark commit together or
 * not at all.
 */
import type SqliteDatabase from 'better-sqlite3';

type Database = SqliteDatabase.Database;
type Statement = SqliteDatabase.Statement;
import type { RecordStatus } from '../../mapping/canonical.js';
import { StoreConflictError } from '../../errors.js';
import { appendChanges } from '../changes/sqlite.js';
import type { NewChange } from '../changes/types.js';
import {
  groupSources,
  toLink,
  toParent,
  type LinkRow,
  type ParentRow,
  type SourceRow,
} from '../sqlite/rows.js';
import type { ParentSource } from '../types.js';
import {
  PART_SIZE,
  type ApplyOutcome,
  type ApplyRequest,
  type AssociationImportKeys,
  type AssociationImportState,
  type AssociationWrite,
  type ImportKind,
  type ImportParentSet,
  type ImportRepository,
  type ParentImportKeys,
  type ParentImportState,
  type ParentImportWrite,
  type ParentProfile,
  type PreviewParts,
  type PreviewStatus,
  type ProfileWrite,
  type SchoolRef,
  type StoredPreview,
} from './types.js';
import { associationImportChanges, parentImportChanges } from './changes.js';
import { settle } from '../sqlite/adapter.js';

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS import_previews (
    id            TEXT PRIMARY KEY,
    district_id   TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('parents', 'associations')),
    status        TEXT NOT NULL CHECK (status IN ('previewed', 'applying', 'applied', 'superseded')),
    created_at    TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    applied_at    TEXT,
    superseded_by TEXT,
    meta          TEXT NOT NULL, -- JSON (service-defined)
    result        TEXT           -- JSON (service-defined)
  );
  -- savePreview: purge a district's expired previews
  CREATE INDEX IF NOT EXISTS import_previews_district_expires
    ON import_previews (district_id, expires_at);

  CREATE TABLE IF NOT EXISTS import_preview_parts (
    preview_id TEXT NOT NULL,
    part       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    data       TEXT NOT NULL, -- JSON array of at most PART_SIZE items
    PRIMARY KEY (preview_id, part, seq) -- getPreviewPart in order
  );

  CREATE TABLE IF NOT EXISTS parent_profiles (
    district_id         TEXT NOT NULL,
    parent_id           TEXT NOT NULL,
    username            TEXT,
    username_normalized TEXT,
    school_sourced_ids  TEXT NOT NULL DEFAULT '[]', -- JSON array, sorted
    PRIMARY KEY (district_id, parent_id)
  );
  -- one username per district (login names are unique); parent import matches by it
  CREATE UNIQUE INDEX IF NOT EXISTS parent_profiles_username
    ON parent_profiles (district_id, username_normalized) WHERE username_normalized IS NOT NULL;

  -- association imports: resolve student Unique IDs by index
  CREATE INDEX IF NOT EXISTS imports_students_unique_id ON students (district_id, unique_id);
  -- parent imports: a row whose email is a student's is refused (normalizeEmail = trim, lower)
  CREATE INDEX IF NOT EXISTS imports_students_email
    ON students (district_id, lower(trim(email))) WHERE email IS NOT NULL;
`;

const SQL = {
  schools: `SELECT sourced_id, name FROM schools WHERE district_id = ? ORDER BY sourced_id`,
  parentsByKeys: `SELECT * FROM parent_accounts WHERE district_id = @districtId AND id IN (
      SELECT p.id FROM json_each(@uniqueIds) AS k CROSS JOIN parent_accounts AS p
        ON p.district_id = @districtId AND p.unique_id = k.value
      UNION
      SELECT p.id FROM json_each(@emails) AS k CROSS JOIN parent_accounts AS p
        ON p.district_id = @districtId AND p.email_normalized = k.value
      UNION
      SELECT f.parent_id FROM json_each(@usernames) AS k CROSS JOIN parent_profiles AS f
        ON f.district_id = @districtId AND f.username_normalized = k.value
    ) ORDER BY id`,
  sourcesOf: `SELECT s.parent_id, s.connector, s.sourced_id
    FROM json_each(@keys) AS k CROSS JOIN parent_sources AS s
    ON s.district_id = @districtId AND s.parent_id = k.value ORDER BY s.rowid`,
  profilesOf: `SELECT f.* FROM json_each(@keys) AS k CROSS JOIN parent_profiles AS f
    ON f.district_id = @districtId AND f.parent_id = k.value ORDER BY f.parent_id`,
  allProfiles: `SELECT * FROM parent_profiles WHERE district_id = ? ORDER BY parent_id`,
  parentsByUniqueId: `SELECT p.id, p.unique_id, p.status
    FROM json_each(@keys) AS k CROSS JOIN parent_accounts AS p
    ON p.district_id = @districtId AND p.unique_id = k.value`,
  parentsById: `SELECT p.id, p.unique_id, p.status
    FROM json_each(@keys) AS k CROSS JOIN parent_accounts AS p
    ON p.district_id = @districtId AND p.id = k.value`,
  studentsByUniqueId: `SELECT s.sourced_id, s.unique_id, s.status
    FROM json_each(@keys) AS k CROSS JOIN students AS s
    ON s.district_id = @districtId AND s.unique_id = k.value`,
  studentsByKeys: `SELECT sourced_id, unique_id, given_name, family_name, email, status
    FROM students WHERE district_id = @districtId AND sourced_id IN (
      SELECT s.sourced_id FROM json_each(@uniqueIds) AS k CROSS JOIN students AS s
        ON s.district_id = @districtId AND s.unique_id = k.value
      UNION
      SELECT s.sourced_id FROM json_each(@emails) AS k CROSS JOIN students AS s
        ON s.district_id = @districtId AND lower(trim(s.email)) = k.value
        AND s.email IS NOT NULL
    ) ORDER BY sourced_id`,
  linksOfStudents: `SELECT l.* FROM json_each(@keys) AS k CROSS JOIN guardian_links AS l
    ON l.district_id = @districtId AND l.student_sourced_id = k.value`,
  insertParent: `INSERT INTO parent_accounts (district_id, id, unique_id, given_name, family_name,
      email, email_normalized, phone, role, sis_role, status, origin, locked_fields)
    VALUES (@districtId, @id, @uniqueId, @givenName, @familyName, @email, @emailNormalized,
      @phone, @role, @sisRole, @status, @origin, @lockedFields)`,
  insertSource: `INSERT INTO parent_sources (district_id, connector, sourced_id, parent_id)
    VALUES (?, ?, ?, ?)`,
  upsertProfile: `INSERT INTO parent_profiles (district_id, parent_id, username,
      username_normalized, school_sourced_ids)
    VALUES (@districtId, @parentId, @username, @usernameNormalized, @schools)
    ON CONFLICT (district_id, parent_id) DO UPDATE SET username = excluded.username,
      username_normalized = excluded.username_normalized,
      school_sourced_ids = excluded.school_sourced_ids
    WHERE parent_profiles.username IS NOT excluded.username
      OR parent_profiles.username_normalized IS NOT excluded.username_normalized
      OR parent_profiles.school_sourced_ids IS NOT excluded.school_sourced_ids`,
  upsertImportLink: `INSERT INTO guardian_links (district_id, parent_id, student_sourced_id,
      origin, relationship, status)
    VALUES (?, ?, ?, ?, NULL, 'active')
    ON CONFLICT (district_id, parent_id, student_sourced_id, origin) DO UPDATE SET
      status = 'active' WHERE guardian_links.status IS NOT 'active'`,
  deactivateLink: `UPDATE guardian_links SET status = 'inactive' WHERE district_id = ?
    AND parent_id = ? AND student_sourced_id = ? AND origin = ? AND status = 'active'`,
  purgeExpiredParts: `DELETE FROM import_preview_parts WHERE preview_id IN (
    SELECT id FROM import_previews WHERE district_id = ? AND expires_at <= ?)`,
  purgeExpired: `DELETE FROM import_previews WHERE district_id = ? AND expires_at <= ?`,
  insertPreview: `INSERT INTO import_previews (id, district_id, kind, status, created_at,
      expires_at, applied_at, superseded_by, meta, result)
    VALUES (@id, @districtId, @kind, @status, @createdAt, @expiresAt, @appliedAt,
      @supersededBy, @meta, @result)`,
  insertPart: `INSERT INTO import_preview_parts (preview_id, part, seq, data) VALUES (?, ?, ?, ?)`,
  getPreview: `SELECT * FROM import_previews WHERE id = ?`,
  getPart: `SELECT data FROM import_preview_parts WHERE preview_id = ? AND part = ? ORDER BY seq`,
  supersede: `UPDATE import_previews SET status = 'superseded', superseded_by = ?
    WHERE id = ? AND district_id = ? AND status = 'previewed'`,
  markApplied: `UPDATE import_previews SET status = 'applied', applied_at = ?, result = ?
    WHERE id = ?`,
} as const;

interface PreviewRow {
  id: string;
  district_id: string;
  kind: string;
  status: string;
  created_at: string;
  expires_at: string;
  applied_at: string | null;
  superseded_by: string | null;
  meta: string;
  result: string | null;
}

interface ProfileRow {
  district_id: string;
  parent_id: string;
  username: string | null;
  username_normalized: string | null;
  school_sourced_ids: string;
}

const PARENT_SET_COLUMNS: Record<keyof ImportParentSet, string> = {
  givenName: 'given_name',
  familyName: 'family_name',
  email: 'email',
  emailNormalized: 'email_normalized',
  uniqueId: 'unique_id',
  role: 'role',
  status: 'status',
  lockedFields: 'locked_fields',
};

const json = (v: unknown) => JSON.stringify(v);
const nul = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

/**
 * True for SQLite UNIQUE / PRIMARY KEY violations. Checked by `code`, not `instanceof`: the
 * native module's error class can come from another realm (jest's VM modules).
 */
function isUniqueViolation(err: unknown): boolean {
  const code =
    typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

function toProfile(r: ProfileRow): ParentProfile {
  const p: ParentProfile = {
    districtId: r.district_id,
    parentId: r.parent_id,
    schoolSourcedIds: JSON.parse(r.school_sourced_ids) as string[],
  };
  if (r.username !== null) p.username = r.username;
  if (r.username_normalized !== null) p.usernameNormalized = r.username_normalized;
  return p;
}

function toPreview(r: PreviewRow): StoredPreview {
  const p: StoredPreview = {
    id: r.id,
    districtId: r.district_id,
    kind: r.kind as ImportKind,
    status: r.status as PreviewStatus,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    meta: JSON.parse(r.meta) as Record<string, unknown>,
  };
  if (r.applied_at !== null) p.appliedAt = r.applied_at;
  if (r.superseded_by !== null) p.supersededBy = r.superseded_by;
  if (r.result !== null) p.result = JSON.parse(r.result) as Record<string, unknown>;
  return p;
}

/** The imports repository on SQLite. */
export class SqliteImportRepository implements ImportRepository {
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly db: Database) {}

  /** Create the tables and indexes (idempotent). The roster store must be initialised. */
  init(): Promise<void> {
    return this.run(() => {
      this.db.exec(SCHEMA);
    });
  }

  /** The district's schools, by sourcedId. */
  listSchools(districtId: string): Promise<SchoolRef[]> {
    return this.run(() => this.schools(districtId));
  }

  /** Accounts matching any key (with sources and profiles) and the district's schools. */
  loadParentImportState(districtId: string, keys: ParentImportKeys): Promise<ParentImportState> {
    return this.run(() => this.parentState(districtId, keys));
  }

  /** Parents and students by Unique ID, and every link of those students. */
  loadAssociationState(
    districtId: string,
    keys: AssociationImportKeys,
  ): Promise<AssociationImportState> {
    return this.run(() => this.associationState(districtId, keys));
  }

  /** Profiles of the given accounts (all of the district's when omitted), by parentId. */
  getProfiles(districtId: string, parentIds?: string[]): Promise<ParentProfile[]> {
    return this.run(() => {
      const rows =
        parentIds === undefined
          ? (this.stmt('allProfiles').all(districtId) as ProfileRow[])
          : (this.stmt('profilesOf').all({
              districtId,
              keys: json([...new Set(parentIds)]),
            }) as ProfileRow[]);
      return rows.map(toProfile);
    });
  }

  /** Insert a preview and its parts in one transaction, after purging expired previews. */
  savePreview(preview: StoredPreview, parts: PreviewParts, now: Date): Promise<void> {
    return this.run(() => {
      this.db
        .transaction(() => {
          const at = now.toISOString();
          this.stmt('purgeExpiredParts').run(preview.districtId, at);
          this.stmt('purgeExpired').run(preview.districtId, at);
          this.stmt('insertPreview').run({
            id: preview.id,
            districtId: preview.districtId,
            kind: preview.kind,
            status: preview.status,
            createdAt: preview.createdAt,
            expiresAt: preview.expiresAt,
            appliedAt: nul(preview.appliedAt),
            supersededBy: nul(preview.supersededBy),
            meta: json(preview.meta),
            result: preview.result === undefined ? null : json(preview.result),
          });
          const insert = this.stmt('insertPart');
          for (const [part, items] of Object.entries(parts)) {
            for (let i = 0, seq = 0; i < items.length; i += PART_SIZE, seq++) {
              insert.run(preview.id, part, seq, json(items.slice(i, i + PART_SIZE)));
            }
          }
        })
        .immediate();
    });
  }

  /** The preview, when it exists in `districtId`. */
  getPreview(districtId: string, id: string): Promise<StoredPreview | undefined> {
    return this.run(() => {
      const row = this.stmt('getPreview').get(id) as PreviewRow | undefined;
      return row && row.district_id === districtId ? toPreview(row) : undefined;
    });
  }

  /** A part's items in order. */
  getPreviewPart(previewId: string, part: string): Promise<unknown[]> {
    return this.run(() => {
      const out: unknown[] = [];
      for (const data of this.stmt('getPart').pluck().iterate(previewId, part)) {
        for (const item of JSON.parse(String(data)) as unknown[]) out.push(item);
      }
      return out;
    });
  }

  /** Mark a previewed preview as replaced. */
  supersedePreview(districtId: string, id: string, by: string): Promise<void> {
    return this.run(() => {
      this.stmt('supersede').run(by, id, districtId);
    });
  }

  /** Re-load, check, write, log and mark applied — one `BEGIN IMMEDIATE` transaction. */
  applyParentImport(
    req: ApplyRequest<ParentImportKeys, ParentImportState, ParentImportWrite>,
  ): Promise<ApplyOutcome<ParentImportState>> {
    return this.apply(
      req,
      () => this.parentState(req.districtId, req.keys),
      () => this.writeParents(req.districtId, req.write),
      state => parentImportChanges(state, req.write),
    );
  }

  /** Re-load, check, write, log and mark applied — one `BEGIN IMMEDIATE` transaction. */
  applyAssociationImport(
    req: ApplyRequest<AssociationImportKeys, AssociationImportState, AssociationWrite>,
  ): Promise<ApplyOutcome<AssociationImportState>> {
    return this.apply(
      req,
      () => this.associationState(req.districtId, req.keys),
      () => this.writeLinks(req.districtId, req.write),
      state => associationImportChanges(state, req.write),
    );
  }

  // --- internals ------------------------------------------------------------------------

  private apply<S>(
    req: ApplyRequest<unknown, S, unknown>,
    load: () => S,
    write: () => number,
    changes: (state: S) => NewChange[],
  ): Promise<ApplyOutcome<S>> {
    return this.run(() => {
      try {
        return this.db
          .transaction((): ApplyOutcome<S> => {
            const row = this.stmt('getPreview').get(req.previewId) as PreviewRow | undefined;
            const preview = row && row.district_id === req.districtId ? toPreview(row) : undefined;
            if (
              !preview ||
              preview.status !== 'previewed' ||
              preview.expiresAt <= req.now.toISOString()
            ) {
              return { kind: 'unavailable', preview };
            }
            const state = load();
            if (!req.isCurrent(state)) return { kind: 'stale', state };
            // Derived before writing, from the state this transaction loaded and checked.
            const entries = changes(state);
            const writes = write();
            appendChanges(this.db, req.districtId, req.change, entries);
            const appliedAt = req.now.toISOString();
            this.stmt('markApplied').run(appliedAt, json(req.result), req.previewId);
            return {
              kind: 'applied',
              writes,
              preview: { ...preview, status: 'applied', appliedAt, result: req.result },
            };
          })
          .immediate();
      } catch (err) {
        if (isUniqueViolation(err)) {
          throw new StoreConflictError(
            `import ${req.previewId} conflicts with data written meanwhile: ${String(err)}`,
            { cause: err },
          );
        }
        throw err;
      }
    });
  }

  private schools(districtId: string): SchoolRef[] {
    return (this.stmt('schools').all(districtId) as { sourced_id: string; name: string }[]).map(
      r => ({ sourcedId: r.sourced_id, name: r.name }),
    );
  }

  private parentState(districtId: string, keys: ParentImportKeys): ParentImportState {
    const rows = this.stmt('parentsByKeys').all({
      districtId,
      uniqueIds: json(keys.uniqueIds),
      emails: json(keys.emailsNormalized),
      usernames: json(keys.usernamesNormalized),
    }) as ParentRow[];
    const ids = json(rows.map(r => r.id));
    let sources = new Map<string, ParentSource[]>();
    const profiles: ParentProfile[] = [];
    if (rows.length > 0) {
      sources = groupSources(
        this.stmt('sourcesOf').iterate({ districtId, keys: ids }) as Iterable<SourceRow>,
      );
      for (const p of this.stmt('profilesOf').iterate({
        districtId,
        keys: ids,
      }) as Iterable<ProfileRow>)
        profiles.push(toProfile(p));
    }
    return {
      parents: rows.map(r => toParent(r, sources.get(r.id) ?? [])),
      profiles,
      schools: this.schools(districtId),
      students: (
        this.stmt('studentsByKeys').all({
          districtId,
          uniqueIds: json(keys.uniqueIds),
          emails: json(keys.emailsNormalized),
        }) as {
          sourced_id: string;
          unique_id: string;
          given_name: string;
          family_name: string;
          email: string | null;
          status: string;
        }[]
      ).map(r => ({
        sourcedId: r.sourced_id,
        uniqueId: r.unique_id,
        givenName: r.given_name,
        familyName: r.family_name,
        ...(r.email === null ? {} : { email: r.email }),
        status: r.status as RecordStatus,
      })),
    };
  }

  private associationState(
    districtId: string,
    keys: AssociationImportKeys,
  ): AssociationImportState {
    const parents: AssociationImportState['parents'] = (
      this.stmt('parentsByUniqueId').all({
        districtId,
        keys: json(keys.parentUniqueIds),
      }) as { id: string; unique_id: string; status: string }[]
    ).map(r => ({ id: r.id, uniqueId: r.unique_id, status: r.status as RecordStatus }));
    const students = (
      this.stmt('studentsByUniqueId').all({
        districtId,
        keys: json(keys.studentUniqueIds),
      }) as { sourced_id: string; unique_id: string; status: string }[]
    ).map(r => ({
      sourcedId: r.sourced_id,
      uniqueId: r.unique_id,
      status: r.status as RecordStatus,
    }));
    const links = (
      this.stmt('linksOfStudents').all({
        districtId,
        keys: json([...new Set(students.map(s => s.sourcedId))]),
      }) as LinkRow[]
    ).map(toLink);
    const known = new Set(parents.map(p => p.id));
    const more = [...new Set(links.map(l => l.parentId))].filter(id => !known.has(id));
    if (more.length > 0) {
      for (const r of this.stmt('parentsById').all({ districtId, keys: json(more) }) as {
        id: string;
        unique_id: string | null;
        status: string;
      }[]) {
        parents.push({
          id: r.id,
          ...(r.unique_id === null ? {} : { uniqueId: r.unique_id }),
          status: r.status as RecordStatus,
        });
      }
    }
    return { parents, students, links };
  }

  private writeProfile(districtId: string, parentId: string, p: ProfileWrite): number {
    return this.stmt('upsertProfile').run({
      districtId,
      parentId,
      username: nul(p.username),
      usernameNormalized: nul(p.usernameNormalized),
      schools: json([...p.schoolSourcedIds].sort()),
    }).changes;
  }

  private writeParents(districtId: string, w: ParentImportWrite): number {
    let n = 0;
    const insert = this.stmt('insertParent');
    for (const { account: a, profile } of w.creates) {
      if (a.districtId !== districtId) throw new Error(`account ${a.id} is not of ${districtId}`);
      n += insert.run({
        districtId,
        id: a.id,
        uniqueId: nul(a.uniqueId),
        givenName: a.givenName,
        familyName: a.familyName,
        email: nul(a.email),
        emailNormalized: nul(a.emailNormalized),
        phone: nul(a.phone),
        role: a.role,
        sisRole: nul(a.sisRole),
        status: a.status,
        origin: a.origin,
        lockedFields: json(a.lockedFields),
      }).changes;
      for (const s of a.sources)
        n += this.stmt('insertSource').run(districtId, s.connector, s.sourcedId, a.id).changes;
      if (profile.usernameNormalized || profile.schoolSourcedIds.length > 0)
        n += this.writeProfile(districtId, a.id, profile);
    }
    for (const u of w.updates) {
      const entries = (Object.keys(PARENT_SET_COLUMNS) as (keyof ImportParentSet)[]).filter(k =>
        Object.hasOwn(u.set, k),
      );
      if (entries.length > 0) {
        const sql =
          `UPDATE parent_accounts SET ${entries.map(k => `${PARENT_SET_COLUMNS[k]} = @${k}`).join(', ')}` +
          ' WHERE district_id = @districtId AND id = @id';
        const params: Record<string, string | null> = { districtId, id: u.parentId };
        for (const k of entries) {
          const v = u.set[k];
          params[k] = Array.isArray(v) ? json(v) : nul(v);
        }
        const changes = this.cached(`update:${entries.join(',')}`, sql).run(params).changes;
        if (changes === 0) throw new Error(`import updates unknown parent account ${u.parentId}`);
        n += changes;
      }
      if (u.profile) n += this.writeProfile(districtId, u.parentId, u.profile);
    }
    return n;
  }

  private writeLinks(districtId: string, w: AssociationWrite): number {
    let n = 0;
    const upsert = this.stmt('upsertImportLink');
    for (const l of w.upserts) {
      if (l.districtId !== districtId) throw new Error(`link is not of ${districtId}`);
      n += upsert.run(districtId, l.parentId, l.studentSourcedId, l.origin).changes;
    }
    const deactivate = this.stmt('deactivateLink');
    for (const d of w.deactivations)
      n += deactivate.run(districtId, d.parentId, d.studentSourcedId, d.origin).changes;
    return n;
  }

  private run<T>(fn: () => T): Promise<T> {
    return settle(fn);
  }

  private stmt(name: keyof typeof SQL): Statement {
    return this.cached(name, SQL[name]);
  }

  private cached(key: string, sql: string): Statement {
    let s = this.statements.get(key);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(key, s);
    }
    return s;
  }
}
