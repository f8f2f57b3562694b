/**
 * Pure mapping of PowerSchool sections and section enrollments to canonical `Section` /
 * `Enrollment` records, and attaching them to a students chunk.
 */
import type { PsSection, PsSectionEnrollment } from '../connectors/powerschool/section-payloads.js';
import { Section, type Enrollment, type RosterChunk } from './canonical.js';
import type { Reject } from '../models/types.js';

/**
 * Section title shown in exports: `"{course name} – {section number} ({expression})"`,
 * parts left out when unknown; `"Section {id}"` when nothing else is known.
 */
export function sectionTitle(raw: PsSection, courseName: string | undefined): string {
  const name = courseName?.trim();
  const parts: string[] = [];
  if (name) parts.push(name);
  if (raw.section_number)
    parts.push(name ? `– ${raw.section_number}` : `Section ${raw.section_number}`);
  if (raw.expression?.trim()) parts.push(`(${raw.expression.trim()})`);
  return parts.length ? parts.join(' ') : `Section ${raw.id}`;
}

/** Map one v1 section: sourcedId = SECTIONS.DCID, school = SCHOOLS.DCID. */
export function mapPowerSchoolSection(
  raw: PsSection,
  courseName: string | undefined,
): { ok: true; section: Section } | { ok: false; reject: Reject } {
  const r = Section.safeParse({
    sourcedId: raw.id,
    title: sectionTitle(raw, courseName),
    schoolSourcedId: raw.school_id,
  });
  if (r.success) return { ok: true, section: r.data };
  return {
    ok: false,
    reject: {
      entity: 'section',
      recordId: raw.id,
      reason: r.error.issues.map(i => `${i.path.join('.')}: ${i.message}`).join('; '),
    },
  };
}

/** Enrollments that count: not `dropped`. (Date fields are left to PowerSchool's own flag.) */
export function activeEnrollments(rows: readonly PsSectionEnrollment[]): Enrollment[] {
  const out: Enrollment[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    if (r.dropped) continue;
    const k = `${r.section_id}\u0000${r.student_id}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ sectionSourcedId: r.section_id, studentSourcedId: r.student_id });
  }
  return out;
}

/** Sections and enrollments of a whole pull, indexed for attaching to chunks. */
export interface SectionSnapshot {
  sections: Map<string, Section>;
  /** Student sourcedId → section sourcedIds (sorted, unique). */
  byStudent: Map<string, string[]>;
}

/**
 * Copy of `chunk` with `sections` (those its students are enrolled in) and `enrollments`
 * (of its students). Every student gets a supplied — possibly empty — enrollment list, so
 * enrollments that ended are removed (the snapshot was read completely beforehand).
 */
export function attachSections(chunk: RosterChunk, snap: SectionSnapshot): RosterChunk {
  const enrollments: Enrollment[] = [];
  const sectionIds = new Set<string>();
  for (const s of chunk.students) {
    for (const sectionSourcedId of snap.byStudent.get(s.sourcedId) ?? []) {
      if (!snap.sections.has(sectionSourcedId)) continue;
      enrollments.push({ sectionSourcedId, studentSourcedId: s.sourcedId });
      sectionIds.add(sectionSourcedId);
    }
  }
  const sections = [...sectionIds].sort().flatMap(id => {
    const s = snap.sections.get(id);
    return s ? [s] : [];
  });
  return { ...chunk, sections, enrollments };
}
