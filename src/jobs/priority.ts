/**
 * Fairness across districts, part 2 (docs/decisions/0016): smaller districts first, and no
 * district starved.
 *
 * - Every pull and every chunk carries a BullMQ priority derived from its district's size
 *   (`sizePriority`): a pull from the students the district holds when it is triggered, a
 *   chunk from the larger of that and the students its pull has read so far. BullMQ hands
 *   out the lowest number first (FIFO within a number), so a 5,000-student district's pull
 *   and chunks go before a 500,000-student district's, shortest job first. Chunks still take
 *   turns within a district (ADR 0011): a parked (delayed) chunk keeps its priority when it
 *   is promoted (BullMQ 6 `promote` re-adds it to the prioritized set with the priority stored
 *   on the job).
 * - Aging: a pull queued, or a chunk released, more than `SYNC_PRIORITY_MAX_WAIT_MS` ago is
 *   moved ahead of every prioritized job (`changePriority` to 0: BullMQ takes jobs without
 *   a priority before prioritized ones) by the next pull or chunk that finishes, i.e. when a
 *   slot frees. So a large district waits at most that long (plus one job) for a slot, however
 *   many small districts keep being triggered.
 *
 * State: one Redis sorted set, `<prefix>:apply-released` (chunk job id → release time, ms),
 * written when a chunk is released and cleared when it starts or fails for good. Pulls need
 * none: a pull's BullMQ `timestamp` is when it was queued.
 */
import { Job } from 'bullmq';
import type { AppContext } from '../app.js';

/** Students per priority step's base: `sizePriority` grows with log2(1 + students / this). */
export const PRIORITY_STUDENTS_UNIT = 1000;

/** Jobs looked at per aging check (the oldest first). */
const AGING_BATCH = 20;

/**
 * BullMQ priority (1 = first) of a district of `students` students:
 * `1 + floor(log2(1 + students / 1000))`, so 0–999 → 1, 5,000 → 3, 10,000 → 4,
 * 100,000 → 7, 500,000 → 9. A log scale keeps districts of a similar size in one FIFO class
 * (a few extra students never reorder them).
 */
export function sizePriority(students: number): number {
  const n = Number.isFinite(students) && students > 0 ? students : 0;
  return 1 + Math.floor(Math.log2(1 + n / PRIORITY_STUDENTS_UNIT));
}

const releasedKey = (ctx: Pick<AppContext, 'prefix'>) => `${ctx.prefix}:apply-released`;

/**
 * Record that chunk job `id` became runnable at `at` (epoch ms; default now): promoted, or
 * put back by a retry (a store-busy retry passes the end of its delay). Throws when Redis
 * fails.
 */
export async function chunkReleased(
  ctx: Pick<AppContext, 'prefix' | 'redis'>,
  id: string,
  at = Date.now(),
): Promise<void> {
  await ctx.redis.zadd(releasedKey(ctx), at, id);
}

/** Chunk job `id` started, or failed for good: it no longer waits. Throws when Redis fails. */
export async function chunkNoLongerWaiting(ctx: AppContext, id: string): Promise<void> {
  await ctx.redis.zrem(releasedKey(ctx), id);
}

/**
 * Move every chunk released more than `SYNC_PRIORITY_MAX_WAIT_MS` ago (at most
 * `AGING_BATCH`) ahead of the prioritized chunks. Returns the job ids moved. A job gone
 * meanwhile (removed, completed), active, or already without a priority is only forgotten.
 * A job still delayed (a retry's backoff) gets priority 0, so it joins the wait list when
 * its delay ends. Never reads a job's payload (the whole chunk): its state, then its
 * `priority` field. Throws when Redis fails.
 */
export async function ageChunks(ctx: AppContext, now = Date.now()): Promise<string[]> {
  const ids = await ctx.redis.zrangebyscore(
    releasedKey(ctx),
    '-inf',
    now - ctx.env.SYNC_PRIORITY_MAX_WAIT_MS,
    'LIMIT',
    0,
    AGING_BATCH,
  );
  const moved: string[] = [];
  const apply = ctx.queues.apply;
  for (const id of ids) {
    const state = await apply.getJobState(id);
    if (state === 'prioritized' || state === 'delayed') {
      const priority = Number((await ctx.redis.hget(apply.toKey(id), 'priority')) ?? 0);
      if (priority > 0) {
        // A handle without data: changePriority goes by id (one script).
        await new Job(apply, 'apply', {}, {}, id).changePriority({ priority: 0 });
        moved.push(id);
      }
    }
    await ctx.redis.zrem(releasedKey(ctx), id);
  }
  if (moved.length > 0)
    ctx.logger.info(
      { jobs: moved, maxWaitMs: ctx.env.SYNC_PRIORITY_MAX_WAIT_MS },
      'chunks waited past SYNC_PRIORITY_MAX_WAIT_MS: moved ahead of smaller districts',
    );
  return moved;
}

/**
 * Move every pull queued more than `SYNC_PRIORITY_MAX_WAIT_MS` ago (BullMQ `timestamp`; at
 * most `AGING_BATCH`, the first in priority order) ahead of the prioritized pulls. Returns
 * the job ids moved. Throws when Redis fails.
 */
export async function agePulls(ctx: AppContext, now = Date.now()): Promise<string[]> {
  const waiting = await ctx.queues.pull.getPrioritized(0, -1);
  const moved: string[] = [];
  for (const job of waiting) {
    if (!job.id || job.timestamp > now - ctx.env.SYNC_PRIORITY_MAX_WAIT_MS) continue;
    await job.changePriority({ priority: 0 });
    moved.push(job.id);
  }
  if (moved.length > 0)
    ctx.logger.info(
      { jobs: moved, maxWaitMs: ctx.env.SYNC_PRIORITY_MAX_WAIT_MS },
      'pulls waited past SYNC_PRIORITY_MAX_WAIT_MS: moved ahead of smaller districts',
    );
  return moved;
}
