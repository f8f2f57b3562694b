/**
 * SQLite student lookup (see `student-lookup.ts`), on the roster store's connection.
 *
 * Name search uses its own index table, `student_name_keys (district_id, name_key,
 * sourced_id)`: one row per `nameKey` of a student's first name, last name and of each word
 * in them ("Garcia Lopez" → `garcialopez`, `garcia`, `lopez`). A prefix search is one range
 * scan of its primary key (`name_key >= q AND name_key < q || U+10FFFF`), not a scan of the
 * district.
 *
 * Keeping it current without touching the roster store's code: SQL triggers on `students`
 * (insert; update of a name) queue the student in `student_name_dirty`; they are plain SQL,
 * so they fire for every connection and process (workers, CLI). The first search of a
 * district builds all its keys (`student_name_built` marks it: about 1 s per 100,000
 * students); later searches first re-key the queued students (usually none — a cheap
 * indexed read decides, and only then a `BEGIN IMMEDIATE` write runs). Status is not in the
 * key: the search joins `students` for `status = 'active'`.
 */
import type SqliteDatabase from 'better-sqlite3';
import type { RecordStatus } from '../../mapping/canonical.js';
import { toLink, toStudent, type LinkRow, type StudentRow } from '../sqlite/rows.js';
import type { GuardianLink, StoredStudent } from '../types.js';
import { nameKey, type ParentRef, type StudentLookup } from './student-lookup.js';
import { settle } from '../sqlite/adapter.js';

type Database = SqliteDatabase.Database;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS student_name_keys (
    district_id TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    sourced_id  TEXT NOT NULL,
    PRIMARY KEY (district_id, name_key, sourced_id) -- prefix range scans
  ) WITHOUT ROWID;
  -- re-keying one student
  CREATE INDEX IF NOT EXISTS student_name_keys_student
    ON student_name_keys (district_id, sourced_id);
  CREATE TABLE IF NOT EXISTS student_name_dirty (
    district_id TEXT NOT NULL,
    sourced_id  TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS student_name_built (district_id TEXT PRIMARY KEY);
  CREATE TRIGGER IF NOT EXISTS student_name_keys_on_insert AFTER INSERT ON students
  BEGIN
    INSERT OR IGNORE INTO student_name_dirty (district_id, sourced_id)
      VALUES (NEW.district_id, NEW.sourced_id);
  END;
  CREATE TRIGGER IF NOT EXISTS student_name_keys_on_update
    AFTER UPDATE OF given_name, family_name ON students
    WHEN OLD.given_name IS NOT NEW.given_name OR OLD.family_name IS NOT NEW.family_name
  BEGIN
    INSERT OR IGNORE INTO student_name_dirty (district_id, sourced_id)
      VALUES (NEW.district_id, NEW.sourced_id);
  END;
  -- studentsByUniqueId (the imports repository creates the same index)
  CREATE INDEX IF NOT EXISTS imports_students_unique_id ON students (district_id, unique_id);
`;

/** Highest code point: `key < prefix + MAX` holds for every key starting with `prefix`. */
const MAX = '\u{10ffff}';

/** The distinct keys of a student's names (whole names and each word of them). */
export function studentNameKeys(givenName: string, familyName: string): string[] {
  const keys = new Set<string>();
  for (const name of [givenName, familyName]) {
    keys.add(nameKey(name));
    for (const word of name.split(/[\s\-‐–—_/.,]+/u)) keys.add(nameKey(word));
  }
  keys.delete('');
  return [...keys];
}

export class SqliteStudentLookup implements StudentLookup {
  constructor(private readonly db: Database) {}

  init(): Promise<void> {
    return this.run(() => {
      this.db.exec(SCHEMA);
    });
  }

  searchActive(districtId: string, keyPrefix: string, limit: number): Promise<StoredStudent[]> {
    return this.run(() => {
      this.refreshKeys(districtId);
      const rows = this.db
        .prepare(
          `SELECT s.* FROM (
             SELECT DISTINCT sourced_id FROM student_name_keys
             WHERE district_id = ? AND name_key >= ? AND name_key < ?) AS k
           CROSS JOIN students AS s ON s.district_id = ? AND s.sourced_id = k.sourced_id
           WHERE s.status = 'active'
           ORDER BY s.family_name, s.given_name, s.sourced_id
           LIMIT ?`,
        )
        .all(districtId, keyPrefix, keyPrefix + MAX, districtId, limit) as StudentRow[];
      return rows.map(toStudent);
    });
  }

  studentsByUniqueId(districtId: string, uniqueId: string): Promise<StoredStudent[]> {
    return this.run(() =>
      (
        this.db
          .prepare(
            'SELECT * FROM students WHERE district_id = ? AND unique_id = ? ORDER BY sourced_id',
          )
          .all(districtId, uniqueId) as StudentRow[]
      ).map(toStudent),
    );
  }

  studentBySourcedId(districtId: string, sourcedId: string): Promise<StoredStudent | undefined> {
    return this.run(() => {
      const r = this.db
        .prepare('SELECT * FROM students WHERE district_id = ? AND sourced_id = ?')
        .get(districtId, sourcedId) as StudentRow | undefined;
      return r && toStudent(r);
    });
  }

  parentById(districtId: string, parentId: string): Promise<ParentRef | undefined> {
    return this.run(() => {
      const r = this.db
        .prepare(
          `SELECT id, unique_id, given_name, family_name, status FROM parent_accounts
           WHERE district_id = ? AND id = ?`,
        )
        .get(districtId, parentId) as
        | {
            id: string;
            unique_id: string | null;
            given_name: string;
            family_name: string;
            status: string;
          }
        | undefined;
      if (!r) return undefined;
      const p: ParentRef = {
        id: r.id,
        givenName: r.given_name,
        familyName: r.family_name,
        status: r.status as RecordStatus,
      };
      if (r.unique_id !== null) p.uniqueId = r.unique_id;
      return p;
    });
  }

  linksBetween(
    districtId: string,
    parentId: string,
    studentSourcedId: string,
  ): Promise<GuardianLink[]> {
    return this.run(() =>
      (
        this.db
          .prepare(
            `SELECT * FROM guardian_links
             WHERE district_id = ? AND parent_id = ? AND student_sourced_id = ? ORDER BY origin`,
          )
          .all(districtId, parentId, studentSourcedId) as LinkRow[]
      ).map(toLink),
    );
  }

  /** Build the district's keys on first use; re-key students the triggers queued. */
  private refreshKeys(districtId: string): void {
    const built = this.db
      .prepare('SELECT 1 FROM student_name_built WHERE district_id = ?')
      .get(districtId);
    const dirty = built
      ? this.db
          .prepare('SELECT 1 FROM student_name_dirty WHERE district_id = ? LIMIT 1')
          .get(districtId)
      : undefined;
    if (built && !dirty) return;
    const insert = this.db.prepare(
      'INSERT OR IGNORE INTO student_name_keys (district_id, name_key, sourced_id) VALUES (?, ?, ?)',
    );
    this.db
      .transaction(() => {
        const isBuilt = this.db
          .prepare('SELECT 1 FROM student_name_built WHERE district_id = ?')
          .get(districtId);
        if (!isBuilt) {
          this.db.prepare('DELETE FROM student_name_keys WHERE district_id = ?').run(districtId);
          const all = this.db
            .prepare(
              'SELECT sourced_id, given_name, family_name FROM students WHERE district_id = ?',
            )
            .all(districtId) as { sourced_id: string; given_name: string; family_name: string }[];
          for (const r of all)
            for (const k of studentNameKeys(r.given_name, r.family_name))
              insert.run(districtId, k, r.sourced_id);
          this.db
            .prepare('INSERT INTO student_name_built (district_id) VALUES (?)')
            .run(districtId);
        } else {
          const queued = this.db
            .prepare('SELECT sourced_id FROM student_name_dirty WHERE district_id = ?')
            .pluck()
            .all(districtId) as string[];
          const drop = this.db.prepare(
            'DELETE FROM student_name_keys WHERE district_id = ? AND sourced_id = ?',
          );
          const get = this.db.prepare(
            'SELECT given_name, family_name FROM students WHERE district_id = ? AND sourced_id = ?',
          );
          for (const id of queued) {
            drop.run(districtId, id);
            const s = get.get(districtId, id) as
              { given_name: string; family_name: string } | undefined;
            if (s)
              for (const k of studentNameKeys(s.given_name, s.family_name))
                insert.run(districtId, k, id);
          }
        }
        this.db.prepare('DELETE FROM student_name_dirty WHERE district_id = ?').run(districtId);
      })
      .immediate();
  }

  private run<T>(fn: () => T): Promise<T> {
    return settle(fn);
  }
}
