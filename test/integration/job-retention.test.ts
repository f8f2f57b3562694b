/**
 * Issue 14.6: apply jobs carry roster data (names, emails, phones); Redis must not keep it
 * once a job is done. Completed chunks are removed; a failed one is stripped to counts and
 * removed after a bounded time.
 */
import { Job } from 'bullmq';
import { JOB_OPTIONS } from '../../src/jobs/sync.js';
import { APPLY_FAILED_RETENTION_SECONDS } from '../../src/jobs/job-retention.js';
import { APPLY_PAYLOAD_VERSION } from '../../src/jobs/payloads.js';
import { QueueName } from '../../src/workers/queues.js';
import { startHarness, type Harness } from '../helpers/harness.js';

/** Every apply job hash in Redis whose payload still holds roster records. */
async function chunksWithRosterData(h: Harness): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await h.ctx.redis.scan(
      cursor,
      'MATCH',
      `${h.ctx.prefix}:${QueueName.apply}:*`,
      'COUNT',
      500,
    );
    cursor = next;
    for (const k of keys) {
      if ((await h.ctx.redis.type(k)) !== 'hash') continue;
      const data = await h.ctx.redis.hget(k, 'data');
      if (!data) continue;
      const chunk = (JSON.parse(data) as { chunk?: { students?: unknown; guardians?: unknown } })
        .chunk;
      if (Array.isArray(chunk?.students) || Array.isArray(chunk?.guardians)) out.push(k);
    }
  } while (cursor !== '0');
  return out;
}

describe('roster data kept in Redis', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ students: 300, seed: 61 });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a completed run leaves no chunk payload in Redis', async () => {
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(await h.ctx.queues.apply.getCompletedCount()).toBe(0);
    expect(await chunksWithRosterData(h)).toEqual([]);
  });

  it('a failed apply job is stripped to counts and expires after a bounded time', async () => {
    expect(JOB_OPTIONS.apply.removeOnFail).toEqual({
      age: APPLY_FAILED_RETENTION_SECONDS,
      count: expect.any(Number) as unknown,
    });
    expect(APPLY_FAILED_RETENTION_SECONDS).toBeLessThanOrEqual(30 * 24 * 3600);
    // A chunk of a run the store does not know: it fails (once: attempts 1).
    const chunk = {
      students: [
        {
          sourcedId: 's1',
          status: 'active',
          givenName: 'Private',
          familyName: 'Person',
          schoolSourcedIds: [],
        },
      ],
      guardians: [],
      relationships: [],
      relationshipsSupplied: true,
    };
    const job = await h.ctx.queues.apply.add(
      'apply',
      {
        v: APPLY_PAYLOAD_VERSION,
        districtId: h.districtId,
        runId: 'no-such-run',
        chunkNo: 0,
        generation: 1,
        chunk,
      },
      { ...JOB_OPTIONS.apply, attempts: 1, jobId: 'retention-test' },
    );
    const deadline = Date.now() + 20000;
    let data: unknown;
    for (;;) {
      const j = await Job.fromId(h.ctx.queues.apply, job.id ?? '');
      data = j?.data;
      const stripped = (data as { chunk?: { stripped?: boolean } } | undefined)?.chunk?.stripped;
      if ((await j?.getState()) === 'failed' && stripped) break;
      if (Date.now() > deadline) throw new Error(`job not failed and stripped: ${String(data)}`);
      await new Promise(r => setTimeout(r, 50));
    }
    expect(data).toEqual({
      v: APPLY_PAYLOAD_VERSION,
      districtId: h.districtId,
      runId: 'no-such-run',
      chunkNo: 0,
      generation: 1,
      chunk: { stripped: true, students: 1, guardians: 0, relationships: 0 },
    });
    expect(JSON.stringify(data)).not.toContain('Private');
    expect(await chunksWithRosterData(h)).toEqual([]);
  });
});
