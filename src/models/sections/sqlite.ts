/**
 * SQLite adapter of the sections repository, on the roster store's better-sqlite3
 * connection. `CREATE … IF NOT EXISTS` in `init()`; a chunk's load → plan → write runs in one
 * `BEGIN IMMEDIATE` transaction (deferred for a dry run, which writes nothing).
 */
import type { Database, Statement } from 'better-sqlite3';
import type { RecordStatus } from '../../mapping/canonical.js';
import type { RunCounts } from '../types.js';
import { countSectionPlan, planSections } from './plan.js';
import type {
  SectionChunk,
  SectionRepository,
  SectionState,
  StoredEnrollment,
  StoredSection,
} from './types.js';
import { settle } from '../sqlite/adapter.js';

export const SECTIONS_DDL = `
  CREATE TABLE IF NOT EXISTS sections (
    district_id       TEXT NOT NULL,
    sourced_id        TEXT NOT NULL,
    title             TEXT NOT NULL,
    school_sourced_id TEXT NOT NULL,
    PRIMARY KEY (district_id, sourced_id)          -- chunk loads, upserts, getSection
  );
  CREATE TABLE IF NOT EXISTS section_enrollments (
    district_id        TEXT NOT NULL,
    section_sourced_id TEXT NOT NULL,
    student_sourced_id TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('active', 'inactive')),
    PRIMARY KEY (district_id, section_sourced_id, student_sourced_id)  -- upserts, section export
  );
  -- a chunk's students' enrollments
  CREATE INDEX IF NOT EXISTS section_enrollments_student
    ON section_enrollments (district_id, student_sourced_id);
`;

const SQL = {
  loadSections: `SELECT s.* FROM json_each(@keys) AS k CROSS JOIN sections AS s
    ON s.district_id = @districtId AND s.sourced_id = k.value`,
  loadEnrollments: `SELECT e.* FROM json_each(@keys) AS k CROSS JOIN section_enrollments AS e
    ON e.district_id = @districtId AND e.student_sourced_id = k.value`,
  upsertSection: `INSERT INTO sections (district_id, sourced_id, title, school_sourced_id)
    VALUES (?, ?, ?, ?) ON CONFLICT (district_id, sourced_id) DO UPDATE SET
      title = excluded.title, school_sourced_id = excluded.school_sourced_id
    WHERE sections.title IS NOT excluded.title
      OR sections.school_sourced_id IS NOT excluded.school_sourced_id`,
  upsertEnrollment: `INSERT INTO section_enrollments (district_id, section_sourced_id,
      student_sourced_id, status) VALUES (?, ?, ?, ?)
    ON CONFLICT (district_id, section_sourced_id, student_sourced_id) DO UPDATE SET
      status = excluded.status WHERE section_enrollments.status IS NOT excluded.status`,
  getSection: `SELECT * FROM sections WHERE district_id = ? AND sourced_id = ?`,
  listSections: `SELECT * FROM sections WHERE district_id = ? ORDER BY sourced_id`,
  sectionStudents: `SELECT student_sourced_id FROM section_enrollments
    WHERE district_id = ? AND section_sourced_id = ? AND status = 'active'
    ORDER BY student_sourced_id`,
  listEnrollments: `SELECT * FROM section_enrollments WHERE district_id = ?
    ORDER BY section_sourced_id, student_sourced_id`,
} as const;

interface SectionRow {
  district_id: string;
  sourced_id: string;
  title: string;
  school_sourced_id: string;
}
interface EnrollmentRow {
  district_id: string;
  section_sourced_id: string;
  student_sourced_id: string;
  status: RecordStatus;
}

const toSection = (r: SectionRow): StoredSection => ({
  districtId: r.district_id,
  sourcedId: r.sourced_id,
  title: r.title,
  schoolSourcedId: r.school_sourced_id,
});
const toEnrollment = (r: EnrollmentRow): StoredEnrollment => ({
  districtId: r.district_id,
  sectionSourcedId: r.section_sourced_id,
  studentSourcedId: r.student_sourced_id,
  status: r.status,
});

/** `SectionRepository` on SQLite. */
export class SqliteSectionRepository implements SectionRepository {
  private readonly statements = new Map<string, Statement>();
  private writes = 0;

  constructor(private readonly db: Database) {}

  init(): Promise<void> {
    return this.run(() => {
      this.db.exec(SECTIONS_DDL);
    });
  }

  writeCount(): number {
    return this.writes;
  }

  applyChunk(
    districtId: string,
    chunk: SectionChunk,
    opts: { dryRun: boolean },
  ): Promise<RunCounts> {
    return this.run(() => {
      const tx = this.db.transaction(() => {
        const state = this.load(districtId, chunk);
        const plan = planSections(districtId, chunk, state);
        if (opts.dryRun) return { plan, written: 0 };
        let written = 0;
        const upS = this.stmt('upsertSection');
        for (const { section: s } of plan.sections)
          written += upS.run(districtId, s.sourcedId, s.title, s.schoolSourcedId).changes;
        const upE = this.stmt('upsertEnrollment');
        for (const { enrollment: e } of plan.enrollments)
          written += upE.run(districtId, e.sectionSourcedId, e.studentSourcedId, e.status).changes;
        return { plan, written };
      });
      const { plan, written } = opts.dryRun ? tx.deferred() : tx.immediate();
      this.writes += written;
      return countSectionPlan(plan);
    });
  }

  getSection(districtId: string, sourcedId: string): Promise<StoredSection | undefined> {
    return this.run(() => {
      const r = this.stmt('getSection').get(districtId, sourcedId) as SectionRow | undefined;
      return r && toSection(r);
    });
  }

  listSections(districtId: string): Promise<StoredSection[]> {
    return this.run(() =>
      (this.stmt('listSections').all(districtId) as SectionRow[]).map(toSection),
    );
  }

  sectionStudentIds(districtId: string, sectionSourcedId: string): Promise<string[]> {
    return this.run(() =>
      this.stmt('sectionStudents').pluck().all(districtId, sectionSourcedId).map(String),
    );
  }

  listEnrollments(districtId: string): Promise<StoredEnrollment[]> {
    return this.run(() =>
      (this.stmt('listEnrollments').all(districtId) as EnrollmentRow[]).map(toEnrollment),
    );
  }

  private load(districtId: string, chunk: SectionChunk): SectionState {
    const sectionIds = [...new Set((chunk.sections ?? []).map(s => s.sourcedId))];
    const sections =
      sectionIds.length === 0
        ? []
        : (
            this.stmt('loadSections').all({
              districtId,
              keys: JSON.stringify(sectionIds),
            }) as SectionRow[]
          ).map(toSection);
    const enrollments =
      chunk.enrollments === undefined || chunk.studentSourcedIds.length === 0
        ? []
        : (
            this.stmt('loadEnrollments').all({
              districtId,
              keys: JSON.stringify([...new Set(chunk.studentSourcedIds)]),
            }) as EnrollmentRow[]
          ).map(toEnrollment);
    return { sections, enrollments };
  }

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
}
