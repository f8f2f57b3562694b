/**
 * Zod schemas of the PowerSchool v1 section payloads (issue 5: section exports need
 * sections and enrollments in the snapshot). Lenient like ./payloads.ts (ids and numbers
 * as strings, one-record lists as objects, `""` for an empty wrapper); records are parsed
 * one by one so a bad record is a reject, not a failed page.
 *
 * Sources: PowerSchool's plugin API reference as transcribed in
 * `mennotech/powerschool-api-docs` `plugins/powerschool-api-v1.md`:
 * - `GET /ws/v1/section/{id}` → `section {id (SECTIONS.DCID), school_id, course_id,
 *   staff_id, term_id, section_number, expression}`;
 * - `GET /ws/v1/section/{id}/section_enrollment` → `section_enrollments` holding
 *   `section_enrollment {id (CC.DCID), section_id, student_id (STUDENTS.DCID), entry_date,
 *   exit_date, dropped}`; the transcription shows the inner list both as
 *   `{"section_enrollments": [...]}` and, like every other v1 list, as
 *   `{"section_enrollments": {"section_enrollment": [...]}}` — both are accepted;
 * - `GET /ws/v1/course/{id}` → `course {id, course_number, course_name}` (wrapped in
 *   `course` like `GET /ws/v1/student/{id}` is in `student`; a flat body is accepted too);
 * - metadata `section_max_page_size`, `section_enrollment_max_page_size`.
 * The school-scoped list `GET /ws/v1/school/{id}/section` (+ `/count`) is not in that
 * transcription; its shape is taken to follow the other v1 lists (`{"sections":{"section":
 * […]}}`, count `{"resource":{"count":N}}`) [unconfirmed against a live server].
 */
import { z } from 'zod';
import { PsBool, PsId, PsOptString, psList, psPageWrapper } from './payloads.js';

/** One v1 section record. */
export const PsSection = z.object({
  id: PsId,
  school_id: PsId,
  course_id: PsId.nullish().transform(v => v ?? undefined),
  section_number: z
    .union([z.string(), z.number()])
    .nullish()
    .transform(v => (v === null || v === undefined ? undefined : String(v).trim() || undefined)),
  expression: PsOptString,
});
export type PsSection = z.infer<typeof PsSection>;

/** A sections page `{"sections":{"section":[…] | {…}}}` (`""` past the end). */
export const PsSectionsPage = z.object({
  sections: psPageWrapper(z.object({ section: psList(z.unknown()) })),
});

/** One section enrollment (CC row). `dropped` may be absent (= not dropped). */
export const PsSectionEnrollment = z.object({
  id: PsId.nullish(),
  section_id: PsId,
  student_id: PsId,
  dropped: PsBool.nullish().transform(v => v ?? false),
});
export type PsSectionEnrollment = z.infer<typeof PsSectionEnrollment>;

/** `GET /ws/v1/section/{id}/section_enrollment`, either documented shape; 204 → none. */
export const PsSectionEnrollments = z
  .union([
    z.object({
      section_enrollments: z.union([
        z.literal(''),
        z.null(),
        z.array(z.unknown()),
        z.object({ section_enrollment: psList(z.unknown()) }),
      ]),
    }),
    z.undefined(),
  ])
  .transform((v): unknown[] => {
    const inner = v?.section_enrollments;
    if (inner === undefined || inner === null || inner === '') return [];
    return Array.isArray(inner) ? inner : inner.section_enrollment;
  });

/** `GET /ws/v1/course/{id}`: `{"course":{…}}` or the bare record. */
export const PsCourse = z
  .union([
    z.object({ course: z.object({ course_name: PsOptString, course_number: PsOptString }) }),
    z.object({ course_name: PsOptString, course_number: PsOptString }),
  ])
  .transform(v => ('course' in v ? v.course : v));
export type PsCourse = z.infer<typeof PsCourse>;
