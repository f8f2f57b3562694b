/**
 * Issue 14.8: another process holding SQLite's write lock is transient. The chunk that meets
 * the lock is retried with backoff (more often than its 5 job attempts would allow) and the
 * run succeeds once the lock is released; only a lock outlasting `STORE_BUSY_LIMIT_MS` fails
 * the run, naming the limit.
 */
import Database from 'better-sqlite3';
import { JOB_OPTIONS, triggerSync, waitForRun } from '../../src/jobs/sync.js';
import { processMetrics } from '../../src/workers/metrics.js';
import { startHarness, type Harness } from '../helpers/harness.js';

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 50));
  }
}

const busyRetries = async (h: Harness): Promise<number> =>
  (await processMetrics(h.ctx).storeBusyRetries.get()).values.reduce((a, v) => a + v.value, 0);

/**
 * Start a run, wait until it has written students, then pause the SIS (the rest of the pull
 * waits, so the run is certainly still running), take the store's write lock, and let the
 * SIS answer again: the chunks still to come meet the lock.
 */
async function lockMidRun(h: Harness): Promise<{ runId: string; lock: Database.Database }> {
  h.fake.faults.slowMs(300);
  const { run } = await triggerSync(h.ctx, {
    districtId: h.districtId,
    dryRun: false,
    trigger: 'test',
  });
  await until(
    async () => (await h.store.getStudents(h.districtId)).length > 0,
    60000,
    'the first chunk',
  );
  h.fake.faults.pause();
  // Another process's connection (a second handle: SQLite locks per connection).
  const lock = new Database(h.store.file);
  lock.exec('BEGIN IMMEDIATE');
  h.fake.faults.slowMs(0);
  h.fake.faults.resume();
  expect(await h.store.getStudents(h.districtId).then(s => s.length)).toBeLessThan(
    h.sis.students.length,
  );
  return { runId: run.id, lock };
}

describe('store busy (transient lock)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ students: 600, seed: 81, busyTimeoutMs: 50 });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('retries the chunk past its job attempts while the lock is held; the run succeeds', async () => {
    const { runId, lock } = await lockMidRun(h);
    const before = await busyRetries(h);
    try {
      // More busy retries than the apply job has attempts: the old behaviour failed here.
      await until(
        async () => (await busyRetries(h)) - before > JOB_OPTIONS.apply.attempts,
        60000,
        'busy retries',
      );
      expect((await h.store.getRun(runId))?.status).toBe('running');
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    const done = await waitForRun(h.ctx, runId, { timeoutMs: 60000, intervalMs: 100 });
    console.log(`busy retries: ${(await busyRetries(h)) - before}; run ${done.status}`);
    expect(done.status).toBe('succeeded');
    expect((await h.store.getStudents(h.districtId)).length).toBe(h.sis.students.length);
  }, 240_000); // the waits above carry their own deadlines (busy backoff grows to 15 s)
});

describe('store busy (lock outlasting the limit)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      students: 600,
      seed: 82,
      busyTimeoutMs: 50,
      env: { STORE_BUSY_LIMIT_MS: '1500' },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('fails the run naming the limit; the next run succeeds', async () => {
    const { runId, lock } = await lockMidRun(h);
    try {
      // A chunk gives up once the limit has passed (the run is marked failed as soon as the
      // store can be written again).
      await until(
        async () => (await h.ctx.queues.apply.getFailedCount()) > 0,
        30000,
        'an apply job failed for good',
      );
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    const done = await waitForRun(h.ctx, runId, { timeoutMs: 30000, intervalMs: 100 });
    expect(done.status).toBe('failed');
    expect(done.error).toMatch(/locked by another process .*STORE_BUSY_LIMIT_MS=1500/);
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
  }, 240_000);
});
