/**
 * The run ledger against real Redis: per-chunk lists are unioned on read, a re-delivered
 * chunk is recorded once, a stale generation records nothing, and clear() removes it all.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RunLedger, type ChunkOutcome } from '../../src/jobs/ledger.js';

const outcome = (chunkNo: number, over: Partial<ChunkOutcome> = {}): ChunkOutcome => ({
  chunkNo,
  seenStudents: [],
  seenParents: [],
  linkRemovals: [],
  counts: {},
  rejects: [],
  ...over,
});

describe('RunLedger (real Redis)', () => {
  let redis: Redis;
  let prefix: string;
  let ledger: RunLedger;
  beforeAll(() => {
    redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
      maxRetriesPerRequest: 1,
    });
    prefix = `gs-test-ledger-${randomUUID()}`;
    ledger = new RunLedger(redis, prefix);
  });
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
  });

  it('unions ids across chunks and ignores a re-delivered chunk', async () => {
    const run = `run-${randomUUID()}`;
    const gen = await ledger.startGeneration(run);
    // a guardian shared by siblings in two chunks; ids with tabs and quotes survive
    const a = outcome(0, {
      seenStudents: ['s1', 's2'],
      seenParents: ['p-shared', 'p"1'],
      linkRemovals: [{ parentId: 'p\t9', studentSourcedId: 's2' }],
      counts: { parent: { create: 1 } },
    });
    const b = outcome(1, {
      seenStudents: ['s3'],
      seenParents: ['p-shared'],
      counts: { parent: { create: 2 } },
    });
    expect(await ledger.recordChunk(run, gen, a)).toBe(true);
    expect(await ledger.recordChunk(run, gen, b)).toBe(true);
    // at-least-once delivery: chunk 1 again, with what a second attempt would plan
    expect(await ledger.recordChunk(run, gen, { ...b, seenParents: ['p-other'] })).toBe(true);

    const seen = await ledger.seen(run);
    expect([...seen.students].sort()).toEqual(['s1', 's2', 's3']);
    expect([...seen.parents].sort()).toEqual(['p"1', 'p-shared']);
    expect(await ledger.counts(run)).toEqual({ parent: { create: 3 } });
    await ledger.setTotal(run, 2);
    expect(await ledger.isComplete(run)).toBe(true);
  });

  it('records nothing for a stale generation, and a new generation starts empty', async () => {
    const run = `run-${randomUUID()}`;
    const first = await ledger.startGeneration(run);
    await ledger.recordChunk(run, first, outcome(0, { seenStudents: ['old'] }));
    const second = await ledger.startGeneration(run);
    expect(second).toBe(first + 1);
    expect(await ledger.recordChunk(run, first, outcome(1, { seenStudents: ['stale'] }))).toBe(
      false,
    );
    expect((await ledger.seen(run)).students.size).toBe(0);
    await ledger.recordChunk(run, second, outcome(0, { seenStudents: ['new'] }));
    expect([...(await ledger.seen(run)).students]).toEqual(['new']);
  });

  it('reads thousands of chunks back in full and clear() removes every key', async () => {
    const run = `run-${randomUUID()}`;
    const gen = await ledger.startGeneration(run);
    const chunks = 1200; // more than one HSCAN page
    for (let n = 0; n < chunks; n++)
      await ledger.recordChunk(
        run,
        gen,
        outcome(n, {
          seenStudents: [`s${n}a`, `s${n}b`],
          seenParents: [`p${n % 7}`],
          rejects: [{ entity: 'student', recordId: `s${n}a`, reason: 'bad' }],
        }),
      );
    await ledger.recordPullRejects(run, '00000001', [
      { entity: 'guardian', recordId: 'g1', reason: 'no email' },
    ]);
    const seen = await ledger.seen(run);
    expect(seen.students.size).toBe(2 * chunks);
    expect(seen.parents.size).toBe(7);
    // every reject, once, in field order (chunk:<n> as text, then pull:<seq>)
    const rejects = await ledger.rejects(run);
    expect(rejects).toHaveLength(chunks + 1);
    const byText = Array.from({ length: chunks }, (_, n) => `chunk:${n}`).sort();
    expect(rejects.slice(0, chunks).map(r => r.recordId)).toEqual(
      byText.map(f => `s${f.slice(6)}a`),
    );
    expect(rejects[chunks]).toEqual({ entity: 'guardian', recordId: 'g1', reason: 'no email' });
    await ledger.clear(run);
    expect(await redis.keys(`${prefix}:ledger:${run}:*`)).toEqual([]);
  });
});
