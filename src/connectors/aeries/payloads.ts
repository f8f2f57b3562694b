/**
 * Zod schemas of the raw Aeries REST API v5 payloads the connector reads (sis-reference
 * §4.2–§4.5). Lenient where live Aeries servers are inconsistent, strict about what the
 * sync needs:
 * - ids and numbers may arrive as numbers or strings (`99410233` or `"99410233"`) and are
 *   normalised to strings (§7.1);
 * - contact flags mix booleans with `""` (unset), `"Y"` and `"N"` (§4.5, §7.3): parsed to
 *   `true`/`false`/`undefined`, and an unknown value is a validation error, never silently no;
 * - unset values are `null` or `""` (treated as absent);
 * - a one-student lookup is still an array (§4.2).
 *
 * Unknown keys are stripped: Aeries adds fields per version. No I/O here.
 */
import { z } from 'zod';
import { toId } from '../scalars.js';

/** An id that may be a JSON number or a string, output as a trimmed non-empty string. */
export const AeId = z.unknown().transform(toId);

/** An integer that may arrive as a string; `null`/`""` → undefined. */
export const AeOptInt = z
  .union([
    z.number().int(),
    z
      .string()
      .trim()
      .regex(/^-?\d*$/, 'must be an integer'),
  ])
  .nullish()
  .transform((v): number | undefined => {
    if (v === null || v === undefined) return undefined;
    if (typeof v === 'number') return v;
    return v === '' ? undefined : Number.parseInt(v, 10);
  });

/** A string where `null` and blank mean unset → undefined; otherwise trimmed. Numbers are accepted (phones, zip codes). */
export const AeOptString = z
  .union([z.string(), z.number()])
  .nullish()
  .transform(v => {
    if (v === null || v === undefined) return undefined;
    const s = String(v).trim();
    return s === '' ? undefined : s;
  });

const TRUE_VALUES = new Set(['y', 'yes', 'true', 't', '1']);
const FALSE_VALUES = new Set(['n', 'no', 'false', 'f', '0']);

/**
 * An Aeries flag: `true`/`false`, `"Y"`/`"N"` (any case), `"true"`/`"false"`, `1`/`0`;
 * `""`, `null` or missing → undefined (unset, §4.5). Anything else is a validation error.
 */
export const AeFlag = z
  .union([z.boolean(), z.number(), z.string()])
  .nullish()
  .transform((v, ctx): boolean | undefined => {
    if (v === null || v === undefined) return undefined;
    if (typeof v === 'boolean') return v;
    if (typeof v === 'number') {
      if (v === 1) return true;
      if (v === 0) return false;
      ctx.addIssue({ code: 'custom', message: 'not a recognised flag value' });
      return z.NEVER;
    }
    const k = v.trim().toLowerCase();
    if (k === '') return undefined;
    if (TRUE_VALUES.has(k)) return true;
    if (FALSE_VALUES.has(k)) return false;
    ctx.addIssue({ code: 'custom', message: 'not a recognised flag value' });
    return z.NEVER;
  });

/** `GET /api/v5/systeminfo` (no certificate needed). `CurrentDateTime` is local, without zone. */
export const AeSystemInfo = z.object({
  DatabaseYear: AeOptString,
  AvailableDatabaseYears: z.array(z.union([z.string(), z.number()])).nullish(),
  LocalTimeZoneName: AeOptString,
  CurrentDateTime: z.string().trim().min(1),
});
export type AeSystemInfo = z.infer<typeof AeSystemInfo>;

/** One school of `GET /api/v5/schools`. */
export const AeSchool = z.object({
  SchoolCode: AeId,
  Name: AeOptString,
  InactiveStatusCode: AeOptString,
});
export type AeSchool = z.infer<typeof AeSchool>;

/**
 * One student record of `GET /api/v5/schools/{SchoolCode}/students[/{StudentID}]` (§4.5). A
 * student can have one record per school; `InactiveStatusCode` `""` = active there.
 */
export const AeStudent = z.object({
  StudentID: AeId,
  SchoolCode: AeId,
  StudentNumber: AeOptString,
  FirstName: AeOptString,
  MiddleName: AeOptString,
  LastName: AeOptString,
  Grade: AeOptInt,
  StudentEmailAddress: AeOptString,
  InactiveStatusCode: AeOptString,
  FamilyKey: AeOptInt,
  SchoolLeaveDate: AeOptString,
});
export type AeStudent = z.infer<typeof AeStudent>;

/**
 * One contact row (table `CON`) of `GET /api/v5/schools/{SchoolCode}/contacts[/{StudentID}]`:
 * one row per student per contact, keyed by (`StudentID`, `SequenceNumber`); there is no
 * cross-student contact id (§4.5).
 */
export const AeContact = z.object({
  StudentID: AeId,
  SchoolCode: AeOptString,
  SequenceNumber: AeId,
  ContactOrder: AeOptInt,
  FirstName: AeOptString,
  MiddleName: AeOptString,
  LastName: AeOptString,
  NameSuffix: AeOptString,
  RelationshipToStudentCode: AeOptString,
  LivesWithStudentIndicator: AeFlag,
  AccessToPortal: AeFlag,
  EducationalRightsHolder: AeFlag,
  PrimaryContact: AeFlag,
  RedFlag: AeFlag,
  EmailAddress: AeOptString,
  HomePhone: AeOptString,
  WorkPhone: AeOptString,
  CellPhone: AeOptString,
  /** 0 when the contact's email matches no portal account. */
  PortalAccountID: AeOptInt,
});
export type AeContact = z.infer<typeof AeContact>;

/** One entry of `GET /api/v5/StudentDataChanges/{area}/{y}/{m}/{d}/{h}/{min}`. */
export const AeDataChange = z.object({
  StudentID: AeId,
  SchoolCode: AeId,
  StudentNumber: AeOptString,
});
export type AeDataChange = z.infer<typeof AeDataChange>;

/** One entry of `GET /api/v5/codes/{table}/{field}`. */
export const AeCode = z.object({
  Code: AeId,
  Description: AeOptString,
});
export type AeCode = z.infer<typeof AeCode>;

/**
 * A list body: an array, or a single object (some endpoints), `null`/empty → []. Records are
 * left unparsed so that one bad record is a reject, not a failed request.
 */
export const AeList = z
  .union([z.array(z.unknown()), z.record(z.string(), z.unknown())])
  .nullish()
  .transform((v): unknown[] => {
    if (v === null || v === undefined) return [];
    return Array.isArray(v) ? v : [v];
  });
