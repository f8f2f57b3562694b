/**
 * The OneRoster/Skyward HTTP client and paging against the fake servers (real HTTP on
 * loopback): each paging signal on its own, a page that repeats, a last page whose `Link`
 * points past the end, single-object pages, IMSX errors, Retry-After as an HTTP date, the
 * per-district request rate, both ways of sending client credentials, OAuth 1.0a with a
 * filter, and Skyward's `cursor` → `paging.cursor` rewrite.
 */
import { pino } from 'pino';
import {
  encodeRfc3986,
  OneRosterApiError,
  parseLinkHeader,
  RestClient,
  withQuery,
  type RestAuth,
} from '../../src/connectors/oneroster/client.js';
import { oneRosterPages } from '../../src/connectors/oneroster/paging.js';
import { skywardNextUrl, skywardPages } from '../../src/connectors/skyward/index.js';
import { generateDistrict } from '../../src/dev/district-generator.js';
import { sidOf } from '../../src/dev/oneroster-adapter.js';
import { startFakeOneRoster, type FakeOneRoster } from '../../src/dev/oneroster-server.js';
import { startFakeSkyward, type FakeSkyward } from '../../src/dev/skyward-server.js';
import { IncompleteSnapshotError, SisRateLimitError } from '../../src/errors.js';

const logger = pino({ level: 'silent' });
const sis = generateDistrict({ seed: 71, students: 95 });
let or12: FakeOneRoster;
let or11: FakeOneRoster;
let sky: FakeSkyward;
beforeAll(async () => {
  [or12, or11, sky] = await Promise.all([
    startFakeOneRoster(sis, { version: '1.2' }),
    startFakeOneRoster(sis, { version: '1.1', style: 'plain', auth: 'oauth1' }),
    startFakeSkyward(sis),
  ]);
});
afterAll(async () => {
  await Promise.all([or12?.close(), or11?.close(), sky?.close()]);
});
afterEach(() => {
  or12.faults.reset();
  sky.faults.reset();
});

function client(
  f: FakeOneRoster,
  auth?: Partial<RestAuth>,
  extra: Partial<ConstructorParameters<typeof RestClient>[0]> = {},
) {
  const a: RestAuth =
    f.version === '1.1'
      ? {
          type: 'oauth1',
          consumerKey: f.clientId,
          consumerSecret: f.clientSecret,
          signatureMethod: 'HMAC-SHA256',
        }
      : {
          type: 'oauth2-client-credentials',
          tokenUrl: f.tokenUrl,
          clientId: f.clientId,
          clientSecret: f.clientSecret,
          credentials: 'form',
        };
  return new RestClient({
    baseUrl: f.baseUrl,
    auth: { ...a, ...auth } as RestAuth,
    vendor: 'test',
    timeoutMs: 5000,
    retries: 2,
    logger,
    minBackoffMs: 5,
    maxBackoffMs: 20,
    ...extra,
  });
}

async function ids(
  c: RestClient,
  path: string,
  key: string,
  pageSize: number,
  params?: Record<string, string>,
) {
  const out: string[] = [];
  for await (const p of oneRosterPages(c, path, key, { pageSize, params }))
    for (const r of p.records) out.push(String((r as { sourcedId: string }).sourcedId));
  return out;
}

describe('helpers', () => {
  it('parses Link headers (several rels, unquoted)', () => {
    expect(
      parseLinkHeader('<https://a/x?offset=10>; rel="next", <https://a/x?offset=90>; rel=last'),
    ).toEqual({
      next: 'https://a/x?offset=10',
      last: 'https://a/x?offset=90',
    });
    expect(parseLinkHeader(undefined)).toEqual({});
  });
  it('encodes queries per RFC 3986', () => {
    expect(encodeRfc3986("a b'(x)*!")).toBe('a%20b%27%28x%29%2A%21');
    expect(withQuery('https://h/p?x=1', { filter: "role='parent' OR role='guardian'" })).toBe(
      'https://h/p?x=1&filter=role%3D%27parent%27%20OR%20role%3D%27guardian%27',
    );
  });
  it("rewrites Skyward's cursor= into paging.cursor=", () => {
    expect(
      skywardNextUrl(
        '<https://h/API/v1/students?paging.limit=10&cursor=abc>; rel="next"',
        'https://h/API/v1/students',
      ),
    ).toBe('https://h/API/v1/students?paging.limit=10&paging.cursor=abc');
    expect(skywardNextUrl(undefined, 'https://h/')).toBeUndefined();
  });
});

describe('OneRoster paging', () => {
  const all = () => or12.roster.view().students.map(s => sidOf(s));

  it.each([
    ['Link only', { link: true, totalCount: false }],
    ['X-Total-Count only', { link: false, totalCount: true }],
    ['short last page only', { link: false, totalCount: false }],
  ])('reaches the end with %s', async (_name, signals) => {
    Object.assign(or12.faults.signals, signals);
    expect(await ids(client(or12), '/students', 'users', 20)).toEqual(all());
  });

  it('a page repeated once is asked again; twice fails as incomplete', async () => {
    or12.faults.repeatPage(1);
    expect(await ids(client(or12), '/students', 'users', 20)).toEqual(all());
    or12.faults.repeatPage(2);
    await expect(ids(client(or12), '/students', 'users', 20)).rejects.toBeInstanceOf(
      IncompleteSnapshotError,
    );
  });

  it('stops at a last page whose Link points past the end', async () => {
    or12.faults.danglingNextLink(true);
    const before = or12.stats.byRoute['GET /students'] ?? 0;
    expect(await ids(client(or12), '/students', 'users', 19)).toEqual(all());
    expect((or12.stats.byRoute['GET /students'] ?? 0) - before).toBe(Math.ceil(95 / 19) + 1);
  });

  it('accepts a page holding one record as an object', async () => {
    or12.faults.quirks.singleObjectPages = true;
    expect(await ids(client(or12), '/students', 'users', 47)).toEqual(all()); // 47+47+1
  });

  it('turns IMSX error bodies into typed errors', async () => {
    let err: unknown;
    try {
      await client(or12).get('/users', { filter: "shoeSize='9'" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(OneRosterApiError);
    expect((err as OneRosterApiError).status).toBe(400);
    expect((err as OneRosterApiError).retryable).toBe(false);
    expect((err as OneRosterApiError).imsx.codeMinor).toEqual(['invalid_filter_field']);
  });

  it('honours Retry-After given as an HTTP date', async () => {
    or12.faults.rateLimit(1, new Date(Date.now() + 1500).toUTCString());
    const t0 = Date.now();
    await client(or12).get('/orgs', { limit: 1 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
  });

  it('a long Retry-After is not retried early: SisRateLimitError with the server time, one 429', async () => {
    const c = client(or12);
    await c.accessToken();
    or12.faults.rateLimit(1, 3600);
    const t0 = Date.now();
    let err: unknown;
    try {
      await c.get('/orgs', { limit: 1 });
    } catch (e) {
      err = e;
    }
    const t1 = Date.now();
    expect(err).toBeInstanceOf(SisRateLimitError);
    const e = err as SisRateLimitError;
    expect(e.retryAfterMs).toBe(3600_000); // not capped to 60 s
    expect(e.untilMs).toBeGreaterThanOrEqual(t0 + 3600_000);
    expect(e.untilMs).toBeLessThanOrEqual(t1 + 3600_000);
    expect(c.stats().httpByStatus['429']).toBe(1); // no retry before the server's time
  });

  it('a short Retry-After is waited exactly, without the backoff on top', async () => {
    // a backoff of 10 minutes would time the test out if it were added to the 1 s wait
    const c = client(or12, undefined, { minBackoffMs: 600_000, maxBackoffMs: 600_000 });
    await c.accessToken();
    or12.faults.rateLimit(1, 1);
    const res = await c.get('/orgs', { limit: 1 });
    expect(res.status).toBe(200);
    expect(c.stats().httpByStatus['429']).toBe(1);
  });

  it('keeps to the per-district request rate', async () => {
    const c = client(or12, undefined, { maxRequestsPerSecond: 20 });
    await c.accessToken();
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 10 }, () => c.get('/orgs', { limit: 1 })));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400); // 10 requests at 20/s (first one at once)
  });

  it('sends client credentials as Basic or as form fields, with scopes', async () => {
    for (const credentials of ['basic', 'form'] as const) {
      const c = client(or12, {
        credentials,
        scope: 'https://purl.imsglobal.org/spec/or/v1p2/scope/roster.readonly',
      });
      await c.get('/orgs', { limit: 1 });
      expect(c.stats().tokenRequests).toBe(1);
    }
    const bad = client(or12, { clientSecret: 'nope' });
    await expect(bad.get('/orgs')).rejects.toMatchObject({ name: 'ConfigError' });
  });

  it('signs OAuth 1.0a requests, filters and next links included', async () => {
    const c = client(or11);
    const guardians = await ids(c, '/users', 'users', 25, {
      filter: "role='parent' OR role='guardian'",
    });
    const expected = or11.roster
      .view()
      .users.filter(u => u.role === 'parent' || u.role === 'guardian')
      .map(u => sidOf(u));
    expect(guardians).toEqual(expected);
    expect(or11.stats.byStatus['401']).toBeUndefined();
  });
});

describe('Skyward cursor paging', () => {
  const skyClient = () =>
    new RestClient({
      baseUrl: sky.baseUrl,
      auth: {
        type: 'oauth2-password',
        tokenUrl: `${sky.baseUrl}/token`,
        clientId: sky.clientId,
        clientSecret: sky.clientSecret,
        username: sky.username,
        password: sky.password,
      },
      vendor: 'Skyward',
      timeoutMs: 5000,
      retries: 1,
      logger,
      minBackoffMs: 5,
      maxBackoffMs: 20,
    });
  const collect = async (c: RestClient) => {
    const out: number[] = [];
    for await (const p of skywardPages(c, '/v1/students', 'NameId', 30, undefined))
      for (const r of p.records) out.push((r as { NameId: number }).NameId);
    return out;
  };

  it('follows the Link cursor to the end, and stops at a Link to nowhere', async () => {
    const want = sis.students.map(s => s.id);
    expect(await collect(skyClient())).toEqual(want);
    sky.faults.danglingNextLink(true);
    expect(await collect(skyClient())).toEqual(want);
  });

  it('fails as incomplete when the server ignores the cursor', async () => {
    sky.faults.repeatPage(5);
    await expect(collect(skyClient())).rejects.toBeInstanceOf(IncompleteSnapshotError);
  });

  it('refuses a wrong API key with a configuration error', async () => {
    const c = new RestClient({
      baseUrl: sky.baseUrl,
      auth: {
        type: 'oauth2-password',
        tokenUrl: `${sky.baseUrl}/token`,
        clientId: sky.clientId,
        clientSecret: sky.clientSecret,
        username: sky.username,
        password: 'wrong',
      },
      vendor: 'Skyward',
      timeoutMs: 5000,
      retries: 0,
      logger,
    });
    await expect(c.get('/v1/schools')).rejects.toMatchObject({ name: 'ConfigError' });
  });
});
