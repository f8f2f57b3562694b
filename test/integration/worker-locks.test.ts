/**
 * Issue 14.7: a crashed pull or finalize job must be taken up again within about 30 s, not
 * 2 minutes: their workers hold a short lock (renewed while the job runs) unless
 * `WORKER_LOCK_MS` says otherwise.
 */
import { QueueName } from '../../src/workers/queues.js';
import { PIPELINE_LOCK_MS, PIPELINE_STALLED_INTERVAL_MS } from '../../src/workers/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';

describe('pipeline job locks', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ students: 20, seed: 71 });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('pull and finalize hold a lock of at most 30 s by default, renewed while they run', async () => {
    expect(PIPELINE_LOCK_MS).toBeLessThanOrEqual(30_000);
    for (const name of [QueueName.pull, QueueName.finalize, QueueName.apply]) {
      const w = h.workers.workers.find(x => x.name === name);
      expect([name, w?.opts.lockDuration]).toEqual([name, expect.any(Number)]);
      expect([name, (w?.opts.lockDuration ?? Infinity) <= 30_000]).toEqual([name, true]);
      // Stalled checks every 10 s for pull and finalize (a dead job is found soon after its
      // lock expired), BullMQ's 30 s for apply.
      expect([name, w?.opts.stalledInterval]).toEqual([
        name,
        name === QueueName.apply ? 30_000 : PIPELINE_STALLED_INTERVAL_MS,
      ]);
      // Renewal every half lock (BullMQ's default), so a live job keeps its lock.
      expect([name, w?.opts.lockRenewTime ?? (w?.opts.lockDuration ?? 0) / 2]).toEqual([
        name,
        (w?.opts.lockDuration ?? 0) / 2,
      ]);
    }
    // A run still completes with the short locks.
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
  });
});
