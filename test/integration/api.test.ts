/**
 * The admin/status API over real HTTP (fastify listening on 127.0.0.1:0, requests with
 * fetch) against the real pipeline: fake PowerSchool, SQLite, Redis, BullMQ workers.
 */
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { z } from 'zod';
import { createApp } from '../../src/app.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { withdrawStudent } from '../../src/dev/district-generator.js';
import { buildApiServer } from '../../src/api/server.js';
import { ROUTE_PLUGINS, type ApiRoutes, type ApiServer } from '../../src/api/routes/index.js';
import { requireRole } from '../../src/api/auth.js';
import { waitForRun } from '../../src/jobs/sync.js';
import type { SyncRun } from '../../src/models/types.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { RunDetail } from '../../src/shared/api-schemas.js';
import { parsePrometheusText, sumOf } from '../helpers/prometheus.js';

const TOKENS = {
  admin: 'gst_test-admin-token-0123456789abcdefghijklmnopqrstuv',
  viewer: 'gst_test-viewer-token-0123456789abcdefghijklmnopqrstu',
  other: 'gst_test-other-district-admin-0123456789abcdefghijklm',
};
type Who = 'none' | keyof typeof TOKENS;
const WHO: Who[] = ['none', 'viewer', 'admin', 'other'];

const ENTRIES: ApiTokenEntry[] = [
  { name: 'ops-admin', sha256: hashToken(TOKENS.admin), role: 'admin' },
  { name: 'ops-viewer', sha256: hashToken(TOKENS.viewer), role: 'viewer' },
  {
    name: 'other-admin',
    sha256: hashToken(TOKENS.other),
    role: 'admin',
    districts: ['other-district'],
  },
];

const RunBody = z.looseObject({ id: z.string(), status: z.string(), districtId: z.string() });
const TriggerBody = z.object({ started: z.boolean(), run: RunBody });
const ErrorBody = z.strictObject({
  code: z.string(),
  message: z.string(),
  requestId: z.string(),
  details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

/** Test-only routes: a request that waits until the test releases it (graceful shutdown). */
function slowRoutes(gate: { entered: () => void; release: Promise<void> }): ApiRoutes {
  return app => {
    app.get('/test/slow', async request => {
      requireRole(request, 'viewer');
      gate.entered();
      await gate.release;
      return { done: true };
    });
  };
}

describe('admin/status API over HTTP', () => {
  let h: Harness;
  let app: ApiServer;
  let base: string;
  let firstRun: SyncRun;

  async function call(
    who: Who,
    method: string,
    path: string,
    init: { body?: string; headers?: Record<string, string> } = {},
  ) {
    const headers: Record<string, string> = { ...init.headers };
    if (who !== 'none') headers.authorization = `Bearer ${TOKENS[who]}`;
    if (init.body !== undefined) headers['content-type'] ??= 'application/json';
    return fetch(`${base}${path}`, { method, headers, body: init.body });
  }

  /** Trigger through the API as admin and wait for the run to finish. */
  async function syncViaApi(dryRun = false): Promise<SyncRun> {
    const res = await call('admin', 'POST', `/districts/${h.districtId}/syncs`, {
      body: JSON.stringify({ dryRun }),
    });
    expect(res.status).toBe(202);
    const { run } = TriggerBody.parse(await res.json());
    return waitForRun(h.ctx, run.id, { timeoutMs: 30000, intervalMs: 25 });
  }

  beforeAll(async () => {
    h = await startHarness({ students: 300, seed: 23 });
    app = await buildApiServer(h.ctx, { tokens: ENTRIES, bodyLimit: 4096 });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    firstRun = (await h.sync()).run;
    expect(firstRun.status).toBe('succeeded');
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  it('answers every route with 401 / 403 / 2xx by token (auth matrix)', async () => {
    const d = h.districtId;
    const r = firstRun.id;
    // expected status per caller: none, viewer, admin, other-district admin
    const matrix: [string, string, [number, number, number, number], string?][] = [
      ['GET', '/healthz', [200, 200, 200, 200]],
      ['GET', '/readyz', [401, 200, 200, 200]],
      ['GET', '/districts', [401, 200, 200, 200]],
      ['GET', `/districts/${d}`, [401, 200, 200, 403]],
      ['GET', `/districts/${d}/runs`, [401, 200, 200, 403]],
      ['POST', `/districts/${d}/syncs`, [401, 403, 202, 403], '{"dryRun":true}'],
      ['GET', `/runs/${r}`, [401, 200, 200, 403]],
      ['GET', `/runs/${r}/rejects`, [401, 200, 200, 403]],
      ['GET', `/runs/${r}/rejects.csv`, [401, 200, 200, 403]],
      ['POST', `/runs/${r}/approve`, [401, 403, 409, 403]],
      ['POST', `/runs/${r}/discard`, [401, 403, 409, 403]],
      ['POST', `/runs/${r}/cancel`, [401, 403, 409, 403]],
      ['GET', '/metrics', [401, 200, 200, 403]],
      ['GET', '/admin/queues', [401, 403, 200, 403]],
      ['GET', '/admin/queues/api/queues', [401, 403, 200, 403]],
      ['GET', '/docs/json', [401, 200, 200, 200]],
      ['GET', '/no/such/route', [401, 404, 404, 404]],
    ];
    const failures: string[] = [];
    for (const [method, path, expected, body] of matrix) {
      for (const [i, who] of WHO.entries()) {
        const res = await call(who, method, path, body ? { body } : {});
        const text = await res.text();
        if (res.status !== expected[i])
          failures.push(`${method} ${path} as ${who}: ${res.status} (want ${expected[i]}) ${text}`);
        if (res.status >= 400) {
          // every error is the JSON error body, never a stack
          const err = ErrorBody.safeParse(JSON.parse(text));
          if (!err.success) failures.push(`${method} ${path} as ${who}: not an error body`);
          expect(text).not.toMatch(/\bat .*\.(ts|js):\d+/);
        }
        if (res.status === 202) {
          const { run } = TriggerBody.parse(JSON.parse(text));
          await waitForRun(h.ctx, run.id, { timeoutMs: 30000, intervalMs: 25 });
        }
      }
    }
    expect(failures).toEqual([]);

    // the other district's token sees no district in the list
    const list = z.object({ items: z.array(z.object({ id: z.string() })) });
    const mine = list.parse(await (await call('viewer', 'GET', '/districts')).json());
    const theirs = list.parse(await (await call('other', 'GET', '/districts')).json());
    expect(mine.items.map(x => x.id)).toEqual([d]);
    expect(theirs.items).toEqual([]);
  });

  it('401 tells browsers to ask for Basic credentials on the dashboard, and Basic works', async () => {
    const res = await call('none', 'GET', '/admin/queues');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
    const api = await call('none', 'GET', '/districts');
    expect(api.headers.get('www-authenticate')).toMatch(/^Bearer /);
    const basic = `Basic ${Buffer.from(`:${TOKENS.admin}`).toString('base64')}`;
    const page = await call('none', 'GET', '/admin/queues', { headers: { authorization: basic } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('guardian-sync');
    const queues = await call('none', 'GET', '/admin/queues/api/queues', {
      headers: { authorization: basic },
    });
    const names = z
      .object({ queues: z.array(z.object({ name: z.string() })) })
      .parse(await queues.json())
      .queues.map(q => q.name);
    expect(names).toEqual(
      expect.arrayContaining(['sync-trigger', 'roster-pull', 'roster-apply', 'roster-finalize']),
    );
    const wrong = `Basic ${Buffer.from(`admin:not-the-token`).toString('base64')}`;
    expect(
      (await call('none', 'GET', '/admin/queues', { headers: { authorization: wrong } })).status,
    ).toBe(401);
  });

  it('50 concurrent triggers for one district start exactly one run', async () => {
    const before = await h.store.listRuns(h.districtId, 1000);
    // Pause the pull queue so the run stays active while all 50 requests arrive.
    await h.ctx.queues.pull.pause();
    let responses: { status: number; body: z.infer<typeof TriggerBody> }[];
    try {
      responses = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const res = await call('admin', 'POST', `/districts/${h.districtId}/syncs`);
          const json: unknown = await res.json();
          if (res.status >= 300) throw new Error(`${res.status} ${JSON.stringify(json)}`);
          return { status: res.status, body: TriggerBody.parse(json) };
        }),
      );
    } finally {
      await h.ctx.queues.pull.resume();
    }
    const started = responses.filter(r => r.body.started);
    expect(started).toHaveLength(1);
    expect(started[0]?.status).toBe(202);
    expect(responses.filter(r => r.status === 200)).toHaveLength(49);
    const ids = new Set(responses.map(r => r.body.run.id));
    expect(ids.size).toBe(1);
    const after = await h.store.listRuns(h.districtId, 1000);
    expect(after.length - before.length).toBe(1);
    const [runId] = [...ids];
    const done = await waitForRun(h.ctx, runId ?? '', { timeoutMs: 30000, intervalMs: 25 });
    expect(done.status).toBe('succeeded');
    expect(done.trigger).toBe('api');
  });

  it('shows a district with schedule, last run and no active run', async () => {
    const res = await call('viewer', 'GET', `/districts/${h.districtId}`);
    expect(res.status).toBe(200);
    const body = z
      .object({
        id: z.string(),
        connector: z.object({ kind: z.string(), baseUrl: z.string() }),
        lastRun: RunBody,
        activeRun: z.null(),
        schedule: z.null(),
        syncMode: z.string(),
      })
      .parse(await res.json());
    const [latest] = await h.store.listRuns(h.districtId, 1);
    expect(body.lastRun.id).toBe(latest?.id);
    expect(body.connector.kind).toBe('powerschool');
    expect(body.syncMode).toBe('normal');
    expect(JSON.stringify(body)).not.toMatch(/PS_SECRET|PS_ID|clientSecret/);
  });

  it('says how long a run waited in queues: before its pull, and its chunks before apply', async () => {
    const res = await call('viewer', 'GET', `/runs/${firstRun.id}`);
    expect(res.status).toBe(200);
    const body = RunDetail.parse(await res.json());
    const stored = await h.store.getRun(firstRun.id);
    expect(body.queueWait).toEqual({
      pullMs: Date.parse(stored?.startedAt ?? '') - Date.parse(stored?.createdAt ?? ''),
      queued: false,
      applyAvgMs: stored?.timings['applyWait.avg'],
      applyMaxMs: stored?.timings['applyWait.max'],
    });
    // every chunk recorded its wait: a finite average no longer than the longest
    expect(body.queueWait?.applyAvgMs).toBeGreaterThanOrEqual(0);
    expect(body.queueWait?.applyMaxMs).toBeGreaterThanOrEqual(body.queueWait?.applyAvgMs ?? 0);
    // a finished run has no worker to hear from
    expect(body.stalled).toBeUndefined();
  });

  it('serves rejects as pages and as a CSV download with formula cells neutralised', async () => {
    const run = firstRun;
    const extra = [
      { entity: 'student' as const, recordId: '=HYPERLINK("x")', reason: 'test reject one' },
      { entity: 'guardian' as const, recordId: '1234', reason: '+bad, "quoted"' },
    ];
    await h.store.addRejects(run.id, extra);
    const stored = await h.store.listRejects(run.id, 0, 100000);
    const page = await call('viewer', 'GET', `/runs/${run.id}/rejects?offset=0&limit=1`);
    expect(page.status).toBe(200);
    const body = z
      .object({ items: z.array(z.object({ recordId: z.string() })), limit: z.number() })
      .parse(await page.json());
    expect(body.items).toHaveLength(1);
    expect(body.items[0]?.recordId).toBe(stored[0]?.recordId);

    const csv = await call('viewer', 'GET', `/runs/${run.id}/rejects.csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    expect(csv.headers.get('content-disposition')).toContain(`rejects-${run.id}.csv`);
    const text = await csv.text();
    const lines = text.trim().split('\n');
    expect(lines[0]).toBe('entity,recordId,reason,kind');
    expect(lines).toHaveLength(stored.length + 1);
    expect(text).toContain(`student,"'=HYPERLINK(""x"")",test reject one`);
    expect(text).toContain(`guardian,1234,"'+bad, ""quoted"""`);

    const bad = await call('viewer', 'GET', `/runs/${run.id}/rejects?limit=5000`);
    expect(bad.status).toBe(400);
    const err = ErrorBody.parse(await bad.json());
    expect(err.code).toBe('invalid_request');
    expect(err.details?.[0]?.path).toBe('querystring/limit');
  });

  it('holds a run that withdraws >10 % of students; discard keeps them, approve applies', async () => {
    const victims = h.sis.students.filter(s => s.enroll_status === 'A').slice(0, 40);
    for (const s of victims) withdrawStudent(h.sis, s.id);
    const ids = victims.map(s => String(s.id)).sort();

    const held = await syncViaApi();
    expect(held.status).toBe('needs-approval');
    const detail = z
      .object({
        status: z.string(),
        counts: z.record(z.string(), z.record(z.string(), z.number())),
        held: z.object({ students: z.number() }),
        heldLists: z.object({ students: z.string(), links: z.string() }),
      })
      .parse(await (await call('viewer', 'GET', `/runs/${held.id}`)).json());
    expect(detail.held.students).toBe(40);
    // held changes are reported as held, never as applied (issue 18 §4b)
    expect(detail.counts.student).toEqual({ 'deactivate-held': 40 });
    expect(detail.heldLists.students).toBe(`/runs/${held.id}/held/students`);
    // the held students, page by page, with names and Unique IDs
    const HeldPage = z.object({
      total: z.number(),
      items: z.array(
        z.object({
          kind: z.string(),
          studentSourcedId: z.string(),
          studentUniqueId: z.string(),
          studentName: z.string(),
          reason: z.string(),
        }),
      ),
    });
    const listed: string[] = [];
    for (let offset = 0; offset < 40; offset += 15) {
      const res = await call(
        'viewer',
        'GET',
        `/runs/${held.id}/held/students?offset=${offset}&limit=15`,
      );
      expect(res.status).toBe(200);
      const body = HeldPage.parse(await res.json());
      expect(body.total).toBe(40);
      expect(body.items.length).toBe(Math.min(15, 40 - offset));
      listed.push(...body.items.map(i => i.studentSourcedId));
    }
    expect(listed.sort()).toEqual(ids);
    const victim = victims[0]!;
    const csv = await call('viewer', 'GET', `/runs/${held.id}/held/students.csv`);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trim().split('\n');
    expect(lines[0]).toBe(
      'kind,studentSourcedId,studentUniqueId,studentName,parentId,parentUniqueId,parentName,parentEmail,reason',
    );
    expect(lines).toHaveLength(41);
    const stored = (await h.store.getStudents(h.districtId)).find(
      s => s.sourcedId === String(victim.id),
    )!;
    expect(lines).toContain(
      `student,${stored.sourcedId},${stored.uniqueId},${stored.givenName} ${stored.familyName},,,,,not in the SIS roster as an active student`,
    );
    const links = await call('viewer', 'GET', `/runs/${held.id}/held/links?limit=1000`);
    expect(links.status).toBe(200);
    const linkBody = z
      .object({
        total: z.number(),
        items: z.array(z.object({ parentId: z.string(), parentName: z.string() })),
      })
      .parse(await links.json());
    expect(linkBody.items).toHaveLength(linkBody.total);
    expect(linkBody.total).toBeGreaterThan(0);

    const activeIds = async () => new Set(await h.store.listActiveStudentIds(h.districtId));
    const discard = await call('admin', 'POST', `/runs/${held.id}/discard`);
    expect(discard.status).toBe(200);
    expect(z.object({ run: RunBody }).parse(await discard.json()).run.status).toBe('discarded');
    const afterDiscard = await activeIds();
    for (const id of ids) expect(afterDiscard.has(id)).toBe(true);
    const again = await call('admin', 'POST', `/runs/${held.id}/approve`);
    expect(again.status).toBe(409);
    expect(ErrorBody.parse(await again.json()).code).toBe('run_not_held');

    const held2 = await syncViaApi();
    expect(held2.status).toBe('needs-approval');
    const approve = await call('admin', 'POST', `/runs/${held2.id}/approve`);
    expect(approve.status).toBe(200);
    expect(z.object({ run: RunBody }).parse(await approve.json()).run.status).toBe('succeeded');
    const afterApprove = await activeIds();
    for (const id of ids) expect(afterApprove.has(id)).toBe(false);
    expect((await h.store.getRun(held2.id))?.status).toBe('succeeded');
  });

  it('metrics parse and move after a run', async () => {
    const scrape = async () => {
      const res = await call('viewer', 'GET', '/metrics');
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      return parsePrometheusText(await res.text());
    };
    const dl = { district: h.districtId };
    const before = await scrape();
    const succeeded = (s: typeof before) =>
      sumOf(s, 'guardian_sync_runs_total', { ...dl, status: 'succeeded', dry_run: 'false' });
    const http200 = (s: typeof before) =>
      sumOf(s, 'guardian_sync_sis_http_requests_total', { ...dl, status: '200' });
    const finalizeJobs = (s: typeof before) =>
      sumOf(s, 'guardian_sync_job_duration_seconds_count', { queue: 'roster-finalize' });

    const run = await syncViaApi();
    expect(run.status).toBe('succeeded');
    // Workers publish their metrics to Redis shortly after each change; wait for it.
    const deadline = Date.now() + 10000;
    let after = await scrape();
    const moved = (s: typeof before) =>
      succeeded(s) > succeeded(before) && finalizeJobs(s) > finalizeJobs(before);
    while (!moved(after) && Date.now() < deadline) {
      await new Promise(r => setTimeout(r, 50));
      after = await scrape();
    }
    expect(succeeded(after)).toBe(succeeded(before) + 1);
    expect(http200(after)).toBeGreaterThan(http200(before));
    expect(finalizeJobs(after)).toBeGreaterThan(finalizeJobs(before));
    // approvals/discards of the held runs above were counted
    expect(sumOf(after, 'guardian_sync_held_run_decisions_total', dl)).toBe(2);
    const created = (await h.store.listRuns(h.districtId, 1000))
      .filter(r => !r.dryRun)
      .reduce((n, r) => n + (r.counts.student?.create ?? 0), 0);
    expect(created).toBeGreaterThan(0);
    expect(
      sumOf(after, 'guardian_sync_records_processed_total', {
        ...dl,
        entity: 'student',
        action: 'create',
      }),
    ).toBe(created);
    expect(
      after.some(
        s =>
          s.name === 'guardian_sync_queue_jobs' &&
          s.labels.queue === 'roster-apply' &&
          s.labels.state === 'completed',
      ),
    ).toBe(true);

    // A second API process (its own context and registry) sees the worker's figures through
    // the snapshots the worker publishes to Redis.
    const ctx2 = await createApp({
      env: h.ctx.env,
      logger: pino({ level: 'silent' }),
      districts: [...h.ctx.districts.values()],
      secrets: h.ctx.secrets,
      store: h.store,
    });
    const api2 = await buildApiServer(ctx2, { tokens: ENTRIES, dashboard: false });
    const url2 = await api2.listen({ host: '127.0.0.1', port: 0 });
    try {
      const scrape2 = async () => {
        const res = await fetch(`${url2}/metrics`, {
          headers: { authorization: `Bearer ${TOKENS.viewer}` },
        });
        return parsePrometheusText(await res.text());
      };
      const until = Date.now() + 5000; // the worker publishes within ~200 ms of a change
      let other = await scrape2();
      while (succeeded(other) < succeeded(after) && Date.now() < until) {
        await new Promise(r => setTimeout(r, 50));
        other = await scrape2();
      }
      expect(succeeded(other)).toBe(succeeded(after));
      expect(http200(other)).toBe(http200(after));
    } finally {
      await api2.close();
      await ctx2.close();
    }

    const lag = after.find(
      s => s.name === 'guardian_sync_reconcile_lag_seconds' && s.labels.district === h.districtId,
    );
    expect(lag?.value).toBeGreaterThanOrEqual(0);
    expect(lag?.value).toBeLessThan(60);
  });

  it('answers bad requests with stable JSON errors and the request id', async () => {
    const path = `/districts/${h.districtId}/syncs`;
    const badJson = await call('admin', 'POST', path, {
      body: '{"dryRun":',
      headers: { 'x-request-id': 'req-abc.123' },
    });
    expect(badJson.status).toBe(400);
    expect(badJson.headers.get('x-request-id')).toBe('req-abc.123');
    const e1 = ErrorBody.parse(await badJson.json());
    expect(e1).toMatchObject({ code: 'invalid_json', requestId: 'req-abc.123' });

    const wrongType = await call('admin', 'POST', path, { body: '{"dryRun":"yes"}' });
    expect(wrongType.status).toBe(400);
    const e2 = ErrorBody.parse(await wrongType.json());
    expect(e2.code).toBe('invalid_request');
    expect(e2.details?.[0]?.path).toBe('body/dryRun');
    expect(wrongType.headers.get('x-request-id')).toBe(e2.requestId);

    const tooBig = await call('admin', 'POST', path, {
      body: JSON.stringify({ dryRun: false, pad: 'x'.repeat(10000) }),
    });
    expect(tooBig.status).toBe(413);
    expect(ErrorBody.parse(await tooBig.json()).code).toBe('payload_too_large');

    // an unsafe client request id is replaced
    const unsafe = await call('viewer', 'GET', '/districts', {
      headers: { 'x-request-id': 'bad id\twith spaces' },
    });
    expect(unsafe.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await h.store.findActiveRun(h.districtId)).toBeUndefined();
  });

  it('publishes an OpenAPI document generated from the route schemas', async () => {
    const res = await call('viewer', 'GET', '/docs/json');
    const doc = z
      .object({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) })
      .parse(await res.json());
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/healthz',
        '/readyz',
        '/districts',
        '/districts/{id}',
        '/districts/{id}/syncs',
        '/districts/{id}/runs',
        '/runs/{id}',
        '/runs/{id}/rejects',
        '/runs/{id}/rejects.csv',
        '/runs/{id}/approve',
        '/runs/{id}/discard',
        '/metrics',
      ]),
    );
    expect(Object.keys(doc.paths).some(p => p.startsWith('/admin/queues'))).toBe(false);
    const ui = await call('viewer', 'GET', '/docs');
    expect([200, 302]).toContain(ui.status);
  });

  it('never logs tokens, emails, names or query strings', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logged = await buildApiServer(
      { ...h.ctx, logger: pino({ level: 'info' }, sink) },
      {
        tokens: ENTRIES,
        dashboard: false,
        routes: [
          ...ROUTE_PLUGINS,
          {
            name: 'echo',
            routes: a => {
              a.post('/test/log', request => {
                requireRole(request, 'viewer');
                request.log.info(
                  { parent: { email: 'jane@example.org', givenName: 'Jane', familyName: 'Doe' } },
                  'a parent',
                );
                return { ok: true };
              });
            },
          },
        ],
      },
    );
    const url = await logged.listen({ host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${url}/test/log?q=Jane+Doe`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKENS.viewer}`, 'x-request-id': 'log-test-1' },
      });
      expect(res.status).toBe(200);
      await fetch(`${url}/districts?search=Jane`, {
        headers: { authorization: `Bearer ${TOKENS.admin}` },
      });
    } finally {
      await logged.close();
    }
    const all = lines.join('');
    expect(all).toContain('"reqId":"log-test-1"');
    expect(all).toContain('"tokenName":"ops-viewer"');
    expect(all).toContain('/test/log');
    for (const secret of [TOKENS.viewer, TOKENS.admin, 'jane@example.org', 'Jane', 'Doe'])
      expect(all).not.toContain(secret);
  });

  it('shuts down gracefully: stops accepting, finishes the request in flight', async () => {
    let entered!: () => void;
    const inHandler = new Promise<void>(r => (entered = r));
    let release!: () => void;
    const gate = { entered, release: new Promise<void>(r => (release = r)) };
    const server = await buildApiServer(h.ctx, {
      tokens: ENTRIES,
      dashboard: false,
      routes: [{ name: 'slow', routes: slowRoutes(gate) }],
    });
    const url = await server.listen({ host: '127.0.0.1', port: 0 });
    const inflight = fetch(`${url}/test/slow`, {
      headers: { authorization: `Bearer ${TOKENS.viewer}`, connection: 'close' },
    });
    await inHandler;
    const closing = server.close();
    // new connections are refused once the listener is closed
    const deadline = Date.now() + 5000;
    let refused = false;
    while (!refused && Date.now() < deadline) {
      try {
        await fetch(`${url}/healthz`, { headers: { connection: 'close' } });
        await new Promise(r => setTimeout(r, 20));
      } catch {
        refused = true;
      }
    }
    expect(refused).toBe(true);
    release();
    const res = await inflight;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ done: true });
    await closing;
  });
});
