/**
 * Issue 14.1: a run whose jobs Redis lost must not block its district forever. A Redis
 * started by the test (no persistence) is stopped mid-pull and started again empty; the run
 * reconciler fails the run with a clear reason and the district syncs again at once. A run
 * stuck `queued` whose pull job is gone is re-queued and completes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { reconcileRuns } from '../../src/jobs/run-reconciler.js';
import { newRunId, triggerSync, waitForRun } from '../../src/jobs/sync.js';
import { processMetrics } from '../../src/workers/metrics.js';
import { startHarness, type Harness } from '../helpers/harness.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Start `redis-server` without persistence on `port`; resolves once it accepts connections. */
function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
  ]);
  return new Promise((resolve, reject) => {
    let seen = '';
    const t = setTimeout(() => reject(new Error(`redis did not start: ${seen}`)), 10000);
    child.stdout.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('Ready to accept connections')) {
        clearTimeout(t);
        resolve(child);
      }
    });
  });
}

function stopRedis(child: ChildProcess): Promise<void> {
  return new Promise(resolve => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Poll `check` until it returns true; throw after `ms`. */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 50));
  }
}

const reconciled = async (h: Harness, action: string): Promise<number> =>
  (await processMetrics(h.ctx).reconciledRuns.get()).values
    .filter(v => v.labels.action === action)
    .reduce((a, v) => a + v.value, 0);

describe('run reconciler', () => {
  let h: Harness;
  let redis: ChildProcess;
  let port: number;
  beforeAll(async () => {
    port = await freePort();
    redis = await startRedis(port);
    h = await startHarness({
      students: 800,
      seed: 14,
      env: { REDIS_URL: `redis://127.0.0.1:${port}`, RUN_RECONCILE_INTERVAL_MS: '300' },
    });
  });
  afterAll(async () => {
    await h?.close();
    if (redis) await stopRedis(redis);
  });

  it('fails a run whose jobs a restarted Redis lost, and the district syncs again', async () => {
    h.fake.faults.slowMs(60);
    const { run, started } = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    expect(started).toBe(true);
    // Mid-pull: some students written, the pull still reading.
    await until(
      async () => (await h.store.getStudents(h.districtId)).length > 0,
      30000,
      'the first chunk to be written',
    );
    const written = (await h.store.getStudents(h.districtId)).length;
    expect(written).toBeLessThan(h.sis.students.length);
    await stopRedis(redis);
    redis = await startRedis(port); // same port, empty: nothing survived
    h.fake.faults.slowMs(0);

    const ended = await waitForRun(h.ctx, run.id, { timeoutMs: 30000, intervalMs: 100 });
    console.log(`run ${run.id}: ${ended.status}: ${ended.error ?? ''}`);
    expect(ended.status).toBe('failed');
    expect(ended.error).toMatch(/run reconciler: .*jobs were lost/);
    // What it wrote stays, and is counted from the change log.
    expect(ended.counts.student?.create).toBeGreaterThan(0);
    // The reconciler counts what it did (right after the run's status is written).
    await until(async () => (await reconciled(h, 'failed')) === 1, 10000, 'the metric');

    const again = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    expect(again.started).toBe(true);
    const done = await waitForRun(h.ctx, again.run.id, { timeoutMs: 60000, intervalMs: 100 });
    expect(done.status).toBe('succeeded');
    expect((await h.store.getStudents(h.districtId)).length).toBe(h.sis.students.length);
  });

  it('re-queues the pull of a run stuck queued whose pull job is gone', async () => {
    // A run the store has as queued, with no job in Redis (lost before any worker took it).
    const run = await h.store.createRun({
      id: newRunId(),
      districtId: h.districtId,
      connector: 'powerschool',
      status: 'queued',
      dryRun: false,
      trigger: 'test',
      createdAt: new Date().toISOString(),
      counts: {},
      rejectCount: 0,
      timings: {},
    });
    const blocked = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    expect(blocked).toMatchObject({ started: false, run: { id: run.id } });
    const before = await reconciled(h, 'requeued');
    // The periodic pass may get there first; either way the run is re-queued once and runs.
    const actions = await reconcileRuns(h.ctx);
    expect(actions.every(a => a.runId === run.id && a.action === 'requeued')).toBe(true);
    const done = await waitForRun(h.ctx, run.id, { timeoutMs: 60000, intervalMs: 100 });
    expect(done.status).toBe('succeeded');
    await until(async () => (await reconciled(h, 'requeued')) === before + 1, 10000, 'the metric');
  });

  it('fails a running run that made no progress for RUN_STALE_AFTER_MS', async () => {
    // Running, with a ledger (so not "lost"), but nothing moves: no pull job, no chunks.
    const run = await h.store.createRun({
      id: newRunId(),
      districtId: h.districtId,
      connector: 'powerschool',
      status: 'running',
      dryRun: false,
      trigger: 'test',
      createdAt: new Date().toISOString(),
      counts: {},
      rejectCount: 0,
      timings: {},
    });
    await h.ctx.ledger.startGeneration(run.id);
    const staleMs = h.ctx.env.RUN_STALE_AFTER_MS;
    expect(staleMs).toBeGreaterThan(0);
    // A pass now records the run's progress marker; nothing is failed yet.
    await reconcileRuns(h.ctx);
    expect((await h.store.getRun(run.id))?.status).toBe('running');
    // Passes "later" than the limit (another process's pass may hold the lock: retry).
    await until(
      async () => {
        await reconcileRuns(h.ctx, { now: Date.now() + staleMs + 1000 });
        return (await h.store.getRun(run.id))?.status === 'failed';
      },
      60000, // the worker's own periodic passes hold the same lock between ours
      'the stale run to be failed',
    );
    const failed = await h.store.getRun(run.id);
    expect(failed?.error).toMatch(/run reconciler: no progress for \d+ s \(RUN_STALE_AFTER_MS=/);
    const again = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    expect(again.started).toBe(true);
    expect((await waitForRun(h.ctx, again.run.id, { timeoutMs: 60000 })).status).toBe('succeeded');
  });
});
