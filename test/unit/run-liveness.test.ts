/**
 * How a run's job lock reads as "worker not heard from" (src/jobs/run-liveness.ts `judgeJob`)
 * and how the queue wait is derived (src/shared/api-schemas.ts `runQueueWait`). Pure; the
 * real worker killed with kill -9 is test/integration/worker-crash-takeover.test.ts.
 */
import { judgeJob } from '../../src/jobs/run-liveness.js';
import { queueWaitLine } from '../../src/cli/format.js';
import type { SyncRun } from '../../src/models/types.js';
import { runQueueWait } from '../../src/shared/api-schemas.js';

const T = { lockMs: 30_000, renewMs: 15_000, stalledIntervalMs: 10_000 };
const NOW = Date.parse('2026-12-01T10:00:00.000Z');
const base = { job: 'pull' as const, jobId: 'd.r1.pull', worker: 'host-1-abcdef' };

describe('judgeJob', () => {
  it('a worker that renews its lock and is connected is healthy', () => {
    expect(judgeJob({ ...base, lockTtlMs: 20_000, connected: [base.worker] }, T, NOW)).toBe(
      undefined,
    );
  });

  it('a worker no longer connected is not heard from at once, with takeover by another', () => {
    const s = judgeJob({ ...base, lockTtlMs: 25_000, connected: ['other-2-000000'] }, T, NOW);
    expect(s).toMatchObject({
      workerConnected: false,
      silentForMs: 5_000,
      lastHeardAt: '2026-12-01T09:59:55.000Z',
      lockExpiresAt: '2026-12-01T10:00:25.000Z',
      takeoverExpectedBy: '2026-12-01T10:00:35.000Z',
    });
    expect(s?.message).toContain('host-1-abcdef is no longer connected');
  });

  it('a connected worker that stopped renewing is flagged once the renewal is overdue', () => {
    const live = { ...base, connected: [base.worker] };
    expect(judgeJob({ ...live, lockTtlMs: 11_000 }, T, NOW)).toBeUndefined(); // 19 s: in time
    const late = judgeJob({ ...live, lockTtlMs: 9_000 }, T, NOW); // 21 s > 15 s + 5 s
    expect(late).toMatchObject({ workerConnected: true, silentForMs: 21_000 });
    expect(late?.message).toContain('has not renewed its lock for 21 s');
  });

  it('an expired lock with no worker connected waits for one to start', () => {
    const s = judgeJob({ ...base, lockTtlMs: -2, connected: [] }, T, NOW);
    expect(s?.lockExpiresAt).toBeUndefined();
    expect(s?.takeoverExpectedBy).toBeUndefined();
    expect(s?.message).toContain('no worker is connected to the pull queue');
  });
});

describe('queue wait', () => {
  const run = (over: Partial<SyncRun>): SyncRun => ({
    id: 'r1',
    districtId: 'd',
    connector: 'powerschool',
    status: 'succeeded',
    dryRun: false,
    trigger: 'cli',
    createdAt: '2026-12-01T10:00:00.000Z',
    counts: {},
    rejectCount: 0,
    timings: {},
    ...over,
  });

  it('is createdAt → startedAt, with the chunks’ apply wait once finalized', () => {
    const r = run({
      startedAt: '2026-12-01T10:00:02.500Z',
      timings: { 'applyWait.avg': 300, 'applyWait.max': 1200 },
    });
    expect(runQueueWait(r)).toEqual({
      pullMs: 2500,
      queued: false,
      applyAvgMs: 300,
      applyMaxMs: 1200,
    });
    expect(queueWaitLine(r)).toBe(
      '2.5 s before the pull started; chunks waited 0.3 s on average (longest 1.2 s) to be applied',
    );
  });

  it('grows while queued and is absent for a run cancelled before it started', () => {
    const queued = run({ status: 'queued' });
    expect(runQueueWait(queued, Date.parse(queued.createdAt) + 12_000)).toEqual({
      pullMs: 12_000,
      queued: true,
    });
    expect(runQueueWait(run({ status: 'cancelled' }))).toBeUndefined();
  });
});
