/**
 * The eSchoolPLUS tables the connector reads (sis-reference §6.2), the columns it needs from
 * each, and zod schemas of one row (all values are text; blank = absent). Column names are
 * eSchoolPLUS's own, as the definition writes them in the header.
 */
import { z } from 'zod';

/** The files of a definition, by role. */
export type ESchoolFileKind =
  'students' | 'buildings' | 'contacts' | 'contactPhones' | 'studentContacts';

/** eSchoolPLUS table of each file. */
export const TABLE_OF: Record<ESchoolFileKind, string> = {
  students: 'REG',
  buildings: 'REG_BUILDING',
  contacts: 'REG_CONTACT',
  contactPhones: 'REG_CONTACT_PHONE',
  studentContacts: 'REG_STU_CONTACT',
};

/** Columns each file must have (the definition may have more; extra columns are ignored). */
export const REQUIRED_COLUMNS: Record<ESchoolFileKind, readonly string[]> = {
  students: ['STUDENT_ID', 'FIRST_NAME', 'LAST_NAME', 'BUILDING', 'GRADE', 'CURRENT_STATUS'],
  buildings: ['BUILDING', 'NAME'],
  contacts: ['CONTACT_ID', 'FIRST_NAME', 'LAST_NAME'],
  contactPhones: ['CONTACT_ID', 'PHONE'],
  studentContacts: ['STUDENT_ID', 'CONTACT_ID', 'CONTACT_TYPE'],
};

/** Optional text → trimmed string or undefined when blank. */
const Text = z
  .string()
  .optional()
  .transform(v => {
    const t = v?.trim();
    return t === undefined || t === '' ? undefined : t;
  });
/** Required text (trimmed, non-empty). */
const Req = z.string().trim().min(1, 'is blank');
/** Optional integer text. */
const IntText = z
  .string()
  .optional()
  .transform((v, ctx): number | undefined => {
    const t = v?.trim();
    if (t === undefined || t === '') return undefined;
    if (!/^-?\d+$/.test(t)) {
      ctx.addIssue({ code: 'custom', message: 'is not a whole number' });
      return z.NEVER;
    }
    return Number.parseInt(t, 10);
  });
/** A `Y`/`N` flag (any case); blank → undefined; anything else → false. */
const YesNo = z
  .string()
  .optional()
  .transform(v => {
    const t = v?.trim().toUpperCase();
    return t === undefined || t === '' ? undefined : t === 'Y';
  });

/** One REG row (a student). */
export const EsStudentRow = z.object({
  STUDENT_ID: Req,
  FIRST_NAME: Text,
  MIDDLE_NAME: Text,
  LAST_NAME: Text,
  BUILDING: Text,
  GRADE: Text,
  CURRENT_STATUS: Text,
});
export type EsStudentRow = z.infer<typeof EsStudentRow>;

/** One REG_BUILDING row. */
export const EsBuildingRow = z.object({ BUILDING: Req, NAME: Text });
export type EsBuildingRow = z.infer<typeof EsBuildingRow>;

/**
 * One REG_CONTACT row (a person, or a student's address when its type is P/M). A definition
 * without REG_STU_CONTACT must join `CONTACT_TYPE` (and may join `CONTACT_PRIORITY`) into it.
 */
export const EsContactRow = z.object({
  CONTACT_ID: Req,
  FIRST_NAME: Text,
  MIDDLE_NAME: Text,
  LAST_NAME: Text,
  EMAIL: Text,
  LOGIN_ID: Text,
  CONTACT_TYPE: Text,
  CONTACT_PRIORITY: IntText,
});
export type EsContactRow = z.infer<typeof EsContactRow>;

/** One REG_CONTACT_PHONE row. */
export const EsContactPhoneRow = z.object({
  CONTACT_ID: Req,
  PHONE_TYPE: Text,
  PHONE: Text,
  PHONE_EXTENSION: Text,
  PHONE_PRIORITY: IntText,
});
export type EsContactPhoneRow = z.infer<typeof EsContactPhoneRow>;

/** One REG_STU_CONTACT row (the link; `CONTACT_TYPE` G = guardian, §6.2). */
export const EsStudentContactRow = z.object({
  STUDENT_ID: Req,
  CONTACT_ID: Req,
  CONTACT_TYPE: Req,
  CONTACT_PRIORITY: IntText,
  RELATION_CODE: Text,
  LIVING_WITH: YesNo,
  WEB_ACCESS: YesNo,
  LEGAL_GUARD: YesNo,
  CUST_GUARD: YesNo,
});
export type EsStudentContactRow = z.infer<typeof EsStudentContactRow>;

/** `CONTACT_TYPE` values eSchoolPLUS uses (§6.2): guardian, emergency, other, the student's own physical/mailing address. */
export const CONTACT_TYPES = new Set(['G', 'C', 'O', 'P', 'M']);
