/**
 * In-memory indexes a OneRoster pull keeps while it pages students, shared by the REST and
 * CSV readers.
 *
 * OneRoster's `/users` collection (and `users.csv`) is not ordered by student, so a
 * student's guardians may come anywhere in it. The readers therefore read guardian-type
 * users first into a `GuardianIndex` (canonical guardian + the students it lists, by
 * sourcedId), then page the students and build each chunk from the index.
 *
 * Memory: the index holds every guardian of the district, not the students. Measured with
 * the synthetic district (1.2 GUID ids, ≈ 1.7 guardian-type users per student): ≈ 550–600
 * bytes per guardian (canonical record + agent ids + Map entries), i.e. ≈ 56 MB for 100,000
 * guardians and ≈ 450 MB for 800,000 (a 500,000-student district). While it is built, the
 * REST reader also keeps a Set of every user id to check `X-Total-Count` (freed after). The
 * optional `EnrollmentIndex` adds a Map entry per student and an id per enrollment (not
 * measured). Students are never all in memory at once (one page at a time). If this becomes the limit, the index can move to a temporary
 * SQLite table keyed by sourcedId without changing the chunk builder.
 */
import {
  guardianIndexEntry,
  isStudentUser,
  type GuardianIndexEntry,
  type OneRosterMappingOptions,
} from '../../mapping/oneroster.js';
import type { Guardian } from '../../mapping/canonical.js';
import type { Reject } from '../../models/types.js';
import type { OrClassRecord, OrEnrollmentRecord, OrUserRecord } from './payloads.js';

/** Guardian-type users by native sourcedId, and the reverse (guardian-side) agent lists. */
export class GuardianIndex {
  private readonly entries = new Map<string, GuardianIndexEntry>();
  private readonly listing = new Map<string, string[]>();

  constructor(private readonly options: OneRosterMappingOptions) {}

  /** Number of guardian-type users indexed. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Index `user` when it is guardian-type (others are ignored; returns []). A user seen
   * twice (a repeated page) keeps its first entry. Returns rejects to report.
   */
  add(user: OrUserRecord): Reject[] {
    if (this.entries.has(user.sourcedId)) return [];
    const r = guardianIndexEntry(user, this.options);
    if (!r) return [];
    this.entries.set(user.sourcedId, r.entry);
    for (const s of r.entry.agentSourcedIds) {
      const list = this.listing.get(s);
      if (list) list.push(user.sourcedId);
      else this.listing.set(s, [user.sourcedId]);
    }
    return r.rejects;
  }

  get(sourcedId: string): GuardianIndexEntry | undefined {
    return this.entries.get(sourcedId);
  }

  has(sourcedId: string): boolean {
    return this.entries.has(sourcedId);
  }

  /** Native ids of guardians whose `agents` list `studentSourcedId`. */
  listingOf(studentSourcedId: string): readonly string[] {
    return this.listing.get(studentSourcedId) ?? [];
  }

  /** The canonical guardians of the index (excluded users left out). */
  guardians(): Guardian[] {
    const out: Guardian[] = [];
    for (const e of this.entries.values()) if (e.guardian) out.push(e.guardian);
    return out;
  }

  /** Index entries that map to a canonical guardian (not excluded), with their agent ids. */
  *entriesWithGuardian(): Generator<{ guardian: Guardian; agentSourcedIds: readonly string[] }> {
    for (const e of this.entries.values())
      if (e.guardian) yield { guardian: e.guardian, agentSourcedIds: e.agentSourcedIds };
  }

  /** Guardians usable for links (not excluded), for the configuration hint. */
  usableCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.guardian) n++;
    return n;
  }
}

/** Classes by sourcedId and active student enrollments by student (native ids). */
export class EnrollmentIndex {
  private readonly classes = new Map<string, OrClassRecord>();
  private readonly byStudent = new Map<string, string[]>();

  addClass(c: OrClassRecord): void {
    this.classes.set(c.sourcedId, c);
  }

  /** Keeps active enrollments with role `student` (or no role stated). */
  addEnrollment(e: OrEnrollmentRecord): void {
    if (e.status === 'tobedeleted') return;
    if (e.role !== undefined && e.role !== 'student') return;
    const list = this.byStudent.get(e.userSourcedId);
    if (!list) this.byStudent.set(e.userSourcedId, [e.classSourcedId]);
    else if (!list.includes(e.classSourcedId)) list.push(e.classSourcedId);
  }

  classesOf = (studentSourcedId: string): readonly string[] =>
    this.byStudent.get(studentSourcedId) ?? [];

  classOf = (classSourcedId: string): OrClassRecord | undefined => this.classes.get(classSourcedId);
}

/**
 * The student users of a page, de-duplicated against `seen` (which grows). A user without
 * any role counts as a student only when `rolelessAreStudents` (the `/students` collection).
 */
export function freshStudents(
  users: readonly OrUserRecord[],
  seen: Set<string>,
  rolelessAreStudents: boolean,
): OrUserRecord[] {
  const out: OrUserRecord[] = [];
  for (const u of users) {
    if (seen.has(u.sourcedId)) continue;
    if (isStudentUser(u) || (rolelessAreStudents && u.roles.length === 0)) {
      seen.add(u.sourcedId);
      out.push(u);
    }
  }
  return out;
}

/**
 * The run-level configuration hint when students have no guardian in the feed and the feed
 * does not vouch for completeness (Infinite Campus lists guardians only with portal access,
 * sis-reference §3.4). Undefined when there is nothing to say.
 */
export function noGuardianHint(
  vendor: string,
  count: number,
  sample: readonly string[],
  totalStudents: number,
  guardiansInFeed: number,
): Reject | undefined {
  if (count === 0) return undefined;
  const none =
    guardiansInFeed === 0
      ? `the feed has no guardian users at all (check that the ${vendor} connection returns guardians: portal access, Grade Book sync); `
      : '';
  return {
    entity: 'run',
    recordId: 'no-guardian-supplied',
    reason:
      `no guardian supplied for ${count} of ${totalStudents} students (e.g. ${sample.join(', ')}): ` +
      `${none}${vendor} lists a guardian only when they have portal access, so their existing links are kept; ` +
      'these students can get Parent Access Codes',
  };
}
