/**
 * Pure mapping of Skyward SMS 2.0 LMS API records (schemas in
 * `src/connectors/skyward/payloads.ts`, sis-reference §5.4) to canonical records.
 *
 * - Student: `NameId` is the sourcedId (the person key used everywhere), `DisplayId` the
 *   local student id (default uniqueId), `StateId` the state id.
 * - Guardian: `GuardianNameId`; the relationship text is per student (`Students[]` entry
 *   whose `StudentNameId` matches) and decides the role (Mother/Father/… → parent).
 * - The LMS API returns only guardians of current students, and custody/portal flags are
 *   not documented [unconfirmed]: every guardian the API lists for a student is linked.
 *
 * No I/O here.
 */
import type { z } from 'zod';
import type {
  SkyEnrollment,
  SkyGuardian,
  SkySchool,
  SkyStudent,
} from '../connectors/skyward/payloads.js';
import type { Reject } from '../models/types.js';
import {
  Enrollment,
  Guardian,
  Relationship,
  School,
  Section,
  Student,
  type RosterChunk,
} from './canonical.js';
import { roleFromRelationships } from './powerschool.js';

/** Which student field is the district uniqueId (config `studentUniqueId`). */
export type SkywardStudentUniqueId = 'identifier' | 'userMasterIdentifier' | 'sourcedId';

const EmailCheck = Guardian.shape.email;

function issuesReason(error: z.ZodError, names: Record<string, string>): string {
  return error.issues
    .map(i => {
      const key = i.path.map(String).join('.');
      return `${names[String(i.path[0])] ?? (key || '(record)')}: ${i.message}`;
    })
    .join('; ');
}

function validEmail(raw: string | undefined): { email?: string; invalid: boolean } {
  if (raw === undefined) return { invalid: false };
  return EmailCheck.safeParse(raw).success ? { email: raw, invalid: false } : { invalid: true };
}

/** Map a school (`SchoolId`, `SchoolName`). */
export function mapSkywardSchool(
  raw: SkySchool,
): { ok: true; school: School } | { ok: false; reject: Reject } {
  const r = School.safeParse({ sourcedId: raw.SchoolId, name: raw.SchoolName ?? '' });
  if (r.success) return { ok: true, school: r.data };
  return {
    ok: false,
    reject: {
      entity: 'school',
      recordId: raw.SchoolId,
      reason: issuesReason(r.error, { name: 'SchoolName' }),
    },
  };
}

const STUDENT_NAMES: Record<string, string> = {
  uniqueId: 'DisplayId',
  givenName: 'FirstName',
  familyName: 'LastName',
};

/**
 * Map a student. `uniqueId`: `DisplayId` (identifier), `StateId` (userMasterIdentifier) or
 * `NameId` (sourcedId). Rejects name the Skyward field; an invalid `SchoolEmail` is dropped
 * with `emailReject`.
 */
export function mapSkywardStudent(
  raw: SkyStudent,
  uniqueIdField: SkywardStudentUniqueId,
):
  { ok: true; student: Student; emailReject?: Reject | undefined } | { ok: false; reject: Reject } {
  const uniqueId =
    uniqueIdField === 'sourcedId'
      ? raw.NameId
      : uniqueIdField === 'userMasterIdentifier'
        ? raw.StateId
        : raw.DisplayId;
  const email = validEmail(raw.SchoolEmail);
  const r = Student.safeParse({
    sourcedId: raw.NameId,
    uniqueId: uniqueId ?? '',
    givenName: raw.FirstName ?? '',
    familyName: raw.LastName ?? '',
    ...(email.email ? { email: email.email } : {}),
    schoolSourcedIds: raw.schoolIds,
    ...(raw.grade ? { grade: raw.grade } : {}),
    status: 'active',
  });
  if (!r.success) {
    return {
      ok: false,
      reject: {
        entity: 'student',
        recordId: raw.NameId,
        reason: issuesReason(r.error, {
          ...STUDENT_NAMES,
          uniqueId:
            uniqueIdField === 'sourcedId'
              ? 'NameId'
              : uniqueIdField === 'userMasterIdentifier'
                ? 'StateId'
                : 'DisplayId',
        }),
      },
    };
  }
  return {
    ok: true,
    student: r.data,
    ...(email.invalid
      ? {
          emailReject: {
            entity: 'student',
            recordId: raw.NameId,
            reason: 'SchoolEmail: not a valid email address; student kept without email',
          },
        }
      : {}),
  };
}

/**
 * Map a guardian with the relationship texts of its links in the chunk (role: parent when
 * one of them is Mother/Father/Parent/Step…, else guardian). Phone: the first of
 * `PhoneNumber`, `PhoneNumber2`, `PhoneNumber3`.
 */
export function mapSkywardGuardian(
  raw: SkyGuardian,
  relationships: readonly (string | undefined)[],
):
  | { ok: true; guardian: Guardian; emailReject?: Reject | undefined }
  | { ok: false; reject: Reject } {
  const email = validEmail(raw.Email);
  const phone = raw.PhoneNumber ?? raw.PhoneNumber2 ?? raw.PhoneNumber3;
  const r = Guardian.safeParse({
    sourcedId: raw.GuardianNameId,
    givenName: raw.FirstName ?? '',
    familyName: raw.LastName ?? '',
    ...(email.email ? { email: email.email } : {}),
    ...(phone ? { phone } : {}),
    role: roleFromRelationships(relationships),
    status: 'active',
  });
  if (!r.success) {
    return {
      ok: false,
      reject: {
        entity: 'guardian',
        recordId: raw.GuardianNameId,
        reason: issuesReason(r.error, { givenName: 'FirstName', familyName: 'LastName' }),
      },
    };
  }
  return {
    ok: true,
    guardian: r.data,
    ...(email.invalid
      ? {
          emailReject: {
            entity: 'guardian',
            recordId: raw.GuardianNameId,
            reason: 'Email: not a valid email address; guardian kept without email',
          },
        }
      : {}),
  };
}

/** Map an enrollment's section (title: course description/name, else `Course X section Y`). */
export function mapSkywardSection(
  raw: SkyEnrollment,
  fallbackSchoolId: string | undefined,
): { ok: true; section: Section } | { ok: false; reason: string } {
  const title =
    raw.CourseDescription ??
    raw.CourseName ??
    raw.SectionName ??
    (raw.CourseId ? `Course ${raw.CourseId} section ${raw.SectionId}` : `Section ${raw.SectionId}`);
  const r = Section.safeParse({
    sourcedId: raw.SectionId,
    title,
    schoolSourcedId: raw.SchoolId ?? fallbackSchoolId ?? '',
  });
  if (r.success) return { ok: true, section: r.data };
  return { ok: false, reason: issuesReason(r.error, { schoolSourcedId: 'SchoolId' }) };
}

export interface SkywardChunkInput {
  /** One students page (de-duplicated by the caller). */
  students: readonly SkyStudent[];
  /** Guardians per student NameId (`GET /v1/guardians?studentNameId=`). */
  guardiansOf(studentNameId: string): readonly SkyGuardian[];
  uniqueIdField: SkywardStudentUniqueId;
  /** False when some guardian record of this page did not parse (links then not removed). */
  complete: boolean;
  /** Enrollments per student NameId, when read. */
  enrollmentsOf?: ((studentNameId: string) => readonly SkyEnrollment[]) | undefined;
}

/**
 * Build a chunk from a students page and each student's guardians (pure). A guardian listed
 * for a student is linked to it with the `RelationshipDesc` of its matching `Students[]`
 * entry. A guardian that does not map is a reject, its links are dropped and the chunk says
 * `relationshipsSupplied: false`.
 */
export function buildSkywardChunk(input: SkywardChunkInput): {
  chunk: RosterChunk;
  rejects: Reject[];
} {
  const rejects: Reject[] = [];
  const students: Student[] = [];
  const raws = new Map<string, SkyGuardian>();
  const links = new Map<string, { studentId: string; relationship?: string | undefined }[]>();
  const sections = new Map<string, Section>();
  const enrollments: Enrollment[] = [];
  let complete = input.complete;

  for (const raw of input.students) {
    const m = mapSkywardStudent(raw, input.uniqueIdField);
    if (!m.ok) {
      rejects.push(m.reject);
      continue;
    }
    if (m.emailReject) rejects.push(m.emailReject);
    students.push(m.student);
    for (const g of input.guardiansOf(raw.NameId)) {
      if (!raws.has(g.GuardianNameId)) raws.set(g.GuardianNameId, g);
      const list = links.get(g.GuardianNameId) ?? [];
      if (list.some(l => l.studentId === raw.NameId)) continue;
      const entry = g.Students.find(s => s.StudentNameId === raw.NameId);
      list.push({ studentId: raw.NameId, relationship: entry?.RelationshipDesc });
      links.set(g.GuardianNameId, list);
    }
    if (input.enrollmentsOf) {
      for (const e of input.enrollmentsOf(raw.NameId)) {
        if (e.EnrStatus !== undefined && /^(i|inactive|d|dropped|w|withdrawn)$/i.test(e.EnrStatus))
          continue;
        let section = sections.get(e.SectionId);
        if (!section) {
          const s = mapSkywardSection(e, m.student.schoolSourcedIds[0]);
          if (!s.ok) {
            rejects.push({ entity: 'chunk', recordId: `section ${e.SectionId}`, reason: s.reason });
            continue;
          }
          section = s.section;
          sections.set(e.SectionId, section);
        }
        if (
          !enrollments.some(
            x =>
              x.sectionSourcedId === section.sourcedId &&
              x.studentSourcedId === m.student.sourcedId,
          )
        )
          enrollments.push(
            Enrollment.parse({
              sectionSourcedId: section.sourcedId,
              studentSourcedId: m.student.sourcedId,
            }),
          );
      }
    }
  }

  const guardians: Guardian[] = [];
  const relationships: Relationship[] = [];
  for (const [id, raw] of raws) {
    const list = links.get(id) ?? [];
    const g = mapSkywardGuardian(
      raw,
      list.map(l => l.relationship),
    );
    if (!g.ok) {
      rejects.push({
        ...g.reject,
        reason: `${g.reject.reason} (its ${list.length} link(s) not supplied)`,
      });
      complete = false;
      continue;
    }
    if (g.emailReject) rejects.push(g.emailReject);
    guardians.push(g.guardian);
    for (const l of list) {
      relationships.push(
        Relationship.parse({
          guardianSourcedId: id,
          studentSourcedId: l.studentId,
          ...(l.relationship ? { relationship: l.relationship } : {}),
        }),
      );
    }
  }
  const order = new Map(students.map((s, i) => [s.sourcedId, i]));
  const byId = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });
  guardians.sort((a, b) => byId(a.sourcedId, b.sourcedId));
  relationships.sort(
    (a, b) =>
      (order.get(a.studentSourcedId) ?? 0) - (order.get(b.studentSourcedId) ?? 0) ||
      byId(a.guardianSourcedId, b.guardianSourcedId),
  );
  const chunk: RosterChunk = {
    students,
    guardians,
    relationships,
    relationshipsSupplied: complete,
  };
  if (input.enrollmentsOf) {
    chunk.sections = [...sections.values()];
    chunk.enrollments = enrollments;
  }
  return { chunk, rejects };
}
