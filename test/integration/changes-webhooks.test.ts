/**
 * Webhook delivery of the change feed, end to end: a real receiver (node:http on 127.0.0.1)
 * that the test switches between 503, 200 and never answering; real Redis and BullMQ workers
 * (the harness's, including the `webhooks` worker); a real SQLite store filled by real syncs
 * against the fake PowerSchool. No sleeps: the test waits for receiver and worker events,
 * each with a deadline.
 */
import { EventEmitter } from 'node:events';
import type { Job, Worker } from 'bullmq';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { withdrawStudent } from '../../src/dev/district-generator.js';
import { feedEntry } from '../../src/jobs/change-feed.js';
import {
  DELIVERY_HEADER,
  SIGNATURE_HEADER,
  kickWebhooks,
  setWebhookRetryOptions,
  sweepWebhooks,
  upsertWebhookSchedulers,
  verifyWebhookSignature,
  type DeliverResult,
  type WebhookStatus,
} from '../../src/jobs/webhooks.js';
import { changeLogRepository, type ChangeContext } from '../../src/models/changes/index.js';
import { processMetrics } from '../../src/workers/metrics.js';
import { QueueName } from '../../src/workers/queues.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import {
  startWebhookReceiver,
  until,
  type ReceivedRequest,
  type WebhookReceiver,
} from '../helpers/webhook-receiver.js';

const SECRET = 'whsec_test_0123456789abcdef';
const TIMEOUT_MS = 3000;
const BATCH = 25;
const VIEWER = 'gst_webhook-viewer-token-0123456789abcdefghijklmnop';
const TOKENS: ApiTokenEntry[] = [{ name: 'viewer', sha256: hashToken(VIEWER), role: 'viewer' }];
const CHANGE: ChangeContext = { cause: { kind: 'manual' }, actor: 'test:webhooks' };

const range = (from: number, to: number) =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

describe('change-feed webhooks', () => {
  let receiver: WebhookReceiver;
  let h: Harness;
  let app: ApiServer;
  let base: string;
  let worker: Worker;
  const events = new EventEmitter();
  const failures: Error[] = [];
  const completed: DeliverResult[] = [];
  let parents = 0;

  async function lastSeq(): Promise<number> {
    return (await changeLogRepository(h.store)).lastSeq(h.districtId);
  }

  async function status(): Promise<WebhookStatus> {
    const res = await fetch(`${base}/districts/${h.districtId}/webhook`, {
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    expect(res.status).toBe(200);
    return (await res.json()) as WebhookStatus;
  }

  /** Wait until a delivery job finished with the cursor at `seq` or beyond. */
  function caughtUp(seq: number, what: string): Promise<void> {
    return until(events, ['completed'], () => completed.some(r => r.to >= seq), what);
  }

  const answered200 = () => receiver.requests.filter(r => r.answered === 200);

  async function addParents(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      parents++;
      await h.store.createParent(
        {
          districtId: h.districtId,
          id: `hook-parent-${parents}`,
          givenName: 'Hook',
          familyName: `Parent ${parents}`,
          role: 'Parent',
          status: 'active',
          origin: 'manual',
          sources: [],
          lockedFields: [],
        },
        CHANGE,
      );
    }
  }

  /** `guardian_sync_webhook_deliveries_total{district, outcome}` of this process. */
  async function deliveries(outcome: string): Promise<number> {
    const m = await processMetrics(h.ctx).webhookDeliveries.get();
    return m.values
      .filter(v => v.labels.district === h.districtId && v.labels.outcome === outcome)
      .reduce((a, v) => a + v.value, 0);
  }

  beforeAll(async () => {
    // Short retries for the test (the production policy starts at 5 s).
    setWebhookRetryOptions({ attempts: 1000, backoffMs: 20, maxBackoffMs: 100 });
    receiver = await startWebhookReceiver('fail');
    h = await startHarness({
      students: 40,
      seed: 43,
      district: {
        webhooks: {
          url: receiver.url,
          secretEnv: 'TEST_WEBHOOK_SECRET',
          timeoutMs: TIMEOUT_MS,
          batchSize: BATCH,
        },
      },
    });
    h.ctx.secrets.TEST_WEBHOOK_SECRET = SECRET;
    const w = h.workers.workers.find(x => x.name === QueueName.webhooks);
    if (!w) throw new Error('no webhooks worker');
    worker = w;
    worker.on('failed', (_job, err) => {
      failures.push(err);
      events.emit('failed', err);
    });
    worker.on('completed', (job: Job, result: unknown) => {
      if (job.name === 'deliver') completed.push(result as DeliverResult);
      events.emit('completed', result);
    });
    app = await buildApiServer(h.ctx, { tokens: TOKENS, dashboard: false });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    setWebhookRetryOptions(undefined);
    await app?.close();
    await h?.close();
    await receiver?.close();
  });

  it('delivers every entry in order through a receiver outage, every request signed', async () => {
    // The receiver answers 503: the sync is not held up by it.
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const total = await lastSeq();
    expect(total).toBeGreaterThan(BATCH * 3);
    await kickWebhooks(h.ctx, h.districtId);

    await until(
      receiver.events,
      ['answered'],
      () => receiver.requests.filter(r => r.answered === 503).length >= 3,
      'three 503 answers',
    );
    await until(events, ['failed'], () => failures.length >= 3, 'three failed attempts');

    // While down: the store remembers the failure; nothing was delivered.
    const down = await status();
    expect(down).toMatchObject({
      configured: true,
      urlHost: new URL(receiver.url).host,
      deliveredSeq: 0,
      lastSeq: expect.any(Number) as number,
      lastDeliveredAt: null,
    });
    expect(down.lag).toBe(down.lastSeq);
    expect(down.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect(down.lastError).toMatch(
      new RegExp(`^${h.districtId}:1-${BATCH}: receiver answered HTTP 503$`),
    );
    expect(down.lastAttemptAt).toEqual(expect.any(String));
    expect(JSON.stringify(down)).not.toContain('/hooks/guardian-sync'); // host only, no path
    expect(await deliveries('http_error')).toBeGreaterThanOrEqual(3);

    // The receiver recovers: the next retry delivers everything, in order.
    receiver.mode = 'ok';
    await caughtUp(total, `delivery up to ${total}`);

    const okSeqs = answered200().flatMap(r => r.seqs);
    expect(okSeqs).toEqual(range(1, total)); // each once among the 2xx, in sequence
    const seen = new Set(receiver.requests.flatMap(r => r.seqs));
    for (const s of range(1, total)) expect(seen.has(s)).toBe(true);

    const stored = await (await changeLogRepository(h.store)).list(h.districtId, { limit: 10_000 });
    const bySeq = new Map(stored.map(e => [e.seq, feedEntry(e)]));
    for (const r of receiver.requests) checkRequest(r, bySeq);

    const up = await status();
    expect(up).toMatchObject({
      deliveredSeq: total,
      lastSeq: total,
      lag: 0,
      consecutiveFailures: 0,
      nextAttemptAt: null,
    });
    expect(up.lastError).toMatch(/HTTP 503/); // the last failure stays visible, with its time
    expect(up.lastDeliveredAt).toEqual(expect.any(String));
    expect(up.lastDelivery).toMatch(new RegExp(`^${h.districtId}:\\d+-${total}$`));
    expect(await deliveries('delivered')).toBeGreaterThanOrEqual(Math.ceil(total / BATCH));
    const lag = await processMetrics(h.ctx).webhookLag.get();
    expect(lag.values.find(v => v.labels.district === h.districtId)?.value).toBe(0);
  });

  it('times out a hanging receiver without blocking a sync of the same district', async () => {
    receiver.mode = 'hang';
    const before = await lastSeq();
    await addParents(3);
    await kickWebhooks(h.ctx, h.districtId);
    await until(receiver.events, ['request'], () => receiver.hanging() >= 1, 'a hanging request');

    // A sync of the same district runs to the end while the delivery hangs.
    const student = h.sis.students.find(s => s.enroll_status === 'A');
    if (!student) throw new Error('no active student');
    withdrawStudent(h.sis, student.id);
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(run.counts.student?.deactivate).toBe(1);
    expect((await status()).deliveredSeq).toBe(before); // the receiver still has not answered

    // The hanging attempt ends at the timeout (the sender closes the connection) and is retried.
    await until(
      events,
      ['failed'],
      () => failures.some(e => /no answer within 3000 ms/.test(e.message)),
      'a timed-out attempt',
      TIMEOUT_MS * 3,
    );
    await until(
      receiver.events,
      ['abandoned'],
      () => receiver.requests.some(r => r.abandoned),
      'the sender closing a hung request',
      TIMEOUT_MS * 3,
    );
    const stuck = await status();
    expect(stuck.lastError).toMatch(/no answer within 3000 ms/);
    expect(stuck.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect(stuck.lag).toBeGreaterThan(0);
    expect(await deliveries('timeout')).toBeGreaterThanOrEqual(1);

    receiver.mode = 'ok';
    const total = await lastSeq();
    expect(total).toBeGreaterThan(before + 3); // the parents and the sync's changes
    await caughtUp(total, `delivery up to ${total} after the hang`);
    expect(answered200().flatMap(r => r.seqs)).toEqual(range(1, total));
    expect(await status()).toMatchObject({ deliveredSeq: total, lag: 0, consecutiveFailures: 0 });
  });

  it('the sweep kicks a district whose webhook is behind; schedulers upsert idempotently', async () => {
    await addParents(2);
    const total = await lastSeq();
    expect(await sweepWebhooks(h.ctx)).toEqual([h.districtId]);
    await caughtUp(total, 'delivery kicked by the sweep');
    expect(await sweepWebhooks(h.ctx)).toEqual([]); // caught up: nothing to kick

    await upsertWebhookSchedulers(h.ctx);
    await upsertWebhookSchedulers(h.ctx);
    const ids = (await h.ctx.queues.webhooks.getJobSchedulers(0, -1)).map(s => s.key).sort();
    expect(ids).toEqual(['change-log-prune', 'webhooks-sweep']);
  });
});

/** Every request: one contiguous ascending batch, matching headers, valid signature, entries as stored. */
function checkRequest(r: ReceivedRequest, bySeq: Map<number, unknown>): void {
  const first = r.seqs[0];
  const last = r.seqs.at(-1);
  if (first === undefined || last === undefined) throw new Error('empty delivery');
  expect(r.seqs).toEqual(range(first, last));
  expect(r.seqs.length).toBeLessThanOrEqual(BATCH);
  expect(r.headers[DELIVERY_HEADER.toLowerCase()]).toBe(`test-district:${first}-${last}`);
  expect(r.headers['content-type']).toBe('application/json');
  const sig = r.headers[SIGNATURE_HEADER.toLowerCase()];
  expect(typeof sig).toBe('string');
  expect(verifyWebhookSignature(SECRET, sig as string, r.raw, 300)).toBe(true);
  expect(verifyWebhookSignature('another-secret-0123456789', sig as string, r.raw, 300)).toBe(
    false,
  );
  const body = JSON.parse(r.raw.toString('utf8')) as { districtId: string; entries: unknown[] };
  expect(body.districtId).toBe('test-district');
  expect(body.entries).toEqual(r.seqs.map(s => bySeq.get(s)));
}
