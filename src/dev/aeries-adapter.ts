/**
 * Adapter from the seeded synthetic district (`district-generator.ts`) to Aeries-shaped rows
 * (sis-reference §4.5), for the fake Aeries server, tests and benchmarks. It reads the
 * district without changing it, so a seed gives the same district for every SIS.
 *
 * Mapping: a school's `SchoolCode` is its `school_number`; a student's permanent `StudentID`
 * is its `local_id` (the district number), `StudentNumber` counts per school; every active
 * contact↔student link becomes one contact row (`StudentID`, `SequenceNumber` = the link's
 * sequence) — the same parent of two siblings is two rows, as in Aeries. A person with a
 * portal account (any of its contacts has one) gets `PortalAccountID` = 10000 + its person
 * number on the rows that have an email (0 elsewhere). `FamilyKey` groups students sharing a
 * contact when first seen, and then never changes. Flags mix booleans, `"Y"`, `"N"` and `""` deterministically.
 */
import {
  expectedRoster,
  districtVersion,
  type PsContactLink,
  type PsContactRow,
  type PsStudentRow,
  type SyntheticDistrict,
} from './district-generator.js';
import { linksOfStudent } from './district-index.js';

/** Relationship codes of the fake (`GET /api/v5/codes/CON/RC`). */
export const AERIES_RELATIONSHIP_CODES: Readonly<Record<string, string>> = {
  '10': 'Mother',
  '11': 'Father',
  '12': 'Stepmother',
  '13': 'Stepfather',
  '14': 'Grandmother',
  '15': 'Grandfather',
  '16': 'Grandparent',
  '17': 'Guardian',
  '18': 'Foster Parent',
  '20': 'Aunt',
  '21': 'Uncle',
  '22': 'Cousin',
  '30': 'Neighbor',
  '31': 'Family Friend',
  '32': 'Babysitter',
};
const CODE_OF = new Map(Object.entries(AERIES_RELATIONSHIP_CODES).map(([c, d]) => [d, c]));

/** One Aeries student record (one per student per school). */
export interface AeriesStudentRecord {
  StudentID: number;
  SchoolCode: number;
  StudentNumber: number;
  StateStudentID: string;
  FirstName: string;
  MiddleName: string;
  LastName: string;
  Grade: number;
  Birthdate: string;
  StudentEmailAddress: string;
  InactiveStatusCode: string;
  SchoolEnterDate: string;
  SchoolLeaveDate: string | null;
  FamilyKey: number;
  ParentGuardianName: string;
  CorrespondenceLanguageCode: string;
}

/** One Aeries contact row (table CON). Flags are deliberately of mixed types. */
export interface AeriesContactRecord {
  StudentID: number;
  SchoolCode: number;
  SequenceNumber: number;
  ContactOrder: number;
  FirstName: string;
  LastName: string;
  MiddleName: string;
  MailingName: string;
  NamePrefix: string;
  NameSuffix: string;
  RelationshipToStudentCode: string;
  LivesWithStudentIndicator: string | boolean;
  AccessToPortal: string | boolean;
  EducationalRightsHolder: string | boolean;
  PrimaryContact: string;
  MailTagCode: string;
  RedFlag: boolean;
  EmailAddress: string;
  HomePhone: string;
  WorkPhone: string;
  WorkPhoneExt: string;
  CellPhone: string;
  PortalAccountID: number;
  Birthdate: null;
  RecordAddedDate: string;
}

/** The district as an Aeries server holds it. */
export interface AeriesDistrictView {
  schools: { SchoolCode: number; Name: string }[];
  /** Every student record, by (SchoolCode, StudentID). */
  students: AeriesStudentRecord[];
  /** Contact rows in (StudentID, SequenceNumber) order. */
  contacts: AeriesContactRecord[];
  /** Ground truth: `"StudentID:SequenceNumber"` → personKey. */
  personOfRow: Map<string, string>;
}

/** Options of the view. */
export interface AeriesViewOptions {
  /**
   * Every n-th student (by position) also has an inactive record at another school (it moved
   * there from); 0 = none. Default 17.
   */
  priorSchoolEvery?: number;
}

/** The Aeries `StudentID` of a generated student (its district number). */
export function aeriesStudentId(s: Pick<PsStudentRow, 'local_id'>): number {
  return s.local_id;
}

/** The portal account id of a person (`"P42"` → 10042). */
export function aeriesPortalAccountId(personKey: string): number {
  return 10000 + Number(personKey.replace(/^\D+/, ''));
}

function digits(phone: string | null): string {
  return phone === null ? '' : phone.replace(/\D/g, '');
}

/** Deterministic 0..n-1 from two ints (flag-type variety without a PRNG). */
function pick(a: number, b: number, n: number): number {
  return (((a * 2654435761) ^ (b * 40503)) >>> 0) % n;
}

function flag(value: boolean, a: number, b: number): string | boolean {
  switch (pick(a, b, 4)) {
    case 0:
      return value; // a real boolean
    case 1:
      return value ? 'Y' : '';
    case 2:
      return value ? 'Y' : 'N';
    default:
      return value ? 'y' : 'N';
  }
}

/**
 * Family keys already handed out, per district: Aeries assigns `FamilyKey` at registration,
 * so a later edit (a removed contact) never changes a student's key.
 */
const familyKeys = new WeakMap<SyntheticDistrict, Map<number, number>>();

const cache = new WeakMap<
  SyntheticDistrict,
  { version: number; students: number; contacts: number; key: string; view: AeriesDistrictView }
>();

/**
 * The Aeries view of `d` (cached per district version; call `touchDistrict(d)` after edits
 * made without the generator's helpers).
 */
export function aeriesView(d: SyntheticDistrict, opts: AeriesViewOptions = {}): AeriesDistrictView {
  const every = opts.priorSchoolEvery ?? 17;
  const key = String(every);
  const version = districtVersion(d);
  const hit = cache.get(d);
  if (
    hit &&
    hit.version === version &&
    hit.key === key &&
    hit.students === d.students.length &&
    hit.contacts === d.contacts.length
  )
    return hit.view;
  const view = build(d, every);
  cache.set(d, { version, students: d.students.length, contacts: d.contacts.length, key, view });
  return view;
}

function build(d: SyntheticDistrict, priorEvery: number): AeriesDistrictView {
  const schools = d.schools.map(s => ({ SchoolCode: s.school_number, Name: s.name }));
  // Persons with a portal account.
  const withAccount = new Set<string>();
  for (const c of d.contacts) if (c.account) withAccount.add(c.personKey);
  // Families: students sharing a contact (union-find over student positions).
  const parent = d.students.map((_s, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      const p = parent[i] ?? i;
      parent[i] = parent[p] ?? p;
      i = p;
    }
    return i;
  };
  const pos = new Map(d.students.map((s, i) => [s.id, i]));
  for (const c of d.contacts) {
    const first = c.links[0];
    if (!first) continue;
    const a = pos.get(first.studentDcid);
    if (a === undefined) continue;
    for (const l of c.links) {
      const b = pos.get(l.studentDcid);
      if (b !== undefined) {
        const ra = find(a);
        const rb = find(b);
        if (ra !== rb) parent[Math.max(ra, rb)] = Math.min(ra, rb);
      }
    }
  }
  let known = familyKeys.get(d);
  if (!known) {
    known = new Map();
    familyKeys.set(d, known);
  }
  const perSchool = new Map<number, number>();
  const students: AeriesStudentRecord[] = [];
  const contacts: AeriesContactRecord[] = [];
  const personOfRow = new Map<string, string>();
  d.students.forEach((s, i) => {
    const n = (perSchool.get(s.school_number) ?? 0) + 1;
    perSchool.set(s.school_number, n);
    const root = d.students[find(i)];
    const familyKey = known.get(s.id) ?? (root ? 500000 + root.local_id : 0);
    known.set(s.id, familyKey);
    const links = linksOfStudent(d, i).filter(x => x.link.detailActive);
    const names = links
      .filter(x => x.link.canAccessData)
      .map(x => `${x.contact.firstName} ${x.contact.lastName}`);
    const rec: AeriesStudentRecord = {
      StudentID: aeriesStudentId(s),
      SchoolCode: s.school_number,
      StudentNumber: n,
      StateStudentID: String(6000000000 + s.local_id),
      FirstName: s.first_name,
      MiddleName: s.middle_name ?? '',
      LastName: s.last_name,
      Grade: s.grade_level,
      Birthdate: `${2019 - s.grade_level}-0${(s.local_id % 9) + 1}-1${s.local_id % 9}T00:00:00`,
      StudentEmailAddress: s.email ?? '',
      InactiveStatusCode: s.enroll_status === 'A' ? '' : s.enroll_status,
      SchoolEnterDate: '2025-08-20T00:00:00',
      SchoolLeaveDate: s.enroll_status === 'A' ? null : '2026-01-15T00:00:00',
      FamilyKey: familyKey,
      ParentGuardianName: names.join(' & '),
      CorrespondenceLanguageCode: '00',
    };
    students.push(rec);
    if (priorEvery > 0 && i % priorEvery === priorEvery - 1 && schools.length > 1) {
      const other = schools[(d.schools.findIndex(x => x.id === s.school_id) + 1) % schools.length];
      if (other) {
        const m = (perSchool.get(other.SchoolCode) ?? 0) + 1;
        perSchool.set(other.SchoolCode, m);
        students.push({
          ...rec,
          SchoolCode: other.SchoolCode,
          StudentNumber: m,
          InactiveStatusCode: 'T',
          SchoolEnterDate: '2024-08-21T00:00:00',
          SchoolLeaveDate: '2025-06-06T00:00:00',
        });
      }
    }
    for (const { contact, link } of links) {
      contacts.push(contactRow(s, contact, link, withAccount.has(contact.personKey)));
      personOfRow.set(`${aeriesStudentId(s)}:${link.sequence}`, contact.personKey);
    }
  });
  students.sort((a, b) => a.SchoolCode - b.SchoolCode || a.StudentID - b.StudentID);
  contacts.sort((a, b) => a.StudentID - b.StudentID || a.SequenceNumber - b.SequenceNumber);
  return { schools, students, contacts, personOfRow };
}

function contactRow(
  s: PsStudentRow,
  c: PsContactRow,
  l: PsContactLink,
  hasPortalAccount: boolean,
): AeriesContactRecord {
  const a = c.contactId;
  const b = s.id;
  return {
    StudentID: aeriesStudentId(s),
    SchoolCode: s.school_number,
    SequenceNumber: l.sequence,
    ContactOrder: l.sequence,
    FirstName: c.firstName,
    LastName: c.lastName,
    MiddleName: c.middleName ?? '',
    MailingName: `${c.firstName} ${c.lastName}`,
    NamePrefix: '',
    NameSuffix: '',
    RelationshipToStudentCode: CODE_OF.get(l.relationship) ?? '',
    LivesWithStudentIndicator: flag(l.livesWith, a, b + 1),
    AccessToPortal: flag(l.canAccessData, a, b),
    EducationalRightsHolder: flag(l.custodial, a, b + 2),
    PrimaryContact: l.sequence === 1 ? 'Y' : '',
    MailTagCode: l.custodial ? 'Y' : '',
    RedFlag: false,
    EmailAddress: c.email ?? '',
    HomePhone: digits(c.phone2),
    WorkPhone: '',
    WorkPhoneExt: '',
    CellPhone: digits(c.phone),
    PortalAccountID: hasPortalAccount && c.email !== null ? aeriesPortalAccountId(c.personKey) : 0,
    Birthdate: null,
    RecordAddedDate: '2023-08-09T00:00:00',
  };
}

/** Which contact rows count (mirrors `AeriesContactPolicy`'s generator-backed flags). */
export interface AeriesTruthPolicy {
  requirePortalAccess: boolean;
  requireEducationalRights: boolean;
}

/**
 * Ground truth of an Aeries sync of `d`, in Aeries ids, from the generator's `personKey`
 * (not from a mapper): active students' `StudentID`s, and per real person with a counted
 * link its name and the StudentIDs it is linked to.
 */
export function expectedAeriesRoster(
  d: SyntheticDistrict,
  policy: AeriesTruthPolicy,
): {
  students: string[];
  persons: { personKey: string; givenName: string; familyName: string; students: string[] }[];
  links: number;
} {
  const t = expectedRoster(d, {
    requireDataAccess: policy.requirePortalAccess,
    requireCustodial: policy.requireEducationalRights,
  });
  const idOfDcid = new Map(d.students.map(s => [s.id, String(aeriesStudentId(s))]));
  const names = new Map<string, { givenName: string; familyName: string }>();
  for (const c of d.contacts)
    if (!names.has(c.personKey))
      names.set(c.personKey, { givenName: c.firstName, familyName: c.lastName });
  const byPerson = new Map<string, string[]>();
  for (const l of t.links) {
    const list = byPerson.get(l.personKey) ?? [];
    list.push(idOfDcid.get(l.studentDcid) ?? '?');
    byPerson.set(l.personKey, list);
  }
  return {
    students: t.students.map(s => idOfDcid.get(s.dcid) ?? '?').sort(),
    persons: t.accounts.map(a => ({
      personKey: a.personKey,
      ...(names.get(a.personKey) ?? { givenName: '?', familyName: '?' }),
      students: (byPerson.get(a.personKey) ?? []).sort(),
    })),
    links: t.links.length,
  };
}
