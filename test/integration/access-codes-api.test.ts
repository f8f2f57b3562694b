/**
 * The access-code routes of the admin API over real HTTP (fastify on 127.0.0.1:0, fetch),
 * on a link-less district synced through the real pipeline (Redis, BullMQ, SQLite).
 */
import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { SyntheticLinklessConnector } from '../../src/dev/linkless-connector.js';
import { changeLogRepository, codeRef } from '../../src/models/changes/index.js';
import { processMetrics } from '../../src/workers/metrics.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const TOKENS = {
  admin: 'gst_test-admin-token-ac-0123456789abcdefghijklmnopqrs',
  viewer: 'gst_test-viewer-token-ac-0123456789abcdefghijklmnopqr',
  other: 'gst_test-other-district-ac-0123456789abcdefghijklmnop',
};
type Who = 'none' | keyof typeof TOKENS;
const ENTRIES: ApiTokenEntry[] = [
  { name: 'portal', sha256: hashToken(TOKENS.admin), role: 'admin' },
  { name: 'ops-viewer', sha256: hashToken(TOKENS.viewer), role: 'viewer' },
  {
    name: 'other-portal',
    sha256: hashToken(TOKENS.other),
    role: 'admin',
    districts: ['other-district'],
  },
];
const ErrorBody = z.strictObject({
  code: z.string(),
  message: z.string(),
  requestId: z.string(),
  details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});
const Redeemed = z.object({
  districtId: z.string(),
  parentId: z.string(),
  studentSourcedId: z.string(),
  created: z.boolean(),
  linked: z.boolean(),
});

describe('access-code API routes', () => {
  let h: Harness;
  let app: ApiServer;
  let base: string;

  /** Redemption attempts refused because `budget` was spent (the alert metric). */
  async function tripped(budget: string): Promise<number> {
    const m = await processMetrics(h.ctx).redemptionBudgetTripped.get();
    return m.values.filter(v => v.labels.budget === budget).reduce((a, v) => a + v.value, 0);
  }

  async function call(who: Who, method: string, path: string, body?: unknown) {
    const headers: Record<string, string> = {};
    if (who !== 'none') headers.authorization = `Bearer ${TOKENS[who]}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  }

  beforeAll(async () => {
    h = await startHarness({
      students: 80,
      seed: 41,
      connectorFactory: sis => new SyntheticLinklessConnector(sis),
    });
    app = await buildApiServer(h.ctx, { tokens: ENTRIES, dashboard: false });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  it('settings: viewers read, admins change (override over the file, null clears)', async () => {
    const d = h.districtId;
    expect((await call('none', 'GET', `/districts/${d}/access-codes/settings`)).status).toBe(401);
    expect((await call('other', 'GET', `/districts/${d}/access-codes/settings`)).status).toBe(403);
    const r0 = await call('viewer', 'GET', `/districts/${d}/access-codes/settings`);
    expect(r0.status).toBe(200);
    expect(await r0.json()).toMatchObject({
      effective: { enabled: false },
      file: { enabled: false },
    });
    expect(
      (await call('viewer', 'PATCH', `/districts/${d}/access-codes/settings`, { enabled: true }))
        .status,
    ).toBe(403);
    const r1 = await call('admin', 'PATCH', `/districts/${d}/access-codes/settings`, {
      enabled: true,
      issueTo: 'all',
    });
    expect(r1.status).toBe(200);
    expect(await r1.json()).toMatchObject({
      effective: { enabled: true, issueTo: 'all', defaultRole: 'Parent' },
      override: { enabled: true, issueTo: 'all', updatedBy: 'api:portal' },
    });
    const r2 = await call('admin', 'PATCH', `/districts/${d}/access-codes/settings`, {
      issueTo: null,
    });
    expect(await r2.json()).toMatchObject({ effective: { enabled: true, issueTo: 'unlinked' } });
    const bad = await call('admin', 'PATCH', `/districts/${d}/access-codes/settings`, {
      issueTo: 'some',
    });
    expect(bad.status).toBe(400);
    expect(ErrorBody.parse(await bad.json()).code).toBe('invalid_request');
  });

  it('the sync issues codes (enabled by the API); CSV download streams with BOM', async () => {
    const { run } = await h.sync();
    expect(run.counts.code?.issue).toBe(run.counts.student?.create);
    const res = await call('admin', 'GET', `/districts/${h.districtId}/access-codes.csv`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(
      /^attachment; filename="access-codes-test-district-/,
    );
    const bytes = Buffer.from(await res.arrayBuffer());
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const rows: string[][] = parse(bytes.subarray(3).toString('utf8'));
    expect(rows[0]).toEqual([
      'Unique ID',
      'First Name',
      'Last Name',
      'School',
      'Grade',
      'Access Code',
    ]);
    expect(rows.length - 1).toBe(run.counts.student?.create);
    expect(rows.slice(1).every(r => /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/.test(r[5] ?? ''))).toBe(
      true,
    );
    expect(
      (await call('viewer', 'GET', `/districts/${h.districtId}/access-codes.csv`)).status,
    ).toBe(403);
  });

  it('register over HTTP; code failures are one answer whatever the cause or the token scope', async () => {
    const dl = await call('admin', 'GET', `/districts/${h.districtId}/access-codes.csv`);
    const rows: string[][] = parse(
      Buffer.from(await dl.arrayBuffer())
        .subarray(3)
        .toString('utf8'),
    );
    const [, first, second] = rows;
    const form = { givenName: 'Léa', familyName: 'Dubois', email: 'lea.dubois@example.org' };

    const ok = await call('admin', 'POST', '/access-codes/register', { ...form, code: first?.[5] });
    expect(ok.status).toBe(200);
    expect(Redeemed.parse(await ok.json())).toMatchObject({ created: true, linked: true });

    // reset the second student's code through the API; the old code now fails like an unknown one
    const reset = await call('admin', 'POST', `/districts/${h.districtId}/access-codes/resets`, {
      uniqueIds: [second?.[0]],
    });
    expect(reset.status).toBe(200);
    expect(await reset.json()).toMatchObject({
      scope: 'student',
      revoked: 1,
      issued: 1,
      actor: 'api:portal',
    });

    const answers: { status: number; body: unknown }[] = [];
    const probes: [Who, string][] = [
      ['admin', 'QQQQ-QQQQ-QQQQ'], // unknown
      ['admin', second?.[5] ?? ''], // revoked by the reset
      ['other', first?.[5] ?? ''], // valid code, but outside the token's districts
    ];
    for (const [who, code] of probes) {
      const res = await call(who, 'POST', '/access-codes/register', {
        ...form,
        email: `probe.${answers.length}@example.org`,
        code,
        client: `203.0.113.${answers.length + 1}`,
      });
      const body = ErrorBody.parse(await res.json());
      answers.push({ status: res.status, body: { ...body, requestId: '(varies)' } });
    }
    expect(answers[0]?.status).toBe(400);
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    expect(answers[0]?.body).toMatchObject({ code: 'invalid_access_code' });

    const resets = await call('viewer', 'GET', `/districts/${h.districtId}/access-codes/resets`);
    expect(((await resets.json()) as { items: unknown[] }).items).toHaveLength(1);
  });

  it('throttles one client address with 429 and Retry-After', async () => {
    const form = {
      givenName: 'A',
      familyName: 'B',
      email: 'bot@example.org',
      client: '198.51.100.7',
    };
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 12; i++) {
      const res = await call('admin', 'POST', '/access-codes/register', {
        ...form,
        code: `${String(i).padStart(4, '9')}-ZZZZ-ZZZZ`,
      });
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
      await res.arrayBuffer();
    }
    expect(statuses.slice(0, 10).every(s => s === 400)).toBe(true); // default: 10 per client
    expect(statuses.slice(10)).toEqual([429, 429]);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });

  it('add-child over HTTP links a second student to the registered parent', async () => {
    const dl = await call('admin', 'GET', `/districts/${h.districtId}/access-codes.csv`);
    const rows: string[][] = parse(
      Buffer.from(await dl.arrayBuffer())
        .subarray(3)
        .toString('utf8'),
    );
    const links = (await h.store.getLinks(h.districtId)).filter(l => l.origin === 'access-code');
    const parentId = links[0]?.parentId ?? '';
    const code = rows[3]?.[5];
    const path = `/districts/${h.districtId}/parents/${parentId}/children`;
    const res = await call('admin', 'POST', path, { code });
    expect(res.status).toBe(200);
    expect(Redeemed.parse(await res.json())).toMatchObject({ parentId, linked: true });
    const again = await call('admin', 'POST', path, { code });
    expect(Redeemed.parse(await again.json()).linked).toBe(false);
  });

  it('codes issued and reset over HTTP are logged with the token as actor, never with their value', async () => {
    const d = h.districtId;
    // A student the last sync did not see (so holds no code yet).
    await h.store.reconcileChunk(
      d,
      {
        connector: 'test',
        studentSourcedIds: ['api-new'],
        guardianSourcedIds: [],
        guardianUniqueIds: [],
        emailsNormalized: [],
      },
      () => ({
        students: [
          {
            action: 'create',
            record: {
              districtId: d,
              sourcedId: 'api-new',
              uniqueId: 'API-NEW',
              givenName: 'New',
              familyName: 'Student',
              schoolSourcedIds: [],
              status: 'active',
            },
          },
        ],
        parentCreates: [],
        parentUpdates: [],
        links: [],
        linkRemovals: [],
        rejects: [],
        guardianAccounts: {},
      }),
      { dryRun: false },
    );
    const issue = await call('admin', 'POST', `/districts/${d}/access-codes/issue`);
    expect(issue.status).toBe(200);
    expect(await issue.json()).toMatchObject({ issued: 1 });
    const reset = await call('admin', 'POST', `/districts/${d}/access-codes/resets`, {
      uniqueIds: ['API-NEW'],
    });
    const r = z
      .object({ id: z.string(), codes: z.array(z.object({ code: z.string() })) })
      .parse(await reset.json());
    const log = await changeLogRepository(h.store);
    const entries = await log.list(d, { studentSourcedId: 'api-new', entity: 'code', limit: 100 });
    expect(entries.map(e => [e.action, e.cause.kind, e.cause.id, e.actor])).toEqual([
      ['create', 'code-issue', undefined, 'api:portal'],
      ['deactivate', 'code-reset', r.id, 'api:portal'],
      ['create', 'code-reset', r.id, 'api:portal'],
    ]);
    const fresh = r.codes[0]?.code ?? '';
    expect(entries[2]?.entityId).toBe(codeRef(fresh.replace(/-/g, '')));
    expect(entries[1]?.entityId).toBe(entries[0]?.entityId); // the first code, revoked
    const text = JSON.stringify(entries);
    expect(text).not.toContain(fresh);
    expect(text).not.toContain(fresh.replace(/-/g, ''));
  });

  // Last: it spends the admin token's failure budget.
  it('a new client value on every request does not dodge the token budget; the trip is counted', async () => {
    const before = await tripped('token');
    const statuses: number[] = [];
    // Default: 200 failures per token per 15 min (earlier tests used a few of them).
    for (let i = 0; i < 260 && !statuses.includes(429); i++) {
      const res = await call('admin', 'POST', '/access-codes/register', {
        code: `${String(i).padStart(4, '6')}-YYYY-YYYY`,
        givenName: 'A',
        familyName: 'B',
        email: 'rotate@example.org',
        client: `rotating-${i}`,
      });
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    console.log(`token budget: ${statuses.filter(s => s === 400).length} guesses evaluated`);
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.filter(s => s === 400).length).toBeLessThanOrEqual(200);
    expect(await tripped('token')).toBe(before + 1);
  });
});
