/**
 * Fake PowerSchool SIS HTTP server (fastify) over a `SyntheticDistrict`, for tests, the demo
 * and benchmarks. It implements the subset of the PowerSchool API the connector uses, with
 * PowerSchool's shapes and quirks (sis-reference.md §2), plus switchable faults.
 *
 * The district is read live on every request: mutations made with the generator's helpers
 * are visible without a restart.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  asciiFold,
  type PsContactLink,
  type PsContactRow,
  type PsSchoolRow,
  type PsStudentRow,
  type SyntheticDistrict,
} from './district-generator.js';
import {
  contactPhones,
  districtIndex,
  linksOfStudent,
  studentIndex,
  studentLowerBound,
  studentsWithStatus,
} from './district-index.js';
import type { SyntheticSections } from './section-generator.js';
import { countRequest, countStatus, FaultInjector, type SisLimits } from './faults.js';

/** Name of the PowerQuery the district plugin ships. */
export const POWERQUERY_NAME = 'com.guardiansync.roster.student_contacts';

/** `@expansions` value of the v1 student list (what PowerSchool says it could expand). */
export const STUDENT_EXPANSIONS =
  'demographics, addresses, alerts, phones, school_enrollment, ethnicity_race, contact, contact_info, initial_enrollment, schedule_setup, fees, lunch';

/** Response-shape quirks of real PowerSchool servers; all can be toggled live. */
export interface FakePowerSchoolQuirks {
  /** A list page holding exactly one record returns it as an object (schools, students). */
  singleObjectPages: boolean;
  /** `id`, `local_id`, `grade_level`, `school_id`, `dcid`, `contactId` sent as strings. */
  stringNumbers: boolean;
  /** A requested expansion without data is `""` (else `{}`). Default true, like PowerSchool. */
  emptyExpansionsAsString: boolean;
  /** Contacts without a portal account alternate between `contactAccount: null` and `[]`. */
  contactAccountVariants: boolean;
  /**
   * The student list ignores `q=school_enrollment.enroll_status==X` and returns every student
   * (pre-registered, transferred…), as servers with a mis-set plugin filter do.
   */
  ignoreStatusFilter: boolean;
}

/** Options of `startFakePowerSchool`. */
export interface FakePowerSchoolOptions {
  /**
   * A slow, rate-limited SIS: latency before every response and a requests-per-second cap
   * (429 + `Retry-After` above it). Also switchable live with `faults.limits`.
   */
  limits?: SisLimits;
  /** Port on 127.0.0.1 (default 0: a free one; the sandbox uses a fixed one). */
  port?: number;
  /** Default 'demo-client'. */
  clientId?: string;
  /** Default 'demo-secret'. */
  clientSecret?: string;
  /** Lifetime of issued tokens in seconds; default 3600. */
  tokenTtlSeconds?: number;
  /** Plugin max page size (students, schools, PowerQuery); default 1000. */
  maxPageSize?: number;
  /** Is the plugin granted the roster PowerQuery? Default true (false → 403). */
  bulkAccess?: boolean;
  /** Default: all false except `emptyExpansionsAsString` (true). */
  quirks?: Partial<FakePowerSchoolQuirks>;
  /**
   * Course sections to serve (`generateSections`): enables `GET /ws/v1/school/{id}/section`
   * (+ `/count`), `GET /ws/v1/course/{id}` and `GET /ws/v1/section/{id}/section_enrollment`.
   * Absent: those routes answer 404, like a plugin without section access.
   */
  sections?: SyntheticSections;
}

/** Live fault switches. Counters (`rateLimit`, `serverError`) apply to `/ws/...` requests only. */
export interface FaultControls {
  /** The next `n` `/ws` requests get 429 with `Retry-After` (seconds, or an HTTP-date string). */
  rateLimit(n: number, retryAfter: number | string): void;
  /** The next `n` `/ws` requests get 500. */
  serverError(n: number): void;
  /** Every student-list request with `page > p` gets 500 until cleared with null. */
  failStudentsAfterPage(p: number | null): void;
  /** Delay every `/ws` response by `ms` milliseconds (0 = off). */
  slowMs(ms: number): void;
  /** Set the standing latency and request-rate cap (`{}` removes them; `reset()` keeps them). */
  limits(l: SisLimits): void;
  /** Requests refused by the rate cap since the limits were set. */
  readonly cappedRequests: number;
  /** Hold every `/ws` request, unanswered, until `resume()` (a deterministic mid-pull pause). */
  pause(): void;
  /** Answer the held `/ws` requests and the next ones again. */
  resume(): void;
  /** Invalidate every issued token (the next call with one gets 401; a new token works). */
  expireTokens(): void;
  /** Grant or deny the roster PowerQuery (denied → 403). */
  setBulkAccess(allowed: boolean): void;
  /** The quirks in force; mutate the fields to toggle them live. */
  readonly quirks: FakePowerSchoolQuirks;
  /** Clear all faults and restore the start options' quirks and bulk access (tokens stay). */
  reset(): void;
}

/** Request counters (updated before each response is sent). */
export interface FakePowerSchoolStats {
  /** All requests received, including token requests. */
  requests: number;
  /** By route pattern, e.g. `"GET /ws/contacts/student/:dcid"`; unknown routes under `"404"`. */
  byRoute: Record<string, number>;
  /** By HTTP status, e.g. `"200"`, `"429"`. */
  byStatus: Record<string, number>;
}

/** A running fake server. */
export interface FakePowerSchool {
  /** `http://127.0.0.1:PORT`, no trailing slash. */
  url: string;
  clientId: string;
  clientSecret: string;
  faults: FaultControls;
  stats: FakePowerSchoolStats;
  close(): Promise<void>;
}

const DEFAULT_QUIRKS: FakePowerSchoolQuirks = {
  singleObjectPages: false,
  stringNumbers: false,
  emptyExpansionsAsString: true,
  contactAccountVariants: false,
  ignoreStatusFilter: false,
};

/**
 * Ids of records the district does not model (emails, phones, detail rows) are derived
 * from their owner's id, offset into their own range so they never equal a real id.
 */
const ID_BASE = {
  contactEmail: 100_000_000,
  email: 200_000_000,
  phone: 300_000_000,
  detail: 400_000_000,
};

const ENROLL_STATUS_CODE: Record<string, number> = { A: 0, P: -1, T: 2, G: 3, H: 4, I: 4 };

const pageQuery = z.object({
  page: z.coerce.number().int().min(1).default(1),
  pagesize: z.coerce.number().int().min(1).optional(),
  q: z.string().optional(),
  expansions: z.string().optional(),
});

const dcidArg = z.union([
  z
    .string()
    .trim()
    .regex(/^-?\d+$/)
    .transform(Number),
  z.number().int(),
]);
const powerQueryBody = z.object({ dcid_min: dcidArg, dcid_max: dcidArg });

const STATUS_Q = /^school_enrollment\.enroll_status==([A-Z])$/;

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/**
 * Start a fake PowerSchool on 127.0.0.1 with a random port.
 *
 * HTTP contract: `POST /oauth/access_token` (Basic client credentials, form body
 * `grant_type=client_credentials`; `expires_in` is a string); bearer-protected
 * `GET /ws/v1/metadata`, `GET /ws/v1/district/school[/count]`,
 * `GET /ws/v1/district/student[/count]` (`q=school_enrollment.enroll_status==X` only),
 * `GET /ws/contacts/student/{dcid}` (array, 204 when none, 404 for an unknown student), and
 * `POST /ws/schema/query/com.guardiansync.roster.student_contacts` (flattened string rows).
 * Errors are JSON `{"message": …}` (token endpoint: `{"error": …}`); anything else is 404.
 *
 * Rejects when the server cannot listen.
 */
export async function startFakePowerSchool(
  district: SyntheticDistrict,
  opts: FakePowerSchoolOptions = {},
): Promise<FakePowerSchool> {
  const clientId = opts.clientId ?? 'demo-client';
  const clientSecret = opts.clientSecret ?? 'demo-secret';
  const ttlSeconds = opts.tokenTtlSeconds ?? 3600;
  const maxPageSize = opts.maxPageSize ?? 1000;
  const initialQuirks: FakePowerSchoolQuirks = { ...DEFAULT_QUIRKS, ...opts.quirks };
  const initialBulk = opts.bulkAccess ?? true;

  const tokens = new Map<string, number>(); // token → expiry (epoch ms)
  const f = {
    failAfterPage: null as number | null,
    bulkAccess: initialBulk,
    accountRotation: 0,
  };
  const quirks: FakePowerSchoolQuirks = { ...initialQuirks };
  const stats: FakePowerSchoolStats = { requests: 0, byRoute: {}, byStatus: {} };
  const injector = new FaultInjector();
  if (opts.limits) injector.limits(opts.limits);

  const faults: FaultControls = {
    rateLimit(n, retryAfter) {
      injector.rateLimit(n, retryAfter);
    },
    serverError(n) {
      injector.serverError(n);
    },
    failStudentsAfterPage(p) {
      f.failAfterPage = p;
    },
    slowMs(ms) {
      injector.slowMs(ms);
    },
    limits(l) {
      injector.limits(l);
    },
    get cappedRequests() {
      return injector.cappedRequests;
    },
    pause() {
      injector.pause();
    },
    resume() {
      injector.resume();
    },
    expireTokens() {
      tokens.clear();
    },
    setBulkAccess(allowed) {
      f.bulkAccess = allowed;
    },
    quirks,
    reset() {
      injector.reset();
      f.failAfterPage = null;
      f.bulkAccess = initialBulk;
      Object.assign(quirks, initialQuirks);
    },
  };

  const num = (n: number): number | string => (quirks.stringNumbers ? String(n) : n);
  const page = <T extends Json>(items: T[]): T | T[] =>
    quirks.singleObjectPages && items.length === 1 && items[0] !== undefined ? items[0] : items;
  const emptyExpansion = (): Json => (quirks.emptyExpansionsAsString ? '' : {});

  const app = Fastify({ logger: false });
  await app.register(formbody);

  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500;
    return reply
      .code(status)
      .send({ message: status === 500 ? 'Internal server error' : err.message });
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send({ message: 'not found' }));

  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    countRequest(
      stats,
      req.routeOptions.url === undefined ? '404' : `${req.method} ${req.routeOptions.url}`,
    );
    if (!req.url.startsWith('/ws/')) return;
    const fault = await injector.next();
    if (fault?.kind === 'rate-limit') {
      return reply
        .code(429)
        .header('retry-after', fault.retryAfter)
        .send({ message: 'Too many requests' });
    }
    if (fault?.kind === 'server-error') {
      return reply.code(500).send({ message: 'Internal server error' });
    }
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const token = m?.[1];
    const expiry = token === undefined ? undefined : tokens.get(token);
    if (token === undefined || expiry === undefined || Date.now() >= expiry) {
      if (token !== undefined) tokens.delete(token);
      return reply.code(401).send({ message: 'Invalid access token' });
    }
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    countStatus(stats, reply.statusCode);
    return payload;
  });

  // ---- token --------------------------------------------------------------------------
  app.post('/oauth/access_token', async (req, reply) => {
    const m = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const decoded = m?.[1] === undefined ? '' : Buffer.from(m[1], 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (
      colon < 0 ||
      decoded.slice(0, colon) !== clientId ||
      decoded.slice(colon + 1) !== clientSecret
    ) {
      return reply.code(401).send({ error: 'invalid_client' });
    }
    const body: unknown = req.body;
    const grant =
      typeof body === 'object' && body !== null && 'grant_type' in body
        ? body.grant_type
        : undefined;
    if (grant !== 'client_credentials') {
      return reply.code(400).send({ error: 'unsupported_grant_type' });
    }
    const token = randomBytes(24).toString('hex');
    tokens.set(token, Date.now() + ttlSeconds * 1000);
    return { access_token: token, token_type: 'Bearer', expires_in: String(ttlSeconds) };
  });

  // ---- v1 -----------------------------------------------------------------------------
  app.get('/ws/v1/metadata', (_req, reply) =>
    reply.send({
      metadata: {
        plugin_id: 1,
        powerschool_version: '23.4',
        student_max_page_size: maxPageSize,
        school_max_page_size: maxPageSize,
        schema_table_query_max_page_size: maxPageSize,
        ...(opts.sections
          ? { section_max_page_size: maxPageSize, section_enrollment_max_page_size: maxPageSize }
          : {}),
      },
    }),
  );

  /** Parse page/pagesize; replies 400 and returns null when invalid. */
  const paging = (req: FastifyRequest, reply: FastifyReply) => {
    const parsed = pageQuery.safeParse(req.query);
    if (!parsed.success) {
      void reply.code(400).send({ message: 'invalid page or pagesize' });
      return null;
    }
    const size = parsed.data.pagesize ?? maxPageSize;
    if (size > maxPageSize) {
      void reply.code(400).send({ message: 'pagesize exceeds the plugin maximum' });
      return null;
    }
    return { ...parsed.data, size, start: (parsed.data.page - 1) * size };
  };

  app.get('/ws/v1/district/school/count', (_req, reply) =>
    reply.send({ resource: { count: district.schools.length } }),
  );

  app.get('/ws/v1/district/school', async (req, reply) => {
    const p = paging(req, reply);
    if (!p) return reply;
    const rows: Json[] = district.schools
      .slice(p.start, p.start + p.size)
      .map((s: PsSchoolRow) => ({ id: num(s.id), name: s.name, school_number: s.school_number }));
    return { schools: rows.length > 0 ? { school: page(rows) } : {} };
  });

  /** Student indices selected by `q`, or null for "all"; replies 400 and returns false on a bad q. */
  const studentFilter = (q: string | undefined, reply: FastifyReply): Int32Array | null | false => {
    if (q === undefined || q === '') return null;
    const m = STATUS_Q.exec(q.trim());
    if (!m?.[1]) {
      void reply.code(400).send({ message: 'unsupported q' });
      return false;
    }
    if (quirks.ignoreStatusFilter) return null;
    return studentsWithStatus(district, m[1]);
  };

  app.get('/ws/v1/district/student/count', async (req, reply) => {
    const parsed = pageQuery.safeParse(req.query);
    const filter = studentFilter(parsed.success ? parsed.data.q : undefined, reply);
    if (filter === false) return reply;
    return { resource: { count: filter ? filter.length : district.students.length } };
  });

  const studentJson = (s: PsStudentRow, expansions: Set<string>): Json => {
    const name: { [k: string]: Json } = { first_name: s.first_name };
    if (s.middle_name !== null) name.middle_name = s.middle_name;
    name.last_name = s.last_name;
    const out: { [k: string]: Json } = {
      id: num(s.id),
      local_id: num(s.local_id),
      student_username: `${asciiFold(s.first_name)}${s.local_id}`,
      name,
    };
    for (const exp of expansions) {
      if (exp === 'school_enrollment') {
        out.school_enrollment = {
          enroll_status: s.enroll_status,
          enroll_status_code: ENROLL_STATUS_CODE[s.enroll_status] ?? 0,
          grade_level: num(s.grade_level),
          school_id: num(s.school_id),
          school_number: s.school_number,
          entry_date: '2025-08-20',
          exit_date: '2026-06-05',
        };
      } else if (exp === 'contact_info') {
        out.contact_info = s.email === null ? emptyExpansion() : { email: s.email };
      } else {
        out[exp] = emptyExpansion();
      }
    }
    return out;
  };

  const knownExpansions = new Set(STUDENT_EXPANSIONS.split(', '));

  app.get('/ws/v1/district/student', async (req, reply) => {
    const p = paging(req, reply);
    if (!p) return reply;
    if (f.failAfterPage !== null && p.page > f.failAfterPage) {
      return reply.code(500).send({ message: 'Internal server error' });
    }
    const filter = studentFilter(p.q, reply);
    if (filter === false) return reply;
    const expansions = new Set(
      (p.expansions ?? '')
        .split(',')
        .map(e => e.trim())
        .filter(e => knownExpansions.has(e)),
    );
    const total = filter ? filter.length : district.students.length;
    const rows: Json[] = [];
    for (let k = p.start; k < Math.min(total, p.start + p.size); k++) {
      const s = district.students[filter ? (filter[k] ?? -1) : k];
      if (s) rows.push(studentJson(s, expansions));
    }
    const body: { [k: string]: Json } = { '@expansions': STUDENT_EXPANSIONS, '@extensions': '' };
    if (rows.length > 0) body.student = page(rows);
    return { students: body };
  });

  // ---- sections (optional) -------------------------------------------------------------
  if (opts.sections) registerSectionRoutes(opts.sections);

  function registerSectionRoutes(sec: SyntheticSections): void {
    const bySchool = new Map<number, typeof sec.sections>();
    for (const row of sec.sections) {
      const list = bySchool.get(row.school_id);
      if (list) list.push(row);
      else bySchool.set(row.school_id, [row]);
    }
    const sectionIds = new Set(sec.sections.map(r => r.id));
    const enrollmentsOf = new Map<number, typeof sec.enrollments>();
    for (const e of sec.enrollments) {
      const list = enrollmentsOf.get(e.section_id);
      if (list) list.push(e);
      else enrollmentsOf.set(e.section_id, [e]);
    }
    const courses = new Map(sec.courses.map(c => [c.id, c]));
    const idParam = (v: string): number => (/^\d+$/.test(v) ? Number(v) : -1);

    app.get<{ Params: { id: string } }>('/ws/v1/school/:id/section/count', (req, reply) =>
      reply.send({ resource: { count: bySchool.get(idParam(req.params.id))?.length ?? 0 } }),
    );
    app.get<{ Params: { id: string } }>('/ws/v1/school/:id/section', async (req, reply) => {
      const p = paging(req, reply);
      if (!p) return reply;
      const rows: Json[] = (bySchool.get(idParam(req.params.id)) ?? [])
        .slice(p.start, p.start + p.size)
        .map(r => ({
          id: num(r.id),
          school_id: num(r.school_id),
          course_id: num(r.course_id),
          section_number: r.section_number,
          expression: r.expression,
        }));
      return { sections: rows.length > 0 ? { section: page(rows) } : '' };
    });
    app.get<{ Params: { id: string } }>('/ws/v1/course/:id', async (req, reply) => {
      const c = courses.get(idParam(req.params.id));
      if (!c) return reply.code(404).send({ message: 'not found' });
      return {
        course: { id: num(c.id), course_number: c.course_number, course_name: c.course_name },
      };
    });
    app.get<{ Params: { id: string } }>(
      '/ws/v1/section/:id/section_enrollment',
      async (req, reply) => {
        const id = idParam(req.params.id);
        if (!sectionIds.has(id)) return reply.code(404).send({ message: 'not found' });
        const rows: Json[] = (enrollmentsOf.get(id) ?? []).map(e => ({
          id: num(e.id),
          section_id: num(e.section_id),
          student_id: num(e.student_id),
          entry_date: '2025-08-20',
          exit_date: '2026-06-05',
          dropped: e.dropped,
        }));
        return { section_enrollments: rows.length > 0 ? { section_enrollment: page(rows) } : '' };
      },
    );
  }

  // ---- contacts -----------------------------------------------------------------------
  const contactJson = (c: PsContactRow): Json => {
    const emails: Json[] =
      c.email === null
        ? []
        : [
            {
              contactEmailId: ID_BASE.contactEmail + c.contactId,
              primary: true,
              emailId: ID_BASE.email + c.contactId,
              type: 'Current',
              address: c.email,
            },
          ];
    const phones: Json[] = [];
    if (c.phone !== null) {
      phones.push({
        contactsPhoneId: ID_BASE.phone + c.contactId * 2,
        sequence: 1,
        preferred: true,
        phoneType: 'Mobile',
        phoneNumber: c.phone,
        extension: null,
        sms: true,
      });
    }
    if (c.phone2 !== null) {
      phones.push({
        contactsPhoneId: ID_BASE.phone + c.contactId * 2 + 1,
        sequence: phones.length + 1,
        preferred: phones.length === 0,
        phoneType: 'Home',
        phoneNumber: c.phone2,
        extension: null,
        sms: false,
      });
    }
    let contactAccount: Json;
    if (c.account) {
      contactAccount = { enabled: c.account.enabled, userName: c.account.userName, password: null };
    } else if (quirks.contactAccountVariants) {
      contactAccount = f.accountRotation++ % 2 === 0 ? null : [];
    } else {
      contactAccount = null;
    }
    return {
      contactId: num(c.contactId),
      firstName: c.firstName,
      middleName: c.middleName,
      lastName: c.lastName,
      active: true,
      emails,
      phones,
      contactAccount,
      contactStudents: c.links.map((l: PsContactLink) => {
        const si = studentIndex(district.students, l.studentDcid);
        const student = district.students[si];
        return {
          studentContactId: l.studentContactId,
          sequence: l.sequence,
          dcid: num(l.studentDcid),
          studentNumber: student ? String(student.local_id) : null,
          canAccessData: l.canAccessData,
          guardianId: l.guardianId,
          studentDetails: [
            {
              studentContactDetailId: ID_BASE.detail + l.studentContactId,
              relationship: l.relationship,
              custodial: l.custodial,
              emergency: l.emergency,
              livesWith: l.livesWith,
              schoolPickup: false,
              receivesMail: true,
              startDate: null,
              endDate: null,
              active: l.detailActive,
            },
          ],
        };
      }),
      '@extensions': 'personcorefields',
    };
  };

  app.get<{ Params: { dcid: string } }>('/ws/contacts/student/:dcid', async (req, reply) => {
    const { dcid } = req.params;
    const i = /^\d+$/.test(dcid) ? studentIndex(district.students, Number(dcid)) : -1;
    if (i < 0) return reply.code(404).send({ message: 'not found' });
    const out: Json[] = [];
    let lastId = -1;
    for (const { contact } of linksOfStudent(district, i)) {
      if (contact.contactId === lastId) continue;
      lastId = contact.contactId;
      out.push(contactJson(contact));
    }
    if (out.length === 0) return reply.code(204).send();
    return out;
  });

  // ---- PowerQuery ---------------------------------------------------------------------
  const pqRow = (
    s: PsStudentRow,
    c: PsContactRow,
    l: PsContactLink,
    phone: string | null,
  ): Record<string, string> => {
    const r: Record<string, string> = {
      studentdcid: String(s.id),
      studentnumber: String(s.local_id),
      personid: String(c.contactId),
      firstname: c.firstName,
    };
    if (c.middleName !== null) r.middlename = c.middleName;
    r.lastname = c.lastName;
    if (c.email !== null) r.email = c.email;
    if (phone !== null) r.phonenumber = phone;
    r.canaccessdata = l.canAccessData ? '1' : '0';
    if (l.guardianId !== null) r.guardianid = String(l.guardianId);
    r.studentcontactassocid = String(l.studentContactId);
    r.contactpriorityorder = String(l.sequence);
    r.relationship = l.relationship;
    r.iscustodial = l.custodial ? '1' : '0';
    r.liveswithflg = l.livesWith ? '1' : '0';
    r.isemergency = l.emergency ? '1' : '0';
    r.isactive = l.detailActive ? '1' : '0';
    return r;
  };

  app.post<{ Params: { name: string } }>('/ws/schema/query/:name', async (req, reply) => {
    const { name } = req.params;
    if (name !== POWERQUERY_NAME) return reply.code(404).send({ message: 'not found' });
    if (!f.bulkAccess) return reply.code(403).send({ message: 'Access to PowerQuery denied' });
    const p = paging(req, reply);
    if (!p) return reply;
    const args = powerQueryBody.safeParse(req.body);
    if (!args.success) {
      return reply.code(400).send({ message: 'dcid_min and dcid_max are required integers' });
    }
    const idx = districtIndex(district);
    const students = district.students;
    const i0 = studentLowerBound(students, args.data.dcid_min);
    const i1 = studentLowerBound(students, args.data.dcid_max + 1);
    const base = idx.rowStart[i0] ?? 0;
    const end = Math.min(idx.rowStart[Math.max(i0, i1)] ?? base, base + p.start + p.size);
    let row = base + p.start;
    const record: Json[] = [];
    if (row < end) {
      // Student holding row `row`: last i with rowStart[i] <= row.
      let lo = i0;
      let hi = i1 - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >>> 1;
        if ((idx.rowStart[mid] ?? 0) <= row) lo = mid;
        else hi = mid - 1;
      }
      let skip = row - (idx.rowStart[lo] ?? 0);
      for (let i = lo; i < i1 && row < end; i++) {
        const s = students[i];
        if (!s) continue;
        for (const { contact, link } of linksOfStudent(district, i)) {
          const phones = contactPhones(contact);
          for (let k = 0; k < phones.length && row < end; k++) {
            if (skip > 0) {
              skip--;
              continue;
            }
            record.push(pqRow(s, contact, link, phones[k] ?? null));
            row++;
          }
          if (row >= end) break;
        }
      }
    }
    return { name: POWERQUERY_NAME, record, '@extensions': '' };
  });

  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const address = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    clientId,
    clientSecret,
    faults,
    stats,
    close: async () => {
      await app.close();
    },
  };
}
