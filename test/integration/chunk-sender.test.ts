/**
 * The chunk sender (ADR 0021, src/jobs/chunk-sender.ts) on real Redis and BullMQ, without
 * workers: chunks added from the worker thread are the jobs an inline add leaves behind (same
 * data, options, priority and turn state, the chunk decoding to the one sent, also a chunk
 * that travels as JSON), a failed add rejects with its reason, and a closed sender refuses.
 */
import type { AppContext } from '../../src/app.js';
import {
  chunkSenderFor,
  closeChunkSenders,
  inlineChunkSender,
  threadChunkSender,
  type ChunkSender,
} from '../../src/jobs/chunk-sender.js';
import {
  APPLY_PAYLOAD_VERSION,
  trustedApplyPayload,
  type ApplyPayload,
} from '../../src/jobs/payloads.js';
import { JOB_OPTIONS } from '../../src/jobs/sync.js';
import type { RosterChunk } from '../../src/mapping/canonical.js';
import { jobId } from '../../src/workers/queues.js';
import { openQueueContext, type QueueContext } from '../helpers/queue-context.js';

describe('chunk sender: adds from a worker thread (ADR 0021)', () => {
  let qc: QueueContext | undefined;
  let ctx: AppContext;
  const districtId = 'sender-district';
  const generation = 1;
  const senders: ChunkSender[] = [];

  beforeAll(async () => {
    qc = await openQueueContext('sender', districtId);
    ({ ctx } = qc);
  });
  afterAll(async () => {
    for (const s of senders) await s.close();
    await qc?.close();
  });

  const thread = () => {
    const s = threadChunkSender({
      redisUrl: ctx.env.REDIS_URL,
      prefix: ctx.prefix,
      logger: ctx.logger,
    });
    senders.push(s);
    return s;
  };
  const chunk = (givenName: string): RosterChunk => ({
    students: [
      {
        sourcedId: 's1',
        uniqueId: 'u1',
        givenName,
        familyName: 'Ng',
        schoolSourcedIds: ['sch1'],
        status: 'active',
      },
    ],
    guardians: [],
    relationships: [],
    relationshipsSupplied: true,
  });
  const payload = (runId: string, chunkNo: number, givenName = 'Ana'): ApplyPayload => ({
    v: APPLY_PAYLOAD_VERSION,
    districtId,
    runId,
    generation,
    chunkNo,
    chunk: chunk(givenName),
  });
  /** What Redis holds for a chunk job: state, data, priority, the chunk decoded. */
  const stored = async (runId: string, chunkNo: number) => {
    const id = jobId.chunk(districtId, runId, generation, chunkNo);
    const job = await ctx.queues.apply.getJob(id);
    if (!job) throw new Error(`no job ${id}`);
    return {
      state: await job.getState(),
      priority: job.opts.priority,
      attempts: job.opts.attempts,
      data: job.data as Record<string, unknown>,
      decoded: trustedApplyPayload(job.data),
    };
  };

  it('adds the same jobs as an inline add: data, options, turn state and chunk', async () => {
    const inline = inlineChunkSender(ctx);
    const fromThread = thread();
    const opts = { ...JOB_OPTIONS.apply, priority: 7 };
    // chunk 0 (its turn: runnable), chunk 1 (ahead of its turn: parked), a lone surrogate
    // (travels as JSON text)
    for (const [sender, runId] of [
      [inline, 'r-inline'],
      [fromThread, 'r-thread'],
    ] as const) {
      await sender.send(payload(runId, 0), opts);
      await sender.send(payload(runId, 1, 'Zo\uD800e'), opts);
    }
    for (const n of [0, 1]) {
      const a = await stored('r-inline', n);
      const b = await stored('r-thread', n);
      expect(b.state).toBe(n === 0 ? 'prioritized' : 'delayed');
      expect(b.state).toBe(a.state);
      expect(b.priority).toBe(7);
      expect(b.attempts).toBe(a.attempts);
      expect({ ...b.data, runId: 'x' }).toEqual({ ...a.data, runId: 'x' });
      expect(b.decoded.chunk).toEqual(payload('r-thread', n, n === 0 ? 'Ana' : 'Zo\uD800e').chunk);
    }
    expect((await stored('r-thread', 1)).data.enc).toBe('json');
    expect((await stored('r-thread', 0)).data.enc).toBe('msgpackr-records+base64');
  });

  it('a failed add rejects with its reason; a closed sender refuses', async () => {
    const s = thread();
    // BullMQ refuses a priority above 2^21: the add fails in the thread
    await expect(
      s.send(payload('r-fail', 0), { ...JOB_OPTIONS.apply, priority: 2 ** 22 }),
    ).rejects.toThrow(/[Pp]riority/);
    // the thread is still usable after a failed add
    await s.send(payload('r-fail', 0), JOB_OPTIONS.apply);
    expect((await stored('r-fail', 0)).decoded.chunk).toEqual(chunk('Ana'));
    await s.close();
    await expect(s.send(payload('r-fail', 1), JOB_OPTIONS.apply)).rejects.toThrow(/closed/);
  });

  it('SYNC_CHUNK_SENDER picks the sender', async () => {
    const inline = chunkSenderFor({ ...ctx, env: { ...ctx.env, SYNC_CHUNK_SENDER: 'inline' } });
    await inline.send(payload('r-env', 0), JOB_OPTIONS.apply);
    expect((await stored('r-env', 0)).decoded.chunk).toEqual(chunk('Ana'));
    await inline.close();
    expect(ctx.env.SYNC_CHUNK_SENDER).toBe('thread');
  });

  it("one thread serves a context's pulls: a pull's close leaves it, the context's close ends it", async () => {
    const first = chunkSenderFor(ctx);
    await first.send(payload('r-shared', 0), JOB_OPTIONS.apply);
    await first.close(); // the pull ended
    const second = chunkSenderFor(ctx);
    await second.send(payload('r-shared', 1), JOB_OPTIONS.apply);
    expect((await stored('r-shared', 1)).decoded.chunk).toEqual(chunk('Ana'));
    // the second pull's sends went to the shared thread: ending it refuses them
    await closeChunkSenders(ctx.redis);
    await expect(second.send(payload('r-shared', 2), JOB_OPTIONS.apply)).rejects.toThrow(/closed/);
    // the next pull gets a new thread
    const third = chunkSenderFor(ctx);
    await third.send(payload('r-shared', 2), JOB_OPTIONS.apply);
    expect((await stored('r-shared', 2)).decoded.chunk).toEqual(chunk('Ana'));
    await closeChunkSenders(ctx.redis);
  });
});
