/**
 * The PowerSchool connector against the fake PowerSchool server (real HTTP on loopback),
 * checked against the generator's ground truth (`expectedRoster`).
 */
import { pino } from 'pino';
import { z } from 'zod';
import { PowerSchoolConnectorConfig } from '../../src/config/district.js';
import { PowerSchoolClient } from '../../src/connectors/powerschool/client.js';
import { PowerSchoolConnector } from '../../src/connectors/powerschool/index.js';
import type { PullContext } from '../../src/connectors/types.js';
import {
  EMERGENCY_RELATIONSHIPS,
  expectedRoster,
  generateDistrict,
  withdrawStudent,
  type RosterPolicy,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import {
  startFakePowerSchool,
  type FakePowerSchool,
  type FakePowerSchoolOptions,
} from '../../src/dev/powerschool-server.js';
import { ConfigError, IncompleteSnapshotError, SisHttpError } from '../../src/errors.js';
import { normalizeEmail, type RosterChunk } from '../../src/mapping/canonical.js';
import type { Reject } from '../../src/models/types.js';

const logger = pino({ level: 'silent' });
const TOKEN_ROUTE = 'POST /oauth/access_token';
const QUERY_ROUTE = 'POST /ws/schema/query/:name';
const CONTACTS_ROUTE = 'GET /ws/contacts/student/:dcid';

/** Servers started by a test; closed in afterAll even when the test failed. */
const servers: FakePowerSchool[] = [];
afterAll(async () => {
  await Promise.all(servers.map(s => s.close()));
});

async function fake(
  d: SyntheticDistrict,
  opts: FakePowerSchoolOptions = {},
): Promise<FakePowerSchool> {
  const f = await startFakePowerSchool(d, opts);
  servers.push(f);
  return f;
}

function connector(
  f: FakePowerSchool,
  cfg: Record<string, unknown> = {},
  secret: string = f.clientSecret,
): PowerSchoolConnector {
  const config = PowerSchoolConnectorConfig.parse({
    kind: 'powerschool',
    baseUrl: f.url,
    clientIdEnv: 'PS_ID',
    clientSecretEnv: 'PS_SECRET',
    pageSize: 50,
    retries: 3,
    timeoutMs: 5000,
    ...cfg,
  });
  return new PowerSchoolConnector(config, {
    clientId: f.clientId,
    clientSecret: secret,
    logger,
    client: { minBackoffMs: 5, maxBackoffMs: 20, maxRetryAfterMs: 2000 },
  });
}

function context(rejects: Reject[] = [], signal = new AbortController().signal): PullContext {
  // records refused only: exclusions (valid records left out by policy) are tested apart
  return { logger, signal, reject: r => void (r.kind !== 'excluded' && rejects.push(r)) };
}

async function pull(
  c: PowerSchoolConnector,
): Promise<{ chunks: RosterChunk[]; rejects: Reject[] }> {
  const rejects: Reject[] = [];
  const chunks: RosterChunk[] = [];
  for await (const chunk of c.readRoster(context(rejects))) chunks.push(chunk);
  return { chunks, rejects };
}

/** Assert a pull equals the generator's ground truth under `policy`. */
function expectMatchesTruth(d: SyntheticDistrict, chunks: RosterChunk[], policy: RosterPolicy) {
  // connector output: guardians without email are delivered (the planner excludes them)
  const truth = expectedRoster(d, { ...policy, requireLogin: false });
  const contactsById = new Map(d.contacts.map(c => [String(c.contactId), c]));

  const students = chunks.flatMap(c => c.students);
  expect(students.map(s => [s.sourcedId, s.uniqueId])).toEqual(
    truth.students.map(s => [String(s.dcid), s.uniqueId]),
  );

  // Per-contactId guardians = the contacts the truth counts for some person.
  const guardianIds = new Set(chunks.flatMap(c => c.guardians.map(g => g.sourcedId)));
  expect(guardianIds).toEqual(new Set(truth.accounts.flatMap(a => a.contactIds.map(String))));

  // (person, student) pairs of the relationships = truth links.
  const pairs = chunks.flatMap(c =>
    c.relationships.map(
      r => `${contactsById.get(r.guardianSourcedId)?.personKey}|${r.studentSourcedId}`,
    ),
  );
  expect(new Set(pairs)).toEqual(new Set(truth.links.map(l => `${l.personKey}|${l.studentDcid}`)));

  for (const chunk of chunks) {
    expect(chunk.relationshipsSupplied).toBe(true);
    const inChunk = new Set(chunk.guardians.map(g => g.sourcedId));
    const studentsInChunk = new Set(chunk.students.map(s => s.sourcedId));
    for (const r of chunk.relationships) {
      expect(inChunk.has(r.guardianSourcedId)).toBe(true);
      expect(studentsInChunk.has(r.studentSourcedId)).toBe(true);
    }
    for (const g of chunk.guardians) {
      const raw = contactsById.get(g.sourcedId);
      expect(normalizeEmail(g.email)).toEqual(normalizeEmail(raw?.email));
      expect(g.givenName).toBe(raw?.firstName);
      expect(g.familyName).toBe(raw?.lastName);
    }
  }
  return { guardianIds };
}

/** Contacts whose every link is emergency-only (no data access, emergency relationship). */
function emergencyOnly(d: SyntheticDistrict): string[] {
  return d.contacts
    .filter(c =>
      c.links.every(l => !l.canAccessData && EMERGENCY_RELATIONSHIPS.includes(l.relationship)),
    )
    .map(c => String(c.contactId));
}

describe('PowerSchool connector — full pulls', () => {
  const d = generateDistrict({ seed: 42, students: 200 });
  let f: FakePowerSchool;
  let bulkChunks: RosterChunk[];

  beforeAll(async () => {
    f = await fake(d);
  });

  it('a full pull (bulk path) equals the ground truth; emergency-only contacts absent', async () => {
    const c = connector(f, { guardianReads: 'bulk' });
    const { chunks, rejects } = await pull(c);
    bulkChunks = chunks;
    expect(rejects).toEqual([]);
    expect(chunks).toHaveLength(4);
    const policy = { requireDataAccess: true, requireCustodial: false };
    const { guardianIds } = expectMatchesTruth(d, chunks, policy);
    const emergency = emergencyOnly(d);
    expect(emergency.length).toBeGreaterThan(0);
    for (const id of emergency) expect(guardianIds.has(id)).toBe(false);
    expect(c.stats().expectedStudents).toBe(200);
    expect(f.stats.byRoute[QUERY_ROUTE]).toBeGreaterThanOrEqual(4);
  });

  it('the per-student path gives the same chunks as the bulk path', async () => {
    const before = f.stats.byRoute[CONTACTS_ROUTE] ?? 0;
    const { chunks, rejects } = await pull(
      connector(f, { guardianReads: 'per-student', contactsConcurrency: 4 }),
    );
    expect(rejects).toEqual([]);
    expect((f.stats.byRoute[CONTACTS_ROUTE] ?? 0) - before).toBe(200);
    expect(chunks).toEqual(bulkChunks);
  });

  it('requireCustodial: the pull equals the truth under that policy', async () => {
    const { chunks } = await pull(
      connector(f, { contacts: { requireDataAccess: true, requireCustodial: true } }),
    );
    const policy = { requireDataAccess: true, requireCustodial: true };
    expectMatchesTruth(d, chunks, policy);
    const strict = chunks.flatMap(c => c.relationships).length;
    const lax = bulkChunks.flatMap(c => c.relationships).length;
    expect(strict).toBeLessThan(lax);
    expect(chunks.flatMap(c => c.relationships).every(r => r.custody === true)).toBe(true);
  });

  it('readSchools returns every school; checkConnection succeeds', async () => {
    const c = connector(f);
    await expect(c.checkConnection()).resolves.toBeUndefined();
    const schools = await c.readSchools(context());
    expect(schools).toEqual(d.schools.map(s => ({ sourcedId: String(s.id), name: s.name })));
  });
});

describe('PowerSchool connector — paging and guardian read paths', () => {
  it('page size respects the plugin maximum from /ws/v1/metadata', async () => {
    const d = generateDistrict({ seed: 7, students: 50 });
    const f = await fake(d, { maxPageSize: 7 });
    // The fake answers 400 to a pagesize above 7: this pull would fail fast if exceeded.
    const { chunks } = await pull(connector(f, { pageSize: 500 }));
    expect(chunks).toHaveLength(8);
    expect(chunks.map(c => c.students.length)).toEqual([7, 7, 7, 7, 7, 7, 7, 1]);
    expect(f.stats.byStatus['400']).toBeUndefined();
    expectMatchesTruth(d, chunks, { requireDataAccess: true, requireCustodial: false });
  });

  it("auto falls back to per-student reads (once) when the PowerQuery is refused; 'bulk' fails", async () => {
    const d = generateDistrict({ seed: 11, students: 60 });
    const f = await fake(d, { bulkAccess: false });
    const { chunks } = await pull(connector(f, { pageSize: 20, guardianReads: 'auto' }));
    expect(f.stats.byRoute[QUERY_ROUTE]).toBe(1);
    expect(f.stats.byRoute[CONTACTS_ROUTE]).toBe(60);
    expectMatchesTruth(d, chunks, { requireDataAccess: true, requireCustodial: false });

    const err: unknown = await pull(connector(f, { pageSize: 20, guardianReads: 'bulk' })).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SisHttpError);
    expect((err as SisHttpError).status).toBe(403);
    expect(f.stats.byRoute[QUERY_ROUTE]).toBe(2);
  });

  it('a student withdrawn mid-pull shifts the pages: IncompleteSnapshotError, not a short snapshot', async () => {
    const d = generateDistrict({ seed: 5, students: 30 });
    const f = await fake(d);
    const c = connector(f, { pageSize: 10 });
    const seen: RosterChunk[] = [];
    const run = async () => {
      for await (const chunk of c.readRoster(context())) {
        seen.push(chunk);
        if (seen.length === 1) withdrawStudent(d, d.students[0]!.id);
      }
    };
    const err: unknown = await run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IncompleteSnapshotError);
    expect((err as Error).message).toMatch(/received 29 unique students.*said 30/);
    expect(seen).toHaveLength(3);
  });
});

describe('PowerSchool connector — HTTP faults', () => {
  const d = generateDistrict({ seed: 3, students: 40 });
  const policy = { requireDataAccess: true, requireCustodial: false };
  let f: FakePowerSchool;
  beforeAll(async () => {
    f = await fake(d);
  });
  afterEach(() => f.faults.reset());

  it('429 with Retry-After in seconds is honoured and recovers', async () => {
    const c = connector(f, { pageSize: 20 });
    f.faults.rateLimit(1, 1);
    const t0 = performance.now();
    const { chunks } = await pull(c);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(900);
    expect(c.stats().httpByStatus['429']).toBe(1);
    expectMatchesTruth(d, chunks, policy);
  });

  it('429 with Retry-After as an HTTP date recovers', async () => {
    const c = connector(f, { pageSize: 20 });
    f.faults.rateLimit(2, new Date(Date.now() + 1000).toUTCString());
    const { chunks } = await pull(c);
    expect(c.stats().httpByStatus['429']).toBe(2);
    expectMatchesTruth(d, chunks, policy);
  });

  it('500 twice recovers by backoff', async () => {
    const c = connector(f, { pageSize: 20 });
    f.faults.serverError(2);
    const { chunks } = await pull(c);
    expect(c.stats().httpByStatus['500']).toBe(2);
    expectMatchesTruth(d, chunks, policy);
  });

  it('500 on every page after 3: throws naming the status after at most 3 chunks', async () => {
    const c = connector(f, { pageSize: 5, retries: 2 });
    f.faults.failStudentsAfterPage(3);
    const chunks: RosterChunk[] = [];
    const err: unknown = await (async () => {
      for await (const chunk of c.readRoster(context())) chunks.push(chunk);
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SisHttpError);
    expect((err as SisHttpError).status).toBe(500);
    expect((err as Error).message).toContain('500');
    expect((err as Error).message).toContain('/ws/v1/district/student');
    expect(chunks.length).toBeLessThanOrEqual(3);
    expect(chunks).toHaveLength(3);
    // 1 attempt + 2 retries on page 4, then it gives up.
    expect(c.stats().httpByStatus['500']).toBe(3);
  });

  it('an expired token mid-pull is renewed exactly once and the pull completes', async () => {
    const c = connector(f, { pageSize: 10, guardianReads: 'per-student', contactsConcurrency: 8 });
    const tokensBefore = f.stats.byRoute[TOKEN_ROUTE] ?? 0;
    const chunks: RosterChunk[] = [];
    for await (const chunk of c.readRoster(context())) {
      chunks.push(chunk);
      if (chunks.length === 2) f.faults.expireTokens();
    }
    expect((f.stats.byRoute[TOKEN_ROUTE] ?? 0) - tokensBefore).toBe(2);
    expect(c.stats().tokenRequests).toBe(2);
    expect(c.stats().httpByStatus['401']).toBe(1);
    expectMatchesTruth(d, chunks, policy);
  });

  it('concurrent requests refused with 401 share one token refresh', async () => {
    const client = new PowerSchoolClient({
      baseUrl: f.url,
      clientId: f.clientId,
      clientSecret: f.clientSecret,
      timeoutMs: 5000,
      retries: 0,
      logger,
    });
    await client.accessToken();
    f.faults.expireTokens();
    f.faults.slowMs(20); // keep all eight in flight together
    const results = await Promise.all(
      Array.from({ length: 8 }, () => client.get('/ws/v1/metadata', z.unknown())),
    );
    expect(results).toHaveLength(8);
    expect(client.stats().tokenRequests).toBe(2);
    expect(client.stats().httpByStatus['401']).toBe(8);
  });

  it('timeouts are retried, then fail as a network SisHttpError', async () => {
    const c = connector(f, { timeoutMs: 100, retries: 1 });
    f.faults.slowMs(300);
    const err: unknown = await pull(c).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SisHttpError);
    expect((err as SisHttpError).status).toBeUndefined();
    expect((err as Error).message).toContain('network error');
    expect(c.stats().httpByStatus['network']).toBe(2);
  });

  it('a cached token is reused and refreshed shortly before it expires', async () => {
    const f2 = await fake(d, { tokenTtlSeconds: 100 });
    let now = Date.now();
    const client = new PowerSchoolClient({
      baseUrl: f2.url,
      clientId: f2.clientId,
      clientSecret: f2.clientSecret,
      timeoutMs: 5000,
      retries: 0,
      logger,
      now: () => now,
    });
    const t1 = await client.accessToken();
    now += 49_000; // margin = min(60 s, ttl/2) = 50 s: still fresh
    expect(await client.accessToken()).toBe(t1);
    expect(client.stats().tokenRequests).toBe(1);
    now += 2_000;
    expect(await client.accessToken()).not.toBe(t1);
    expect(client.stats().tokenRequests).toBe(2);
    expect(f2.stats.byRoute[TOKEN_ROUTE]).toBe(2);
  });

  it('an aborted pull stops between requests', async () => {
    const c = connector(f, { pageSize: 10 });
    const ac = new AbortController();
    const chunks: RosterChunk[] = [];
    const err: unknown = await (async () => {
      for await (const chunk of c.readRoster(context([], ac.signal))) {
        chunks.push(chunk);
        ac.abort(new Error('shutdown'));
      }
    })().catch((e: unknown) => e);
    expect((err as Error).message).toBe('shutdown');
    expect(chunks).toHaveLength(1);
  });

  it('bad credentials fail fast: one token request, no retries, ConfigError', async () => {
    const before = f.stats.byRoute[TOKEN_ROUTE] ?? 0;
    const c = connector(f, { retries: 5 }, 'wrong-secret');
    const err: unknown = await c.checkConnection().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('401');
    expect((err as Error).message).not.toContain('wrong-secret');
    expect((f.stats.byRoute[TOKEN_ROUTE] ?? 0) - before).toBe(1);

    const pullErr: unknown = await pull(connector(f, {}, 'wrong-secret')).catch((e: unknown) => e);
    expect(pullErr).toBeInstanceOf(ConfigError);
  });

  it('a refused request (4xx) is not retried', async () => {
    const client = new PowerSchoolClient({
      baseUrl: f.url,
      clientId: f.clientId,
      clientSecret: f.clientSecret,
      timeoutMs: 5000,
      retries: 5,
      logger,
      minBackoffMs: 5,
      maxBackoffMs: 20,
    });
    const err: unknown = await client
      .get('/ws/v1/nothing-here', z.unknown())
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SisHttpError);
    expect((err as SisHttpError).status).toBe(404);
    expect(client.stats().httpByStatus['404']).toBe(1);
  });
});

describe('PowerSchool connector — response quirks (sis-reference §2.6)', () => {
  // 21 students, pages of 10: the last page holds one student; one school in the district.
  const d = generateDistrict({ seed: 9, students: 21 });
  let baseline: RosterChunk[];
  beforeAll(async () => {
    const f = await fake(d, { quirks: { emptyExpansionsAsString: false } });
    baseline = (await pull(connector(f, { pageSize: 10, guardianReads: 'per-student' }))).chunks;
    expect(baseline.map(c => c.students.length)).toEqual([10, 10, 1]);
  });

  it('single-object pages (students and schools)', async () => {
    const f = await fake(d, { quirks: { singleObjectPages: true } });
    const c = connector(f, { pageSize: 10, guardianReads: 'per-student' });
    expect(d.schools).toHaveLength(1);
    const schools = await c.readSchools(context());
    expect(schools).toEqual([{ sourcedId: String(d.schools[0]!.id), name: d.schools[0]!.name }]);
    const { chunks, rejects } = await pull(c);
    expect(rejects).toEqual([]);
    expect(chunks).toEqual(baseline);
  });

  it('numbers sent as strings', async () => {
    const f = await fake(d, { quirks: { stringNumbers: true } });
    for (const guardianReads of ['per-student', 'bulk']) {
      const { chunks, rejects } = await pull(connector(f, { pageSize: 10, guardianReads }));
      expect(rejects).toEqual([]);
      expect(chunks).toEqual(baseline);
    }
  });

  it('empty expansions as ""', async () => {
    expect(d.students.some(s => s.email === null)).toBe(true); // contact_info will be ""
    const f = await fake(d, { quirks: { emptyExpansionsAsString: true } });
    const { chunks, rejects } = await pull(
      connector(f, { pageSize: 10, guardianReads: 'per-student' }),
    );
    expect(rejects).toEqual([]);
    expect(chunks).toEqual(baseline);
    const noEmail = chunks.flatMap(c => c.students).filter(s => s.email === undefined);
    expect(noEmail.length).toBe(d.students.filter(s => s.email === null).length);
  });

  it('contactAccount as an object, [] or null', async () => {
    expect(d.contacts.some(c => c.account !== null)).toBe(true);
    expect(d.contacts.filter(c => c.account === null).length).toBeGreaterThan(1);
    const f = await fake(d, { quirks: { contactAccountVariants: true } });
    const { chunks, rejects } = await pull(
      connector(f, { pageSize: 10, guardianReads: 'per-student' }),
    );
    expect(rejects).toEqual([]);
    expect(chunks).toEqual(baseline);
  });
});
