/**
 * Seeded synthetic district generator: PowerSchool-like raw schools, students and contacts
 * (people) with their student links, plus the ground truth (`personKey`) that tests,
 * the demo and benchmarks check a sync against.
 *
 * Deterministic: the same `seed` and options always give the same district, and the same
 * sequence of mutation-helper calls on it gives the same result. Scales to 500,000
 * students (plain arrays and objects, one closure per district).
 *
 * Ids (`dcid`, `contactId`, `studentContactId`, `guardianId`) come from one increasing
 * counter (`nextId()`), so an id is unique across kinds and every array is sorted by its
 * id (array order = id order). Keep it that way when editing a district by hand, and call
 * `touchDistrict(d)` after any edit not made through the helpers below, so that servers
 * reading the district rebuild their indexes.
 */
import { mulberry32, type Prng } from './prng.js';

/** A school as PowerSchool's v1 resource knows it. `id` is the school DCID. */
export interface PsSchoolRow {
  id: number;
  school_number: number;
  name: string;
}

/** A student. `id` is the DCID; `local_id` is `student_number` (the district uniqueId). */
export interface PsStudentRow {
  id: number;
  local_id: number;
  first_name: string;
  middle_name: string | null;
  last_name: string;
  /** 0 = kindergarten … 12. */
  grade_level: number;
  /** `P`: pre-registered (set by tests; the generator makes A, T and G). */
  enroll_status: 'A' | 'P' | 'T' | 'G';
  /** School DCID. */
  school_id: number;
  school_number: number;
  email: string | null;
}

/** One contact ↔ student association (`studentcontactassoc` + its one detail row). */
export interface PsContactLink {
  studentDcid: number;
  studentContactId: number;
  /** Priority from the student's point of view, 1-based. */
  sequence: number;
  canAccessData: boolean;
  guardianId: number | null;
  relationship: string;
  custodial: boolean;
  livesWith: boolean;
  emergency: boolean;
  detailActive: boolean;
}

/** A contact (PowerSchool person). */
export interface PsContactRow {
  contactId: number;
  /** Ground truth: contacts with the same key are the same real person (entered twice). */
  personKey: string;
  firstName: string;
  middleName: string | null;
  lastName: string;
  /** Raw as entered: a duplicate's copy may differ in case or surrounding spaces. */
  email: string | null;
  /** First phone, formatted like `(555) 014-2288`. */
  phone: string | null;
  /** Second phone (≈10 % of contacts), only when `phone` is set. */
  phone2: string | null;
  account: { enabled: boolean; userName: string } | null;
  links: PsContactLink[];
}

/** A whole synthetic district. Arrays are sorted by id. */
export interface SyntheticDistrict {
  seed: number;
  schools: PsSchoolRow[];
  students: PsStudentRow[];
  contacts: PsContactRow[];
  /** A fresh id, greater than every id handed out so far (for any kind of record). */
  nextId(): number;
}

/** Options of `generateDistrict`. */
export interface GenerateDistrictOptions {
  /** PRNG seed (truncated to 32 bits). */
  seed: number;
  /** Number of students (≥ 0). */
  students: number;
  /** Number of schools; default `min(20, ceil(students / 25))`, at least 1. */
  schools?: number;
}

/** Which links count for `expectedRoster` (a district's guardian policy). */
export interface RosterPolicy {
  requireDataAccess: boolean;
  requireCustodial: boolean;
  /**
   * District policy `guardiansWithoutLogin`: a person with no email (no login identifier)
   * gets no account and no links when true (default, like the product's default `exclude`).
   */
  requireLogin?: boolean | undefined;
}

/** Ground truth of what a correct sync produces. */
export interface ExpectedRoster {
  /** Active students, in dcid order; `uniqueId` = `String(local_id)`. */
  students: { dcid: number; uniqueId: string }[];
  /**
   * One account per real person with at least one counted link, in order of the person's
   * first contact. `contactIds` are that person's contacts having a counted link (ascending);
   * `email` is trimmed and lower-cased, null when none of them has one.
   */
  accounts: { personKey: string; contactIds: number[]; email: string | null }[];
  /** Distinct (person, student) pairs, in contact then link order. */
  links: { personKey: string; studentDcid: number }[];
}

/** Relationships given to emergency-only contacts (never parents). */
export const EMERGENCY_RELATIONSHIPS: readonly string[] = [
  'Aunt',
  'Uncle',
  'Neighbor',
  'Family Friend',
  'Babysitter',
  'Cousin',
];

// ---------------------------------------------------------------------------------------
// Name pools (invented people; accents and apostrophes on purpose)

const FEMALE_FIRST = [
  'Ana',
  'María',
  'Zoë',
  'Chloé',
  'Renée',
  'Inés',
  'Siobhán',
  'Aisha',
  'Mei',
  'Priya',
  'Olivia',
  'Emma',
  'Sofia',
  'Hannah',
  'Fatima',
  'Léa',
  'Ngozi',
  'Yuki',
  'Ingrid',
  'Agnès',
  'Grace',
  'Camila',
  'Noor',
  'Ewa',
  'Thảo',
  'Rosa',
  'Dana',
  'Jennifer',
  'Keisha',
  'Maëlle',
] as const;
const MALE_FIRST = [
  'José',
  'André',
  'François',
  'Björn',
  'Łukasz',
  'Jürgen',
  'Søren',
  'Noël',
  'Liam',
  'Noah',
  'Mohammed',
  'Hiroshi',
  'Chidi',
  'Ravi',
  'Mateo',
  'Lucas',
  'Omar',
  'David',
  'Minh',
  'Seán',
  'Carlos',
  'Ethan',
  'Kwame',
  'Pablo',
  'Tomás',
  'Jean-Luc',
  'Darnell',
  'Wei',
  'Ömer',
  'Ian',
] as const;
const LAST = [
  "O'Brien",
  "D'Angelo",
  'Nguyễn',
  'Müller',
  'García',
  'Peña',
  'López',
  'Smith',
  'Johnson',
  'Østergaard',
  'Çelik',
  'Dvořák',
  'Kowalski',
  'Williams',
  'Brown',
  'Jones',
  'Miller',
  'Davis',
  'Wilson',
  'Anderson',
  'Taylor',
  'Thomas',
  'Moore',
  'Martin',
  'Jackson',
  'Lee',
  'Kim',
  'Patel',
  'Singh',
  'Cohen',
  "O'Connor",
  'McDonald',
  'van der Berg',
  'St. John',
  'Lefèvre',
  'Žukauskas',
  'Okafor',
  'Tanaka',
  'Hernández',
  'Rossi',
  'Schröder',
  'Ivanova',
  'Ahmed',
  'Chen',
  'Trần',
  'Fernández',
  "N'Diaye",
  'Åberg',
  'Ramírez',
  'Walker',
] as const;
const SCHOOL_PLACES = [
  'Lincoln',
  'Riverside',
  'Oak Hill',
  'Jefferson',
  'Lakeview',
  'Maple Grove',
  'Cedar Park',
  'Washington',
  'Hillcrest',
  'Sunnyvale',
  'Franklin',
  'Westwood',
  'Eastside',
  'Pine Ridge',
  'Roosevelt',
  'Meadowbrook',
  'Brookside',
  'Fairview',
  'Highland',
  'Willow Creek',
] as const;
const GUARDIAN_EXTRA = [
  'Stepmother',
  'Stepfather',
  'Grandmother',
  'Grandfather',
  'Grandparent',
  'Guardian',
  'Foster Parent',
] as const;
const EMAIL_DOMAINS = ['example.org', 'example.net', 'example.com', 'mail.example.org'] as const;

// ---------------------------------------------------------------------------------------
// Hidden per-district state (version for index invalidation, counters, mutation PRNG)

interface DistrictState {
  version: number;
  nextLocalId: number;
  nextPerson: number;
  rng: Prng;
}

const states = new WeakMap<SyntheticDistrict, DistrictState>();

function stateOf(d: SyntheticDistrict): DistrictState {
  let st = states.get(d);
  if (!st) {
    // A district built by hand: derive counters from its contents.
    let maxLocal = 0;
    for (const s of d.students) maxLocal = Math.max(maxLocal, s.local_id);
    let maxPerson = 0;
    for (const c of d.contacts) {
      const n = Number(c.personKey.replace(/^\D+/, ''));
      if (Number.isFinite(n)) maxPerson = Math.max(maxPerson, n);
    }
    st = {
      version: 0,
      nextLocalId: maxLocal + 1,
      nextPerson: maxPerson + 1,
      rng: mulberry32((d.seed ^ 0x5eed5eed) >>> 0),
    };
    states.set(d, st);
  }
  return st;
}

/**
 * Change counter of a district: increases on every mutation-helper call and
 * `touchDistrict`. Servers cache their indexes per version.
 */
export function districtVersion(d: SyntheticDistrict): number {
  return stateOf(d).version;
}

/** Declare that `d` was edited by hand (invalidates servers' cached indexes). */
export function touchDistrict(d: SyntheticDistrict): void {
  stateOf(d).version++;
}

// ---------------------------------------------------------------------------------------
// Small helpers

const FOLD: Record<string, string> = { ø: 'o', ł: 'l', ß: 'ss', æ: 'ae', đ: 'd' };

/**
 * Make V8 flatten a concatenated (rope) string now: halves the memory of the district's
 * many built strings (emails, user names, phones).
 */
function flat(s: string): string {
  s.charCodeAt(0);
  return s;
}

const foldCache = new Map<string, string>();

/** ASCII lower-case letters/digits of a name (`"Nguyễn"` → `"nguyen"`), for emails and user names. */
export function asciiFold(name: string): string {
  const cached = foldCache.get(name);
  if (cached !== undefined) return cached;
  const folded = name
    .toLowerCase()
    .replace(/[øłßæđ]/g, ch => FOLD[ch] ?? '')
    .normalize('NFD')
    .replace(/[^a-z0-9]/g, '');
  const result = folded.length > 0 ? folded : 'x';
  if (foldCache.size < 10_000) foldCache.set(name, result);
  return result;
}

function phoneNumber(rng: Prng): string {
  return flat(`(555) 0${rng.int(10, 99)}-${String(rng.int(0, 9999)).padStart(4, '0')}`);
}

/** A same-mailbox variant: different case and/or surrounding whitespace (sometimes equal). */
function emailVariant(email: string, rng: Prng): string {
  switch (rng.int(0, 4)) {
    case 0:
      return (
        ' ' +
        email.replace(/(^|[.@])([a-z])/g, (_m, sep: string, ch: string) => sep + ch.toUpperCase())
      );
    case 1:
      return email.toUpperCase();
    case 2:
      return email + ' ';
    case 3:
      return `  ${email}\t`;
    default:
      return email;
  }
}

type Level = 'elem' | 'middle' | 'high' | 'k12';

function levelOf(schoolIndex: number, schoolCount: number): Level {
  if (schoolCount < 3) return 'k12';
  return (['elem', 'middle', 'high'] as const)[schoolIndex % 3] ?? 'k12';
}

function gradeRange(level: Level): [number, number] {
  switch (level) {
    case 'elem':
      return [0, 5];
    case 'middle':
      return [6, 8];
    case 'high':
      return [9, 12];
    default:
      return [0, 12];
  }
}

function schoolName(place: string, level: Level, n: number): string {
  const kind =
    level === 'elem'
      ? 'Elementary School'
      : level === 'middle'
        ? 'Middle School'
        : level === 'high'
          ? 'High School'
          : 'Academy';
  return n === 0 ? `${place} ${kind}` : `${place} ${kind} ${n + 1}`;
}

function makeStudent(
  d: SyntheticDistrict,
  st: DistrictState,
  school: PsSchoolRow,
  grade: number,
  lastName: string,
): PsStudentRow {
  const rng = st.rng;
  const first = rng.chance(0.5) ? rng.pick(FEMALE_FIRST) : rng.pick(MALE_FIRST);
  const middle = rng.chance(0.4) ? rng.pick(rng.chance(0.5) ? FEMALE_FIRST : MALE_FIRST) : null;
  const localId = st.nextLocalId;
  st.nextLocalId += rng.int(1, 3);
  return {
    id: d.nextId(),
    local_id: localId,
    first_name: first,
    middle_name: middle,
    last_name: lastName,
    grade_level: grade,
    enroll_status: 'A',
    school_id: school.id,
    school_number: school.school_number,
    email: rng.chance(0.85)
      ? flat(`${asciiFold(first)}.${asciiFold(lastName)}.${localId}@students.example.org`)
      : null,
  };
}

interface PersonSpec {
  female: boolean;
  lastName: string;
  withEmail: boolean;
  withAccount: boolean;
  phoneChance: number;
}

/** Create one contact for a new person and push it to `d.contacts`. */
function makeContact(d: SyntheticDistrict, st: DistrictState, spec: PersonSpec): PsContactRow {
  const rng = st.rng;
  const seq = st.nextPerson++;
  const firstName = spec.female ? rng.pick(FEMALE_FIRST) : rng.pick(MALE_FIRST);
  const middleName = rng.chance(0.3) ? rng.pick(spec.female ? FEMALE_FIRST : MALE_FIRST) : null;
  const local = `${asciiFold(firstName)}.${asciiFold(spec.lastName)}${seq}`;
  const phone = rng.chance(spec.phoneChance) ? phoneNumber(rng) : null;
  const contact: PsContactRow = {
    contactId: d.nextId(),
    personKey: `P${seq}`,
    firstName,
    middleName,
    lastName: spec.lastName,
    email: spec.withEmail ? flat(`${local}@${rng.pick(EMAIL_DOMAINS)}`) : null,
    phone,
    phone2: phone !== null && rng.chance(0.11) ? phoneNumber(rng) : null,
    account: spec.withAccount
      ? {
          enabled: rng.chance(0.95),
          userName: flat(`${asciiFold(firstName)}${asciiFold(spec.lastName)}${seq}`),
        }
      : null,
    links: [],
  };
  d.contacts.push(contact);
  return contact;
}

/** A second contact row for the same person (`personKey` and mailbox shared). */
function duplicateContact(
  d: SyntheticDistrict,
  st: DistrictState,
  orig: PsContactRow,
): PsContactRow {
  const rng = st.rng;
  const copy: PsContactRow = {
    contactId: d.nextId(),
    personKey: orig.personKey,
    firstName: orig.firstName,
    middleName: rng.chance(0.5) ? orig.middleName : null,
    lastName: orig.lastName,
    email: orig.email === null ? null : flat(emailVariant(orig.email, rng)),
    phone: rng.chance(0.7) ? orig.phone : null,
    phone2: null,
    account:
      orig.account && rng.chance(0.5)
        ? { enabled: true, userName: flat(`${orig.account.userName}b`) }
        : null,
    links: [],
  };
  d.contacts.push(copy);
  return copy;
}

interface LinkFlags {
  relationship: string;
  canAccessData: boolean;
  custodial: boolean;
  livesWith: boolean;
  emergency: boolean;
}

function addLink(
  d: SyntheticDistrict,
  st: DistrictState,
  c: PsContactRow,
  studentDcid: number,
  sequence: number,
  f: LinkFlags,
  guardianId: number | null,
): void {
  c.links.push({
    studentDcid,
    studentContactId: d.nextId(),
    sequence,
    canAccessData: f.canAccessData,
    guardianId,
    relationship: f.relationship,
    custodial: f.custodial,
    livesWith: f.livesWith,
    emergency: f.emergency,
    detailActive: st.rng.chance(0.995),
  });
}

function isFemaleRelationship(rel: string, rng: Prng): boolean {
  if (/mother/i.test(rel)) return true;
  if (/father/i.test(rel)) return false;
  if (rel === 'Aunt') return true;
  if (rel === 'Uncle') return false;
  return rng.chance(0.5);
}

function guardianRelationship(gi: number, firstRel: string, rng: Prng): string {
  if (gi === 0) {
    const r = rng.next();
    return r < 0.62 ? 'Mother' : r < 0.95 ? 'Father' : 'Guardian';
  }
  if (gi === 1 && rng.chance(0.9)) {
    if (firstRel === 'Mother') return 'Father';
    if (firstRel === 'Father') return 'Mother';
    return 'Guardian';
  }
  return rng.pick(GUARDIAN_EXTRA);
}

function pickCount(rng: Prng, weights: readonly number[]): number {
  let r = rng.next();
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i] ?? 0;
    if (r < 0) return i + 1;
  }
  return weights.length;
}

const CHILDREN_WEIGHTS = [0.68, 0.23, 0.09] as const; // families with 1, 2, 3 children
const GUARDIAN_WEIGHTS = [0.15, 0.55, 0.25, 0.05] as const; // families with 1..4 guardians

// ---------------------------------------------------------------------------------------
// Generator

/**
 * Generate a district.
 *
 * Shape: `schools` (ids 1…), then `students` (contiguous dcids, all `enroll_status` 'A',
 * grades matching the school level), then `contacts` grouped by family. Ratios (roughly):
 * 1.6 guardian contacts per student; ~30 % of guardian contacts linked to 2–3 siblings;
 * ~5 % of guardian contacts without email; ~2 % of people entered twice (same `personKey`,
 * same mailbox in different case/whitespace; both copies linked to all the children, or —
 * in half of the multi-child cases — one copy per sibling); ~10 % of students with an extra
 * emergency-only contact (`canAccessData: false`, not custodial, relationship from
 * `EMERGENCY_RELATIONSHIPS`); ~3 % of parent links and ~15 % of other guardians' links
 * without data access; non-custodial step-parents/grandparents; ~0.5 % inactive detail rows;
 * ~11 % of phoned contacts with a second phone.
 *
 * Throws `RangeError` when `students` or `schools` is negative or not an integer.
 */
export function generateDistrict(opts: GenerateDistrictOptions): SyntheticDistrict {
  const { seed, students: studentCount } = opts;
  if (!Number.isInteger(studentCount) || studentCount < 0) {
    throw new RangeError(`students must be a non-negative integer, got ${studentCount}`);
  }
  const schoolCount = opts.schools ?? Math.max(1, Math.min(20, Math.ceil(studentCount / 25)));
  if (!Number.isInteger(schoolCount) || schoolCount < 1) {
    throw new RangeError(`schools must be a positive integer, got ${schoolCount}`);
  }

  let counter = 0;
  const d: SyntheticDistrict = {
    seed,
    schools: [],
    students: [],
    contacts: [],
    nextId: () => ++counter,
  };
  const rng = mulberry32(seed);
  const st: DistrictState = { version: 0, nextLocalId: 200001, nextPerson: 1, rng };
  states.set(d, st);

  // Schools and, per grade, the schools teaching it.
  const byGrade: PsSchoolRow[][] = Array.from({ length: 13 }, () => []);
  for (let i = 0; i < schoolCount; i++) {
    const level = levelOf(i, schoolCount);
    const place = SCHOOL_PLACES[i % SCHOOL_PLACES.length] ?? 'Central';
    const school: PsSchoolRow = {
      id: d.nextId(),
      school_number: 100 + i,
      name: schoolName(place, level, Math.floor(i / SCHOOL_PLACES.length)),
    };
    d.schools.push(school);
    const [lo, hi] = gradeRange(level);
    for (let g = lo; g <= hi; g++) byGrade[g]?.push(school);
  }
  counter = Math.max(counter, 1000); // students start at dcid 1001

  // Pass 1: students, family by family (siblings adjacent, usually one last name).
  const familyStart: number[] = [];
  const familyLast: string[] = [];
  while (d.students.length < studentCount) {
    const kids = Math.min(pickCount(rng, CHILDREN_WEIGHTS), studentCount - d.students.length);
    const last = rng.pick(LAST);
    familyStart.push(d.students.length);
    familyLast.push(last);
    for (let k = 0; k < kids; k++) {
      const grade = rng.int(0, 12);
      const school = rng.pick(byGrade[grade] ?? []);
      const lastName = rng.chance(0.95) ? last : rng.pick(LAST);
      d.students.push(makeStudent(d, st, school, grade, lastName));
    }
  }
  familyStart.push(d.students.length);

  // Pass 2: contacts and links, family by family.
  const seqOf: number[] = [];
  for (let f = 0; f + 1 < familyStart.length; f++) {
    const from = familyStart[f] ?? 0;
    const to = familyStart[f + 1] ?? from;
    const kids: number[] = [];
    for (let i = from; i < to; i++) kids.push(d.students[i]?.id ?? 0);
    seqOf.length = 0;
    for (let k = 0; k < kids.length; k++) seqOf.push(0);
    const famLast = familyLast[f] ?? 'Smith';

    const guardians = pickCount(rng, GUARDIAN_WEIGHTS);
    let firstRel = '';
    for (let gi = 0; gi < guardians; gi++) {
      const relationship = guardianRelationship(gi, firstRel, rng);
      if (gi === 0) firstRel = relationship;
      const parent = relationship === 'Mother' || relationship === 'Father';
      const female = isFemaleRelationship(relationship, rng);
      const lastName = rng.chance(parent ? 0.8 : 0.4) ? famLast : rng.pick(LAST);
      const custodial = rng.chance(parent ? 0.93 : relationship === 'Guardian' ? 0.9 : 0.4);
      const flags: LinkFlags = {
        relationship,
        canAccessData: rng.chance(parent || relationship === 'Guardian' ? 0.97 : 0.85),
        custodial,
        livesWith: rng.chance(custodial ? 0.85 : 0.2),
        emergency: rng.chance(0.7),
      };
      const c = makeContact(d, st, {
        female,
        lastName,
        withEmail: rng.chance(0.95),
        withAccount: rng.chance(0.75),
        phoneChance: 0.9,
      });
      const duplicate = c.email !== null && rng.chance(0.02);
      const split = duplicate && kids.length > 1 && rng.chance(0.5);
      const copy = duplicate ? duplicateContact(d, st, c) : null;
      const gid = c.account ? d.nextId() : null;
      const copyGid = copy?.account ? d.nextId() : null;
      for (let k = 0; k < kids.length; k++) {
        const dcid = kids[k] ?? 0;
        const seq = (seqOf[k] ?? 0) + 1;
        seqOf[k] = seq;
        if (!split || k === 0) addLink(d, st, c, dcid, seq, flags, gid);
        if (copy && (!split || k > 0)) {
          const copySeq = split ? seq : seq + 1;
          if (!split) seqOf[k] = copySeq;
          addLink(d, st, copy, dcid, copySeq, flags, copyGid);
        }
      }
    }

    // Emergency-only contacts, one per student for ~10 % of students.
    for (let k = 0; k < kids.length; k++) {
      if (!rng.chance(0.1)) continue;
      const relationship = rng.pick(EMERGENCY_RELATIONSHIPS);
      const c = makeContact(d, st, {
        female: isFemaleRelationship(relationship, rng),
        lastName: relationship === 'Aunt' || relationship === 'Uncle' ? famLast : rng.pick(LAST),
        withEmail: rng.chance(0.5),
        withAccount: false,
        phoneChance: 1,
      });
      const seq = (seqOf[k] ?? 0) + 1;
      seqOf[k] = seq;
      addLink(
        d,
        st,
        c,
        kids[k] ?? 0,
        seq,
        { relationship, canAccessData: false, custodial: false, livesWith: false, emergency: true },
        null,
      );
    }
  }
  // Exact-capacity link arrays (push() over-allocates, ~100 MB at 500,000 students).
  for (const c of d.contacts) c.links = c.links.slice();
  return d;
}

// ---------------------------------------------------------------------------------------
// Lookups and mutation helpers

function lowerBoundById<T extends { id: number }>(rows: readonly T[], id: number): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((rows[mid]?.id ?? Infinity) < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The student with DCID `dcid` (binary search; `students` is sorted), or undefined. */
export function findStudent(d: SyntheticDistrict, dcid: number): PsStudentRow | undefined {
  const s = d.students[lowerBoundById(d.students, dcid)];
  return s?.id === dcid ? s : undefined;
}

/** The contact with `contactId` (binary search; `contacts` is sorted), or undefined. */
export function findContact(d: SyntheticDistrict, contactId: number): PsContactRow | undefined {
  let lo = 0;
  let hi = d.contacts.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((d.contacts[mid]?.contactId ?? Infinity) < contactId) lo = mid + 1;
    else hi = mid;
  }
  const c = d.contacts[lo];
  return c?.contactId === contactId ? c : undefined;
}

function requireStudent(d: SyntheticDistrict, dcid: number): PsStudentRow {
  const s = findStudent(d, dcid);
  if (!s) throw new RangeError(`no student with dcid ${dcid}`);
  return s;
}

function requireContact(d: SyntheticDistrict, contactId: number): PsContactRow {
  const c = findContact(d, contactId);
  if (!c) throw new RangeError(`no contact with contactId ${contactId}`);
  return c;
}

/**
 * Add a new person as a guardian of one student: with an email, no portal account,
 * relationship 'Guardian', `canAccessData`/custodial/active true, next `sequence` for the
 * student. Appended to `d.contacts`. Throws `RangeError` for an unknown student.
 */
export function addGuardian(d: SyntheticDistrict, studentDcid: number): PsContactRow {
  const student = requireStudent(d, studentDcid);
  const st = stateOf(d);
  let maxSeq = 0;
  for (const c of d.contacts) {
    for (const l of c.links)
      if (l.studentDcid === studentDcid) maxSeq = Math.max(maxSeq, l.sequence);
  }
  const c = makeContact(d, st, {
    female: st.rng.chance(0.5),
    lastName: student.last_name,
    withEmail: true,
    withAccount: false,
    phoneChance: 0.9,
  });
  c.links.push({
    studentDcid,
    studentContactId: d.nextId(),
    sequence: maxSeq + 1,
    canAccessData: true,
    guardianId: null,
    relationship: 'Guardian',
    custodial: true,
    livesWith: true,
    emergency: true,
    detailActive: true,
  });
  st.version++;
  return c;
}

/** Set (or clear, with null) a contact's email, raw. Throws `RangeError` for an unknown contact. */
export function changeEmail(d: SyntheticDistrict, contactId: number, email: string | null): void {
  requireContact(d, contactId).email = email;
  stateOf(d).version++;
}

/**
 * Drop the link(s) between a contact and a student (the contact stays, maybe link-less).
 * Throws `RangeError` when the contact is unknown or not linked to that student.
 */
export function removeRelationship(
  d: SyntheticDistrict,
  contactId: number,
  studentDcid: number,
): void {
  const c = requireContact(d, contactId);
  const kept = c.links.filter(l => l.studentDcid !== studentDcid);
  if (kept.length === c.links.length) {
    throw new RangeError(`contact ${contactId} has no link to student ${studentDcid}`);
  }
  c.links = kept;
  stateOf(d).version++;
}

/** Set a student's `enroll_status` to 'T'. Throws `RangeError` for an unknown student. */
export function withdrawStudent(d: SyntheticDistrict, dcid: number): void {
  requireStudent(d, dcid).enroll_status = 'T';
  stateOf(d).version++;
}

/** Set a student's `enroll_status` back to 'A'. Throws `RangeError` for an unknown student. */
export function restoreStudent(d: SyntheticDistrict, dcid: number): void {
  requireStudent(d, dcid).enroll_status = 'A';
  stateOf(d).version++;
}

/**
 * Enroll a new active student (no contacts) in the school with DCID `schoolId`, grade within
 * the school's level; appended with a fresh dcid and `local_id`. Throws `RangeError` for an
 * unknown school.
 */
export function addStudent(d: SyntheticDistrict, schoolId: number): PsStudentRow {
  const idx = d.schools.findIndex(s => s.id === schoolId);
  const school = d.schools[idx];
  if (!school) throw new RangeError(`no school with id ${schoolId}`);
  const st = stateOf(d);
  const [lo, hi] = gradeRange(levelOf(idx, d.schools.length));
  const s = makeStudent(d, st, school, st.rng.int(lo, hi), st.rng.pick(LAST));
  d.students.push(s);
  st.version++;
  return s;
}

// ---------------------------------------------------------------------------------------
// Ground truth

/**
 * What a correct sync of `d` yields under `policy`, from the generator's ground truth
 * (`personKey`), not from a mapper. A link counts when its student is active ('A'), its
 * detail is active, and — when the policy requires — it grants data access / custody.
 * Emergency-only contacts never count under `requireDataAccess`. A person without an email
 * gets no account and no links unless `policy.requireLogin` is false.
 */
export function expectedRoster(d: SyntheticDistrict, policy: RosterPolicy): ExpectedRoster {
  let maxDcid = 0;
  for (const s of d.students) maxDcid = Math.max(maxDcid, s.id);
  const active = new Uint8Array(maxDcid + 1);
  const students: ExpectedRoster['students'] = [];
  for (const s of d.students) {
    if (s.enroll_status !== 'A') continue;
    active[s.id] = 1;
    students.push({ dcid: s.id, uniqueId: String(s.local_id) });
  }
  interface Acc {
    personKey: string;
    contactIds: number[];
    email: string | null;
    dcids: number[];
  }
  const accounts = new Map<string, Acc>();
  const links: ExpectedRoster['links'] = [];
  for (const c of d.contacts) {
    let acc: Acc | undefined;
    for (const l of c.links) {
      if (l.studentDcid > maxDcid || active[l.studentDcid] !== 1 || !l.detailActive) continue;
      if (policy.requireDataAccess && !l.canAccessData) continue;
      if (policy.requireCustodial && !l.custodial) continue;
      if (!acc) {
        const email = c.email === null ? null : c.email.trim().toLowerCase();
        acc = accounts.get(c.personKey);
        if (acc) {
          acc.contactIds.push(c.contactId);
          acc.email ??= email;
        } else {
          acc = { personKey: c.personKey, contactIds: [c.contactId], email, dcids: [] };
          accounts.set(c.personKey, acc);
        }
      }
      if (acc.dcids.includes(l.studentDcid)) continue;
      acc.dcids.push(l.studentDcid);
      links.push({ personKey: c.personKey, studentDcid: l.studentDcid });
    }
  }
  const out: ExpectedRoster['accounts'] = [];
  const noLogin = new Set<string>();
  for (const acc of accounts.values()) {
    if (acc.email === null && (policy.requireLogin ?? true)) {
      noLogin.add(acc.personKey);
      continue;
    }
    out.push({
      personKey: acc.personKey,
      contactIds: acc.contactIds.length > 1 ? acc.contactIds.sort((a, b) => a - b) : acc.contactIds,
      email: acc.email,
    });
  }
  return {
    students,
    accounts: out,
    links: noLogin.size ? links.filter(l => !noLogin.has(l.personKey)) : links,
  };
}
