/**
 * Canonical roster records: the shapes every connector produces and the reconcile engine
 * consumes. Field names follow OneRoster 1.1/1.2 where one exists (see
 * ../shared/design.md "Canonical records"). All ids are strings, always.
 */
import { z } from 'zod';

/** A non-empty, trimmed identifier. SIS ids are normalised to strings (sis-reference §7.1). */
export const SourcedId = z.string().trim().min(1, 'must not be empty');

/** `active` records take part in the sync; `inactive` ones are kept but deactivated. */
export const RecordStatus = z.enum(['active', 'inactive']);
export type RecordStatus = z.infer<typeof RecordStatus>;

export const School = z.strictObject({
  sourcedId: SourcedId,
  name: z.string().trim().min(1),
});
export type School = z.infer<typeof School>;

export const Student = z.strictObject({
  sourcedId: SourcedId,
  /** District-wide unique id admins use in import files (PowerSchool: student_number). */
  uniqueId: SourcedId,
  givenName: z.string().trim().min(1),
  familyName: z.string().trim().min(1),
  email: z.string().trim().email().optional(),
  schoolSourcedIds: z.array(SourcedId),
  grade: z.string().trim().min(1).optional(),
  status: RecordStatus,
});
export type Student = z.infer<typeof Student>;

/** OneRoster roles that count as guardian-type users. */
export const GuardianRole = z.enum(['parent', 'guardian', 'relative']);
export type GuardianRole = z.infer<typeof GuardianRole>;

export const Guardian = z.strictObject({
  sourcedId: SourcedId,
  /** District-wide unique id when the SIS has one for the person (optional). */
  uniqueId: SourcedId.optional(),
  givenName: z.string().trim().min(1),
  familyName: z.string().trim().min(1),
  email: z.string().trim().email().optional(),
  phone: z.string().trim().min(1).optional(),
  role: GuardianRole,
  status: RecordStatus,
});
export type Guardian = z.infer<typeof Guardian>;

export const Relationship = z.strictObject({
  guardianSourcedId: SourcedId,
  studentSourcedId: SourcedId,
  /** Free text relationship name from the SIS ("Mother", "Grandparent"). */
  relationship: z.string().trim().min(1).optional(),
  /** The SIS says this guardian may see the student's data (portal access). */
  portalAccess: z.boolean().optional(),
  livesWith: z.boolean().optional(),
  custody: z.boolean().optional(),
});
export type Relationship = z.infer<typeof Relationship>;

export const Section = z.strictObject({
  sourcedId: SourcedId,
  title: z.string().trim().min(1),
  schoolSourcedId: SourcedId,
});
export type Section = z.infer<typeof Section>;

export const Enrollment = z.strictObject({
  sectionSourcedId: SourcedId,
  studentSourcedId: SourcedId,
});
export type Enrollment = z.infer<typeof Enrollment>;

/**
 * One self-contained slice of a snapshot: a set of students with the guardians related to
 * them and those relationships. A guardian shared by siblings in two chunks appears in
 * both; applying is idempotent so that is harmless.
 *
 * `relationshipsSupplied` is false when the source did not deliver relationships for
 * these students at all (invariant 9: absent is not empty) — then no link is removed.
 */
export interface RosterChunk {
  students: Student[];
  guardians: Guardian[];
  relationships: Relationship[];
  relationshipsSupplied: boolean;
  /**
   * Sections these students are enrolled in and those enrollments, when the connector
   * supplies them (`capabilities.enrollments`). Absent means "not supplied".
   */
  sections?: Section[] | undefined;
  enrollments?: Enrollment[] | undefined;
}

/** Normalise an email for identity comparison: trimmed, lower-cased. Undefined when blank. */
export function normalizeEmail(email: string | undefined | null): string | undefined {
  if (email == null) return undefined;
  const n = email.trim().toLowerCase();
  return n === '' ? undefined : n;
}

/** zod schema of a `RosterChunk` (validated again when an apply job starts). */
export const RosterChunkSchema = z.strictObject({
  students: z.array(Student),
  guardians: z.array(Guardian),
  relationships: z.array(Relationship),
  relationshipsSupplied: z.boolean(),
  sections: z.array(Section).optional(),
  enrollments: z.array(Enrollment).optional(),
});
