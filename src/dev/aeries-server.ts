/**
 * Fake Aeries SIS (REST API v5, fastify) over a `SyntheticDistrict` (through
 * `aeries-adapter.ts`), for tests, the demo and benchmarks. It implements the endpoints the
 * connector uses with Aeries' shapes and quirks (sis-reference §4), plus the same switchable
 * faults as the fake PowerSchool (429 with `Retry-After`, 500, slow responses).
 *
 * The district is read live: mutations made with the generator's helpers are visible on the
 * next request, and `StudentDataChanges` reports the students whose student or contact data
 * changed (detected by comparing each student's records with the previous request's).
 */
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import {
  AERIES_RELATIONSHIP_CODES,
  aeriesView,
  type AeriesContactRecord,
  type AeriesDistrictView,
  type AeriesStudentRecord,
  type AeriesViewOptions,
} from './aeries-adapter.js';
import type { SyntheticDistrict } from './district-generator.js';
import { countRequest, countStatus, FaultInjector, type SisLimits } from './faults.js';

/** Aeries behaviours that differ between installs (§4.2); all can be toggled live. */
export interface FakeAeriesQuirks {
  /**
   * `GET /schools/{sc}/students/{id}`: true = SchoolCode scopes the lookup (empty array when
   * the student has no record there); false = SchoolCode is ignored. Default true.
   */
  studentLookupScopedBySchool: boolean;
  /** `StartingRecord`/`EndingRecord` are ignored (the whole school comes back). Default false. */
  ignoreRecordRange: boolean;
  /** Ids (`StudentID`, `SchoolCode`, `SequenceNumber`, `PortalAccountID`) sent as strings. Default false. */
  stringNumbers: boolean;
  /** `StudentDataChanges` answers 501 (feature flag off). Default false. */
  changesNotImplemented: boolean;
}

/** Options of `startFakeAeries`. */
export interface FakeAeriesOptions {
  /**
   * A slow, rate-limited SIS: latency before every response and a requests-per-second cap
   * (429 + `Retry-After` above it). Also switchable live with `faults.limits`.
   */
  limits?: SisLimits;
  /** Port on 127.0.0.1 (default 0: a free one; the sandbox uses a fixed one). */
  port?: number;
  /** The certificate the server accepts. Default 32 hex characters `0123…cdef` × 2. */
  cert?: string;
  /** The server's local time zone as minutes from UTC (e.g. -420 for PDT). Default -420. */
  utcOffsetMinutes?: number;
  /** Database year (`systeminfo`, and the only `DatabaseYear` accepted). Default `2025-2026`. */
  databaseYear?: string;
  view?: AeriesViewOptions;
  quirks?: Partial<FakeAeriesQuirks>;
}

/** Live fault switches (apply to `/api/v5/...` requests except `systeminfo`). */
export interface FakeAeriesFaults {
  /** The next `n` requests get 429 with `Retry-After` (seconds, or an HTTP-date string). */
  rateLimit(n: number, retryAfter: number | string): void;
  /** The next `n` requests get 500. */
  serverError(n: number): void;
  /** Contacts of school `code` answer 500 until cleared with null. */
  failSchoolContacts(code: number | null): void;
  /**
   * Student-list requests (`/schools/{sc}/students`, any range) after the first `p` answer
   * 500 until cleared with null (an outage part way through a pull).
   */
  failStudentsAfterPage(p: number | null): void;
  /** Aeries has no tokens (the certificate does not expire): a no-op, for the common fault interface. */
  expireTokens(): void;
  /** Delay every response by `ms` (0 = off). */
  slowMs(ms: number): void;
  /** Set the standing latency and request-rate cap (`{}` removes them; `reset()` keeps them). */
  limits(l: SisLimits): void;
  /** Requests refused by the rate cap since the limits were set. */
  readonly cappedRequests: number;
  readonly quirks: FakeAeriesQuirks;
  /** Clear all faults and restore the start options' quirks. */
  reset(): void;
}

/** Request counters. */
export interface FakeAeriesStats {
  requests: number;
  /** By route pattern, e.g. `"GET /api/v5/schools/:sc/contacts/:id"`. */
  byRoute: Record<string, number>;
  byStatus: Record<string, number>;
  /** Student, contact and change records delivered (sum of the list lengths answered). */
  recordsServed: number;
}

/** A running fake. */
export interface FakeAeries {
  /** `http://127.0.0.1:PORT/aeries` (the district's Aeries root; the API is under `/api/v5`). */
  url: string;
  cert: string;
  faults: FakeAeriesFaults;
  stats: FakeAeriesStats;
  /** The Aeries view the server currently answers from. */
  view(): AeriesDistrictView;
  close(): Promise<void>;
}

const DEFAULT_QUIRKS: FakeAeriesQuirks = {
  studentLookupScopedBySchool: true,
  ignoreRecordRange: false,
  stringNumbers: false,
  changesNotImplemented: false,
};

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

const rangeQuery = z.object({
  StartingRecord: z.coerce.number().int().min(1).optional(),
  EndingRecord: z.coerce.number().int().min(1).optional(),
  DatabaseYear: z.string().optional(),
});

const AREAS = new Set(['student', 'contact', 'program', 'test', 'class', 'enrollment']);

/**
 * Start a fake Aeries on 127.0.0.1 with a random port.
 *
 * HTTP contract (under `/aeries/api/v5`): `GET /systeminfo` (no certificate), and with header
 * `AERIES-CERT`: `GET /schools`, `/schools/{sc}`, `/schools/{sc}/students` (optional
 * `StartingRecord`/`EndingRecord`, 1-based inclusive), `/schools/{sc}/students/{id}` (array),
 * `/schools/{sc}/contacts`, `/schools/{sc}/contacts/{id}` (SchoolCode ignored, `000` fine),
 * `/StudentDataChanges/{area}/{y}/{m}/{d}/{h}/{min}` (local time of the server),
 * `/codes/CON/RC`. A missing or wrong certificate is 401 `{"Message": …}`; without
 * `Accept: application/json` the body is XML (as Aeries does); an unknown `DatabaseYear`
 * is 400. Rejects when the server cannot listen.
 */
export async function startFakeAeries(
  district: SyntheticDistrict,
  opts: FakeAeriesOptions = {},
): Promise<FakeAeries> {
  const cert = opts.cert ?? '0123456789abcdef0123456789abcdef';
  const offsetMs = (opts.utcOffsetMinutes ?? -420) * 60_000;
  const databaseYear = opts.databaseYear ?? '2025-2026';
  const initialQuirks: FakeAeriesQuirks = { ...DEFAULT_QUIRKS, ...opts.quirks };
  const quirks: FakeAeriesQuirks = { ...initialQuirks };
  const f = {
    failContactsOf: null as number | null,
    failStudentsAfter: null as number | null,
    studentListRequests: 0,
  };
  const stats: FakeAeriesStats = { requests: 0, byRoute: {}, byStatus: {}, recordsServed: 0 };
  const served = <T>(list: T[]): T[] => {
    stats.recordsServed += list.length;
    return list;
  };
  const injector = new FaultInjector();
  if (opts.limits) injector.limits(opts.limits);
  const faults: FakeAeriesFaults = {
    rateLimit(n, retryAfter) {
      injector.rateLimit(n, retryAfter);
    },
    serverError(n) {
      injector.serverError(n);
    },
    failSchoolContacts(code) {
      f.failContactsOf = code;
    },
    failStudentsAfterPage(p) {
      f.failStudentsAfter = p;
      f.studentListRequests = 0;
    },
    expireTokens() {},
    slowMs(ms) {
      injector.slowMs(ms);
    },
    limits(l) {
      injector.limits(l);
    },
    get cappedRequests() {
      return injector.cappedRequests;
    },
    quirks,
    reset() {
      injector.reset();
      f.failContactsOf = null;
      f.failStudentsAfter = null;
      Object.assign(quirks, initialQuirks);
    },
  };

  // ---- change tracking (StudentDataChanges) ---------------------------------------------
  // Per StudentID and area: a fingerprint and when it last changed (epoch ms; 0 = before
  // the server started, i.e. older than any watermark a test uses).
  const fingerprints = new Map<number, { student: string; contact: string }>();
  const changedAt = new Map<number, { student: number; contact: number; school: number }>();
  let seenView: AeriesDistrictView | undefined;
  const current = (): AeriesDistrictView => {
    const v = aeriesView(district, opts.view);
    if (v === seenView) return v;
    const now = seenView === undefined ? 0 : Date.now();
    const studentFp = new Map<number, string[]>();
    for (const s of v.students) {
      const list = studentFp.get(s.StudentID) ?? [];
      list.push(JSON.stringify(s));
      studentFp.set(s.StudentID, list);
    }
    const contactFp = new Map<number, string[]>();
    for (const c of v.contacts) {
      const list = contactFp.get(c.StudentID) ?? [];
      list.push(JSON.stringify(c));
      contactFp.set(c.StudentID, list);
    }
    for (const s of v.students) {
      const fp = {
        student: (studentFp.get(s.StudentID) ?? []).join('\n'),
        contact: (contactFp.get(s.StudentID) ?? []).join('\n'),
      };
      const prev = fingerprints.get(s.StudentID);
      const at = changedAt.get(s.StudentID) ?? { student: now, contact: now, school: s.SchoolCode };
      if (s.InactiveStatusCode === '') at.school = s.SchoolCode;
      if (prev && prev.student !== fp.student) at.student = now;
      if (prev && prev.contact !== fp.contact) at.contact = now;
      fingerprints.set(s.StudentID, fp);
      changedAt.set(s.StudentID, at);
    }
    seenView = v;
    return v;
  };
  current();

  const localNow = (): string => new Date(Date.now() + offsetMs).toISOString().slice(0, 19);
  const num = (n: number): number | string => (quirks.stringNumbers ? String(n) : n);
  const studentJson = (s: AeriesStudentRecord): Json => ({
    ...s,
    StudentID: num(s.StudentID),
    SchoolCode: num(s.SchoolCode),
  });
  const contactJson = (c: AeriesContactRecord): Json => ({
    ...c,
    StudentID: num(c.StudentID),
    SchoolCode: num(c.SchoolCode),
    SequenceNumber: num(c.SequenceNumber),
    PortalAccountID: num(c.PortalAccountID),
  });

  const app = Fastify({ logger: false });
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500;
    return reply
      .code(status)
      .send({ Message: status === 500 ? 'An error has occurred.' : err.message });
  });
  app.setNotFoundHandler((_req, reply) =>
    reply.code(404).send({ Message: 'No HTTP resource was found that matches the request URI.' }),
  );
  app.addHook('onRequest', async (req: FastifyRequest, reply: FastifyReply) => {
    countRequest(
      stats,
      req.routeOptions.url === undefined ? '404' : `${req.method} ${req.routeOptions.url}`,
    );
    if (!req.url.startsWith('/aeries/api/v5/') || req.url.startsWith('/aeries/api/v5/systeminfo'))
      return;
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
    if (req.headers['aeries-cert'] !== cert) {
      return reply.code(401).send({ Message: 'Authorization has been denied for this request.' });
    }
    const year = rangeQuery.safeParse(req.query);
    if (
      year.success &&
      year.data.DatabaseYear !== undefined &&
      year.data.DatabaseYear !== databaseYear
    )
      return reply
        .code(400)
        .send({ Message: `Database year ${year.data.DatabaseYear} not found.` });
  });
  app.addHook('onSend', async (req, reply, payload) => {
    countStatus(stats, reply.statusCode);
    const accept = req.headers.accept ?? '';
    if (reply.statusCode < 300 && !/json/i.test(accept) && typeof payload === 'string') {
      // Aeries answers XML unless JSON is asked for.
      void reply.header('content-type', 'application/xml; charset=utf-8');
      return `<?xml version="1.0"?><ArrayOfObject><Json>${payload.length}</Json></ArrayOfObject>`;
    }
    return payload;
  });

  const base = '/aeries/api/v5';

  app.get(`${base}/systeminfo`, () => ({
    DatabaseYear: databaseYear,
    AvailableDatabaseYears: [databaseYear, '2024-2025'],
    LocalTimeZoneName: 'Pacific Standard Time',
    CurrentDateTime: localNow(),
  }));

  app.get(`${base}/schools`, () =>
    current().schools.map(s => ({
      SchoolCode: num(s.SchoolCode),
      Name: s.Name,
      InactiveStatusCode: '',
    })),
  );
  app.get<{ Params: { sc: string } }>(`${base}/schools/:sc`, (req, reply) => {
    const s = current().schools.find(x => String(x.SchoolCode) === req.params.sc);
    if (!s) return reply.code(404).send({ Message: 'School not found.' });
    return { SchoolCode: num(s.SchoolCode), Name: s.Name, InactiveStatusCode: '' };
  });

  app.get<{ Params: { sc: string } }>(`${base}/schools/:sc/students`, (req, reply) => {
    if (f.failStudentsAfter !== null && ++f.studentListRequests > f.failStudentsAfter)
      return reply.code(500).send({ Message: 'An error has occurred.' });
    const q = rangeQuery.safeParse(req.query);
    if (!q.success) return reply.code(400).send({ Message: 'Invalid record range.' });
    const list = current().students.filter(s => String(s.SchoolCode) === req.params.sc);
    const from = quirks.ignoreRecordRange ? 1 : (q.data.StartingRecord ?? 1);
    const to = quirks.ignoreRecordRange ? list.length : (q.data.EndingRecord ?? list.length);
    return served(list.slice(from - 1, Math.max(from - 1, to)).map(studentJson));
  });

  app.get<{ Params: { sc: string; id: string } }>(`${base}/schools/:sc/students/:id`, req => {
    const v = current();
    return served(
      v.students
        .filter(
          s =>
            String(s.StudentID) === req.params.id &&
            (!quirks.studentLookupScopedBySchool || String(s.SchoolCode) === req.params.sc),
        )
        .map(studentJson),
    );
  });

  app.get<{ Params: { sc: string } }>(`${base}/schools/:sc/contacts`, (req, reply) => {
    if (f.failContactsOf !== null && String(f.failContactsOf) === req.params.sc)
      return reply.code(500).send({ Message: 'An error has occurred.' });
    const v = current();
    const atSchool = new Set(
      v.students.filter(s => String(s.SchoolCode) === req.params.sc).map(s => s.StudentID),
    );
    return served(v.contacts.filter(c => atSchool.has(c.StudentID)).map(contactJson));
  });

  // SchoolCode is ignored when a StudentID is given (§4.2; `000` is a fine placeholder).
  app.get<{ Params: { sc: string; id: string } }>(`${base}/schools/:sc/contacts/:id`, req =>
    served(
      current()
        .contacts.filter(c => String(c.StudentID) === req.params.id)
        .map(contactJson),
    ),
  );

  app.get<{
    Params: { area: string; y: string; m: string; d: string; h: string; min: string };
  }>(`${base}/StudentDataChanges/:area/:y/:m/:d/:h/:min`, (req, reply) => {
    if (quirks.changesNotImplemented)
      return reply.code(501).send({ Message: 'This feature is not enabled.' });
    const { area, y, m, d, h, min } = req.params;
    if (!AREAS.has(area)) return reply.code(400).send({ Message: `Unknown data area ${area}.` });
    const parts = [y, m, d, h, min].map(Number);
    if (parts.some(p => !Number.isInteger(p)))
      return reply.code(400).send({ Message: 'Invalid date.' });
    const [yy = 0, mm = 1, dd = 1, hh = 0, mi = 0] = parts;
    const since = Date.UTC(yy, mm - 1, dd, hh, mi) - offsetMs;
    const v = current();
    const out: Json[] = [];
    for (const [id, at] of changedAt) {
      const t = area === 'student' ? at.student : area === 'contact' ? at.contact : 0;
      if (t === 0 || t < since) continue;
      const rec = v.students.find(s => s.StudentID === id && s.SchoolCode === at.school);
      out.push({
        StudentID: num(id),
        SchoolCode: num(at.school),
        StudentNumber: rec ? rec.StudentNumber : 0,
      });
    }
    return served(out);
  });

  app.get<{ Params: { table: string; field: string } }>(
    `${base}/codes/:table/:field`,
    (req, reply) => {
      if (req.params.table.toUpperCase() !== 'CON' || req.params.field.toUpperCase() !== 'RC')
        return reply.code(404).send({ Message: 'Code set not found.' });
      return Object.entries(AERIES_RELATIONSHIP_CODES).map(([Code, Description]) => ({
        Code,
        Description,
      }));
    },
  );

  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const address = app.server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}/aeries`,
    cert,
    faults,
    stats,
    view: current,
    close: async () => {
      await app.close();
    },
  };
}
