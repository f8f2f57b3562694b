/**
 * SIS rate limits (issue 19, docs/decisions/0007): a 429 whose `Retry-After` is longer than a
 * client waits in line reschedules the pull job to the server's time (capped by
 * `SIS_RETRY_AFTER_MAX_SECONDS`) without using an attempt or holding a worker slot; the run
 * shows "waiting for SIS until …" in the store, the API shape and the CLI. Real fake
 * PowerSchool on loopback, real Redis and BullMQ, real SQLite.
 */
import { Job } from 'bullmq';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken } from '../../src/config/api-tokens.js';
import { formatRun } from '../../src/cli/format.js';
import { MAX_RATE_LIMIT_RESCHEDULES, triggerSync, waitForRun } from '../../src/jobs/sync.js';
import type { SyncRun } from '../../src/models/types.js';
import { jobId } from '../../src/workers/queues.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const TOKEN = 'gst_test-viewer-token-0123456789abcdefghijklmnopqrstu';

/** Poll the store until the run records its `reschedules`-th wait; rejects after `ms`. */
async function waitingRun(
  h: Harness,
  runId: string,
  reschedules = 1,
  ms = 20000,
): Promise<SyncRun> {
  const deadline = Date.now() + ms;
  for (;;) {
    const run = await h.ctx.store.getRun(runId);
    if ((run?.waiting?.reschedules ?? 0) >= reschedules) return run as SyncRun;
    if (run && !['queued', 'running'].includes(run.status))
      throw new Error(`run ${runId} ended ${run.status} without waiting: ${run.error ?? ''}`);
    if (Date.now() > deadline) throw new Error(`run ${runId} never recorded a wait`);
    await new Promise(r => setTimeout(r, 25));
  }
}

describe('a SIS answering 429 with a long Retry-After', () => {
  let h: Harness;
  let app: ApiServer;
  let base: string;
  beforeAll(async () => {
    h = await startHarness({
      students: 40,
      seed: 19,
      env: { SIS_RETRY_AFTER_MAX_SECONDS: '1800' },
    });
    app = await buildApiServer(h.ctx, {
      tokens: [{ name: 'ops', sha256: hashToken(TOKEN), role: 'viewer' }],
      bodyLimit: 4096,
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  const scenario = async (retryAfterSeconds: number) => {
    h.fake.faults.rateLimit(1, retryAfterSeconds);
    const t0 = Date.now();
    const { run } = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    const waiting = await waitingRun(h, run.id, 1);
    const t1 = Date.now();
    const job = await Job.fromId(h.ctx.queues.pull, jobId.pull(h.districtId, run.id));
    if (!job) throw new Error('pull job not found');
    return { run: waiting, job, t0, t1 };
  };

  it('reschedules the pull to the server time (600 s, not capped to 60 s), using no attempt', async () => {
    const { run, job, t0, t1 } = await scenario(600);
    expect(run.status).toBe('running');
    const until = Date.parse(run.waiting?.until ?? '');
    expect(until).toBeGreaterThanOrEqual(t0 + 600_000 - 1000);
    expect(until).toBeLessThanOrEqual(t1 + 600_000);
    expect(run.waiting?.reason).toMatch(/HTTP 429, Retry-After 600 s$/);
    expect(run.waiting?.reschedules).toBe(1);
    expect(await job.getState()).toBe('delayed');
    expect(job.attemptsMade).toBe(0);
    // no worker slot is held while waiting
    expect(await h.ctx.queues.pull.getActiveCount()).toBe(0);
    // the run status says so: store, API, CLI
    const res = await fetch(`${base}/runs/${run.id}`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { waiting?: unknown }).waiting).toEqual(run.waiting);
    expect(formatRun(run)).toContain(`waiting  waiting for SIS until ${run.waiting?.until}`);

    // time passes (the delayed job is promoted): the pull starts again and the run succeeds
    await job.promote();
    const done = await waitForRun(h.ctx, run.id, { timeoutMs: 60000, intervalMs: 50 });
    expect(done.status).toBe('succeeded');
    expect(done.counts.student?.create).toBe(40);
    // the waits used no attempt: only the successful one is counted
    expect((await Job.fromId(h.ctx.queues.pull, job.id ?? ''))?.attemptsMade).toBe(1);
    expect(done.waiting?.reschedules).toBe(1);
    expect(formatRun(done)).toContain('waited for SIS 1×');
  });

  it('caps a longer Retry-After at SIS_RETRY_AFTER_MAX_SECONDS and says so', async () => {
    const { run, job, t0, t1 } = await scenario(7200);
    const until = Date.parse(run.waiting?.until ?? '');
    expect(until).toBeGreaterThanOrEqual(t0 + 1800_000 - 1000);
    expect(until).toBeLessThanOrEqual(t1 + 1800_000);
    expect(run.waiting?.reason).toMatch(
      /Retry-After 7200 s \(capped by SIS_RETRY_AFTER_MAX_SECONDS=1800\)/,
    );
    expect(job.attemptsMade).toBe(0);
    await job.promote();
    const done = await waitForRun(h.ctx, run.id, { timeoutMs: 60000, intervalMs: 50 });
    expect(done.status).toBe('succeeded');
  });

  it(`waits at most ${MAX_RATE_LIMIT_RESCHEDULES} times; then the 429 is a failed attempt`, async () => {
    h.fake.faults.rateLimit(MAX_RATE_LIMIT_RESCHEDULES + 1, 600);
    const { run } = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    const job = async () => {
      const j = await Job.fromId(h.ctx.queues.pull, jobId.pull(h.districtId, run.id));
      if (!j) throw new Error('pull job not found');
      return j;
    };
    for (let i = 1; i <= MAX_RATE_LIMIT_RESCHEDULES; i++) {
      const waiting = await waitingRun(h, run.id, i);
      expect(waiting.waiting?.reschedules).toBe(i);
      const j = await job();
      expect(j.attemptsMade).toBe(0);
      await j.promote();
    }
    // the sixth 429 uses the job's first attempt; its retry (after the job backoff) succeeds
    const done = await waitForRun(h.ctx, run.id, { timeoutMs: 60000, intervalMs: 50 });
    expect(done.status).toBe('succeeded');
    expect(done.waiting?.reschedules).toBe(MAX_RATE_LIMIT_RESCHEDULES);
    expect((await job()).attemptsMade).toBe(2); // the failed attempt and the successful one
  });
});
