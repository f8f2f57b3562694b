/**
 * The sections repository port: course sections and student enrollments from the roster
 * snapshot (`RosterChunk.sections` / `.enrollments`), stored beside the roster on the same
 * connection (`RosterStore.handle()`). Used by the access-code section export (issue 5).
 *
 * Rules both adapters keep (contract: `test/contract/access-codes.contract.ts`):
 * - Written from the apply step, per chunk, with change detection: applying the same chunk
 *   again writes nothing (invariant 1). `writeCount()` counts rows/documents written; it is
 *   separate from `RosterStore.writeCount()` (the sync tests add both).
 * - Sections are upserted, never removed. Enrollments of the chunk's students are replaced
 *   by the chunk's list only when the chunk supplies one (invariant 9: absent is not empty);
 *   an enrollment that disappears is deactivated, never deleted (invariant 10).
 */
import type { Enrollment, RecordStatus, Section } from '../../mapping/canonical.js';
import type { RunCounts } from '../types.js';

export interface StoredSection {
  districtId: string;
  sourcedId: string;
  title: string;
  schoolSourcedId: string;
}

export interface StoredEnrollment {
  districtId: string;
  sectionSourcedId: string;
  studentSourcedId: string;
  status: RecordStatus;
}

/** What the apply step hands over for one chunk. */
export interface SectionChunk {
  /** The chunk's students: the only students whose enrollments this chunk may change. */
  studentSourcedIds: string[];
  sections?: Section[] | undefined;
  enrollments?: Enrollment[] | undefined;
}

/** Existing state for a chunk (loaded by the adapter). */
export interface SectionState {
  sections: StoredSection[];
  /** All enrollments (any status) of the chunk's students. */
  enrollments: StoredEnrollment[];
}

/** Changes for one chunk (computed by `planSections`, written by the adapter). */
export interface SectionPlan {
  sections: { action: 'create' | 'update'; section: StoredSection }[];
  enrollments: { action: 'add' | 'reactivate' | 'remove'; enrollment: StoredEnrollment }[];
}

export interface SectionRepository {
  /** Create tables/collections and indexes. Idempotent. */
  init(): Promise<void>;
  /** Rows/documents written since open. */
  writeCount(): number;
  /**
   * Load, plan (`planSections`) and unless `dryRun` write one chunk's sections and
   * enrollments. Returns counts `{ section: {create, update}, enrollment: {add, reactivate,
   * remove} }` (empty when nothing changes).
   */
  applyChunk(
    districtId: string,
    chunk: SectionChunk,
    opts: { dryRun: boolean },
  ): Promise<RunCounts>;
  getSection(districtId: string, sourcedId: string): Promise<StoredSection | undefined>;
  /** All sections of a district, by sourcedId. */
  listSections(districtId: string): Promise<StoredSection[]>;
  /** Students with an active enrollment in the section, sorted. */
  sectionStudentIds(districtId: string, sectionSourcedId: string): Promise<string[]>;
  /** All enrollments of a district (tests, diagnostics), sorted by section then student. */
  listEnrollments(districtId: string): Promise<StoredEnrollment[]>;
}
