/**
 * Adapter from the seeded synthetic district (`district-generator.ts`, PowerSchool-shaped
 * rows) to OneRoster 1.1/1.2 records (sis-reference §1, §3): orgs, users (students,
 * guardians, relatives), classes and enrollments (from `section-generator.ts`). It feeds the
 * fake OneRoster server (Infinite Campus / Skyward OneRoster styles) and the OneRoster CSV
 * writer. It never changes the district.
 *
 * Who appears as a guardian (Infinite Campus semantics, §3.4): a contact with at least one
 * link that grants data access (`canAccessData`, "portal") with an active detail row, to a
 * student in the feed. Role `parent` when one of those links is Mother/Father, else
 * `guardian`. Emergency-only contacts (no data access anywhere) appear as `relative` users
 * when `relatives` is on. So with `includeRelatives: false` a correct sync equals
 * `expectedRoster(d, { requireDataAccess: true, requireCustodial: false })`.
 *
 * `dateLastModified`: records keep `baseDate` until their content changes; a changed or new
 * record gets the time the adapter noticed the change (on the first request after a
 * mutation), so `filter=dateLastModified>'…'` deltas work against the generator's mutation
 * helpers. Withdrawn students are `tobedeleted` (or left out, `withdrawn: 'absent'`).
 */
import { createHash } from 'node:crypto';
import {
  asciiFold,
  districtVersion,
  type PsContactRow,
  type PsStudentRow,
  type SyntheticDistrict,
} from './district-generator.js';
import { generateSections, type SyntheticSections } from './section-generator.js';

export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** Which side of the student↔guardian link lists the other (§1.4 "Agents semantics"). */
export type AgentsSide = 'both' | 'student' | 'guardian' | 'mixed';

export interface OneRosterViewOptions {
  version: '1.1' | '1.2';
  /** `prefixed` (IC 1.1 style: `s1001`, `g2034`) or `guid` (IC 1.2). Default per version. */
  ids?: 'prefixed' | 'guid';
  /** `portal` (default): guardians with portal access; `none`: a roster-only connection. */
  guardians?: 'portal' | 'none';
  agents?: AgentsSide;
  /** Emergency-only contacts as `relative` users (default true). */
  relatives?: boolean;
  /** Withdrawn students: `tobedeleted` records (default) or `absent`. */
  withdrawn?: 'tobedeleted' | 'absent';
  /** `dateLastModified` of records never changed. Default `2025-01-01T00:00:00.000Z`. */
  baseDate?: string;
  /** `enabledUser` as a boolean, `"true"` (default) or `"TRUE"`. */
  enabledUser?: 'boolean' | 'string' | 'upper';
  /**
   * Contact ids whose guardian users are disabled in the SIS (`enabledUser` false, in the
   * `enabledUser` style). Read at each build: mutate the set, then `touchDistrict`.
   */
  disabledContacts?: ReadonlySet<number>;
  /** Classes and enrollments from `generateSections` (default true). */
  classes?: boolean;
  /** Base URL for GUIDRef `href`s. */
  hrefBase?: string;
}

export interface OneRosterView {
  version: '1.1' | '1.2';
  /** District org then schools. */
  orgs: JsonObject[];
  schools: JsonObject[];
  /** Every user (students, guardians, relatives), sorted by sourcedId. */
  users: JsonObject[];
  /** Student users, sorted by sourcedId. */
  students: JsonObject[];
  classes: JsonObject[];
  enrollments: JsonObject[];
  byId: Map<string, JsonObject>;
}

/** Id helpers of a view (for tests: translate ground truth into feed ids and back). */
export interface OneRosterIds {
  student(dcid: number): string;
  guardian(contactId: number): string;
  school(id: number): string;
  klass(sectionId: number): string;
  /** The dcid behind a student sourcedId, or undefined. */
  dcidOf(sourcedId: string): number | undefined;
  /** The contactId behind a guardian sourcedId, or undefined. */
  contactIdOf(sourcedId: string): number | undefined;
}

/** The `sourcedId` of a record built by this adapter (always a string). */
export function sidOf(r: JsonObject): string {
  return typeof r.sourcedId === 'string' ? r.sourcedId : JSON.stringify(r.sourcedId);
}

const DEFAULT_BASE_DATE = '2025-01-01T00:00:00.000Z';
const DISTRICT_ORG = 'district';

/** A deterministic GUID (RFC 4122 layout, version 5 bits) from a name. */
export function guidOf(name: string): string {
  const h = createHash('sha1').update(name).digest();
  h[6] = ((h[6] ?? 0) & 0x0f) | 0x50;
  h[8] = ((h[8] ?? 0) & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

/** Id helpers for a district and options (no view needed). */
export function oneRosterIds(
  d: SyntheticDistrict,
  opts: Pick<OneRosterViewOptions, 'version' | 'ids'>,
): OneRosterIds {
  const style = opts.ids ?? (opts.version === '1.2' ? 'guid' : 'prefixed');
  const g = (kind: string, id: number) => guidOf(`${d.seed}:${kind}:${id}`);
  const ids = {
    student: (dcid: number) => (style === 'guid' ? g('student', dcid) : `s${dcid}`),
    guardian: (contactId: number) => (style === 'guid' ? g('person', contactId) : `g${contactId}`),
    school: (id: number) => (style === 'guid' ? g('school', id) : String(id)),
    klass: (sectionId: number) => (style === 'guid' ? g('class', sectionId) : `c${sectionId}`),
  };
  let reverse: { s: Map<string, number>; c: Map<string, number>; n: string } | undefined;
  const rev = () => {
    const n = `${d.students.length}:${d.contacts.length}`;
    if (reverse?.n !== n) {
      reverse = {
        n,
        s: new Map(d.students.map(s => [ids.student(s.id), s.id])),
        c: new Map(d.contacts.map(c => [ids.guardian(c.contactId), c.contactId])),
      };
    }
    return reverse;
  };
  return {
    ...ids,
    dcidOf: sid => (style === 'prefixed' ? numberAfter('s', sid) : rev().s.get(sid)),
    contactIdOf: sid => (style === 'prefixed' ? numberAfter('g', sid) : rev().c.get(sid)),
  };
}

function numberAfter(prefix: string, s: string): number | undefined {
  if (!s.startsWith(prefix)) return undefined;
  const n = Number(s.slice(prefix.length));
  return Number.isSafeInteger(n) ? n : undefined;
}

const PARENT_RELATIONSHIPS = new Set(['Mother', 'Father']);

/** Grade code as OneRoster sends it (`KG`, `01` … `12`). */
export function gradeCode(grade: number): string {
  return grade === 0 ? 'KG' : String(grade).padStart(2, '0');
}

/**
 * A live OneRoster view of a district. `view()` rebuilds when the district changed (mutation
 * helpers or `touchDistrict`) or the options changed (`configure`), re-stamping
 * `dateLastModified` of changed records.
 */
export class OneRosterDistrict {
  private opts: Required<Omit<OneRosterViewOptions, 'hrefBase'>> & { hrefBase: string };
  private cached: { key: string; view: OneRosterView } | undefined;
  private readonly stamps = new Map<string, { hash: string; date: string }>();
  private optionsVersion = 0;
  private built = false;
  private sections: SyntheticSections | undefined;
  readonly ids: OneRosterIds;

  constructor(
    readonly district: SyntheticDistrict,
    opts: OneRosterViewOptions,
  ) {
    this.opts = {
      version: opts.version,
      ids: opts.ids ?? (opts.version === '1.2' ? 'guid' : 'prefixed'),
      guardians: opts.guardians ?? 'portal',
      agents: opts.agents ?? 'both',
      relatives: opts.relatives ?? true,
      withdrawn: opts.withdrawn ?? 'tobedeleted',
      baseDate: opts.baseDate ?? DEFAULT_BASE_DATE,
      enabledUser: opts.enabledUser ?? 'string',
      classes: opts.classes ?? true,
      hrefBase: opts.hrefBase ?? 'https://sis.example.org/ims/oneroster',
      disabledContacts: opts.disabledContacts ?? new Set<number>(),
    };
    this.ids = oneRosterIds(district, this.opts);
  }

  get options(): Readonly<OneRosterViewOptions> {
    return this.opts;
  }

  /** Change options live (e.g. `guardians: 'none'`); the next `view()` reflects them. */
  configure(patch: Partial<Omit<OneRosterViewOptions, 'version' | 'ids'>>): void {
    Object.assign(this.opts, patch);
    this.optionsVersion++;
  }

  /** Set the base URL used in GUIDRef `href`s (the fake server sets its own). */
  setHrefBase(base: string): void {
    this.opts.hrefBase = base;
    this.optionsVersion++;
  }

  /** The current view (cached until the district or the options change). */
  view(now: Date = new Date()): OneRosterView {
    const key = `${districtVersion(this.district)}:${this.district.students.length}:${this.district.contacts.length}:${this.optionsVersion}`;
    if (this.cached?.key === key) return this.cached.view;
    const view = this.build(now);
    this.cached = { key, view };
    return view;
  }

  private stamp(rec: JsonObject, nowIso: string): JsonObject {
    const id = sidOf(rec);
    const hash = createHash('sha1').update(JSON.stringify(rec)).digest('base64');
    const prev = this.stamps.get(id);
    let date: string;
    if (prev && prev.hash === hash) date = prev.date;
    else if (!this.built) date = this.opts.baseDate;
    else date = nowIso;
    this.stamps.set(id, { hash, date });
    // dateLastModified right after status, as the spec orders fields.
    const { sourcedId, status, ...rest } = rec;
    return {
      sourcedId: sourcedId ?? null,
      status: status ?? null,
      dateLastModified: date,
      ...rest,
    };
  }

  private ref(kind: 'users' | 'orgs' | 'classes', id: string): JsonObject {
    const type = kind === 'users' ? 'user' : kind === 'orgs' ? 'org' : 'class';
    return { href: `${this.opts.hrefBase}/${kind}/${id}`, sourcedId: id, type };
  }

  private enabled(on = true): Json {
    const o = this.opts.enabledUser;
    if (o === 'boolean') return on;
    const v = on ? 'true' : 'false';
    return o === 'upper' ? v.toUpperCase() : v;
  }

  private build(now: Date): OneRosterView {
    const d = this.district;
    const o = this.opts;
    const v12 = o.version === '1.2';
    const nowIso = now.toISOString();
    const ids = this.ids;
    const schoolById = new Map(d.schools.map(s => [s.id, s]));

    // Students in the feed: active, plus withdrawn as tobedeleted.
    const listed = new Map<number, PsStudentRow>();
    for (const s of d.students) {
      if (s.enroll_status === 'A' || o.withdrawn === 'tobedeleted') listed.set(s.id, s);
    }

    // Guardian-type users and their links.
    interface Person {
      contact: PsContactRow;
      role: 'parent' | 'guardian' | 'relative';
      students: number[];
    }
    const persons: Person[] = [];
    const agentsOfStudent = new Map<
      number,
      { person: Person; side: 'both' | 'student' | 'guardian' }[]
    >();
    if (o.guardians === 'portal') {
      for (const c of d.contacts) {
        const portal = c.links.filter(
          l => l.canAccessData && l.detailActive && listed.has(l.studentDcid),
        );
        let p: Person | undefined;
        if (portal.length > 0) {
          p = {
            contact: c,
            role: portal.some(l => PARENT_RELATIONSHIPS.has(l.relationship))
              ? 'parent'
              : 'guardian',
            students: [...new Set(portal.map(l => l.studentDcid))],
          };
        } else if (o.relatives && c.links.length > 0 && c.links.every(l => !l.canAccessData)) {
          const rel = c.links.filter(l => l.detailActive && listed.has(l.studentDcid));
          if (rel.length > 0)
            p = {
              contact: c,
              role: 'relative',
              students: [...new Set(rel.map(l => l.studentDcid))],
            };
        }
        if (!p) continue;
        persons.push(p);
        for (const dcid of p.students) {
          const side = this.agentsSideOf(c.contactId, dcid);
          const list = agentsOfStudent.get(dcid) ?? [];
          list.push({ person: p, side });
          agentsOfStudent.set(dcid, list);
        }
      }
    }

    const userRecords: JsonObject[] = [];
    const studentRecords: JsonObject[] = [];

    for (const s of listed.values()) {
      const school = schoolById.get(s.school_id);
      const schoolRef = this.ref('orgs', ids.school(s.school_id));
      const sid = ids.student(s.id);
      const agents = (agentsOfStudent.get(s.id) ?? [])
        .filter(a => a.side !== 'guardian')
        .map(a => this.ref('users', ids.guardian(a.person.contact.contactId)));
      const rec: JsonObject = {
        sourcedId: sid,
        status: s.enroll_status === 'A' ? 'active' : 'tobedeleted',
        ...(v12 ? { metadata: { 'ic.legacysourceId': String(s.id) } } : {}),
        username: `${asciiFold(s.first_name)}${s.local_id}`,
        userIds: [{ type: 'FED', identifier: String(s.local_id) }],
        enabledUser: this.enabled(),
        givenName: s.first_name,
        familyName: s.last_name,
        middleName: s.middle_name ?? '',
        ...(v12
          ? {
              roles: [{ roleType: 'primary', role: 'student', org: schoolRef }],
              primaryOrg: schoolRef,
              userMasterIdentifier: `ST${s.local_id}`,
            }
          : { role: 'student', orgs: school ? [schoolRef] : [] }),
        identifier: String(s.local_id),
        email: s.email ?? '',
        sms: '',
        phone: '',
        agents,
        grades: [gradeCode(s.grade_level)],
        password: '',
      };
      const stamped = this.stamp(rec, nowIso);
      userRecords.push(stamped);
      studentRecords.push(stamped);
    }

    for (const p of persons) {
      const c = p.contact;
      const gid = ids.guardian(c.contactId);
      const agents = p.students
        .filter(dcid => this.agentsSideOf(c.contactId, dcid) !== 'student')
        .map(dcid => this.ref('users', ids.student(dcid)));
      const firstSchool = listed.get(p.students[0] ?? -1)?.school_id;
      const orgRef = this.ref(
        'orgs',
        firstSchool !== undefined ? ids.school(firstSchool) : DISTRICT_ORG,
      );
      const rec: JsonObject = {
        sourcedId: gid,
        status: 'active',
        ...(v12 ? { metadata: { 'ic.legacysourceId': String(c.contactId) } } : {}),
        username: c.account?.userName ?? '',
        userIds: [],
        enabledUser: this.enabled(!this.opts.disabledContacts?.has(c.contactId)),
        givenName: c.firstName,
        familyName: c.lastName,
        middleName: c.middleName ?? '',
        ...(v12
          ? {
              roles: [{ roleType: 'primary', role: p.role, org: orgRef }],
              primaryOrg: orgRef,
              userMasterIdentifier: '',
            }
          : { role: p.role, orgs: [orgRef] }),
        identifier: '',
        email: c.email ?? '',
        sms: c.phone2 ?? '',
        phone: c.phone ?? '',
        agents,
        grades: [],
        password: '',
      };
      userRecords.push(this.stamp(rec, nowIso));
    }
    const bySourcedId = (a: JsonObject, b: JsonObject) =>
      sidOf(a) < sidOf(b) ? -1 : sidOf(a) > sidOf(b) ? 1 : 0;
    userRecords.sort(bySourcedId);
    studentRecords.sort(bySourcedId);

    const districtOrg = this.stamp(
      {
        sourcedId: DISTRICT_ORG,
        status: 'active',
        name: 'Synthetic Unified School District',
        type: 'district',
        identifier: 'SUSD',
      },
      nowIso,
    );
    const schools = d.schools.map(s =>
      this.stamp(
        {
          sourcedId: ids.school(s.id),
          status: 'active',
          name: s.name,
          type: 'school',
          identifier: String(s.school_number),
          parent: this.ref('orgs', DISTRICT_ORG),
        },
        nowIso,
      ),
    );

    const classes: JsonObject[] = [];
    const enrollments: JsonObject[] = [];
    if (o.classes) {
      this.sections ??= generateSections(d);
      const courseName = new Map(this.sections.courses.map(c => [c.id, c]));
      for (const sec of this.sections.sections) {
        const course = courseName.get(sec.course_id);
        classes.push(
          this.stamp(
            {
              sourcedId: ids.klass(sec.id),
              status: 'active',
              title: `${course?.course_name ?? 'Course'} ${sec.section_number}`,
              classCode: `${course?.course_number ?? sec.course_id}-${sec.section_number}`,
              classType: 'scheduled',
              school: this.ref('orgs', ids.school(sec.school_id)),
            },
            nowIso,
          ),
        );
      }
      for (const e of this.sections.enrollments) {
        if (!listed.has(e.student_id)) continue;
        enrollments.push(
          this.stamp(
            {
              sourcedId: `e${e.id}`,
              status: e.dropped ? 'tobedeleted' : 'active',
              user: this.ref('users', ids.student(e.student_id)),
              class: this.ref('classes', ids.klass(e.section_id)),
              role: 'student',
              primary: 'false',
            },
            nowIso,
          ),
        );
      }
    }
    this.built = true;
    return {
      version: o.version,
      orgs: [districtOrg, ...schools],
      schools,
      users: userRecords,
      students: studentRecords,
      classes,
      enrollments,
      byId: new Map(userRecords.map(u => [sidOf(u), u])),
    };
  }

  /** Which side lists the link contact→student under the `agents` option (`mixed`: by ids). */
  agentsSideOf(contactId: number, dcid: number): 'both' | 'student' | 'guardian' {
    const a = this.opts.agents;
    if (a !== 'mixed') return a;
    const k = (contactId + dcid) % 3;
    return k === 0 ? 'both' : k === 1 ? 'student' : 'guardian';
  }

  /** Enrollments of active students in active classes (ground truth for section tests). */
  expectedEnrollments(): { classSourcedId: string; studentSourcedId: string }[] {
    this.sections ??= generateSections(this.district);
    const active = new Set(
      this.district.students.filter(s => s.enroll_status === 'A').map(s => s.id),
    );
    return this.sections.enrollments
      .filter(e => !e.dropped && active.has(e.student_id))
      .map(e => ({
        classSourcedId: this.ids.klass(e.section_id),
        studentSourcedId: this.ids.student(e.student_id),
      }));
  }
}
