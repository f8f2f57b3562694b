/**
 * Issue 14.6: apply jobs carry roster data (names, emails, phones); Redis must not keep it
 * once a job is done. Completed chunks are removed; a failed one is stripped to counts and
 * removed after a bounded time.
 */
import { Job } from 'bullmq';
import { JOB_OPTIONS } from '../../src/jobs/sync.js';
import { APPLY_FAILED_RETENTION_SECONDS } from '../../src/jobs/job-retention.js';
import type { RosterChunk } from '../../src/mapping/canonical.js';
import { APPLY_PAYLOAD_VERSION, applyJobData } from '../../src/jobs/payloads.js';
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
      const parsed = JSON.parse(data) as {
        chunk?: { students?: unknown; guardians?: unknown };
        body?: unknown;
      };
      // version 3: the chunk encoded in `body`; version 2 and earlier: a plain JSON `chunk`
      const chunk = parsed.chunk;
      if (
        parsed.body !== undefined ||
        Array.isArray(chunk?.students) ||
        Array.isArray(chunk?.guardians)
      )
        out.push(k);
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
    const chunk: RosterChunk = {
      students: [
        {
          sourcedId: 's1',
          uniqueId: 'u1',
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
      applyJobData({
        v: APPLY_PAYLOAD_VERSION,
        districtId: h.districtId,
        runId: 'no-such-run',
        chunkNo: 0,
        generation: 1,
        chunk,
      }),
      { ...JOB_OPTIONS.apply, attempts: 1, jobId: 'retention-test' },
    );
    // the chunk travels encoded (ADR 0015): no name in clear text in the job's data
    expect(JSON.stringify(job.data)).not.toContain('Private');
    const deadline = Date.now() + 20000;
    let data: unknown;
    for (;;) {
      const j = await Job.fromId(h.ctx.queues.apply, job.id ?? '');
      data = j?.data;
      const stripped = (data as { stripped?: boolean } | undefined)?.stripped;
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
      size: { students: 1, guardians: 0, relationships: 0 },
      enc: 'msgpackr-records+base64',
      stripped: true,
    });
    expect(JSON.stringify(data)).not.toContain('Private');
    expect(await chunksWithRosterData(h)).toEqual([]);
  });

  it('a chunk queued by an older deployment (version 2, plain JSON) is refused at once and stripped', async () => {
    const job = await h.ctx.queues.apply.add(
      'apply',
      {
        v: 2,
        districtId: h.districtId,
        runId: 'old-deployment-run',
        chunkNo: 0,
        generation: 1,
        chunk: {
          students: [
            {
              sourcedId: 's1',
              uniqueId: 'u1',
              status: 'active',
              givenName: 'Older',
              familyName: 'Format',
              schoolSourcedIds: [],
            },
          ],
          guardians: [],
          relationships: [],
          relationshipsSupplied: true,
        },
      },
      { ...JOB_OPTIONS.apply, jobId: 'retention-test-v2' },
    );
    const deadline = Date.now() + 20000;
    let j: Job | undefined;
    for (;;) {
      j = await Job.fromId(h.ctx.queues.apply, job.id ?? '');
      const stripped = (j?.data as { chunk?: { stripped?: boolean } } | undefined)?.chunk?.stripped;
      if ((await j?.getState()) === 'failed' && stripped) break;
      if (Date.now() > deadline) throw new Error('old-format job not failed and stripped');
      await new Promise(r => setTimeout(r, 50));
    }
    // not retried (JOB_OPTIONS.apply allows 5 attempts): the refusal is permanent
    expect(j?.attemptsMade).toBe(1);
    expect(j?.failedReason).toContain('apply payload version 2, expected 3');
    expect(j?.data).toEqual({
      v: 2,
      districtId: h.districtId,
      runId: 'old-deployment-run',
      chunkNo: 0,
      generation: 1,
      chunk: { stripped: true, students: 1, guardians: 0, relationships: 0 },
    });
    expect(await chunksWithRosterData(h)).toEqual([]);
  });
});
