/**
 * Fake OneRoster 1.1/1.2 REST server (fastify) over a `SyntheticDistrict`, for tests, the
 * demo and benchmarks: Infinite Campus URL shapes by default (sis-reference §3.2), or plain
 * `/ims/oneroster/...` paths (Skyward OneRoster, generic vendors).
 *
 * - auth: OAuth2 client credentials (client id/secret as Basic header or form fields), or
 *   OAuth 1.0a signed requests (HMAC-SHA1/SHA256, checked with the `oauth-1.0a` library);
 * - collections `/orgs`, `/schools`, `/users`, `/students`, `/classes`, `/enrollments` and
 *   `/users/{id}`, `/students/{id}`, `/orgs/{id}`, `/classes/{id}`; `limit`/`offset`;
 *   `filter` (`field op 'value'`, two clauses joined by AND/OR);
 * - all three paging signals: `Link` (next/prev/first/last), `X-Total-Count`, short last
 *   page (each can be switched off);
 * - IMSX error bodies; faults like the fake PowerSchool (429 + Retry-After, 500, slow,
 *   expired tokens, a failing students page) plus a page that repeats and a last page whose
 *   `Link` points past the end.
 *
 * The district is read live (through `OneRosterDistrict`): the generator's mutation helpers
 * show up on the next request, with a new `dateLastModified`.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import OAuth from 'oauth-1.0a';
import type { SyntheticDistrict } from './district-generator.js';
import {
  OneRosterDistrict,
  type Json,
  type JsonObject,
  type OneRosterView,
  type OneRosterViewOptions,
} from './oneroster-adapter.js';
import { countRequest, countStatus, FaultInjector, type SisLimits } from './faults.js';

/** Paging signals the server sends (all on by default). */
export interface PagingSignals {
  link: boolean;
  totalCount: boolean;
}

export interface FakeOneRosterQuirks {
  /** A page holding exactly one record sends it as an object instead of an array. */
  singleObjectPages: boolean;
}

export interface FakeOneRosterOptions extends OneRosterViewOptions {
  /**
   * A slow, rate-limited SIS: latency before every response and a requests-per-second cap
   * (429 + `Retry-After` above it). Also switchable live with `faults.limits`.
   */
  limits?: SisLimits;
  /** Port on 127.0.0.1 (default 0: a free one; the sandbox uses a fixed one). */
  port?: number;
  /** URL shapes: `infinite-campus` (default) or `plain`. */
  style?: 'infinite-campus' | 'plain';
  /** IC application name in the URLs. Default `guardiansync`. */
  appName?: string;
  /** Default: `oauth2` for 1.2, `oauth1` for 1.1. */
  auth?: 'oauth2' | 'oauth1';
  clientId?: string;
  clientSecret?: string;
  tokenTtlSeconds?: number;
  /** Largest `limit` honoured (larger requests are capped). Default 1000. */
  maxPageSize?: number;
  signals?: Partial<PagingSignals>;
  quirks?: Partial<FakeOneRosterQuirks>;
}

/** Live fault switches; counters apply to requests under the base path only. */
export interface OneRosterFaults {
  /** The next `n` requests get 429 with `Retry-After` (seconds or an HTTP date). */
  rateLimit(n: number, retryAfter: number | string): void;
  /** The next `n` requests get 500 (IMSX body). */
  serverError(n: number): void;
  /** `/students` pages after page `p` get 500 until cleared with null. */
  failStudentsAfterPage(p: number | null): void;
  /** Delay every response by `ms`. */
  slowMs(ms: number): void;
  /** Set the standing latency and request-rate cap (`{}` removes them; `reset()` keeps them). */
  limits(l: SisLimits): void;
  /** Requests refused by the rate cap since the limits were set. */
  readonly cappedRequests: number;
  /** Invalidate every issued token (OAuth2). */
  expireTokens(): void;
  /** The next `n` collection requests with `offset > 0` return the previous page again. */
  repeatPage(n: number): void;
  /** Last pages carry a `Link rel="next"` to an offset past the end (an empty page). */
  danglingNextLink(on: boolean): void;
  readonly signals: PagingSignals;
  readonly quirks: FakeOneRosterQuirks;
  reset(): void;
}

export interface FakeOneRosterStats {
  requests: number;
  /** By `METHOD /collection` (e.g. `GET /users`, `GET /users/{id}`, `POST token`). */
  byRoute: Record<string, number>;
  byStatus: Record<string, number>;
  /** Records served per collection (sum over pages). */
  recordsServed: Record<string, number>;
}

export interface FakeOneRoster {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** The OneRoster base URL (configure it as `baseUrl`). */
  baseUrl: string;
  /** OAuth2 token URL (configure it as `tokenUrl`). */
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  version: '1.1' | '1.2';
  roster: OneRosterDistrict;
  faults: OneRosterFaults;
  stats: FakeOneRosterStats;
  close(): Promise<void>;
}

const COLLECTIONS: Record<string, { key: string; pick: (v: OneRosterView) => JsonObject[] }> = {
  orgs: { key: 'orgs', pick: v => v.orgs },
  schools: { key: 'orgs', pick: v => v.schools },
  users: { key: 'users', pick: v => v.users },
  students: { key: 'users', pick: v => v.students },
  classes: { key: 'classes', pick: v => v.classes },
  enrollments: { key: 'enrollments', pick: v => v.enrollments },
};
const SINGLE: Record<string, string> = {
  users: 'user',
  students: 'user',
  orgs: 'org',
  schools: 'org',
  classes: 'class',
  enrollments: 'enrollment',
};

interface Clause {
  field: string;
  op: string;
  value: string;
}

/** Parse a OneRoster `filter` (§1.3). Returns undefined when it is not understood. */
export function parseFilter(filter: string): { clauses: Clause[]; join: 'AND' | 'OR' } | undefined {
  const parts = filter.split(/\s+(AND|OR)\s+/);
  const clauses: Clause[] = [];
  let join: 'AND' | 'OR' = 'AND';
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] ?? '';
    if (i % 2 === 1) {
      join = p === 'OR' ? 'OR' : 'AND';
      continue;
    }
    const m = /^\s*([A-Za-z][A-Za-z.]*)\s*(!=|>=|<=|=|>|<|~)\s*'([^']*)'\s*$/.exec(p);
    if (!m?.[1] || !m[2] || m[3] === undefined) return undefined;
    clauses.push({ field: m[1], op: m[2], value: m[3] });
  }
  if (clauses.length === 0 || clauses.length > 2) return undefined;
  return { clauses, join };
}

function fieldValues(rec: JsonObject, path: string): Json[] {
  let cur: Json[] = [rec];
  for (const k of path.split('.')) {
    const next: Json[] = [];
    for (const c of cur) {
      const items = Array.isArray(c) ? c : [c];
      for (const it of items) {
        if (it !== null && typeof it === 'object' && !Array.isArray(it) && k in it)
          next.push(it[k] ?? null);
      }
    }
    cur = next;
  }
  return cur.flatMap(v => (Array.isArray(v) ? v : [v]));
}

function matches(rec: JsonObject, c: Clause): boolean {
  const values = fieldValues(rec, c.field);
  return values.some(v => {
    if (v === null || typeof v === 'object') return false;
    const s = String(v);
    if (c.field === 'dateLastModified') {
      const a = Date.parse(s);
      const b = Date.parse(c.value);
      if (Number.isNaN(a) || Number.isNaN(b)) return false;
      return cmp(a, b, c.op);
    }
    if (c.op === '~') return s.toLowerCase().includes(c.value.toLowerCase());
    return cmp(s, c.value, c.op);
  });
}

function cmp<T extends string | number>(a: T, b: T, op: string): boolean {
  switch (op) {
    case '=':
      return a === b;
    case '!=':
      return a !== b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
    default:
      return false;
  }
}

const KNOWN_FIELDS = new Set([
  'sourcedId',
  'status',
  'dateLastModified',
  'role',
  'roles.role',
  'givenName',
  'familyName',
  'identifier',
  'email',
  'username',
  'type',
  'name',
  'title',
]);

/**
 * Start a fake OneRoster server on 127.0.0.1 (random port) for `district`. Rejects when the
 * server cannot listen.
 */
export async function startFakeOneRoster(
  district: SyntheticDistrict,
  opts: FakeOneRosterOptions,
): Promise<FakeOneRoster> {
  const version = opts.version;
  const style = opts.style ?? 'infinite-campus';
  const app0 = opts.appName ?? 'guardiansync';
  const authKind = opts.auth ?? (version === '1.2' ? 'oauth2' : 'oauth1');
  const clientId = opts.clientId ?? 'or-client';
  const clientSecret = opts.clientSecret ?? 'or-secret';
  const ttl = opts.tokenTtlSeconds ?? 3600;
  const maxPageSize = opts.maxPageSize ?? 1000;
  const vpath = version === '1.2' ? 'ims/oneroster/rostering/v1p2' : 'ims/oneroster/v1p1';
  const base =
    style === 'infinite-campus'
      ? `/campus/api/oneroster/${version === '1.2' ? 'v1p2' : 'v1p1'}/${app0}/${vpath}`
      : `/${vpath}`;
  const tokenPath = style === 'infinite-campus' ? '/campus/oauth2/token' : '/oauth/token';
  const roster = new OneRosterDistrict(district, opts);

  const initialSignals: PagingSignals = { link: true, totalCount: true, ...opts.signals };
  const initialQuirks: FakeOneRosterQuirks = { singleObjectPages: false, ...opts.quirks };
  const signals = { ...initialSignals };
  const quirks = { ...initialQuirks };
  const f = {
    failAfterPage: null as number | null,
    repeat: 0,
    dangling: false,
  };
  const tokens = new Map<string, number>();
  const nonces = new Set<string>();
  const stats: FakeOneRosterStats = { requests: 0, byRoute: {}, byStatus: {}, recordsServed: {} };
  const injector = new FaultInjector();
  if (opts.limits) injector.limits(opts.limits);

  const faults: OneRosterFaults = {
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
    signals,
    quirks,
    reset() {
      injector.reset();
      Object.assign(f, { failAfterPage: null, repeat: 0, dangling: false });
      Object.assign(signals, initialSignals);
      Object.assign(quirks, initialQuirks);
    },
  };

  const imsx = (reply: FastifyReply, status: number, minor: string, description: string) =>
    reply.code(status).send({
      imsx_codeMajor: 'failure',
      imsx_severity: 'error',
      imsx_description: description,
      imsx_CodeMinor: {
        imsx_codeMinorField: [
          { imsx_codeMinorFieldName: 'TargetEndSystem', imsx_codeMinorFieldValue: minor },
        ],
      },
    });

  const oauth1Verifier = (method: 'HMAC-SHA1' | 'HMAC-SHA256') =>
    new OAuth({
      consumer: { key: clientId, secret: clientSecret },
      signature_method: method,
      hash_function: (b, k) =>
        createHmac(method === 'HMAC-SHA1' ? 'sha1' : 'sha256', k)
          .update(b)
          .digest('base64'),
    });

  /** Check an OAuth 1.0a `Authorization: OAuth …` header. Returns an error text or undefined. */
  const checkOAuth1 = (req: FastifyRequest): string | undefined => {
    const h = req.headers.authorization ?? '';
    const m = /^OAuth\s+(.+)$/i.exec(h);
    if (!m?.[1]) return 'missing OAuth header';
    const params: Record<string, string> = {};
    for (const part of m[1].split(',')) {
      const kv = /^\s*([A-Za-z_]+)="([^"]*)"\s*$/.exec(part);
      if (kv?.[1] && kv[2] !== undefined) params[kv[1]] = decodeURIComponent(kv[2]);
    }
    const sig = params.oauth_signature;
    const method = params.oauth_signature_method;
    if (params.oauth_consumer_key !== clientId) return 'unknown consumer key';
    if (method !== 'HMAC-SHA1' && method !== 'HMAC-SHA256') return 'unsupported signature method';
    const ts = Number(params.oauth_timestamp);
    if (!Number.isFinite(ts) || Math.abs(Date.now() / 1000 - ts) > 300) return 'stale timestamp';
    const nonce = params.oauth_nonce ?? '';
    if (!nonce || nonces.has(`${ts}:${nonce}`)) return 'nonce reused';
    const data: Record<string, string> = {};
    for (const [k, v] of Object.entries(params))
      if (k.startsWith('oauth_') && k !== 'oauth_signature') data[k] = v;
    const expected = oauth1Verifier(method).getSignature(
      { url: `http://${req.headers.host ?? ''}${req.url}`, method: req.method },
      undefined,
      data as unknown as OAuth.Data,
    );
    const a = Buffer.from(expected);
    const b = Buffer.from(sig ?? '');
    if (a.length !== b.length || !timingSafeEqual(a, b)) return 'bad signature';
    nonces.add(`${ts}:${nonce}`);
    return undefined;
  };

  const app = Fastify({ logger: false });
  await app.register(formbody);
  app.setNotFoundHandler((_req, reply) => imsx(reply, 404, 'unknownobject', 'not found'));
  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 ? err.statusCode : 500;
    return imsx(
      reply,
      status,
      status === 500 ? 'internal_server_error' : 'invalid_data',
      err.message,
    );
  });

  const route = (req: FastifyRequest): string => {
    if (req.url.startsWith(tokenPath)) return 'POST token';
    const path = (req.url.split('?')[0] ?? '').slice(base.length);
    const m = /^\/([a-zA-Z]+)(\/[^/]+)?$/.exec(path);
    if (!m?.[1]) return '404';
    return `${req.method} /${m[1]}${m[2] ? '/{id}' : ''}`;
  };

  app.addHook('onRequest', async (req, reply) => {
    countRequest(stats, route(req));
    if (!req.url.startsWith(`${base}/`)) return;
    const fault = await injector.next();
    if (fault?.kind === 'rate-limit') {
      reply.header('retry-after', fault.retryAfter);
      return imsx(reply, 429, 'server_busy', 'Too many requests');
    }
    if (fault?.kind === 'server-error') {
      return imsx(reply, 500, 'internal_server_error', 'Internal server error');
    }
    if (authKind === 'oauth1') {
      const why = checkOAuth1(req);
      if (why) return imsx(reply, 401, 'unauthorisedrequest', why);
      return;
    }
    const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const token = m?.[1];
    const exp = token === undefined ? undefined : tokens.get(token);
    if (token === undefined || exp === undefined || Date.now() >= exp) {
      if (token !== undefined) tokens.delete(token);
      return imsx(reply, 401, 'unauthorisedrequest', 'invalid or expired access token');
    }
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    countStatus(stats, reply.statusCode);
    return payload;
  });

  // ---- token ---------------------------------------------------------------------------
  app.post(tokenPath, async (req, reply) => {
    if (authKind !== 'oauth2') return reply.code(404).send({ error: 'not_found' });
    if (style === 'infinite-campus') {
      const q = req.query as Record<string, unknown>;
      if (q.appName !== app0)
        return reply.code(400).send({ error: 'invalid_request', error_description: 'appName' });
    }
    const body = (typeof req.body === 'object' && req.body !== null ? req.body : {}) as Record<
      string,
      unknown
    >;
    let id: unknown = body.client_id;
    let secret: unknown = body.client_secret;
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (basic?.[1]) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      id = decoded.slice(0, i);
      secret = decoded.slice(i + 1);
    }
    if (id !== clientId || secret !== clientSecret)
      return reply.code(401).send({ error: 'invalid_client' });
    if (body.grant_type !== 'client_credentials')
      return reply.code(400).send({ error: 'unsupported_grant_type' });
    const token = randomBytes(24).toString('hex');
    tokens.set(token, Date.now() + ttl * 1000);
    return {
      access_token: token,
      token_type: 'bearer',
      expires_in: ttl,
      scope: typeof body.scope === 'string' ? body.scope : 'roster-core.readonly',
    };
  });

  // ---- collections ---------------------------------------------------------------------
  const origin = () => {
    const a = app.server.address() as AddressInfo;
    return `http://127.0.0.1:${a.port}`;
  };

  app.get(`${base}/*`, async (req, reply) => {
    const [pathPart, query = ''] = req.url.split('?');
    const rest = (pathPart ?? '').slice(base.length);
    const m = /^\/([a-zA-Z]+)(?:\/([^/]+))?$/.exec(rest);
    const name = m?.[1] ?? '';
    const coll = COLLECTIONS[name];
    if (!coll) return imsx(reply, 404, 'unknownobject', `unknown collection ${name}`);
    const view = roster.view();
    if (m?.[2] !== undefined) {
      const id = decodeURIComponent(m[2]);
      const rec = coll.pick(view).find(r => r.sourcedId === id);
      if (!rec) return imsx(reply, 404, 'unknownobject', `${name} ${id} not found`);
      return { [SINGLE[name] ?? 'record']: rec };
    }
    const q = new URLSearchParams(query);
    const limitRaw = q.get('limit') ?? '100';
    const offsetRaw = q.get('offset') ?? '0';
    if (!/^\d+$/.test(limitRaw) || !/^\d+$/.test(offsetRaw) || Number(limitRaw) < 1)
      return imsx(reply, 400, 'invalid_data', 'limit and offset must be non-negative integers');
    const limit = Math.min(Number(limitRaw), maxPageSize);
    const offset = Number(offsetRaw);
    let list = coll.pick(view);
    const filter = q.get('filter');
    if (filter !== null) {
      const parsed = parseFilter(filter);
      if (!parsed) return imsx(reply, 400, 'invalid_filter_field', `cannot parse filter ${filter}`);
      const unknown = parsed.clauses.find(c => !KNOWN_FIELDS.has(c.field));
      if (unknown)
        return imsx(reply, 400, 'invalid_filter_field', `unknown filter field ${unknown.field}`);
      list = list.filter(r =>
        parsed.join === 'AND'
          ? parsed.clauses.every(c => matches(r, c))
          : parsed.clauses.some(c => matches(r, c)),
      );
    }
    const pageNo = Math.floor(offset / limit) + 1;
    if (name === 'students' && f.failAfterPage !== null && pageNo > f.failAfterPage)
      return imsx(reply, 500, 'internal_server_error', 'Internal server error');
    const total = list.length;
    let from = offset;
    if (f.repeat > 0 && offset > 0) {
      f.repeat--;
      from = Math.max(0, offset - limit);
    }
    const page = list.slice(from, from + limit);
    stats.recordsServed[name] = (stats.recordsServed[name] ?? 0) + page.length;
    if (signals.totalCount) reply.header('x-total-count', String(total));
    if (signals.link) {
      const link = (off: number, rel: string) => {
        const p = new URLSearchParams(q);
        p.set('limit', String(limit));
        p.set('offset', String(off));
        return `<${origin()}${base}/${name}?${p.toString().replace(/\+/g, '%20')}>; rel="${rel}"`;
      };
      const parts: string[] = [];
      if (offset + limit < total) parts.push(link(offset + limit, 'next'));
      else if (f.dangling) parts.push(link(offset + limit, 'next'));
      if (offset > 0) parts.push(link(Math.max(0, offset - limit), 'prev'));
      parts.push(link(0, 'first'));
      parts.push(link(total > 0 ? Math.floor((total - 1) / limit) * limit : 0, 'last'));
      reply.header('link', parts.join(', '));
    }
    const body: Json = quirks.singleObjectPages && page.length === 1 && page[0] ? page[0] : page;
    return { [coll.key]: body };
  });

  await app.listen({ host: '127.0.0.1', port: opts.port ?? 0 });
  const url = origin();
  roster.setHrefBase(`${url}${base}`);
  return {
    url,
    baseUrl: `${url}${base}`,
    tokenUrl: `${url}${tokenPath}${style === 'infinite-campus' ? `?appName=${app0}` : ''}`,
    clientId,
    clientSecret,
    version,
    roster,
    faults,
    stats,
    close: async () => {
      await app.close();
    },
  };
}
