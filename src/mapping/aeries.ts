/**
 * Pure mapping of raw Aeries REST v5 records (schemas in
 * `src/connectors/aeries/payloads.ts`, sis-reference §4.5) to canonical records, with the
 * district's contact policy (`AeriesConnectorConfig.contacts`, invariant 11) and the derived
 * guardian identity Aeries needs: a contact is a row per student (`StudentID`,
 * `SequenceNumber`) with no id of the person, so the same parent of two siblings is two rows.
 *
 * Identity (sis-reference §4.5, §7.2): rows are joined into one person when they share any
 * identity key — the portal account (`PortalAccountID` ≠ 0), the normalised email, the
 * normalised name with one of the phones, or (for rows with neither email nor phone) the
 * normalised name within the student's family (`FamilyKey`). The person's `sourcedId` is its
 * most stable key, in the order portal account → name+phone → email → name+family (an email
 * change then keeps the id; a phone change is caught by the planner's email match). Each row
 * records how it was matched. Keys other than the portal account id are hashed (no personal
 * data in ids, logs or rejects).
 *
 * No I/O: deterministic given its arguments.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { AeriesContactPolicy } from '../config/aeries.js';
import type { AeContact, AeSchool, AeStudent } from '../connectors/aeries/payloads.js';
import type { Reject } from '../models/types.js';
import {
  Guardian,
  normalizeEmail,
  Relationship,
  School,
  Student,
  type RosterChunk,
} from './canonical.js';
import { EXCLUSION } from './exclusions.js';
import { roleFromRelationships } from './powerschool.js';

/** How a contact row was tied to the person it belongs to (recorded per row and in the sourcedId). */
export type AeriesGuardianMatch = 'portal-account' | 'name-phone' | 'email' | 'name-family' | 'row';

/** The match kinds in the order a person's `sourcedId` is chosen. */
export const AERIES_MATCH_ORDER: readonly AeriesGuardianMatch[] = [
  'portal-account',
  'name-phone',
  'email',
  'name-family',
  'row',
];

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

// ---------------------------------------------------------------------------------------------
// Schools and students
// ---------------------------------------------------------------------------------------------

/** Map one school (`SchoolCode`, `Name`). Rejects a school with no name. */
export function mapAeriesSchool(
  raw: AeSchool,
): { ok: true; school: School } | { ok: false; reject: Reject } {
  const r = School.safeParse({ sourcedId: raw.SchoolCode, name: raw.Name ?? '' });
  if (r.success) return { ok: true, school: r.data };
  return {
    ok: false,
    reject: {
      entity: 'school',
      recordId: raw.SchoolCode,
      reason: issuesReason(r.error, { sourcedId: 'SchoolCode', name: 'Name' }),
    },
  };
}

/** A student merged from its per-school records, with its family key (siblings). */
export interface AeriesStudentResult {
  student: Student;
  familyKey?: number | undefined;
  emailReject?: Reject | undefined;
}

const EmailCheck = Guardian.shape.email;

/**
 * Merge the records of one `StudentID` (one per school, §4.5) into a canonical student:
 * active when at least one record has an empty `InactiveStatusCode`; schools = the schools
 * of the active records (ascending); names, grade and email from the first active record
 * (by `SchoolCode`). sourcedId and uniqueId are the district-wide permanent `StudentID`.
 *
 * Returns undefined when no record is active (the student is not part of the roster; the
 * finalize step deactivates it if it was), a reject naming the Aeries field when the record
 * is invalid, or the student (with `emailReject` when `StudentEmailAddress` was unusable).
 * Throws `RangeError` for an empty list.
 */
export function mapAeriesStudent(
  records: readonly AeStudent[],
): { ok: true; result: AeriesStudentResult } | { ok: false; reject: Reject } | undefined {
  const first = records[0];
  if (!first) throw new RangeError('mapAeriesStudent needs at least one record');
  const active = records
    .filter(r => r.InactiveStatusCode === undefined)
    .sort((a, b) => a.SchoolCode.localeCompare(b.SchoolCode, 'en', { numeric: true }));
  const main = active[0];
  if (!main) return undefined;
  const rawEmail = main.StudentEmailAddress;
  const emailOk = nonBlank(rawEmail) && EmailCheck.safeParse(rawEmail).success;
  const r = Student.safeParse({
    sourcedId: main.StudentID,
    uniqueId: main.StudentID,
    givenName: main.FirstName ?? '',
    familyName: main.LastName ?? '',
    ...(emailOk ? { email: rawEmail } : {}),
    schoolSourcedIds: [...new Set(active.map(a => a.SchoolCode))],
    ...(main.Grade !== undefined ? { grade: String(main.Grade) } : {}),
    status: 'active',
  });
  if (!r.success) {
    return {
      ok: false,
      reject: {
        entity: 'student',
        recordId: main.StudentID,
        reason: issuesReason(r.error, {
          sourcedId: 'StudentID',
          givenName: 'FirstName',
          familyName: 'LastName',
          grade: 'Grade',
        }),
      },
    };
  }
  const familyKey = records.find(x => x.FamilyKey !== undefined && x.FamilyKey !== 0)?.FamilyKey;
  return {
    ok: true,
    result: {
      student: r.data,
      familyKey,
      ...(nonBlank(rawEmail) && !emailOk
        ? {
            emailReject: {
              entity: 'student' as const,
              recordId: main.StudentID,
              reason: 'StudentEmailAddress: not a valid email address; student kept without email',
            },
          }
        : {}),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------------

/** `"StudentID:SequenceNumber"`, the key of a contact row. */
export function contactRowKey(row: Pick<AeContact, 'StudentID' | 'SequenceNumber'>): string {
  return `${row.StudentID}:${row.SequenceNumber}`;
}

/** Lower-case letters and digits only, accents removed (`"D'Angelo "` → `"dangelo"`). */
export function normalizeNamePart(s: string | undefined): string {
  return (s ?? '')
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]/gu, '');
}

/** The last 10 digits of a phone (`"(555) 014-2288"` → `"5550142288"`); undefined under 7 digits. */
export function normalizePhone(s: string | undefined): string | undefined {
  const digits = (s ?? '').replace(/\D/g, '');
  return digits.length >= 7 ? digits.slice(-10) : undefined;
}

interface RowKey {
  kind: Exclude<AeriesGuardianMatch, 'row'>;
  /** Raw key (may contain personal data; never leaves this module unhashed). */
  key: string;
}

/**
 * The identity keys of one contact row: `portal-account` when `PortalAccountID` ≠ 0,
 * `email` (normalised), `name-phone` per phone (first + last name + suffix with each of
 * `CellPhone`, `HomePhone`, `WorkPhone`), and `name-family` only for rows with neither email
 * nor phone whose student has a family key.
 */
export function contactIdentityKeys(row: AeContact, familyKey: number | undefined): RowKey[] {
  const keys: RowKey[] = [];
  if (row.PortalAccountID !== undefined && row.PortalAccountID !== 0)
    keys.push({ kind: 'portal-account', key: `portal-account:${row.PortalAccountID}` });
  const email = normalizeEmail(row.EmailAddress);
  if (email) keys.push({ kind: 'email', key: `email:${email}` });
  const first = normalizeNamePart(row.FirstName);
  const last = normalizeNamePart(row.LastName);
  const name = first && last ? `${first}|${last}|${normalizeNamePart(row.NameSuffix)}` : '';
  const phones = new Set<string>();
  for (const p of [row.CellPhone, row.HomePhone, row.WorkPhone]) {
    const n = normalizePhone(p);
    if (n) phones.add(n);
  }
  if (name)
    for (const p of phones) keys.push({ kind: 'name-phone', key: `name-phone:${name}|${p}` });
  if (name && !email && phones.size === 0 && familyKey !== undefined && familyKey !== 0)
    keys.push({ kind: 'name-family', key: `name-family:${name}|${familyKey}` });
  return keys;
}

function rank(kind: AeriesGuardianMatch): number {
  return AERIES_MATCH_ORDER.indexOf(kind);
}

/** The sourcedId of a person identified by `k`: `portal-account:N`, or kind + hash. */
function sourcedIdOf(k: RowKey): string {
  if (k.kind === 'portal-account') return k.key;
  return `${k.kind}:${createHash('sha256').update(k.key).digest('hex').slice(0, 20)}`;
}

/** How one row was resolved. */
export interface AeriesRowIdentity {
  /** The person's sourcedId (shared by every row of the person). */
  sourcedId: string;
  /** How this row was tied to the person: the strongest key kind it holds itself. */
  match: AeriesGuardianMatch;
}

/**
 * Resolve every row to a person: rows sharing any identity key are one person (union-find
 * over keys; transitive). Returns `contactRowKey(row)` → identity. A row without any key is
 * a person of its own (`row:StudentID-SequenceNumber`, match `row`).
 */
export function resolveAeriesIdentities(
  rows: readonly { row: AeContact; familyKey?: number | undefined }[],
): Map<string, AeriesRowIdentity> {
  const keyIndex = new Map<string, number>();
  const keys: RowKey[] = [];
  const parent: number[] = [];
  const find = (i: number): number => {
    let r = i;
    while (parent[r] !== r) r = parent[r] ?? r;
    let c = i;
    while (parent[c] !== r) {
      const next = parent[c] ?? r;
      parent[c] = r;
      c = next;
    }
    return r;
  };
  const better = (a: number, b: number): boolean => {
    const ka = keys[a];
    const kb = keys[b];
    if (!ka || !kb) return false;
    const d = rank(ka.kind) - rank(kb.kind);
    return d < 0 || (d === 0 && ka.key < kb.key);
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra === rb) return;
    // The root is always the group's best key, so the root is the person's id.
    if (better(ra, rb)) parent[rb] = ra;
    else parent[ra] = rb;
  };
  const rowKeys: number[][] = [];
  for (const { row, familyKey } of rows) {
    const ids: number[] = [];
    for (const k of contactIdentityKeys(row, familyKey)) {
      let i = keyIndex.get(k.key);
      if (i === undefined) {
        i = keys.length;
        keys.push(k);
        parent.push(i);
        keyIndex.set(k.key, i);
      }
      ids.push(i);
    }
    for (let j = 1; j < ids.length; j++) union(ids[0] ?? 0, ids[j] ?? 0);
    rowKeys.push(ids);
  }
  const out = new Map<string, AeriesRowIdentity>();
  rows.forEach(({ row }, n) => {
    const ids = rowKeys[n] ?? [];
    const rowKey = contactRowKey(row);
    const own = ids[0];
    if (own === undefined) {
      out.set(rowKey, {
        sourcedId: `row:${row.StudentID}-${row.SequenceNumber}`,
        match: 'row',
      });
      return;
    }
    const root = keys[find(own)];
    const best = ids.reduce((b, i) => (better(i, b) ? i : b), own);
    out.set(rowKey, {
      sourcedId: root ? sourcedIdOf(root) : `row:${row.StudentID}-${row.SequenceNumber}`,
      match: keys[best]?.kind ?? 'row',
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Policy and guardians
// ---------------------------------------------------------------------------------------------

/**
 * Does a contact row count as a guardian link under `policy`? Every required flag must be
 * explicitly yes (`""` = unset does not count), and the relationship code must not be
 * excluded. The row's position (`ContactOrder`, `SequenceNumber`, `PrimaryContact`) is
 * never considered (invariant 11).
 */
export function contactPassesPolicy(row: AeContact, policy: AeriesContactPolicy): boolean {
  return contactExclusion(row, policy) === undefined;
}

/**
 * Why a contact row is left out under `policy` (a stable exclusion code, `EXCLUSION` in
 * src/reconcile/plan.ts), or undefined when it counts. A blank `AccessToPortal` with a
 * `PortalAccountID` is *not* portal access (docs/decisions/0005: the id only says the
 * contact's email matches some Aeries portal account, not that this student's contact row
 * grants access); it gets its own code so admins can find and fix those rows.
 */
export function contactExclusion(row: AeContact, policy: AeriesContactPolicy): string | undefined {
  if (policy.requirePortalAccess && row.AccessToPortal !== true) {
    const hasAccount = row.PortalAccountID !== undefined && row.PortalAccountID !== 0;
    return row.AccessToPortal === undefined && hasAccount
      ? EXCLUSION.portalAccountWithoutAccess
      : EXCLUSION.noPortalAccess;
  }
  if (policy.requireEducationalRights && row.EducationalRightsHolder !== true)
    return EXCLUSION.notRightsHolder;
  if (policy.requireLivesWith && row.LivesWithStudentIndicator !== true)
    return EXCLUSION.notLivingWith;
  const code = row.RelationshipToStudentCode;
  if (code !== undefined && policy.excludeRelationshipCodes.includes(code))
    return EXCLUSION.relationshipCode;
  return undefined;
}

/** Row counts per match kind. */
export type AeriesMatchCounts = Record<AeriesGuardianMatch, number>;

export function emptyMatchCounts(): AeriesMatchCounts {
  return { 'portal-account': 0, 'name-phone': 0, email: 0, 'name-family': 0, row: 0 };
}

/** Guardians and links derived from a set of contact rows. */
export interface AeriesGuardianSet {
  /** By sourcedId; only persons with at least one link that passes the policy. */
  guardians: Map<string, Guardian>;
  /** Per StudentID, in guardian sourcedId order (one per person and student). */
  relationships: Map<string, Relationship[]>;
  /** Students some of whose links could not be built (a rejected guardian or relationship). */
  incompleteStudents: Set<string>;
  /** Rows per match kind (rows that pass the policy; see `AeriesRowIdentity.match`). */
  matches: AeriesMatchCounts;
  rejects: Reject[];
}

/**
 * Derive guardians and relationships from contact rows (each with its student's family
 * key), for the students in `studentIds` (rows of other students are still used for
 * identity). `codes` decodes `RelationshipToStudentCode`.
 *
 * A person's fields come from its rows in (StudentID, SequenceNumber) order: the first
 * first/last name, the first valid email (an invalid one is a reject and left out), the
 * first cell/home/work phone. Role: `parent` when a counted relationship is
 * mother/father/parent/step-parent, else `guardian`.
 */
export function deriveAeriesGuardians(input: {
  rows: readonly { row: AeContact; familyKey?: number | undefined }[];
  studentIds: ReadonlySet<string>;
  policy: AeriesContactPolicy;
  codes: ReadonlyMap<string, string>;
}): AeriesGuardianSet {
  const identities = resolveAeriesIdentities(input.rows);
  const byStudentNum = (a: AeContact, b: AeContact) =>
    a.StudentID.localeCompare(b.StudentID, 'en', { numeric: true }) ||
    a.SequenceNumber.localeCompare(b.SequenceNumber, 'en', { numeric: true });
  const persons = new Map<string, AeContact[]>();
  for (const { row } of input.rows) {
    const id = identities.get(contactRowKey(row));
    if (!id) continue;
    const list = persons.get(id.sourcedId) ?? [];
    list.push(row);
    persons.set(id.sourcedId, list);
  }

  const guardians = new Map<string, Guardian>();
  const relationships = new Map<string, Relationship[]>();
  const incompleteStudents = new Set<string>();
  const matches = emptyMatchCounts();
  const rejects: Reject[] = [];
  const ids = [...persons.keys()].sort();
  for (const sourcedId of ids) {
    const rows = (persons.get(sourcedId) ?? []).slice().sort(byStudentNum);
    const passing: AeContact[] = [];
    for (const r of rows) {
      if (!input.studentIds.has(r.StudentID)) continue;
      const excluded = contactExclusion(r, input.policy);
      if (excluded === undefined) passing.push(r);
      else
        rejects.push({
          entity: 'relationship',
          recordId: `${sourcedId}->${r.StudentID}`,
          reason: excluded,
          kind: 'excluded',
        });
    }
    const firstPassing = passing[0];
    if (!firstPassing) continue;
    const rels: { studentId: string; rel: Relationship; text: string | undefined }[] = [];
    const relReject = (r: AeContact, reason: string) => {
      rejects.push({ entity: 'relationship', recordId: `${sourcedId}->${r.StudentID}`, reason });
      incompleteStudents.add(r.StudentID);
    };
    for (const r of passing) {
      matches[identities.get(contactRowKey(r))?.match ?? 'row']++;
      if (rels.some(x => x.studentId === r.StudentID)) continue; // the same person twice for one student
      const code = r.RelationshipToStudentCode;
      const text = code === undefined ? undefined : (input.codes.get(code) ?? code);
      const parsed = Relationship.safeParse({
        guardianSourcedId: sourcedId,
        studentSourcedId: r.StudentID,
        ...(nonBlank(text) ? { relationship: text } : {}),
        ...(r.AccessToPortal !== undefined ? { portalAccess: r.AccessToPortal } : {}),
        ...(r.LivesWithStudentIndicator !== undefined
          ? { livesWith: r.LivesWithStudentIndicator }
          : {}),
      });
      if (!parsed.success) relReject(r, issuesReason(parsed.error, {}));
      else rels.push({ studentId: r.StudentID, rel: parsed.data, text });
    }
    const firstOf = (f: (r: AeContact) => string | undefined) => rows.map(f).find(v => nonBlank(v));
    let email: string | undefined;
    let badEmail = false;
    for (const r of rows) {
      if (!nonBlank(r.EmailAddress)) continue;
      if (EmailCheck.safeParse(r.EmailAddress).success) {
        email = r.EmailAddress;
        break;
      }
      badEmail = true;
    }
    const g = Guardian.safeParse({
      sourcedId,
      givenName: firstOf(r => r.FirstName) ?? '',
      familyName: firstOf(r => r.LastName) ?? '',
      ...(email ? { email } : {}),
      ...((): { phone?: string } => {
        const phone = firstOf(r => r.CellPhone ?? r.HomePhone ?? r.WorkPhone);
        return phone ? { phone } : {};
      })(),
      role: roleFromRelationships(rels.map(x => x.text)),
      status: 'active',
    });
    if (!g.success) {
      rejects.push({
        entity: 'guardian',
        recordId: `${sourcedId} (contact ${contactRowKey(firstPassing)})`,
        reason: `${issuesReason(g.error, { givenName: 'FirstName', familyName: 'LastName' })} (its ${rels.length} link(s) not supplied)`,
      });
      for (const x of rels) incompleteStudents.add(x.studentId);
      continue;
    }
    if (badEmail && !email)
      rejects.push({
        entity: 'guardian',
        recordId: sourcedId,
        reason: 'EmailAddress: not a valid email address; guardian kept without email',
      });
    guardians.set(sourcedId, g.data);
    for (const x of rels) {
      const list = relationships.get(x.studentId) ?? [];
      list.push(x.rel);
      relationships.set(x.studentId, list);
    }
  }
  return { guardians, relationships, incompleteStudents, matches, rejects };
}

/**
 * One self-contained chunk: `students` with the guardians linked to them and those links.
 * `relationshipsSupplied` is false when some of these students' links could not be built
 * (`incompleteStudents`), so no link is removed for absence.
 */
export function buildAeriesChunk(
  students: readonly Student[],
  set: AeriesGuardianSet,
): RosterChunk {
  const relationships: Relationship[] = [];
  const guardianIds = new Set<string>();
  let complete = true;
  for (const s of students) {
    if (set.incompleteStudents.has(s.sourcedId)) complete = false;
    for (const r of set.relationships.get(s.sourcedId) ?? []) {
      relationships.push(r);
      guardianIds.add(r.guardianSourcedId);
    }
  }
  const guardians: Guardian[] = [];
  for (const id of [...guardianIds].sort()) {
    const g = set.guardians.get(id);
    if (g) guardians.push(g);
  }
  return { students: [...students], guardians, relationships, relationshipsSupplied: complete };
}
