/**
 * Zod schemas of the raw PowerSchool payloads the connector reads (sis-reference §2).
 *
 * Every schema is lenient in the ways live PowerSchool servers are inconsistent
 * (sis-reference §2.6 and §7.3) and strict about what the sync needs:
 * - numbers may arrive as strings (`"1234"`), ids are normalised to strings;
 * - booleans may arrive as `"true"`, `"TRUE"`, `"1"`, `"Y"`, `1` …;
 * - a list holding one record may be a bare object instead of an array;
 * - an expansion with no data is the empty string `""` (treated as absent);
 * - unset strings are `null` (treated as absent).
 *
 * Unknown keys are stripped, never an error: PowerSchool adds fields per version and plugin.
 * This module has no I/O; the mapping (`src/mapping/powerschool.ts`) imports its types.
 */
import { z } from 'zod';
import { toBool, toId, toInt, unsetOr } from '../scalars.js';

// ---------------------------------------------------------------------------------------------
// Scalar helpers
// ---------------------------------------------------------------------------------------------

// Each scalar helper is one transform over the raw JSON value (src/connectors/scalars.ts says
// why); semantics and messages are those of the documented quirks.

/**
 * An identifier that may be a JSON number or a string (`1234` or `"1234"`), output as a
 * trimmed, non-empty string (sis-reference §7.1: ids are strings, always).
 */
export const PsId = z.unknown().transform(toId);

/** An integer that may arrive as a string (`5` or `"5"`), output as a number. */
export const PsInt = z.unknown().transform(toInt);

/** `PsInt` where `null` or a missing key means unset (output undefined). */
export const PsOptInt = unsetOr(toInt);

/**
 * A boolean that may arrive as `true`, `"true"`, `"TRUE"`, `"1"`, `"Y"`, `1` (and the
 * false counterparts). Any other value is a validation error, never silently false.
 */
export const PsBool = z.unknown().transform(toBool);

/** An optional string where `null` means unset (PowerSchool's "unset strings are null"). */
export const PsOptString = z
  .string()
  .nullish()
  .transform(v => v ?? undefined);

/** An optional boolean where `null` means unset. */
export const PsOptBool = unsetOr(toBool);

/** An optional id where `null` means unset. */
export const PsOptId = unsetOr(toId);

/** A list that may be an array, a single object (one-record quirk), null or missing → array. */
export function psList<T extends z.ZodType>(item: T) {
  return z.preprocess(
    (v): unknown[] =>
      v === null || v === undefined ? [] : Array.isArray(v) ? (v as unknown[]) : [v],
    z.array(item),
  );
}

/**
 * A page wrapper (`"students"`, `"schools"`) that must be present but may be `""`/`null`
 * when the page is empty → undefined. A body without the key at all is a payload error (an
 * error document must not read as an empty page).
 */
export function psPageWrapper<T extends z.ZodType>(obj: T) {
  return z
    .union([z.literal(''), z.null(), obj])
    .transform((v): z.output<T> | undefined => (v === '' || v === null ? undefined : v));
}

/** An expansion that is an object, or `""`/`null`/missing when it has no data → undefined. */
export function psExpansion<T extends z.ZodType>(obj: T) {
  return z.preprocess(v => (v === '' || v === null ? undefined : v), obj.optional());
}

// ---------------------------------------------------------------------------------------------
// OAuth and metadata (sis-reference §2.2, §2.3)
// ---------------------------------------------------------------------------------------------

/** `POST /oauth/access_token` response. `expires_in` (seconds) may be a string (§2.3). */
export const PsTokenResponse = z.object({
  access_token: z.string().min(1),
  token_type: z.string().optional(),
  expires_in: PsOptInt,
});
export type PsTokenResponse = z.infer<typeof PsTokenResponse>;

/** `GET /ws/v1/metadata`: the plugin's page-size limits (all optional, may be strings). */
export const PsMetadata = z.object({
  metadata: z.object({
    student_max_page_size: PsOptInt,
    school_max_page_size: PsOptInt,
    schema_table_query_max_page_size: PsOptInt,
    section_max_page_size: PsOptInt,
  }),
});
export type PsMetadata = z.infer<typeof PsMetadata>;

/** v1 count wrapper `{"resource":{"count":N}}` (§2.4: not the swagger's bare `{"count":N}`). */
export const PsResourceCount = z.object({
  resource: z.object({ count: PsInt.refine(n => n >= 0, 'must be ≥ 0') }),
});

// ---------------------------------------------------------------------------------------------
// Schools (GET /ws/v1/district/school)
// ---------------------------------------------------------------------------------------------

/** One v1 school record. */
export const PsSchool = z.object({
  id: PsId,
  name: PsOptString,
  school_number: PsOptId,
});
export type PsSchool = z.infer<typeof PsSchool>;

/**
 * A schools page `{"schools":{"school":[…] | {…}}}`; a page past the end has no `school`
 * key (and may be `"schools": ""`). Records are left unparsed: each is parsed on its own so
 * one bad record is a reject, not a failed page.
 */
export const PsSchoolsPage = z.object({
  schools: psPageWrapper(z.object({ school: psList(z.unknown()) })),
});

// ---------------------------------------------------------------------------------------------
// Students (GET /ws/v1/district/student, expansions=school_enrollment,contact_info)
// ---------------------------------------------------------------------------------------------

/** `school_enrollment` expansion (§2.5). `grade_level` is a number (K = 0) or a string. */
export const PsSchoolEnrollment = z.object({
  enroll_status: PsOptString,
  enroll_status_code: PsOptInt,
  grade_level: z.union([z.number(), z.string()]).nullish(),
  school_id: PsOptId,
  school_number: PsOptId,
  entry_date: PsOptString,
  exit_date: PsOptString,
});
export type PsSchoolEnrollment = z.infer<typeof PsSchoolEnrollment>;

/**
 * One v1 student (§2.5): `id` is the DCID, `local_id` the student_number. Names are
 * optional here so that a student missing one becomes a mapping reject, not a parse error.
 */
export const PsStudent = z.object({
  id: PsId,
  local_id: PsOptId,
  student_username: PsOptString,
  name: psExpansion(
    z.object({
      first_name: PsOptString,
      middle_name: PsOptString,
      last_name: PsOptString,
    }),
  ),
  school_enrollment: psExpansion(PsSchoolEnrollment),
  contact_info: psExpansion(z.object({ email: PsOptString })),
});
export type PsStudent = z.infer<typeof PsStudent>;

/**
 * A students page `{"students":{"@expansions":"…","@extensions":"","student":[…]|{…}}}`.
 * Records are left unparsed (parsed one by one with `PsStudent`).
 */
export const PsStudentsPage = z.object({
  students: psPageWrapper(
    z.object({
      '@expansions': z.string().optional(),
      '@extensions': z.string().optional(),
      student: psList(z.unknown()),
    }),
  ),
});

// ---------------------------------------------------------------------------------------------
// Contacts API (GET /ws/contacts/student/{dcid}) — §2.5 "Contact (person)"
// ---------------------------------------------------------------------------------------------

/** `contactStudentDetail`: flags of one link for one date range (`endDate` null = open). */
export const PsStudentDetail = z.object({
  relationship: PsOptString,
  custodial: PsOptBool,
  emergency: PsOptBool,
  livesWith: PsOptBool,
  startDate: PsOptString,
  endDate: PsOptString,
  active: PsOptBool,
});
export type PsStudentDetail = z.infer<typeof PsStudentDetail>;

/** `contactStudent`: the contact ↔ student link; `dcid` is the student's DCID. */
export const PsContactStudent = z.object({
  studentContactId: PsOptId,
  sequence: PsOptInt,
  dcid: PsId,
  studentNumber: PsOptId,
  canAccessData: PsOptBool,
  guardianId: PsOptId,
  studentDetails: psList(PsStudentDetail),
});
export type PsContactStudent = z.infer<typeof PsContactStudent>;

export const PsContactEmail = z.object({
  primary: PsOptBool,
  address: PsOptString,
});
export const PsContactPhone = z.object({
  preferred: PsOptBool,
  phoneNumber: PsOptString,
});

/**
 * `contactAccount`: an object `{enabled, userName, password}`, or `[]`, `""` or `null` when
 * the contact has no portal account (contactAccountVariants quirk). Output: object or
 * undefined. Not used for links (portal access comes from `canAccessData`).
 */
export const PsContactAccount = z
  .union([
    z.object({ enabled: PsOptBool, userName: PsOptString }),
    z.array(z.unknown()),
    z.literal(''),
  ])
  .nullish()
  .transform(v => (v === null || v === undefined || v === '' || Array.isArray(v) ? undefined : v));

/** One contact (person) of the contacts API. */
export const PsContact = z.object({
  contactId: PsId,
  firstName: PsOptString,
  middleName: PsOptString,
  lastName: PsOptString,
  active: PsOptBool,
  emails: psList(PsContactEmail),
  phones: psList(PsContactPhone),
  contactAccount: PsContactAccount,
  contactStudents: psList(PsContactStudent),
});
export type PsContact = z.infer<typeof PsContact>;

/**
 * `GET /ws/contacts/student/{dcid}` body: a bare array (204/empty body = none). A single
 * object is accepted too. Records are left unparsed (parsed one by one with `PsContact`).
 */
export const PsContactsList = psList(z.unknown());

// ---------------------------------------------------------------------------------------------
// PowerQuery com.guardiansync.roster.student_contacts (bulk path) — §2.5 last bullet
// ---------------------------------------------------------------------------------------------

/** The PowerQuery behind the bulk path (shipped in the district's plugin). */
export const ROSTER_CONTACTS_QUERY = 'com.guardiansync.roster.student_contacts';

/**
 * One flattened row: one (contact, student, phone) combination. All values are strings and
 * null-valued keys are omitted; flags are `"1"`/`"0"`.
 */
export const PsRosterContactRow = z.object({
  studentdcid: PsId,
  studentnumber: PsOptId,
  personid: PsId,
  firstname: PsOptString,
  middlename: PsOptString,
  lastname: PsOptString,
  email: PsOptString,
  phonenumber: PsOptString,
  canaccessdata: PsOptBool,
  guardianid: PsOptId,
  studentcontactassocid: PsOptId,
  contactpriorityorder: PsOptInt,
  relationship: PsOptString,
  iscustodial: PsOptBool,
  liveswithflg: PsOptBool,
  isemergency: PsOptBool,
  isactive: PsOptBool,
});
export type PsRosterContactRow = z.infer<typeof PsRosterContactRow>;

/** PowerQuery page `{"name":…,"record":[rows],"@extensions":""}`; `record` absent when empty. */
export const PsPowerQueryPage = z.object({
  name: z.string().optional(),
  record: psList(z.unknown()),
});

// ---------------------------------------------------------------------------------------------
// Per-record parsing
// ---------------------------------------------------------------------------------------------

/** One record that did not match its schema: its id when one could be read, and why. */
export interface RecordParseFailure {
  /** The record's id (from `idKeys`) or `#<index>` when it has none. */
  recordId: string;
  reason: string;
}

/**
 * Parse each of `records` with `schema`. Records that fail become `failures` (with the id
 * read from the first of `idKeys` present, and the zod issues as reason) instead of failing
 * the whole page.
 */
export function parseEach<T extends z.ZodType>(
  schema: T,
  records: readonly unknown[],
  idKeys: readonly string[],
  /** Position of `records[0]` in the whole list (for `#<index>` ids when parsing in parts). */
  offset = 0,
): { ok: z.output<T>[]; failures: RecordParseFailure[] } {
  const ok: z.output<T>[] = [];
  const failures: RecordParseFailure[] = [];
  records.forEach((rec, i) => {
    const r = schema.safeParse(rec);
    if (r.success) ok.push(r.data);
    else
      failures.push({
        recordId: rawRecordId(rec, idKeys) ?? `#${offset + i}`,
        reason: formatZodIssues(r.error),
      });
  });
  return { ok, failures };
}

/** The id of an unparsed record (`record[key]` for the first key holding a string/number). */
export function rawRecordId(rec: unknown, idKeys: readonly string[]): string | undefined {
  if (typeof rec !== 'object' || rec === null) return undefined;
  for (const k of idKeys) {
    const v: unknown = (rec as Record<string, unknown>)[k];
    if (
      (typeof v === 'number' && Number.isFinite(v)) ||
      (typeof v === 'string' && v.trim() !== '')
    ) {
      return String(v).trim();
    }
  }
  return undefined;
}

/** `path.to.key: message; …` — names the fields, never echoes values. */
export function formatZodIssues(error: z.ZodError): string {
  return error.issues
    .map(i => `${i.path.length ? i.path.map(String).join('.') : '(record)'}: ${i.message}`)
    .join('; ');
}
