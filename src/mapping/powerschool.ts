/**
 * Pure mapping of raw PowerSchool records (schemas in
 * `src/connectors/powerschool/payloads.ts`, sis-reference §2.5) to canonical records, with
 * the district's contact policy (`PowerSchoolConnectorConfig.contacts`, invariant 11).
 *
 * No I/O: every function here is deterministic given its arguments (the current date is a
 * parameter, `asOf`).
 */
import type { PowerSchoolConnectorConfig } from '../config/district.js';
import type {
  PsContact,
  PsRosterContactRow,
  PsSchool,
  PsStudent,
} from '../connectors/powerschool/payloads.js';
import type { Reject } from '../models/types.js';
import type { z } from 'zod';
import {
  Guardian,
  Relationship,
  School,
  Student,
  type GuardianRole,
  type RosterChunk,
} from './canonical.js';
import { EXCLUSION } from './exclusions.js';

/** The district's contact policy (config `contacts`). */
export type PowerSchoolContactPolicy = PowerSchoolConnectorConfig['contacts'];

// ---------------------------------------------------------------------------------------------
// Normalised contact model (both read paths produce it)
// ---------------------------------------------------------------------------------------------

/** One `contactStudentDetail` row (§2.5): the link's flags for one date range. */
export interface PsLinkDetail {
  relationship?: string | undefined;
  custodial?: boolean | undefined;
  emergency?: boolean | undefined;
  livesWith?: boolean | undefined;
  /** As sent (ISO `YYYY-MM-DD…` or `MM/DD/YYYY`); undefined = open start. */
  startDate?: string | undefined;
  /** As sent; undefined = open end. */
  endDate?: string | undefined;
  /** The detail row's own `active` flag; undefined = not stated (dates decide). */
  active?: boolean | undefined;
}

/** One contact ↔ student link (`contactStudent`, §2.5). */
export interface PsLink {
  /** The student's DCID, as a string. */
  studentDcid: string;
  /** Portal data access for this student (`canAccessData`); undefined = not stated. */
  canAccessData?: boolean | undefined;
  details: PsLinkDetail[];
}

/**
 * A PowerSchool contact (person) as both read paths deliver it: from the contacts API
 * (`contactFromApi`) or collapsed from PowerQuery rows (`contactsFromRosterRows`).
 */
export interface PsContactRecord {
  /** `contactId` (contacts API) / `personid` (PowerQuery), as a string. */
  contactId: string;
  firstName?: string | undefined;
  lastName?: string | undefined;
  /** The person's `active` flag; `false` means the contact gets no links. */
  active?: boolean | undefined;
  /** In SIS order. */
  emails: { address: string; primary: boolean }[];
  /** In SIS order. */
  phones: { number: string; preferred: boolean }[];
  links: PsLink[];
}

const nonBlank = (s: string | undefined): s is string => s !== undefined && s.trim() !== '';

/** Normalise one contacts-API contact (`GET /ws/contacts/student/{dcid}`, §2.5). */
export function contactFromApi(raw: PsContact): PsContactRecord {
  return {
    contactId: raw.contactId,
    firstName: raw.firstName,
    lastName: raw.lastName,
    active: raw.active,
    emails: raw.emails
      .filter(e => nonBlank(e.address))
      .map(e => ({ address: (e.address ?? '').trim(), primary: e.primary === true })),
    phones: raw.phones
      .filter(p => nonBlank(p.phoneNumber))
      .map(p => ({ number: (p.phoneNumber ?? '').trim(), preferred: p.preferred === true })),
    links: raw.contactStudents.map(cs => ({
      studentDcid: cs.dcid,
      canAccessData: cs.canAccessData,
      details: cs.studentDetails.map(d => ({
        relationship: d.relationship,
        custodial: d.custodial,
        emergency: d.emergency,
        livesWith: d.livesWith,
        startDate: d.startDate,
        endDate: d.endDate,
        active: d.active,
      })),
    })),
  };
}

/**
 * Collapse flattened PowerQuery rows (`com.guardiansync.roster.student_contacts`, §2.5: one
 * row per contact × student × phone, null keys omitted) into contacts. Rows of one
 * `personid` merge: names and email from the first row that has them, phones de-duplicated
 * in row order (the query has no `preferred` flag: the first phone wins), one link per
 * `studentdcid` with its distinct detail rows. The query returns the current detail rows
 * only, so details carry no dates (`isactive` is their flag).
 */
export function contactsFromRosterRows(rows: readonly PsRosterContactRow[]): PsContactRecord[] {
  const byPerson = new Map<string, PsContactRecord>();
  // Distinct detail rows per link (a link is one personid × studentdcid).
  const detailKeys = new Map<PsLink, Set<string>>();
  for (const row of rows) {
    let c = byPerson.get(row.personid);
    if (!c) {
      c = { contactId: row.personid, emails: [], phones: [], links: [] };
      byPerson.set(row.personid, c);
    }
    c.firstName ??= nonBlank(row.firstname) ? row.firstname : undefined;
    c.lastName ??= nonBlank(row.lastname) ? row.lastname : undefined;
    if (nonBlank(row.email) && c.emails.length === 0) {
      c.emails.push({ address: row.email.trim(), primary: true });
    }
    if (nonBlank(row.phonenumber)) {
      const number = row.phonenumber.trim();
      if (!c.phones.some(p => p.number === number)) c.phones.push({ number, preferred: false });
    }
    let link = c.links.find(l => l.studentDcid === row.studentdcid);
    if (!link) {
      link = { studentDcid: row.studentdcid, canAccessData: row.canaccessdata, details: [] };
      c.links.push(link);
    } else if (link.canAccessData === undefined) {
      link.canAccessData = row.canaccessdata;
    }
    const detail: PsLinkDetail = {
      relationship: row.relationship,
      custodial: row.iscustodial,
      emergency: row.isemergency,
      livesWith: row.liveswithflg,
      active: row.isactive,
    };
    let seen = detailKeys.get(link);
    if (!seen) detailKeys.set(link, (seen = new Set<string>()));
    const key = JSON.stringify(detail);
    if (!seen.has(key)) {
      seen.add(key);
      link.details.push(detail);
    }
  }
  return [...byPerson.values()];
}

// ---------------------------------------------------------------------------------------------
// Policy (invariant 11: explicit flags, never list order)
// ---------------------------------------------------------------------------------------------

/** `YYYY-MM-DD` from an ISO date/date-time or `MM/DD/YYYY`; undefined when unparseable. */
export function toIsoDate(s: string): string | undefined {
  const t = s.trim();
  const iso = /^(\d{4})-(\d{2})-(\d{2})(?:$|[T ])/.exec(t);
  if (iso) return `${iso[1]}-${iso[2]}-${iso[3]}`;
  const us = /^(\d{1,2})\/(\d{1,2})\/(\d{4})$/.exec(t);
  if (us?.[1] && us[2] && us[3])
    return `${us[3]}-${us[1].padStart(2, '0')}-${us[2].padStart(2, '0')}`;
  return undefined;
}

/**
 * The detail row that is current on `asOf` (`YYYY-MM-DD`): not flagged inactive, started
 * (no `startDate` or `startDate` ≤ asOf) and not ended (no `endDate` or `endDate` > asOf).
 * With several current rows, the one with the latest `startDate` wins (an open start counts
 * as earliest; ties keep SIS order). A row with an unparseable date is never current.
 * Undefined when no row is current.
 */
export function currentDetail(
  details: readonly PsLinkDetail[],
  asOf: string,
): PsLinkDetail | undefined {
  let best: PsLinkDetail | undefined;
  let bestStart = '';
  for (const d of details) {
    if (d.active === false) continue;
    const start = d.startDate === undefined ? '' : toIsoDate(d.startDate);
    const end = d.endDate === undefined ? undefined : toIsoDate(d.endDate);
    if (start === undefined || (d.endDate !== undefined && end === undefined)) continue;
    if (start !== '' && start > asOf) continue;
    if (end !== undefined && end <= asOf) continue;
    if (best === undefined || start > bestStart) {
      best = d;
      bestStart = start;
    }
  }
  return best;
}

/**
 * Does `link` (with its current `detail`) give a guardian link under `policy`? Flags must be
 * explicitly true: `canAccessData` when `requireDataAccess`, `custodial` when
 * `requireCustodial`. An inactive contact never passes.
 */
export function linkPassesPolicy(
  contact: Pick<PsContactRecord, 'active'>,
  link: Pick<PsLink, 'canAccessData'>,
  detail: PsLinkDetail,
  policy: PowerSchoolContactPolicy,
): boolean {
  return linkExclusion(contact, link, detail, policy) === undefined;
}

/**
 * Why a contact↔student link gives no guardian link under `policy`: a stable exclusion code
 * (`EXCLUSION`, src/mapping/exclusions.ts), or undefined when it passes. `detail` undefined
 * means the link has no current detail row (`currentDetail`).
 */
export function linkExclusion(
  contact: Pick<PsContactRecord, 'active'>,
  link: Pick<PsLink, 'canAccessData'>,
  detail: PsLinkDetail | undefined,
  policy: PowerSchoolContactPolicy,
): string | undefined {
  if (contact.active === false) return EXCLUSION.inactiveContact;
  if (!detail) return EXCLUSION.noCurrentRelationship;
  if (policy.requireDataAccess && link.canAccessData !== true) return EXCLUSION.noDataAccess;
  if (policy.requireCustodial && detail.custodial !== true) return EXCLUSION.notCustodial;
  return undefined;
}

/**
 * District policy `preRegisteredStudents` (src/config/district.ts): `exclude` (default)
 * leaves pre-registered students (and so their guardians' access) out until they enrol;
 * `include` syncs them as active students.
 */
export type PreRegisteredPolicy = 'exclude' | 'include';

/**
 * The enrollment status of a v1 student (§2.5 `school_enrollment.enroll_status`, or
 * `enroll_status_code` when the letter is missing: 0 A, -1 P, 2 T, 3 G, 4 H/I): `active`,
 * `pre-registered`, or `other` (transferred, graduated, historical, inactive). A student
 * with neither field is `active` (the request asked for enrolled students only).
 */
export function enrollmentOf(raw: PsStudent): 'active' | 'pre-registered' | 'other' {
  const letter = raw.school_enrollment?.enroll_status?.trim().toUpperCase();
  if (letter) return letter === 'A' ? 'active' : letter === 'P' ? 'pre-registered' : 'other';
  const code = raw.school_enrollment?.enroll_status_code;
  if (code === undefined || code === null || code === 0) return 'active';
  return code === -1 ? 'pre-registered' : 'other';
}

const PARENT_RELATIONSHIPS = new Set(['mother', 'father', 'parent', 'stepmother', 'stepfather']);

/** `parent` for Mother/Father/Parent/Stepmother/Stepfather (any case), else `guardian`. */
export function roleFromRelationships(
  relationships: readonly (string | undefined)[],
): GuardianRole {
  return relationships.some(
    r => r !== undefined && PARENT_RELATIONSHIPS.has(r.trim().toLowerCase()),
  )
    ? 'parent'
    : 'guardian';
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

const EmailCheck = Guardian.shape.email;

function issuesReason(error: z.ZodError, sourceNames: Record<string, string>): string {
  return error.issues
    .map(i => {
      const key = i.path.map(String).join('.');
      const src = sourceNames[String(i.path[0])];
      return `${src ? `${src} (${key})` : key || '(record)'}: ${i.message}`;
    })
    .join('; ');
}

/** Map one v1 school (§2.2). Rejects a school with no name. */
export function mapPowerSchoolSchool(
  raw: PsSchool,
): { ok: true; school: School } | { ok: false; reject: Reject } {
  const r = School.safeParse({ sourcedId: raw.id, name: raw.name ?? '' });
  if (r.success) return { ok: true, school: r.data };
  return {
    ok: false,
    reject: {
      entity: 'school',
      recordId: raw.id,
      reason: issuesReason(r.error, { sourcedId: 'id', name: 'name' }),
    },
  };
}

const STUDENT_SOURCE_NAMES: Record<string, string> = {
  sourcedId: 'id',
  uniqueId: 'local_id',
  givenName: 'name.first_name',
  familyName: 'name.last_name',
  schoolSourcedIds: 'school_enrollment.school_id',
  grade: 'school_enrollment.grade_level',
};

/**
 * Map one v1 student (§2.5): sourcedId = DCID (`id`), uniqueId = student_number
 * (`local_id`), names from `name`, school and grade from `school_enrollment`, email from
 * `contact_info.email` when valid. Status comes from the record, never only from the
 * request filter (`enrollmentOf`): an enrolled student is `active`; a pre-registered one is
 * an exclusion unless `preRegistered` is `include`; any other status is an exclusion
 * (`not enrolled`), so a server that ignores `q` never makes withdrawn students active.
 *
 * Returns the student or a reject naming the PowerSchool field (e.g. a missing
 * `name.last_name`). An invalid email is not fatal: the student maps without it and
 * `emailReject` says why.
 */
export function mapPowerSchoolStudent(
  raw: PsStudent,
  preRegistered: PreRegisteredPolicy = 'exclude',
): { ok: true; student: Student; emailReject?: Reject } | { ok: false; reject: Reject } {
  const enrollment = enrollmentOf(raw);
  if (enrollment === 'other' || (enrollment === 'pre-registered' && preRegistered === 'exclude'))
    return {
      ok: false,
      reject: {
        entity: 'student',
        recordId: raw.id,
        reason: enrollment === 'other' ? EXCLUSION.notEnrolled : EXCLUSION.preRegistered,
        kind: 'excluded',
      },
    };
  const enr = raw.school_enrollment;
  const rawEmail = raw.contact_info?.email?.trim();
  const emailOk = nonBlank(rawEmail) && EmailCheck.safeParse(rawEmail).success;
  const grade = enr?.grade_level;
  const r = Student.safeParse({
    sourcedId: raw.id,
    uniqueId: raw.local_id ?? '',
    givenName: raw.name?.first_name ?? '',
    familyName: raw.name?.last_name ?? '',
    ...(emailOk ? { email: rawEmail } : {}),
    schoolSourcedIds: enr?.school_id !== undefined ? [enr.school_id] : [],
    ...(grade !== undefined && grade !== null && String(grade).trim() !== ''
      ? { grade: String(grade) }
      : {}),
    status: 'active',
  });
  if (!r.success) {
    return {
      ok: false,
      reject: {
        entity: 'student',
        recordId: raw.id,
        reason: issuesReason(r.error, STUDENT_SOURCE_NAMES),
      },
    };
  }
  if (nonBlank(rawEmail) && !emailOk) {
    return {
      ok: true,
      student: r.data,
      emailReject: {
        entity: 'student',
        recordId: raw.id,
        reason: 'contact_info.email: not a valid email address; student kept without email',
      },
    };
  }
  return { ok: true, student: r.data };
}

/**
 * Map one contact to a canonical guardian (role from the relationships it has in the chunk).
 * Email: the primary address, else the first; an invalid address gives `emailReject` and a
 * guardian without email. Phone: the preferred number, else the first. Returns a reject when
 * the guardian itself is invalid (e.g. no last name).
 */
export function mapPowerSchoolGuardian(
  contact: PsContactRecord,
  relationships: readonly (string | undefined)[],
): { ok: true; guardian: Guardian; emailReject?: Reject } | { ok: false; reject: Reject } {
  const email = (contact.emails.find(e => e.primary) ?? contact.emails[0])?.address.trim();
  const emailOk = nonBlank(email) && EmailCheck.safeParse(email).success;
  const phone = (contact.phones.find(p => p.preferred) ?? contact.phones[0])?.number.trim();
  const r = Guardian.safeParse({
    sourcedId: contact.contactId,
    givenName: contact.firstName ?? '',
    familyName: contact.lastName ?? '',
    ...(emailOk ? { email } : {}),
    ...(nonBlank(phone) ? { phone } : {}),
    role: roleFromRelationships(relationships),
    status: 'active',
  });
  if (!r.success) {
    return {
      ok: false,
      reject: {
        entity: 'guardian',
        recordId: contact.contactId,
        reason: issuesReason(r.error, {
          sourcedId: 'contactId',
          givenName: 'firstName',
          familyName: 'lastName',
        }),
      },
    };
  }
  if (nonBlank(email) && !emailOk) {
    return {
      ok: true,
      guardian: r.data,
      emailReject: {
        entity: 'guardian',
        recordId: contact.contactId,
        reason: 'emails[].address: not a valid email address; guardian kept without email',
      },
    };
  }
  return { ok: true, guardian: r.data };
}

// ---------------------------------------------------------------------------------------------
// Chunk
// ---------------------------------------------------------------------------------------------

/**
 * Id order (numeric-aware, `"9" < "10"`): the same as `a.localeCompare(b, 'en', { numeric: true })`
 * but with one shared collator (localeCompare with options builds one per call: ~20× slower).
 */
const NUMERIC_ID_ORDER = new Intl.Collator('en', { numeric: true });

export interface PowerSchoolChunkInput {
  /** One students page, parsed (server order, by DCID). */
  students: readonly PsStudent[];
  /**
   * Contacts of those students, from either read path. May hold the same contact several
   * times (siblings) and links to students outside the page; both are handled.
   */
  contacts: readonly PsContactRecord[];
  policy: PowerSchoolContactPolicy;
  /** District policy `preRegisteredStudents` (default `exclude`). */
  preRegistered?: PreRegisteredPolicy | undefined;
  /** The pull's date, `YYYY-MM-DD` (detail rows are current relative to it). */
  asOf: string;
  /**
   * False when some contact records of this page could not be read (parse failures): then
   * `relationshipsSupplied` is false so that no link is removed on partial data.
   */
  contactsComplete?: boolean;
}

/**
 * Build one `RosterChunk` from a students page and their contacts (pure).
 *
 * - Students: mapped with `mapPowerSchoolStudent`; invalid ones become rejects and their
 *   links are ignored. Duplicate DCIDs in the page are kept once.
 * - Relationships: for each contact link whose student is in the chunk, the current detail
 *   row (`currentDetail`) must exist and pass `linkPassesPolicy`. Never chosen by order.
 * - Guardians: one per contactId with ≥ 1 relationship (de-duplicated across siblings).
 *   A guardian that fails validation is a reject and its relationships are dropped; the
 *   chunk then says `relationshipsSupplied: false` (its link list is incomplete, and absent
 *   must not read as removed — invariants 4 and 9).
 *
 * Output order is deterministic: students in page order, guardians by contactId,
 * relationships by student (page order) then contactId.
 */
export function buildPowerSchoolChunk(input: PowerSchoolChunkInput): {
  chunk: RosterChunk;
  rejects: Reject[];
} {
  const rejects: Reject[] = [];
  const students: Student[] = [];
  const order = new Map<string, number>();
  for (const raw of input.students) {
    if (order.has(raw.id)) continue;
    const m = mapPowerSchoolStudent(raw, input.preRegistered);
    if (!m.ok) {
      rejects.push(m.reject);
      continue;
    }
    if (m.emailReject) rejects.push(m.emailReject);
    order.set(m.student.sourcedId, students.length);
    students.push(m.student);
  }

  const contacts = new Map<string, PsContactRecord>();
  for (const c of input.contacts) {
    const prev = contacts.get(c.contactId);
    if (!prev) {
      contacts.set(c.contactId, { ...c, links: [...c.links] });
      continue;
    }
    for (const l of c.links) {
      if (!prev.links.some(p => p.studentDcid === l.studentDcid)) prev.links.push(l);
    }
  }

  let complete = input.contactsComplete ?? true;
  const guardians: Guardian[] = [];
  const relationships: Relationship[] = [];
  for (const contact of contacts.values()) {
    const rels: Relationship[] = [];
    const relTexts: (string | undefined)[] = [];
    const linked = new Set<string>();
    for (const link of contact.links) {
      if (!order.has(link.studentDcid) || linked.has(link.studentDcid)) continue;
      const detail = currentDetail(link.details, input.asOf);
      const excluded = linkExclusion(contact, link, detail, input.policy);
      if (excluded !== undefined || !detail) {
        if (excluded !== undefined)
          rejects.push({
            entity: 'relationship',
            recordId: `${contact.contactId}->${link.studentDcid}`,
            reason: excluded,
            kind: 'excluded',
          });
        continue;
      }
      const relationship = detail.relationship?.trim();
      const candidate = {
        guardianSourcedId: contact.contactId,
        studentSourcedId: link.studentDcid,
        ...(nonBlank(relationship) ? { relationship } : {}),
        ...(link.canAccessData !== undefined ? { portalAccess: link.canAccessData } : {}),
        ...(detail.livesWith !== undefined ? { livesWith: detail.livesWith } : {}),
        ...(detail.custodial !== undefined ? { custody: detail.custodial } : {}),
      };
      const r = Relationship.safeParse(candidate);
      if (!r.success) {
        rejects.push({
          entity: 'relationship',
          recordId: `${contact.contactId}:${link.studentDcid}`,
          reason: issuesReason(r.error, {}),
        });
        complete = false;
        continue;
      }
      linked.add(link.studentDcid);
      rels.push(r.data);
      relTexts.push(relationship);
    }
    if (rels.length === 0) continue;
    const g = mapPowerSchoolGuardian(contact, relTexts);
    if (!g.ok) {
      rejects.push({
        ...g.reject,
        reason: `${g.reject.reason} (its ${rels.length} link(s) not supplied)`,
      });
      complete = false;
      continue;
    }
    if (g.emailReject) rejects.push(g.emailReject);
    guardians.push(g.guardian);
    relationships.push(...rels);
  }

  const byId = NUMERIC_ID_ORDER.compare;
  guardians.sort((a, b) => byId(a.sourcedId, b.sourcedId));
  relationships.sort(
    (a, b) =>
      (order.get(a.studentSourcedId) ?? 0) - (order.get(b.studentSourcedId) ?? 0) ||
      byId(a.guardianSourcedId, b.guardianSourcedId),
  );
  return {
    chunk: { students, guardians, relationships, relationshipsSupplied: complete },
    rejects,
  };
}
