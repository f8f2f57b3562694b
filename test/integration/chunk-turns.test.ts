/**
 * Chunk turns (ADR 0011, src/jobs/chunk-turns.ts) on real Redis and BullMQ, without workers:
 * the job states the pull's `enqueueChunk` and the apply side's `passTurn` leave behind.
 * - a chunk enqueued when it is already its turn is added runnable (`waiting`), never parked;
 * - a chunk enqueued ahead of its turn is parked (`delayed`) until its predecessor passes the
 *   turn, then released (`waiting`);
 * - passing a turn to a chunk the pull has not enqueued yet, or passing it twice, is a no-op.
 */
import { randomUUID } from 'node:crypto';
import type { AppContext } from '../../src/app.js';
import { enqueueChunk, passTurn } from '../../src/jobs/chunk-turns.js';
import { APPLY_PAYLOAD_VERSION, type ApplyPayload } from '../../src/jobs/payloads.js';
import { JOB_OPTIONS } from '../../src/jobs/sync.js';
import { jobId } from '../../src/workers/queues.js';
import { openQueueContext, type QueueContext } from '../helpers/queue-context.js';

describe('chunk turns: enqueue and release (ADR 0011)', () => {
  let qc: QueueContext | undefined;
  let ctx: AppContext;
  const districtId = 'turns-district';
  const runId = `r-${randomUUID().slice(0, 8)}`;
  const generation = 1;

  beforeAll(async () => {
    qc = await openQueueContext('turns', districtId);
    ({ ctx } = qc);
  });
  afterAll(async () => {
    await qc?.close();
  });

  const payload = (chunkNo: number): ApplyPayload => ({
    v: APPLY_PAYLOAD_VERSION,
    districtId,
    runId,
    generation,
    chunkNo,
    chunk: { students: [], guardians: [], relationships: [], relationshipsSupplied: true },
  });
  const state = (chunkNo: number) =>
    ctx.queues.apply.getJobState(jobId.chunk(districtId, runId, generation, chunkNo));
  const ref = (chunkNo: number) => ({ districtId, runId, generation, chunkNo });

  it('adds a chunk runnable when it is its turn, parks one ahead of it, releases it when the turn passes', async () => {
    await enqueueChunk(ctx, payload(0), JOB_OPTIONS.apply);
    expect(await state(0)).toBe('waiting');

    await enqueueChunk(ctx, payload(1), JOB_OPTIONS.apply);
    await enqueueChunk(ctx, payload(2), JOB_OPTIONS.apply);
    expect(await state(1)).toBe('delayed');
    expect(await state(2)).toBe('delayed');

    await passTurn(ctx, ref(0));
    expect(await state(1)).toBe('waiting');
    expect(await state(2)).toBe('delayed');
    // a re-delivered chunk 0 passes nothing on
    await passTurn(ctx, ref(0));
    expect(await state(2)).toBe('delayed');

    await passTurn(ctx, ref(1));
    expect(await state(2)).toBe('waiting');
    // chunk 3 is not enqueued yet: passing the turn to it releases nothing and does not throw
    await passTurn(ctx, ref(2));
    expect(await state(3)).toBe('unknown');
    // … and the pull then adds it runnable at once
    await enqueueChunk(ctx, payload(3), JOB_OPTIONS.apply);
    expect(await state(3)).toBe('waiting');
    const job = await ctx.queues.apply.getJob(jobId.chunk(districtId, runId, generation, 3));
    expect(job?.opts.delay ?? 0).toBe(0);
  });
});
