/**
 * Zod schemas of the Skyward SMS 2.0 LMS API payloads (sis-reference §5.2, §5.4). Field
 * names are Skyward's (PascalCase; `schoolIds` camelCase as client code reads it). Lenient
 * like the OneRoster schemas: ids as numbers or strings, blank strings as absent, a single
 * object where a list is expected. Unknown keys are stripped.
 */
import { z } from 'zod';
import { OrId, OrOptString, orList } from '../oneroster/payloads.js';

/** `GET /v1/schools` element. */
export const SkySchool = z.object({
  SchoolId: OrId,
  SchoolName: OrOptString,
});
export type SkySchool = z.infer<typeof SkySchool>;

/** `GET /v1/students` element (§5.4 "Student"). */
export const SkyStudent = z
  .object({
    NameId: OrId,
    DisplayId: OrOptString,
    StateId: OrOptString,
    FirstName: OrOptString,
    MiddleName: OrOptString,
    LastName: OrOptString,
    SchoolEmail: OrOptString,
    DefaultSchoolId: OrId.nullish(),
    schoolIds: orList(OrId),
    SchoolIds: orList(OrId),
    Grade: OrOptString,
    GradeLevel: OrOptString,
  })
  .transform(s => ({
    NameId: s.NameId,
    DisplayId: s.DisplayId,
    StateId: s.StateId,
    FirstName: s.FirstName,
    MiddleName: s.MiddleName,
    LastName: s.LastName,
    SchoolEmail: s.SchoolEmail,
    /** `schoolIds` (or `SchoolIds`), else `[DefaultSchoolId]`. */
    schoolIds: [
      ...new Set(
        s.schoolIds.length
          ? s.schoolIds
          : s.SchoolIds.length
            ? s.SchoolIds
            : s.DefaultSchoolId
              ? [s.DefaultSchoolId]
              : [],
      ),
    ],
    grade: s.Grade ?? s.GradeLevel,
  }));
export type SkyStudent = z.output<typeof SkyStudent>;

/** One `Students[]` entry of a guardian: the link with its per-student relationship text. */
export const SkyGuardianStudent = z.object({
  StudentNameId: OrId,
  RelationshipDesc: OrOptString,
});

/** `GET /v1/guardians?studentNameId=` element (§5.4 "Guardian"). */
export const SkyGuardian = z.object({
  GuardianNameId: OrId,
  FirstName: OrOptString,
  MiddleName: OrOptString,
  LastName: OrOptString,
  Email: OrOptString,
  PhoneNumber: OrOptString,
  PhoneNumber2: OrOptString,
  PhoneNumber3: OrOptString,
  Students: orList(SkyGuardianStudent),
});
export type SkyGuardian = z.infer<typeof SkyGuardian>;

/** `GET /v1/students/{NameId}/enrollments` element (§5.2). */
export const SkyEnrollment = z.object({
  EnrollmentId: OrId.nullish(),
  CourseId: OrOptString,
  SectionId: OrId,
  SchoolId: OrId.nullish(),
  NameId: OrId.nullish(),
  EnrStatus: OrOptString,
  CourseDescription: OrOptString,
  CourseName: OrOptString,
  SectionName: OrOptString,
});
export type SkyEnrollment = z.infer<typeof SkyEnrollment>;

/**
 * The records of an LMS API list body: a bare array (§5.2), a single object, or nothing
 * (204/empty → []). Throws a message when the body is something else (e.g. an error object
 * with `Message`).
 */
export function skywardRecords(body: unknown): unknown[] {
  if (body === undefined || body === null || body === '') return [];
  if (Array.isArray(body)) return body as unknown[];
  if (typeof body === 'object') {
    if ('Message' in body && Object.keys(body).length <= 3)
      throw new Error(`error body instead of a list: ${String(body.Message).slice(0, 200)}`);
    return [body];
  }
  throw new Error('expected a JSON array');
}
