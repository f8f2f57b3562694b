/**
 * Adapter from the seeded synthetic district (`district-generator.ts`) to eSchoolPLUS table
 * rows (sis-reference §6.2), for the file writer (`eschoolplus-files.ts`), tests and
 * benchmarks. It reads the district without changing it.
 *
 * Mapping: `STUDENT_ID` = the student's `local_id`; `BUILDING` = the school's
 * `school_number`; each generator contact is one REG_CONTACT person (`CONTACT_ID` =
 * 1,400,000 + contactId) and each active link one REG_STU_CONTACT row: `CONTACT_TYPE` `C`
 * for emergency-only contacts, `G` otherwise; flags from the link (`WEB_ACCESS` = data
 * access, `CUST_GUARD`/`LEGAL_GUARD` = custodial, `LIVING_WITH`). A person entered twice
 * whose second copy is linked to the same student as the first has that copy's row parked
 * at `CONTACT_PRIORITY` 99 (§6.4). Every student also has its own address as a `P` row (and
 * every fifth an `M` row), a REG_CONTACT "person" that must never become an account.
 * Names are stored as a Windows-1252 system stores them (`toCp1252`).
 */
import iconv from 'iconv-lite';
import {
  EMERGENCY_RELATIONSHIPS,
  type PsContactLink,
  type PsContactRow,
  type SyntheticDistrict,
} from './district-generator.js';
import { linksOfStudent } from './district-index.js';

/** `RELATION_CODE` values of the fake and their names (district config `relationCodes`). */
export const ESCHOOL_RELATION_CODES: Readonly<Record<string, string>> = {
  M: 'Mother',
  F: 'Father',
  SM: 'Stepmother',
  SF: 'Stepfather',
  GM: 'Grandmother',
  GF: 'Grandfather',
  GP: 'Grandparent',
  G: 'Guardian',
  FP: 'Foster Parent',
  AU: 'Aunt',
  UN: 'Uncle',
  CO: 'Cousin',
  NB: 'Neighbor',
  FF: 'Family Friend',
  BS: 'Babysitter',
};
const CODE_OF = new Map(Object.entries(ESCHOOL_RELATION_CODES).map(([c, n]) => [n, c]));

export const ESCHOOL_DISTRICT = '9999';
/** Parked duplicate priority (§6.4). */
export const PARKED_PRIORITY = 99;

/** eSchoolPLUS `CONTACT_ID` of a generator contact. */
export function eschoolContactId(c: Pick<PsContactRow, 'contactId'>): string {
  return String(1_400_000 + c.contactId);
}

const FOLD: Record<string, string> = { ł: 'l', Ł: 'L', đ: 'd', Đ: 'D', ı: 'i' };
const cp1252Cache = new Map<string, string>();

/**
 * `s` as a Windows-1252 system stores it: characters the code page has are kept (é, ü, ñ,
 * ø, Å, Ž…); others lose their accents (ễ → e, ř → r) or are folded (ł → l), else `?`.
 */
export function toCp1252(s: string): string {
  let out = '';
  for (const ch of s) {
    let mapped = cp1252Cache.get(ch);
    if (mapped === undefined) {
      const ok = (c: string) => iconv.decode(iconv.encode(c, 'win1252'), 'win1252') === c;
      if (ok(ch)) mapped = ch;
      else {
        const base = ch.normalize('NFD').replace(/\p{M}/gu, '');
        mapped = base !== ch && ok(base) ? base : (FOLD[ch] ?? '?');
      }
      cp1252Cache.set(ch, mapped);
    }
    out += mapped;
  }
  return out;
}

/** Column values of one row, by column name. */
export type ESchoolRow = Record<string, string>;

/** The district as eSchoolPLUS tables. */
export interface ESchoolTables {
  REG: ESchoolRow[];
  REG_BUILDING: ESchoolRow[];
  /** One row per person (addresses included). */
  REG_CONTACT: ESchoolRow[];
  REG_CONTACT_PHONE: ESchoolRow[];
  REG_STU_CONTACT: ESchoolRow[];
}

export const ESCHOOL_COLUMNS = {
  REG: [
    'DISTRICT',
    'STUDENT_ID',
    'FIRST_NAME',
    'MIDDLE_NAME',
    'LAST_NAME',
    'GENERATION',
    'BUILDING',
    'GRADE',
    'CURRENT_STATUS',
    'BIRTHDATE',
    'STUDENT_GUID',
    'CHANGE_DATE_TIME',
  ],
  REG_BUILDING: ['DISTRICT', 'BUILDING', 'NAME', 'ABBREVIATION', 'STATE_CODE_EQUIV'],
  REG_CONTACT: [
    'DISTRICT',
    'CONTACT_ID',
    'TITLE',
    'SALUTATION',
    'FIRST_NAME',
    'MIDDLE_NAME',
    'LAST_NAME',
    'GENERATION',
    'LANGUAGE',
    'USE_FOR_MAILING',
    'STREET_NUMBER',
    'STREET_NAME',
    'APARTMENT',
    'CITY',
    'STATE',
    'ZIP',
    'EMAIL',
    'EMAIL_PREFERENCE',
    'LOGIN_ID',
    'CONTACT_KEY',
    'ROW_IDENTITY',
    'CHANGE_DATE_TIME',
  ],
  REG_CONTACT_PHONE: [
    'DISTRICT',
    'CONTACT_ID',
    'PHONE_TYPE',
    'PHONE_LISTING',
    'PHONE',
    'PHONE_EXTENSION',
    'PHONE_PRIORITY',
  ],
  REG_STU_CONTACT: [
    'DISTRICT',
    'STUDENT_ID',
    'CONTACT_ID',
    'CONTACT_TYPE',
    'CONTACT_PRIORITY',
    'RELATION_CODE',
    'LIVING_WITH',
    'WEB_ACCESS',
    'LEGAL_GUARD',
    'CUST_GUARD',
    'TRANSPORT_TO',
    'TRANSPORT_FROM',
    'MAIL_ATT',
    'MAIL_RC',
    'COMMENTS',
    'CHANGE_DATE_TIME',
  ],
} as const;

const yn = (b: boolean) => (b ? 'Y' : 'N');
const STAMP = '08/09/2025 14:03:11';

function isEmergency(l: PsContactLink): boolean {
  return EMERGENCY_RELATIONSHIPS.includes(l.relationship);
}

/** Build the tables of `d` (not cached: the writer calls it once per file set). */
export function eschoolTables(d: SyntheticDistrict): ESchoolTables {
  const REG_BUILDING = d.schools.map(s => ({
    DISTRICT: ESCHOOL_DISTRICT,
    BUILDING: String(s.school_number),
    NAME: toCp1252(s.name),
    ABBREVIATION: s.name.slice(0, 6).toUpperCase(),
    STATE_CODE_EQUIV: String(4000 + s.school_number),
  }));
  const REG: ESchoolRow[] = [];
  const REG_CONTACT: ESchoolRow[] = [];
  const REG_CONTACT_PHONE: ESchoolRow[] = [];
  const REG_STU_CONTACT: ESchoolRow[] = [];
  // First contact of each person, and (person, student) pairs it covers (for priority 99).
  const firstOf = new Map<string, PsContactRow>();
  for (const c of d.contacts) if (!firstOf.has(c.personKey)) firstOf.set(c.personKey, c);
  d.students.forEach((s, i) => {
    const id = String(s.local_id);
    REG.push({
      DISTRICT: ESCHOOL_DISTRICT,
      STUDENT_ID: id,
      FIRST_NAME: toCp1252(s.first_name),
      MIDDLE_NAME: toCp1252(s.middle_name ?? ''),
      LAST_NAME: toCp1252(s.last_name),
      GENERATION: '',
      BUILDING: String(s.school_number),
      GRADE: s.grade_level === 0 ? 'KG' : String(s.grade_level).padStart(2, '0'),
      CURRENT_STATUS: s.enroll_status === 'A' ? 'A' : 'I',
      BIRTHDATE: `0${(s.local_id % 9) + 1}/1${s.local_id % 9}/${2019 - s.grade_level}`,
      STUDENT_GUID: `{${(0x10000000 + s.id).toString(16)}-0000-4000-8000-${String(s.local_id).padStart(12, '0')}}`,
      CHANGE_DATE_TIME: STAMP,
    });
    // The student's own address: a P row, and an M row for every fifth student.
    const addressId = String(9_000_000 + s.local_id);
    REG_CONTACT.push(contactRow(addressId, toCp1252(s.first_name), toCp1252(s.last_name), '', ''));
    REG_STU_CONTACT.push(stuRow(id, addressId, 'P', '0', '', false, false, false, false, ''));
    if (i % 5 === 4)
      REG_STU_CONTACT.push(stuRow(id, addressId, 'M', '0', '', false, false, false, false, ''));
    const links = linksOfStudent(d, i);
    for (const { contact, link } of links) {
      if (!link.detailActive) continue;
      const first = firstOf.get(contact.personKey);
      const parked =
        first !== undefined &&
        first !== contact &&
        links.some(x => x.contact === first && x.link.detailActive);
      REG_STU_CONTACT.push(
        stuRow(
          id,
          eschoolContactId(contact),
          isEmergency(link) ? 'C' : 'G',
          parked ? String(PARKED_PRIORITY) : String(link.sequence),
          CODE_OF.get(link.relationship) ?? '',
          link.livesWith,
          link.canAccessData,
          link.custodial,
          link.custodial,
          isEmergency(link) ? 'May pick up on Tue/Thu' : '',
        ),
      );
    }
  });
  for (const c of d.contacts) {
    const cid = eschoolContactId(c);
    REG_CONTACT.push(
      contactRow(
        cid,
        toCp1252(c.firstName),
        toCp1252(c.lastName),
        c.email ?? '',
        c.account?.userName ?? '',
        toCp1252(c.middleName ?? ''),
      ),
    );
    let prio = 1;
    for (const [phone, type] of [
      [c.phone, 'C'],
      [c.phone2, 'H'],
    ] as const) {
      if (phone === null) continue;
      REG_CONTACT_PHONE.push({
        DISTRICT: ESCHOOL_DISTRICT,
        CONTACT_ID: cid,
        PHONE_TYPE: type,
        PHONE_LISTING: 'L',
        PHONE: phone.replace(/\D/g, ''),
        PHONE_EXTENSION: '',
        PHONE_PRIORITY: String(prio++),
      });
    }
  }
  REG_CONTACT.sort((a, b) => Number(a.CONTACT_ID) - Number(b.CONTACT_ID));
  return { REG, REG_BUILDING, REG_CONTACT, REG_CONTACT_PHONE, REG_STU_CONTACT };
}

function contactRow(
  id: string,
  first: string,
  last: string,
  email: string,
  login: string,
  middle = '',
): ESchoolRow {
  const n = Number(id);
  return {
    DISTRICT: ESCHOOL_DISTRICT,
    CONTACT_ID: id,
    TITLE: '',
    SALUTATION: '',
    FIRST_NAME: first,
    MIDDLE_NAME: middle,
    LAST_NAME: last,
    GENERATION: '',
    LANGUAGE: 'ENG',
    USE_FOR_MAILING: 'Y',
    STREET_NUMBER: String(100 + (n % 900)),
    STREET_NAME: ['Elm St', 'Oak Ave', 'Rue Lefèvre', 'Peña Blvd', 'Main St'][n % 5] ?? 'Main St',
    APARTMENT: n % 7 === 0 ? `Apt ${n % 40}` : '',
    CITY: 'Springfield',
    STATE: 'AR',
    ZIP: String(72000 + (n % 999)).padStart(5, '0'),
    EMAIL: email,
    EMAIL_PREFERENCE: email ? 'Y' : 'N',
    LOGIN_ID: login,
    CONTACT_KEY: String(n * 3),
    ROW_IDENTITY: `{${n.toString(16).padStart(8, '0')}-1111-4111-8111-000000000000}`,
    CHANGE_DATE_TIME: STAMP,
  };
}

function stuRow(
  studentId: string,
  contactId: string,
  type: string,
  priority: string,
  relation: string,
  livesWith: boolean,
  webAccess: boolean,
  legal: boolean,
  custodial: boolean,
  comments: string,
): ESchoolRow {
  return {
    DISTRICT: ESCHOOL_DISTRICT,
    STUDENT_ID: studentId,
    CONTACT_ID: contactId,
    CONTACT_TYPE: type,
    CONTACT_PRIORITY: priority,
    RELATION_CODE: relation,
    LIVING_WITH: yn(livesWith),
    WEB_ACCESS: yn(webAccess),
    LEGAL_GUARD: yn(legal),
    CUST_GUARD: yn(custodial),
    TRANSPORT_TO: 'N',
    TRANSPORT_FROM: 'N',
    MAIL_ATT: 'Y',
    MAIL_RC: 'Y',
    COMMENTS: comments,
    CHANGE_DATE_TIME: STAMP,
  };
}

/** Which links count for the eSchoolPLUS ground truth. */
export interface ESchoolTruthOptions {
  /** REG_STU_CONTACT is part of the file set (else only the joined contact type is known). */
  studentContacts: boolean;
  /** Policy flags (apply only with REG_STU_CONTACT). */
  requireWebAccess: boolean;
  requireCustodialGuardian: boolean;
  /** Generator contactIds whose REG_CONTACT row is unreadable (rejected). */
  excludeContactIds?: ReadonlySet<number>;
  /**
   * District policy `guardiansWithoutLogin` is `exclude` (default true): a person with no
   * email gets no account and no links.
   */
  requireLogin?: boolean;
}

/**
 * Ground truth of an eSchoolPLUS sync of `d`, from the generator (`personKey` and link
 * flags), not from a mapper: active students' `STUDENT_ID`s, and per real person with a
 * guardian (`G`) link to an active student that counts — name (as cp1252 stores it),
 * normalised email, and the students linked. Persons without email are left out unless
 * `o.requireLogin` is false.
 */
export function expectedESchoolRoster(
  d: SyntheticDistrict,
  o: ESchoolTruthOptions,
): {
  students: string[];
  persons: {
    personKey: string;
    givenName: string;
    familyName: string;
    email: string | null;
    students: string[];
  }[];
  links: number;
} {
  const active = new Map(
    d.students.filter(s => s.enroll_status === 'A').map(s => [s.id, String(s.local_id)]),
  );
  const persons = new Map<
    string,
    {
      personKey: string;
      givenName: string;
      familyName: string;
      email: string | null;
      students: string[];
    }
  >();
  let links = 0;
  for (const c of d.contacts) {
    if (o.excludeContactIds?.has(c.contactId)) continue;
    for (const l of c.links) {
      const sid = active.get(l.studentDcid);
      if (sid === undefined || !l.detailActive || isEmergency(l)) continue;
      if (o.studentContacts && o.requireWebAccess && !l.canAccessData) continue;
      if (o.studentContacts && o.requireCustodialGuardian && !l.custodial) continue;
      let p = persons.get(c.personKey);
      if (!p) {
        p = {
          personKey: c.personKey,
          givenName: toCp1252(c.firstName),
          familyName: toCp1252(c.lastName),
          email: c.email === null ? null : c.email.trim().toLowerCase(),
          students: [],
        };
        persons.set(c.personKey, p);
      }
      if (!p.students.includes(sid)) {
        p.students.push(sid);
        links++;
      }
    }
  }
  for (const p of persons.values()) p.students.sort();
  let kept = [...persons.values()];
  if (o.requireLogin ?? true) {
    const noLogin = kept.filter(p => p.email === null);
    for (const p of noLogin) links -= p.students.length;
    kept = kept.filter(p => p.email !== null);
  }
  return { students: [...active.values()].sort(), persons: kept, links };
}
