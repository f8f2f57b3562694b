/**
 * Issue 15, fairness across districts (docs/decisions/0016): smaller districts first, none
 * starved. Real pipeline: BullMQ on real Redis, SQLite, real workers, fake PowerSchool servers
 * (src/dev/) with seeded synthetic districts. Waits are for events, with deadlines; nothing
 * asserts a duration.
 *
 * - A small district triggered while a large one is mid-run finishes before it, and its
 *   chunks carried a lower (earlier) BullMQ priority than the large district's.
 * - Aging: a chunk or pull that waited past `SYNC_PRIORITY_MAX_WAIT_MS` is moved ahead of
 *   prioritized ones (no workers: the queue's own order is read).
 * - No starvation: a large district's chunk that waited past `SYNC_PRIORITY_MAX_WAIT_MS` runs
 *   before a smaller district's chunks that are runnable one after another (with aging off it
 *   runs after all of them: shown by setting the wait to an hour); and with one apply slot, a
 *   large district still finishes while two small districts are triggered again and again.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Job } from 'bullmq';
import { createApp, type AppContext } from '../../src/app.js';
import { parseEnv } from '../../src/config/env.js';
import { startPowerSchoolSite, type PowerSchoolSite } from '../../src/dev/powerschool-site.js';
import { enqueueChunk, PARKED_DELAY_MS } from '../../src/jobs/chunk-turns.js';
import { ageChunks, agePulls, sizePriority } from '../../src/jobs/priority.js';
import { JOB_OPTIONS, triggerSync, waitForRun } from '../../src/jobs/sync.js';
import { APPLY_PAYLOAD_VERSION, type ApplyPayload } from '../../src/jobs/payloads.js';
import { createLogger } from '../../src/logger.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';
import { jobId, QueueName } from '../../src/workers/queues.js';

const PAGE = 250;

/** Resolve when `check()` holds; reject after `ms` naming `what` (a deadline, not a timing). */
async function until(check: () => boolean | Promise<boolean>, ms: number, what: string) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 25));
  }
}

type Site = PowerSchoolSite;

const site = (id: string, students: number, seed: number): Promise<Site> =>
  startPowerSchoolSite(id, { students, seed, pageSize: PAGE });

/** A fresh app (empty SQLite store, fresh queue prefix) over `sites`. */
async function app(
  sites: Site[],
  extraEnv: Record<string, string> = {},
): Promise<{ ctx: AppContext; store: SqliteRosterStore; dispose: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-prio-'));
  const store = new SqliteRosterStore(join(dir, 'store.db'));
  await store.init();
  const env = parseEnv({
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    STORE_URL: `sqlite:${join(dir, 'store.db')}`,
    QUEUE_PREFIX: `gsync-prio-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...extraEnv,
  });
  const secrets: NodeJS.ProcessEnv = Object.fromEntries(
    sites.flatMap(s => Object.entries(s.secrets)),
  );
  const ctx = await createApp({
    env,
    logger: createLogger(env.LOG_LEVEL),
    districts: sites.map(s => s.config),
    secrets,
    store,
  });
  return {
    ctx,
    store,
    dispose: async () => {
      for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
      await ctx.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('fairness across districts: smaller districts first, none starved (issue 15)', () => {
  const sites: Site[] = [];
  let large: Site;
  let smallA: Site;
  let smallB: Site;
  const tag = randomUUID().slice(0, 6);

  beforeAll(async () => {
    large = await site(`large-${tag}`, 10_000, 7);
    smallA = await site(`small-a-${tag}`, 500, 8);
    smallB = await site(`small-b-${tag}`, 500, 9);
    sites.push(large, smallA, smallB);
  });
  afterAll(async () => {
    for (const s of sites) await s.fake.close();
  });

  it('a small district triggered while a large one is mid-run finishes first, its chunks ahead', async () => {
    const { ctx, dispose } = await app(sites);
    let workers: RunningWorkers | undefined;
    try {
      workers = startWorkers(ctx, { concurrency: 1, pullConcurrency: 2 });
      const apply = workers.workers.find(w => w.name === QueueName.apply);
      if (!apply) throw new Error('no apply worker');
      const priorities = new Map<string, number[]>();
      apply.on('active', (job: Job) => {
        const { districtId } = job.data as { districtId: string };
        priorities.set(districtId, [...(priorities.get(districtId) ?? []), job.priority]);
      });

      const { run: big } = await triggerSync(ctx, {
        districtId: large.config.id,
        dryRun: false,
        trigger: 'test',
      });
      // mid-run: its first chunks are written, far enough that every chunk it has yet to
      // apply is sized above 1,000 students (a higher priority number than the small one's)
      await until(
        async () => (await ctx.store.countActive(large.config.id)).students >= 4 * PAGE,
        180_000,
        'the large district to write its first chunks',
      );
      const { run: little } = await triggerSync(ctx, {
        districtId: smallA.config.id,
        dryRun: false,
        trigger: 'test',
      });
      const done = await waitForRun(ctx, little.id, { timeoutMs: 180_000, intervalMs: 25 });
      expect(done.status).toBe('succeeded');
      expect(done.counts.student?.create).toBe(500);
      // finished before the large one
      expect((await ctx.store.getRun(big.id))?.status).toBe('running');
      // its chunks went ahead of the large district's: a lower BullMQ priority number
      const smallP = priorities.get(smallA.config.id) ?? [];
      const largeP = priorities.get(large.config.id) ?? [];
      expect(smallP.length).toBe(2);
      expect(Math.max(...smallP)).toBeLessThan(Math.min(...largeP.slice(-1)));
      expect(Math.max(...smallP)).toBe(sizePriority(500));

      const bigDone = await waitForRun(ctx, big.id, { timeoutMs: 300_000, intervalMs: 50 });
      expect(bigDone.status).toBe('succeeded');
      expect(bigDone.counts.student?.create).toBe(10_000);
    } finally {
      await workers?.close(5000);
      await dispose();
    }
  });

  it('a chunk or pull waiting past SYNC_PRIORITY_MAX_WAIT_MS moves ahead of prioritized ones', async () => {
    const { ctx, dispose } = await app(sites, { SYNC_PRIORITY_MAX_WAIT_MS: '0' });
    try {
      const chunk = (districtId: string, runId: string): ApplyPayload => ({
        v: APPLY_PAYLOAD_VERSION,
        districtId,
        runId,
        generation: 1,
        chunkNo: 0,
        chunk: { students: [], guardians: [], relationships: [], relationshipsSupplied: true },
      });
      // Chunk 0 of each district is released at once (its turn): the large one first, then
      // the small one, which the queue serves first (lower priority number).
      await enqueueChunk(ctx, chunk(large.config.id, 'r-large'), {
        ...JOB_OPTIONS.apply,
        priority: sizePriority(500_000),
      });
      await enqueueChunk(ctx, chunk(smallA.config.id, 'r-small'), {
        ...JOB_OPTIONS.apply,
        priority: sizePriority(5_000),
      });
      const largeId = jobId.chunk(large.config.id, 'r-large', 1, 0);
      const smallId = jobId.chunk(smallA.config.id, 'r-small', 1, 0);
      const laterId = jobId.chunk(smallB.config.id, 'r-later', 1, 0);
      // the order the apply queue serves its runnable jobs: wait list, then prioritized
      const order = async () =>
        [...(await ctx.queues.apply.getWaiting()), ...(await ctx.queues.apply.getPrioritized())]
          .map(j => j.id)
          .filter(id => id === largeId || id === smallId || id === laterId);
      expect(await order()).toEqual([smallId, largeId]);
      expect(PARKED_DELAY_MS).toBeGreaterThan(0);

      // Both waited past 0 ms: both are moved to the wait list, the earliest released first;
      // a small district's chunk released afterwards now queues behind the large one.
      const moved = await ageChunks(ctx, Date.now() + 1);
      expect([...moved].sort()).toEqual([largeId, smallId].sort());
      await enqueueChunk(ctx, chunk(smallB.config.id, 'r-later'), {
        ...JOB_OPTIONS.apply,
        priority: sizePriority(1_000),
      });
      expect(await order()).toEqual([...moved, laterId]);
      // each job is moved once
      expect(await ageChunks(ctx, Date.now() + 1)).toEqual([laterId]);
      expect(await ageChunks(ctx, Date.now() + 1)).toEqual([]);

      // pulls: a large district's queued pull behind a small one's
      await ctx.queues.pull.add(
        'pull',
        { districtId: large.config.id, runId: 'r-large' },
        { jobId: 'pull-large', priority: sizePriority(500_000) },
      );
      await ctx.queues.pull.add(
        'pull',
        { districtId: smallA.config.id, runId: 'r-small' },
        { jobId: 'pull-small', priority: sizePriority(5_000) },
      );
      expect((await ctx.queues.pull.getPrioritized()).map(j => j.id)).toEqual([
        'pull-small',
        'pull-large',
      ]);
      expect(await agePulls(ctx, Date.now() + 1)).toEqual(['pull-small', 'pull-large']);
      expect((await ctx.queues.pull.getWaiting()).map(j => j.id)).toEqual([
        'pull-small',
        'pull-large',
      ]);
    } finally {
      await dispose();
    }
  });

  it('a large chunk waiting past SYNC_PRIORITY_MAX_WAIT_MS runs before a smaller district has emptied its backlog', async () => {
    const maxWaitMs = 200;
    const { ctx, dispose } = await app(sites, {
      SYNC_PRIORITY_MAX_WAIT_MS: String(maxWaitMs),
      // the small district's pull queues its whole run while the apply worker is paused
      SYNC_CHUNKS_AHEAD: '16',
    });
    let workers: RunningWorkers | undefined;
    try {
      workers = startWorkers(ctx, { concurrency: 1, pullConcurrency: 2 });
      const apply = workers.workers.find(w => w.name === QueueName.apply);
      const pull = workers.workers.find(w => w.name === QueueName.pull);
      if (!apply || !pull) throw new Error('no apply or pull worker');
      const order: string[] = [];
      apply.on('active', (job: Job) => {
        order.push((job.data as { districtId: string }).districtId);
      });
      const { run: big } = await triggerSync(ctx, {
        districtId: large.config.id,
        dryRun: false,
        trigger: 'test',
      });
      // far enough that its chunks are sized above the small district's (3,000 read: 3 > 2)
      await until(
        async () => (await ctx.store.countActive(large.config.id)).students >= 3000,
        180_000,
        'the large district to write 3,000 students',
      );
      // No chunk runs while the small district's pull queues all of its chunks: from then on
      // it has a runnable chunk at every turn (the next is released before one completes),
      // always ahead of the large district's by priority.
      await apply.pause();
      const pulled = new Promise<void>(resolve => {
        pull.on('completed', (job: Job) => {
          if ((job.data as { districtId: string }).districtId === smallB.config.id) resolve();
        });
      });
      const { run: little } = await triggerSync(ctx, {
        districtId: smallB.config.id,
        dryRun: false,
        trigger: 'test',
      });
      await pulled;
      // the large district's runnable chunk has waited past the limit
      const released = `${ctx.prefix}:apply-released`;
      await until(
        async () =>
          (await ctx.redis.zrangebyscore(released, '-inf', Date.now() - maxWaitMs - 1)).some(id =>
            id.startsWith(`${large.config.id}.`),
          ),
        30_000,
        "the large district's chunk to wait past SYNC_PRIORITY_MAX_WAIT_MS",
      );
      const before = order.length;
      await apply.resume();
      const done = await waitForRun(ctx, little.id, { timeoutMs: 180_000, intervalMs: 25 });
      expect(done.status).toBe('succeeded');
      // Taken after the small district's resumed chunks: without aging the large district's
      // chunk would come only once all of them had run.
      const after = order.slice(before);
      const lastSmall = after.lastIndexOf(smallB.config.id);
      expect(after.filter(d => d === smallB.config.id).length).toBe(2);
      expect(after.slice(0, lastSmall)).toContain(large.config.id);
      const bigDone = await waitForRun(ctx, big.id, { timeoutMs: 300_000, intervalMs: 50 });
      expect(bigDone.status).toBe('succeeded');
    } finally {
      await workers?.close(5000);
      await dispose();
    }
  });

  it('a large district keeps progressing while small districts are triggered again and again', async () => {
    const { ctx, dispose } = await app(sites, { SYNC_PRIORITY_MAX_WAIT_MS: '300' });
    let workers: RunningWorkers | undefined;
    try {
      // One apply slot and three pull slots: the small districts' chunks, always ahead by
      // priority, could keep the large district's chunk waiting for ever without aging.
      // (With aging off this scenario only slows down, past Jest's timeout here: it slips
      // chunks in between small runs. The test above is the deterministic proof.)
      workers = startWorkers(ctx, { concurrency: 1, pullConcurrency: 3 });
      const { run: big } = await triggerSync(ctx, {
        districtId: large.config.id,
        dryRun: false,
        trigger: 'test',
      });
      let bigEnded = false;
      const smallRuns = new Map<string, number>();
      const loop = async (s: Site) => {
        while (!bigEnded) {
          const { run } = await triggerSync(ctx, {
            districtId: s.config.id,
            dryRun: false,
            trigger: 'test',
          });
          const r = await waitForRun(ctx, run.id, { timeoutMs: 180_000, intervalMs: 25 });
          if (r.status !== 'succeeded') throw new Error(`${s.config.id}: ${r.status}`);
          if (!bigEnded) smallRuns.set(s.config.id, (smallRuns.get(s.config.id) ?? 0) + 1);
        }
      };
      const loops = Promise.all([loop(smallA), loop(smallB)]);
      const bigDone = await waitForRun(ctx, big.id, { timeoutMs: 600_000, intervalMs: 50 });
      bigEnded = true;
      await loops;
      expect(bigDone.status).toBe('succeeded');
      expect(bigDone.counts.student?.create).toBe(10_000);
      // the small districts really were syncing again and again meanwhile
      expect(smallRuns.get(smallA.config.id) ?? 0).toBeGreaterThanOrEqual(2);
      expect(smallRuns.get(smallB.config.id) ?? 0).toBeGreaterThanOrEqual(2);
    } finally {
      await workers?.close(5000);
      await dispose();
    }
  });
});
