/**
 * Fake Skyward SMS 2.0 LMS API (fastify) over a `SyntheticDistrict` (sis-reference §5.2,
 * §5.3), for tests, the demo and benchmarks.
 *
 * Adapter (generator rows → Skyward records, district never changed):
 * - students: active students; `NameId` = dcid, `DisplayId` = student number, `StateId`;
 * - guardians of a student: contacts with a link that grants data access and has an active
 *   detail row (the LMS API lists parents/guardians of current students only); each lists
 *   all such links as `Students[{StudentNameId, RelationshipDesc}]`. A correct sync equals
 *   `expectedRoster(d, { requireDataAccess: true, requireCustodial: false })`;
 * - enrollments from `generateSections` (dropped ones have `EnrStatus: "Dropped"`).
 *
 * HTTP: `POST {base}/token` (Basic client id/secret; form `grant_type=password`, `username`,
 * `password`); bearer-protected `GET {base}/v1/schools`, `/v1/students`,
 * `/v1/students/{NameId}`, `/v1/students/{NameId}/enrollments`,
 * `/v1/guardians?studentNameId=`, `/v1/names/{NameId}`. Lists are bare arrays paged by
 * `paging.limit` + `paging.cursor`; the next page's URL is in `Link` with `cursor=` (not
 * `paging.cursor=`, as Skyward does); also `X-Total-Count` and a short last page. Faults as
 * the fake PowerSchool plus a page that repeats and a last page whose `Link` points nowhere.
 */
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import type { PsContactRow, PsStudentRow, SyntheticDistrict } from './district-generator.js';
import { linksOfStudent, studentIndex, studentsWithStatus } from './district-index.js';
import type { Json, JsonObject } from './oneroster-adapter.js';
import { generateSections, type SyntheticSections } from './section-generator.js';
import { countRequest, countStatus, FaultInjector, type SisLimits } from './faults.js';

export interface FakeSkywardOptions {
  /**
   * A slow, rate-limited SIS: latency before every response and a requests-per-second cap
   * (429 + `Retry-After` above it). Also switchable live with `faults.limits`.
   */
  limits?: SisLimits;
  /** Port on 127.0.0.1 (default 0: a free one; the sandbox uses a fixed one). */
  port?: number;
  clientId?: string;
  clientSecret?: string;
  /** API key (password-grant username). */
  username?: string;
  /** API secret (password-grant password). */
  password?: string;
  tokenTtlSeconds?: number;
  /** Largest `paging.limit` honoured. Default 1000. */
  maxPageSize?: number;
  /** Send `X-Total-Count` (default true). */
  totalCount?: boolean;
}

export interface SkywardFaults {
  rateLimit(n: number, retryAfter: number | string): void;
  serverError(n: number): void;
  /** `/v1/students` pages after page `p` get 500 until cleared with null. */
  failStudentsAfterPage(p: number | null): void;
  slowMs(ms: number): void;
  /** Set the standing latency and request-rate cap (`{}` removes them; `reset()` keeps them). */
  limits(l: SisLimits): void;
  /** Requests refused by the rate cap since the limits were set. */
  readonly cappedRequests: number;
  expireTokens(): void;
  /** The next `n` list requests with a cursor return the previous page again. */
  repeatPage(n: number): void;
  /** Last pages carry a `Link` to a cursor past the end (an empty page). */
  danglingNextLink(on: boolean): void;
  reset(): void;
}

export interface FakeSkywardStats {
  requests: number;
  byRoute: Record<string, number>;
  byStatus: Record<string, number>;
}

export interface FakeSkyward {
  url: string;
  /** The API root to configure as `baseUrl` (`{url}/API`). */
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  username: string;
  password: string;
  faults: SkywardFaults;
  stats: FakeSkywardStats;
  close(): Promise<void>;
}

const BASE = '/API';

/** Skyward JSON of a student. */
export function skywardStudentJson(s: PsStudentRow): JsonObject {
  return {
    NameId: s.id,
    DisplayId: String(s.local_id),
    StateId: `ST${s.local_id}`,
    FirstName: s.first_name,
    MiddleName: s.middle_name ?? '',
    LastName: s.last_name,
    DateOfBirth: null,
    GradYr: 2026 + (12 - s.grade_level),
    SchoolEmail: s.email ?? '',
    DefaultSchoolId: s.school_id,
    schoolIds: [s.school_id],
    PhoneNumber: '',
    PhoneNumberType: '',
  };
}

/** Skyward JSON of a guardian with its accessible links to active students. */
export function skywardGuardianJson(d: SyntheticDistrict, c: PsContactRow): JsonObject {
  const students: Json[] = [];
  for (const l of c.links) {
    if (!l.canAccessData || !l.detailActive) continue;
    const i = studentIndex(d.students, l.studentDcid);
    if (d.students[i]?.enroll_status !== 'A') continue;
    students.push({ StudentNameId: l.studentDcid, RelationshipDesc: l.relationship });
  }
  return {
    GuardianNameId: c.contactId,
    FirstName: c.firstName,
    MiddleName: c.middleName ?? '',
    LastName: c.lastName,
    Email: c.email ?? '',
    PhoneNumber: c.phone ?? '',
    PhoneNumberType: c.phone ? 'Cellular' : '',
    PhoneNumber2: c.phone2 ?? '',
    PhoneNumber2Type: c.phone2 ? 'Home' : '',
    Students: students,
  };
}

const cursorOf = (offset: number) => Buffer.from(`o:${offset}`).toString('base64url');
const offsetOf = (cursor: string): number | undefined => {
  const m = /^o:(\d+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return m?.[1] ? Number(m[1]) : undefined;
};

/** Start a fake Skyward LMS API on 127.0.0.1 (random port). */
export async function startFakeSkyward(
  district: SyntheticDistrict,
  opts: FakeSkywardOptions = {},
): Promise<FakeSkyward> {
  const clientId = opts.clientId ?? 'sky-client';
  const clientSecret = opts.clientSecret ?? 'sky-secret';
  const username = opts.username ?? 'sky-key';
  const password = opts.password ?? 'sky-key-secret';
  const ttl = opts.tokenTtlSeconds ?? 3600;
  const maxPageSize = opts.maxPageSize ?? 1000;
  const totalCount = opts.totalCount ?? true;
  const tokens = new Map<string, number>();
  const f = {
    failAfterPage: null as number | null,
    repeat: 0,
    dangling: false,
  };
  const stats: FakeSkywardStats = { requests: 0, byRoute: {}, byStatus: {} };
  const injector = new FaultInjector();
  if (opts.limits) injector.limits(opts.limits);
  let sections: SyntheticSections | undefined;

  const faults: SkywardFaults = {
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
    expireTokens() {
      tokens.clear();
    },
    repeatPage(n) {
      f.repeat = n;
    },
    danglingNextLink(on) {
      f.dangling = on;
    },
    reset() {
      injector.reset();
      Object.assign(f, { failAfterPage: null, repeat: 0, dangling: false });
    },
  };

  const app = Fastify({ logger: false });
  await app.register(formbody);
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ Message: 'No HTTP resource was found' }),
  );
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500;
    return reply
      .code(status)
      .send({ Message: status === 500 ? 'An error has occurred.' : err.message });
  });
  app.addHook('onRequest', async (req, reply) => {
    countRequest(
      stats,
      req.routeOptions.url === undefined
        ? '404'
        : `${req.method} ${req.routeOptions.url.slice(BASE.length)}`,
    );
    if (!req.url.startsWith(`${BASE}/v1/`)) return;
    const fault = await injector.next();
    if (fault?.kind === 'rate-limit') {
      return reply
        .code(429)
        .header('retry-after', fault.retryAfter)
        .send({ Message: 'Too many requests' });
    }
    if (fault?.kind === 'server-error') {
      return reply.code(500).send({ Message: 'An error has occurred.' });
    }
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const exp = m?.[1] === undefined ? undefined : tokens.get(m[1]);
    if (exp === undefined || Date.now() >= exp) {
      return reply.code(401).send({ Message: 'Authorization has been denied for this request.' });
    }
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    countStatus(stats, reply.statusCode);
    return payload;
  });

  app.post(`${BASE}/token`, async (req, reply) => {
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const decoded = basic?.[1] ? Buffer.from(basic[1], 'base64').toString('utf8') : '';
    if (decoded !== `${clientId}:${clientSecret}`)
      return reply.code(401).send({ error: 'invalid_client' });
    const body = (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Record<
      string,
      unknown
    >;
    if (body.grant_type !== 'password')
      return reply.code(400).send({ error: 'unsupported_grant_type' });
    if (body.username !== username || body.password !== password)
      return reply.code(400).send({
        error: 'invalid_grant',
        error_description: 'The user name or password is incorrect.',
      });
    const token = randomBytes(24).toString('hex');
    tokens.set(token, Date.now() + ttl * 1000);
    return { access_token: token, token_type: 'bearer', expires_in: ttl };
  });

  const origin = () => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  /** Send one cursor page of `items` (built lazily), with the paging signals. */
  const sendPage = <T>(
    req: FastifyRequest,
    reply: FastifyReply,
    path: string,
    items: readonly T[],
    toJson: (item: T) => Json,
    failAfter: number | null,
  ) => {
    const q = req.query as Record<string, string | undefined>;
    const limitRaw = q['paging.limit'] ?? '100';
    if (!/^\d+$/.test(limitRaw) || Number(limitRaw) < 1)
      return reply.code(400).send({ Message: 'paging.limit must be a positive integer' });
    const limit = Math.min(Number(limitRaw), maxPageSize);
    let offset = 0;
    const cursor = q['paging.cursor'];
    if (cursor !== undefined && cursor !== '') {
      const o = offsetOf(cursor);
      if (o === undefined) return reply.code(400).send({ Message: 'invalid paging.cursor' });
      offset = o;
    }
    if (failAfter !== null && Math.floor(offset / limit) + 1 > failAfter)
      return reply.code(500).send({ Message: 'An error has occurred.' });
    let from = offset;
    if (f.repeat > 0 && offset > 0) {
      f.repeat--;
      from = Math.max(0, offset - limit);
    }
    const page = items.slice(from, from + limit).map(toJson);
    if (totalCount) reply.header('x-total-count', String(items.length));
    if (offset + limit < items.length || f.dangling) {
      reply.header(
        'link',
        `<${origin()}${BASE}${path}?paging.limit=${limit}&cursor=${cursorOf(offset + limit)}>; rel="next"`,
      );
    }
    return page;
  };

  app.get(`${BASE}/v1/schools`, async (req, reply) =>
    sendPage(
      req,
      reply,
      '/v1/schools',
      district.schools,
      s => ({
        SchoolId: s.id,
        SchoolName: s.name,
        GradeLow: '',
        GradeHigh: '',
        StreetAddress: '',
        City: '',
        State: '',
        ZipCode: '',
      }),
      null,
    ),
  );

  app.get(`${BASE}/v1/students`, async (req, reply) => {
    const active = studentsWithStatus(district, 'A');
    return sendPage(
      req,
      reply,
      '/v1/students',
      Array.from(active),
      i => (district.students[i] ? skywardStudentJson(district.students[i]) : null),
      f.failAfterPage,
    );
  });

  const activeStudent = (nameId: string): PsStudentRow | undefined => {
    if (!/^\d+$/.test(nameId)) return undefined;
    const s = district.students[studentIndex(district.students, Number(nameId))];
    return s?.enroll_status === 'A' ? s : undefined;
  };

  app.get<{ Params: { id: string } }>(`${BASE}/v1/students/:id`, async (req, reply) => {
    const s = activeStudent(req.params.id);
    if (!s) return reply.code(404).send({ Message: 'Student not found' });
    return skywardStudentJson(s);
  });

  app.get<{ Params: { id: string } }>(`${BASE}/v1/students/:id/enrollments`, async (req, reply) => {
    const s = activeStudent(req.params.id);
    if (!s) return reply.code(404).send({ Message: 'Student not found' });
    sections ??= generateSections(district);
    const secById = new Map(sections.sections.map(x => [x.id, x]));
    const courseById = new Map(sections.courses.map(c => [c.id, c]));
    return sections.enrollments
      .filter(e => e.student_id === s.id)
      .map(e => {
        const sec = secById.get(e.section_id);
        const course = sec ? courseById.get(sec.course_id) : undefined;
        return {
          EnrollmentId: e.id,
          CourseId: course?.course_number ?? '',
          CourseDescription: course
            ? `${course.course_name} ${sec?.section_number ?? ''}`.trim()
            : '',
          SectionId: e.section_id,
          SchoolId: sec?.school_id ?? s.school_id,
          NameId: s.id,
          EnrType: 'Regular',
          EnrStatus: e.dropped ? 'Dropped' : 'Active',
          StartDate: '2025-08-20',
          EndDate: '2026-06-05',
        };
      });
  });

  app.get(`${BASE}/v1/guardians`, async (req, reply) => {
    const q = req.query as Record<string, string | undefined>;
    const s = activeStudent(q.studentNameId ?? '');
    if (!s) return reply.code(404).send({ Message: 'Student not found' });
    const out: Json[] = [];
    let last = -1;
    for (const { contact, link } of linksOfStudent(
      district,
      studentIndex(district.students, s.id),
    )) {
      if (!link.canAccessData || !link.detailActive || contact.contactId === last) continue;
      last = contact.contactId;
      out.push(skywardGuardianJson(district, contact));
    }
    return out;
  });

  app.get<{ Params: { id: string } }>(`${BASE}/v1/names/:id`, async (req, reply) => {
    const s = activeStudent(req.params.id);
    if (s)
      return {
        NameId: s.id,
        FirstName: s.first_name,
        MiddleName: s.middle_name ?? '',
        LastName: s.last_name,
      };
    const c = /^\d+$/.test(req.params.id)
      ? district.contacts.find(x => x.contactId === Number(req.params.id))
      : undefined;
    if (!c) return reply.code(404).send({ Message: 'Name not found' });
    return {
      NameId: c.contactId,
      FirstName: c.firstName,
      MiddleName: c.middleName ?? '',
      LastName: c.lastName,
    };
  });

  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const url = origin();
  return {
    url,
    baseUrl: `${url}${BASE}`,
    clientId,
    clientSecret,
    username,
    password,
    faults,
    stats,
    close: async () => {
      await app.close();
    },
  };
}
