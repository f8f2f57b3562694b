/**
 * Pure mapping of eSchoolPLUS download-definition rows (schemas in
 * `src/connectors/eschoolplus/definitions.ts`, sis-reference §6.2, §6.4) to canonical
 * records, with the district's contact policy (`ESchoolPlusConnectorConfig.contacts`,
 * invariant 11):
 *
 * - only `CONTACT_TYPE` = `G` rows make guardians; `C`/`O` are emergency/other contacts and
 *   `P`/`M` are the student's own address, never people;
 * - a `G` row at the parked priority (99 by default: a duplicate waiting to be merged) is
 *   reported and not used;
 * - with REG_STU_CONTACT, a `G` row counts when its flags satisfy the policy (`WEB_ACCESS`,
 *   `LEGAL_GUARD`, `CUST_GUARD` = `Y` as required); without it, the type (joined into
 *   REG_CONTACT) is all there is.
 *
 * No I/O: deterministic given its arguments.
 */
import type { z } from 'zod';
import type { ESchoolContactPolicy } from '../config/eschoolplus.js';
import type {
  EsBuildingRow,
  EsContactPhoneRow,
  EsContactRow,
  EsStudentContactRow,
  EsStudentRow,
} from '../connectors/eschoolplus/definitions.js';
import type { Reject } from '../models/types.js';
import { Guardian, School, Student, type Relationship } from './canonical.js';
import { roleFromRelationships } from './powerschool.js';

const nonBlank = (s: string | undefined): s is string => s !== undefined && s.trim() !== '';

function issuesReason(error: z.ZodError, names: Record<string, string>): string {
  return error.issues
    .map(i => {
      const key = i.path.map(String).join('.');
      const src = names[String(i.path[0])];
      return `${src ? `${src} (${key})` : key || '(record)'}: ${i.message}`;
    })
    .join('; ');
}

/** Map one REG_BUILDING row. Rejects a building with no name. */
export function mapESchoolBuilding(
  row: EsBuildingRow,
  where: string,
): { ok: true; school: School } | { ok: false; reject: Reject } {
  const r = School.safeParse({ sourcedId: row.BUILDING, name: row.NAME ?? '' });
  if (r.success) return { ok: true, school: r.data };
  return {
    ok: false,
    reject: {
      entity: 'school',
      recordId: `${row.BUILDING} (${where})`,
      reason: issuesReason(r.error, { sourcedId: 'BUILDING', name: 'NAME' }),
    },
  };
}

/**
 * Map one REG row: sourcedId and uniqueId = `STUDENT_ID`; school = `BUILDING`; grade =
 * `GRADE` as written. Undefined when `CURRENT_STATUS` is not one of `activeStatuses` (the
 * student is not on the roster); a reject naming the column when a name is missing.
 */
export function mapESchoolStudent(
  row: EsStudentRow,
  activeStatuses: readonly string[],
  where: string,
): { ok: true; student: Student } | { ok: false; reject: Reject } | undefined {
  if (!activeStatuses.includes(row.CURRENT_STATUS ?? '')) return undefined;
  const r = Student.safeParse({
    sourcedId: row.STUDENT_ID,
    uniqueId: row.STUDENT_ID,
    givenName: row.FIRST_NAME ?? '',
    familyName: row.LAST_NAME ?? '',
    schoolSourcedIds: row.BUILDING ? [row.BUILDING] : [],
    ...(row.GRADE ? { grade: row.GRADE } : {}),
    status: 'active',
  });
  if (r.success) return { ok: true, student: r.data };
  return {
    ok: false,
    reject: {
      entity: 'student',
      recordId: `${row.STUDENT_ID} (${where})`,
      reason: issuesReason(r.error, {
        givenName: 'FIRST_NAME',
        familyName: 'LAST_NAME',
        grade: 'GRADE',
      }),
    },
  };
}

/** A REG_CONTACT person (rows of one CONTACT_ID merged) with the types joined to it. */
export interface ESchoolContact {
  row: EsContactRow;
  /** `CONTACT_TYPE`/`CONTACT_PRIORITY` pairs joined into REG_CONTACT (empty when not joined). */
  types: { type: string; priority?: number | undefined }[];
  /** Where the (first) row is, for rejects (`REG_CONTACT.txt line 12`). */
  where: string;
}

/** The preferred phone of each contact: lowest `PHONE_PRIORITY`, then file order. */
export function preferredPhones(rows: readonly EsContactPhoneRow[]): Map<string, string> {
  const best = new Map<string, { phone: string; priority: number }>();
  for (const r of rows) {
    if (!nonBlank(r.PHONE)) continue;
    const priority = r.PHONE_PRIORITY ?? Number.MAX_SAFE_INTEGER;
    const cur = best.get(r.CONTACT_ID);
    if (!cur || priority < cur.priority) best.set(r.CONTACT_ID, { phone: r.PHONE, priority });
  }
  return new Map([...best].map(([id, v]) => [id, v.phone]));
}

/** Why a REG_STU_CONTACT row does or does not make a guardian link. */
export type ESchoolRowVerdict =
  | { use: true }
  | { use: false; kind: 'not-guardian' | 'address' | 'policy' }
  | { use: false; kind: 'parked' | 'unknown-type'; reason: string };

/**
 * Judge one REG_STU_CONTACT row under `policy`: `G` rows only (`P`/`M` are addresses,
 * `C`/`O` other contacts), not at the parked priority, and with every required flag `Y`.
 * `CONTACT_PRIORITY` and the row's position are otherwise never considered.
 */
export function judgeStudentContact(
  row: EsStudentContactRow,
  policy: ESchoolContactPolicy,
): ESchoolRowVerdict {
  const type = row.CONTACT_TYPE.toUpperCase();
  if (type === 'P' || type === 'M') return { use: false, kind: 'address' };
  if (type === 'C' || type === 'O') return { use: false, kind: 'not-guardian' };
  if (type !== 'G')
    return {
      use: false,
      kind: 'unknown-type',
      reason: `CONTACT_TYPE "${row.CONTACT_TYPE}" is not one of G, C, O, P, M`,
    };
  if (policy.parkedPriority !== null && row.CONTACT_PRIORITY === policy.parkedPriority)
    return {
      use: false,
      kind: 'parked',
      reason: `CONTACT_PRIORITY ${policy.parkedPriority}: a duplicate guardian record parked for merging; not used`,
    };
  if (policy.requireWebAccess && row.WEB_ACCESS !== true) return { use: false, kind: 'policy' };
  if (policy.requireLegalGuardian && row.LEGAL_GUARD !== true)
    return { use: false, kind: 'policy' };
  if (policy.requireCustodialGuardian && row.CUST_GUARD !== true)
    return { use: false, kind: 'policy' };
  return { use: true };
}

/**
 * Is a REG_CONTACT person a guardian by the types joined into REG_CONTACT (definitions
 * without REG_STU_CONTACT)? Yes when it has a `G` type not at the parked priority; a person
 * whose every `G` type is parked is reported.
 */
export function judgeJoinedContact(
  contact: ESchoolContact,
  parkedPriority: number | null,
): { guardian: boolean; reject?: Reject } {
  const g = contact.types.filter(t => t.type.toUpperCase() === 'G');
  if (g.length === 0) return { guardian: false };
  if (g.some(t => parkedPriority === null || t.priority !== parkedPriority))
    return { guardian: true };
  return {
    guardian: false,
    reject: {
      entity: 'guardian',
      recordId: `${contact.row.CONTACT_ID} (${contact.where})`,
      reason: `CONTACT_PRIORITY ${parkedPriority}: a duplicate guardian record parked for merging; not used`,
    },
  };
}

const EmailCheck = Guardian.shape.email;

/**
 * Map a REG_CONTACT person to a guardian: sourcedId = `CONTACT_ID`, names, `EMAIL` (an
 * invalid one is left out and reported), the preferred phone, role from the relationships
 * (`parent` for mother/father/parent/step-parent, else `guardian`).
 */
export function mapESchoolGuardian(
  contact: ESchoolContact,
  phone: string | undefined,
  relationships: readonly (string | undefined)[],
): { ok: true; guardian: Guardian; emailReject?: Reject } | { ok: false; reject: Reject } {
  const row = contact.row;
  const emailOk = nonBlank(row.EMAIL) && EmailCheck.safeParse(row.EMAIL).success;
  const r = Guardian.safeParse({
    sourcedId: row.CONTACT_ID,
    givenName: row.FIRST_NAME ?? '',
    familyName: row.LAST_NAME ?? '',
    ...(emailOk ? { email: row.EMAIL } : {}),
    ...(phone ? { phone } : {}),
    role: roleFromRelationships(relationships),
    status: 'active',
  });
  const recordId = `${row.CONTACT_ID} (${contact.where})`;
  if (!r.success)
    return {
      ok: false,
      reject: {
        entity: 'guardian',
        recordId,
        reason: issuesReason(r.error, { givenName: 'FIRST_NAME', familyName: 'LAST_NAME' }),
      },
    };
  if (nonBlank(row.EMAIL) && !emailOk)
    return {
      ok: true,
      guardian: r.data,
      emailReject: {
        entity: 'guardian',
        recordId,
        reason: 'EMAIL: not a valid email address; guardian kept without email',
      },
    };
  return { ok: true, guardian: r.data };
}

/** A link from a `G` row that passed the policy. */
export function mapESchoolRelationship(
  row: EsStudentContactRow,
  relationCodes: Readonly<Record<string, string>>,
): Relationship {
  const code = row.RELATION_CODE;
  const text = code === undefined ? undefined : (relationCodes[code] ?? code);
  return {
    guardianSourcedId: row.CONTACT_ID,
    studentSourcedId: row.STUDENT_ID,
    ...(nonBlank(text) ? { relationship: text } : {}),
    ...(row.WEB_ACCESS !== undefined ? { portalAccess: row.WEB_ACCESS } : {}),
    ...(row.LIVING_WITH !== undefined ? { livesWith: row.LIVING_WITH } : {}),
    ...(row.CUST_GUARD !== undefined ? { custody: row.CUST_GUARD } : {}),
  };
}
