/**
 * Pure mapping of OneRoster 1.1/1.2 records (version-neutral shapes from
 * `src/connectors/oneroster/payloads.ts`, sis-reference §1 and §3) to canonical records,
 * and the chunk builder shared by the REST and CSV readers.
 *
 * Rules (from the issue and sis-reference §1.4, §3.4, §3.5):
 * - users with role `parent` or `guardian` are guardians; `relative` only when the district
 *   policy `includeRelatives` says so (an Infinite Campus relative is not a legal guardian);
 *   a guardian with `enabledUser` false is disabled; both are exclusions (listed and counted);
 * - the student↔guardian link is the union of both sides' `agents` (some producers fill
 *   only one side);
 * - `status: tobedeleted` is a removal: the record maps to status `inactive` and the chunk
 *   builder leaves it out of the chunk (a full snapshot then deactivates it at finalize, under
 *   the deletion safeguard; a delta never removes);
 * - ids are the feed's sourcedIds, or Infinite Campus legacy person ids (`sourcedIds:
 *   legacy`) so that a 1.1 → 1.2 move keeps them.
 *
 * No I/O here.
 */
import type { z } from 'zod';
import type { OrClassRecord, OrOrgRecord, OrUserRecord } from '../connectors/oneroster/payloads.js';
import type { Reject } from '../models/types.js';
import {
  Enrollment,
  Guardian,
  Relationship,
  School,
  Section,
  Student,
  type GuardianRole,
  type RosterChunk,
} from './canonical.js';
import { EXCLUSION } from './exclusions.js';

/** District-level choices that shape the mapping. */
export interface OneRosterMappingOptions {
  /** Which student field is the district `uniqueId`. */
  studentUniqueId: 'identifier' | 'username' | 'userMasterIdentifier' | 'sourcedId';
  /** `native` sourcedIds, or Infinite Campus `legacy` person ids. */
  sourcedIds: 'native' | 'legacy';
  version: '1.1' | '1.2';
  /** Policy `includeRelatives`: `relative` users become guardians. */
  includeRelatives: boolean;
}

type Result<T> = { ok: true; value: T } | { ok: false; reason: string };

const nonBlank = (s: string | undefined): s is string => s !== undefined && s.trim() !== '';

/**
 * The canonical id of a user: its sourcedId (`native`), or (`legacy`) the Infinite Campus
 * person id: 1.1 sourcedIds without their role letters (`s40117` → `40117`), 1.2 the
 * `metadata` legacy id (also without a role-letter prefix, should one be there).
 */
export function canonicalUserId(
  user: Pick<OrUserRecord, 'sourcedId' | 'legacyId'>,
  opts: Pick<OneRosterMappingOptions, 'sourcedIds' | 'version'>,
): Result<string> {
  if (opts.sourcedIds === 'native') return { ok: true, value: user.sourcedId };
  const raw = opts.version === '1.2' ? user.legacyId : user.sourcedId;
  if (!nonBlank(raw))
    return { ok: false, reason: 'metadata: legacy id (ic.legacysourceId) is missing' };
  return { ok: true, value: raw.trim().replace(/^[a-z]+(?=\d)/i, '') };
}

/**
 * The guardian role of a user with these (lower-cased) roles: `parent` before `guardian`
 * before `relative`. `ext:` extension roles naming a parent or guardian (e.g. OnEdHub
 * `ext:primaryGuardian`) count as `guardian`. Undefined when the user is not guardian-type.
 */
export function guardianRoleOf(roles: readonly string[]): GuardianRole | undefined {
  if (roles.includes('parent')) return 'parent';
  if (roles.includes('guardian')) return 'guardian';
  if (roles.some(r => r.startsWith('ext:') && /parent|guardian/.test(r))) return 'guardian';
  if (roles.includes('relative')) return 'relative';
  return undefined;
}

/** True for a user with the `student` role. */
export function isStudentUser(user: Pick<OrUserRecord, 'roles'>): boolean {
  return user.roles.includes('student');
}

const EmailCheck = Guardian.shape.email;

function issuesReason(error: z.ZodError, sourceNames: Record<string, string>): string {
  return error.issues
    .map(i => {
      const key = i.path.map(String).join('.');
      const src = sourceNames[String(i.path[0])];
      return `${src ?? (key || '(record)')}: ${i.message}`;
    })
    .join('; ');
}

function emailOf(raw: string | undefined): { email?: string; invalid: boolean } {
  if (!nonBlank(raw)) return { invalid: false };
  const e = raw.trim();
  return EmailCheck.safeParse(e).success ? { email: e, invalid: false } : { invalid: true };
}

const STUDENT_FIELDS: Record<string, string> = {
  sourcedId: 'sourcedId',
  givenName: 'givenName',
  familyName: 'familyName',
  schoolSourcedIds: 'orgs',
  grade: 'grades',
};

export type MapResult<T> =
  { ok: true; record: T; emailReject?: Reject | undefined } | { ok: false; reject: Reject };

/**
 * Map one student user. `schoolIds`, when given and non-empty, keeps only orgs that are
 * schools (1.1 `orgs` may list the district too). Status `tobedeleted` → `inactive`.
 * An invalid email is dropped with `emailReject`; a missing name or uniqueId is a reject
 * naming the OneRoster field.
 */
export function mapOneRosterStudent(
  user: OrUserRecord,
  opts: OneRosterMappingOptions,
  schoolIds?: ReadonlySet<string>,
): MapResult<Student> {
  const id = canonicalUserId(user, opts);
  if (!id.ok)
    return {
      ok: false,
      reject: { entity: 'student', recordId: user.sourcedId, reason: id.reason },
    };
  const uniqueId = opts.studentUniqueId === 'sourcedId' ? id.value : user[opts.studentUniqueId];
  if (!nonBlank(uniqueId)) {
    return {
      ok: false,
      reject: {
        entity: 'student',
        recordId: user.sourcedId,
        reason: `${opts.studentUniqueId}: is empty (it is the district uniqueId; see connector.studentUniqueId)`,
      },
    };
  }
  const orgs =
    schoolIds && schoolIds.size > 0
      ? user.orgSourcedIds.filter(o => schoolIds.has(o))
      : user.orgSourcedIds;
  const email = emailOf(user.email);
  const r = Student.safeParse({
    sourcedId: id.value,
    uniqueId,
    givenName: user.givenName ?? '',
    familyName: user.familyName ?? '',
    ...(email.email ? { email: email.email } : {}),
    schoolSourcedIds: orgs,
    ...(user.grades[0] !== undefined ? { grade: user.grades[0] } : {}),
    status: user.status === 'tobedeleted' ? 'inactive' : 'active',
  });
  if (!r.success) {
    return {
      ok: false,
      reject: {
        entity: 'student',
        recordId: user.sourcedId,
        reason: issuesReason(r.error, STUDENT_FIELDS),
      },
    };
  }
  return {
    ok: true,
    record: r.data,
    ...(email.invalid
      ? {
          emailReject: {
            entity: 'student',
            recordId: user.sourcedId,
            reason: 'email: not a valid email address; student kept without email',
          },
        }
      : {}),
  };
}

/**
 * Map one guardian-type user with its `role` (see `guardianRoleOf`). Phone: `phone`, else
 * `sms`. Status `tobedeleted` → `inactive`. Rejects like `mapOneRosterStudent`.
 */
export function mapOneRosterGuardian(
  user: OrUserRecord,
  role: GuardianRole,
  opts: Pick<OneRosterMappingOptions, 'sourcedIds' | 'version'>,
): MapResult<Guardian> {
  const id = canonicalUserId(user, opts);
  if (!id.ok)
    return {
      ok: false,
      reject: { entity: 'guardian', recordId: user.sourcedId, reason: id.reason },
    };
  const email = emailOf(user.email);
  const phone = nonBlank(user.phone) ? user.phone : user.sms;
  const r = Guardian.safeParse({
    sourcedId: id.value,
    givenName: user.givenName ?? '',
    familyName: user.familyName ?? '',
    ...(email.email ? { email: email.email } : {}),
    ...(nonBlank(phone) ? { phone: phone.trim() } : {}),
    role,
    status: user.status === 'tobedeleted' ? 'inactive' : 'active',
  });
  if (!r.success) {
    return {
      ok: false,
      reject: {
        entity: 'guardian',
        recordId: user.sourcedId,
        reason: issuesReason(r.error, { givenName: 'givenName', familyName: 'familyName' }),
      },
    };
  }
  return {
    ok: true,
    record: r.data,
    ...(email.invalid
      ? {
          emailReject: {
            entity: 'guardian',
            recordId: user.sourcedId,
            reason: 'email: not a valid email address; guardian kept without email',
          },
        }
      : {}),
  };
}

/**
 * Map an org of type `school` (any other type → undefined, not a reject). A school without
 * a name is a reject; a `tobedeleted` school is left out (undefined).
 */
export function mapOneRosterSchool(
  org: OrOrgRecord,
): { ok: true; school: School } | { ok: false; reject: Reject } | undefined {
  if (org.type !== undefined && org.type !== 'school') return undefined;
  if (org.status === 'tobedeleted') return undefined;
  const r = School.safeParse({ sourcedId: org.sourcedId, name: org.name ?? '' });
  if (r.success) return { ok: true, school: r.data };
  return {
    ok: false,
    reject: { entity: 'school', recordId: org.sourcedId, reason: issuesReason(r.error, {}) },
  };
}

/** Map a class to a section (title falls back on `classCode`). */
export function mapOneRosterSection(
  cls: OrClassRecord,
): { ok: true; section: Section } | { ok: false; reason: string } {
  const r = Section.safeParse({
    sourcedId: cls.sourcedId,
    title: cls.title ?? cls.classCode ?? '',
    schoolSourcedId: cls.schoolSourcedId ?? '',
  });
  if (r.success) return { ok: true, section: r.data };
  return {
    ok: false,
    reason: issuesReason(r.error, { title: 'title', schoolSourcedId: 'school' }),
  };
}

// ---------------------------------------------------------------------------------------------
// Guardian index entries and chunks
// ---------------------------------------------------------------------------------------------

/**
 * What the connector keeps per guardian-type user while it pages students (the guardian
 * index): the canonical guardian, or why there is none, and the students the guardian lists.
 */
export interface GuardianIndexEntry {
  guardian?: Guardian | undefined;
  /**
   * `relative`: excluded by policy; `disabled`: `enabledUser` false; `deleted`: tobedeleted;
   * `rejected`: did not map. Relatives and disabled users are reported as exclusions.
   */
  excluded?: 'relative' | 'disabled' | 'deleted' | 'rejected' | undefined;
  /** Native sourcedIds of the students this guardian is agent for (its side of the link). */
  agentSourcedIds: string[];
}

/**
 * The index entry of a user, or undefined when the user is not guardian-type. Rejects
 * (invalid email, unmappable guardian) are returned once here, not once per chunk.
 */
export function guardianIndexEntry(
  user: OrUserRecord,
  opts: OneRosterMappingOptions,
): { entry: GuardianIndexEntry; rejects: Reject[] } | undefined {
  const role = guardianRoleOf(user.roles);
  if (!role) return undefined;
  const agentSourcedIds = user.agentSourcedIds;
  if (user.status === 'tobedeleted')
    return { entry: { excluded: 'deleted', agentSourcedIds }, rejects: [] };
  const exclusion = (reason: string): Reject[] => [
    { entity: 'guardian', recordId: user.sourcedId, reason, kind: 'excluded' },
  ];
  if (role === 'relative' && !opts.includeRelatives)
    return {
      entry: { excluded: 'relative', agentSourcedIds },
      rejects: exclusion(EXCLUSION.relative),
    };
  // A user disabled in the SIS (`enabledUser` false / "0" / "N") gets no account; one it
  // had is deactivated by a complete snapshot like any guardian that is gone.
  if (user.enabledUser === false)
    return {
      entry: { excluded: 'disabled', agentSourcedIds },
      rejects: exclusion(EXCLUSION.disabled),
    };
  const m = mapOneRosterGuardian(user, role, opts);
  if (!m.ok) return { entry: { excluded: 'rejected', agentSourcedIds }, rejects: [m.reject] };
  return {
    entry: { guardian: m.record, agentSourcedIds },
    rejects: m.emailReject ? [m.emailReject] : [],
  };
}

export interface OneRosterChunkInput {
  /** One page of student users (de-duplicated by the caller), in feed order. */
  students: readonly OrUserRecord[];
  /** Guardian index lookup by native sourcedId. */
  guardian(sourcedId: string): GuardianIndexEntry | undefined;
  /** Native ids of guardians whose own `agents` list this student (the guardian side). */
  guardiansListing(studentSourcedId: string): readonly string[];
  options: OneRosterMappingOptions;
  /**
   * The feed lists every guardian (`guardianLinksComplete`). False → the chunk says
   * `relationshipsSupplied: false` and no link is removed for absence.
   */
  linksComplete: boolean;
  /** Known school sourcedIds (filters student orgs). */
  schoolIds?: ReadonlySet<string> | undefined;
  /** When enrollments are read: class ids per student (native id) and classes by id. */
  enrollments?:
    | {
        classesOf(studentSourcedId: string): readonly string[];
        classOf(classSourcedId: string): OrClassRecord | undefined;
      }
    | undefined;
}

export interface OneRosterChunkResult {
  chunk: RosterChunk;
  rejects: Reject[];
  /** Canonical ids of students with no guardian in the feed (a configuration hint for IC). */
  studentsWithoutGuardians: string[];
  /** Native ids of `tobedeleted` students left out of the chunk. */
  deletedStudents: string[];
}

/**
 * Build one `RosterChunk` from a page of students (pure).
 *
 * - A student that does not map is a reject and gets no links; `tobedeleted` students are
 *   left out (`deletedStudents`).
 * - A student's guardians are the union of its own `agents` and the guardians whose
 *   `agents` list it. A guardian excluded by policy (relative) or tobedeleted is skipped; a
 *   guardian that did not map, or an agent the feed does not have as a guardian user, makes
 *   the chunk's links incomplete (`relationshipsSupplied: false`), so nothing is removed on
 *   partial data (invariants 4, 9).
 * - Sections/enrollments are filled when `enrollments` is given (active classes only).
 *
 * Deterministic: students in page order, guardians by sourcedId, relationships by student
 * then guardian.
 */
export function buildOneRosterChunk(input: OneRosterChunkInput): OneRosterChunkResult {
  const { options } = input;
  const rejects: Reject[] = [];
  const students: Student[] = [];
  const guardians = new Map<string, Guardian>();
  const relationships: Relationship[] = [];
  const withoutGuardians: string[] = [];
  const deleted: string[] = [];
  const sections = new Map<string, Section>();
  const enrollments: Enrollment[] = [];
  const badClasses = new Set<string>();
  let complete = true;

  for (const user of input.students) {
    if (user.status === 'tobedeleted') {
      deleted.push(user.sourcedId);
      continue;
    }
    const m = mapOneRosterStudent(user, options, input.schoolIds);
    if (!m.ok) {
      rejects.push(m.reject);
      continue;
    }
    if (m.emailReject) rejects.push(m.emailReject);
    const student = m.record;
    students.push(student);

    const candidates = new Set([
      ...user.agentSourcedIds,
      ...input.guardiansListing(user.sourcedId),
    ]);
    const linked = new Set<string>();
    for (const g of candidates) {
      const entry = input.guardian(g);
      if (!entry) {
        complete = false;
        rejects.push({
          entity: 'relationship',
          recordId: `${g}->${user.sourcedId}`,
          reason: 'agent is not a guardian user of this feed; the student’s links are not removed',
        });
        continue;
      }
      if (entry.excluded === 'rejected') {
        complete = false;
        continue;
      }
      if (!entry.guardian) continue; // relative (policy), disabled or tobedeleted
      const gid = entry.guardian.sourcedId;
      if (linked.has(gid)) continue;
      linked.add(gid);
      guardians.set(gid, entry.guardian);
      relationships.push(
        Relationship.parse({ guardianSourcedId: gid, studentSourcedId: student.sourcedId }),
      );
    }
    if (linked.size === 0) withoutGuardians.push(student.sourcedId);

    if (input.enrollments) {
      for (const classId of input.enrollments.classesOf(user.sourcedId)) {
        const cls = input.enrollments.classOf(classId);
        if (!cls || cls.status === 'tobedeleted' || badClasses.has(classId)) continue;
        let section = sections.get(classId);
        if (!section) {
          const s = mapOneRosterSection(cls);
          if (!s.ok) {
            badClasses.add(classId);
            rejects.push({ entity: 'chunk', recordId: `class ${classId}`, reason: s.reason });
            continue;
          }
          section = s.section;
          sections.set(classId, section);
        }
        enrollments.push(
          Enrollment.parse({
            sectionSourcedId: section.sourcedId,
            studentSourcedId: student.sourcedId,
          }),
        );
      }
    }
  }

  const byId = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });
  const chunk: RosterChunk = {
    students,
    guardians: [...guardians.values()].sort((a, b) => byId(a.sourcedId, b.sourcedId)),
    relationships,
    relationshipsSupplied: input.linksComplete && complete,
  };
  if (input.enrollments) {
    chunk.sections = [...sections.values()];
    chunk.enrollments = enrollments;
  }
  return { chunk, rejects, studentsWithoutGuardians: withoutGuardians, deletedStudents: deleted };
}
