/**
 * One writer per district, and fairness across districts (docs/decisions/0011).
 *
 * The chunks of one pull generation of a run are applied one at a time, in order: chunk n is
 * added to the apply queue *parked* (a BullMQ delayed job, `PARKED_DELAY_MS` ahead, which no
 * worker takes) and released (`Job.promote`, to the back of the queue) when it is its turn,
 * that is when chunk n − 1 has finished (applied, skipped, or failed for good). So:
 *
 * - the apply queue holds at most one runnable chunk per district: its FIFO order is a
 *   round robin over the districts that are syncing, and a 10,000-student district's chunks
 *   wait behind at most one chunk of each other district, never behind a 500,000-student
 *   district's backlog (BullMQ's open-source queues have no per-group fairness);
 * - sibling chunks of a district never race each other on identity (design invariant 7), in
 *   either store, and a waiting chunk holds no worker slot (it is parked, not waiting on a
 *   lock);
 * - the pull of a district runs at most `CHUNK_WINDOW` chunks ahead of its own apply
 *   (`waitForChunkWindow`), instead of waiting for the whole apply queue to drain, so a small
 *   district's pull is not slowed by a large district's backlog, and Redis holds at most
 *   `CHUNK_WINDOW` chunks per syncing district.
 *
 * State: one Redis hash per run and generation, `<prefix>:turns:<run>:g<generation>`, with
 * `turn` (the chunk allowed to run; absent = 0). The pull reads `turn` first: when it is
 * already the chunk's turn (its predecessor finished: the usual case when the pull is the
 * slower side, e.g. a no-change resync), the job is added runnable at once and nothing else
 * happens (the turn cannot move past a chunk that does not exist yet, so nobody else releases
 * it). Otherwise the pull adds the job parked, then reads `turn` again; the apply side moves
 * `turn`, then promotes the job (Redis is linearizable), so a chunk whose predecessor finished
 * in between is released by the pull, one added before by the apply side; when both release
 * it the second `promote` finds it no longer parked and is a no-op. Releasing never reads the
 * job back (its payload is the whole chunk): it promotes by id and looks at the job's state
 * only when that fails.
 * A re-delivered chunk passes a turn that has already moved on: nothing happens. Keys expire
 * after `LEDGER_TTL_SECONDS`.
 */
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { AppContext } from '../app.js';
import { jobId } from '../workers/queues.js';
import { LEDGER_TTL_SECONDS } from './ledger.js';
import { ageChunks, chunkNoLongerWaiting, chunkReleased } from './priority.js';
import { explainError } from '../errors.js';
import { applyJobData, type ApplyJobData, type ApplyPayload } from './payloads.js';

/**
 * What adding and releasing chunks needs: a pull's `AppContext`, or the chunk-sender thread's
 * own connections (src/jobs/chunk-sender.ts).
 */
export interface ChunkQueueContext {
  redis: Redis;
  prefix: string;
  queues: { apply: Queue };
}

/**
 * How far ahead of the chunk allowed to run a parked chunk is scheduled (ms): 7 days, i.e.
 * never in practice. A chunk is released by `promote`; the delay only keeps workers off it.
 */
export const PARKED_DELAY_MS = 7 * 24 * 3600 * 1000;

/**
 * Chunks a pull may queue ahead of its district's apply (parked ones included), unless the
 * environment sets `SYNC_CHUNKS_AHEAD`.
 */
export const CHUNK_WINDOW = 4;

/** How often a pull whose window is full checks it again (ms). */
const WINDOW_POLL_MS = 25;

const turnsKey = (ctx: Pick<AppContext, 'prefix'>, runId: string, generation: number) =>
  `${ctx.prefix}:turns:${runId}:g${generation}`;

/**
 * KEYS[1]: the turns hash. ARGV: chunk number n, ttl (s). Moves `turn` from n to n + 1 (and
 * nowhere else: a re-delivered chunk, or a turn already passed, changes nothing). Returns
 * the turn after the call.
 */
const PASS_TURN_LUA = `
local turn = tonumber(redis.call('HGET', KEYS[1], 'turn') or '0')
local n = tonumber(ARGV[1])
if turn == n then
  turn = n + 1
  redis.call('HSET', KEYS[1], 'turn', turn)
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return turn
`;

/** KEYS[1]: the turns hash. ARGV: ttl (s). Keeps the hash alive; returns the current `turn`. */
const TURN_LUA = `
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
return tonumber(redis.call('HGET', KEYS[1], 'turn') or '0')
`;

/**
 * Add chunk `payload.chunkNo` to the apply queue parked, with `options` (the step's BullMQ
 * options), and release it at once when it is its turn. The job's data is `applyJobData`
 * (the chunk encoded, docs/decisions/0015). Throws when Redis fails.
 */
export async function enqueueChunk(
  ctx: ChunkQueueContext,
  payload: ApplyPayload,
  options: Record<string, unknown>,
): Promise<void> {
  await enqueueChunkData(ctx, applyJobData(payload), options);
}

/**
 * `enqueueChunk` of a chunk already encoded (`ApplyJobData`): what the chunk-sender thread
 * runs. Throws when Redis fails.
 */
export async function enqueueChunkData(
  ctx: ChunkQueueContext,
  data: ApplyJobData,
  options: Record<string, unknown>,
): Promise<void> {
  const { districtId, runId, generation, chunkNo } = data;
  const id = jobId.chunk(districtId, runId, generation, chunkNo);
  const turn = async () =>
    Number(await ctx.redis.eval(TURN_LUA, 1, turnsKey(ctx, runId, generation), LEDGER_TTL_SECONDS));
  const add = (parked: boolean) =>
    ctx.queues.apply.add('apply', data, {
      ...options,
      jobId: id,
      ...(parked ? { delay: PARKED_DELAY_MS } : {}),
    });
  // Its turn already: runnable at once (no parked add, no promote).
  if ((await turn()) === chunkNo) {
    await add(false);
    // Its wait for a slot starts now (aging, src/jobs/priority.ts).
    await chunkReleased(ctx, id);
    return;
  }
  await add(true);
  if ((await turn()) === chunkNo) await release(ctx, data);
}

/**
 * Chunk `chunkNo` finished (applied, skipped as stale or cancelled, or failed for good):
 * pass the district's turn to the next chunk and release it if the pull has queued it.
 * Idempotent. Throws when Redis fails.
 */
export async function passTurn(
  ctx: AppContext,
  p: Pick<ApplyPayload, 'districtId' | 'runId' | 'generation' | 'chunkNo'>,
): Promise<void> {
  const turn = Number(
    await ctx.redis.eval(
      PASS_TURN_LUA,
      1,
      turnsKey(ctx, p.runId, p.generation),
      p.chunkNo,
      LEDGER_TTL_SECONDS,
    ),
  );
  await release(ctx, { ...p, chunkNo: turn });
}

/**
 * Wait (polling every `WINDOW_POLL_MS`) until chunk `chunkNo` of the run's generation is
 * fewer than `CHUNK_WINDOW` (or `SYNC_CHUNKS_AHEAD`) chunks ahead of its district's turn, or
 * `signal` aborts.
 */
export async function waitForChunkWindow(
  ctx: AppContext,
  runId: string,
  generation: number,
  chunkNo: number,
  signal?: AbortSignal,
): Promise<void> {
  const key = turnsKey(ctx, runId, generation);
  for (;;) {
    const turn = Number((await ctx.redis.hget(key, 'turn')) ?? 0);
    if (chunkNo - turn < (ctx.env.SYNC_CHUNKS_AHEAD ?? CHUNK_WINDOW) || signal?.aborted) return;
    await new Promise(r => setTimeout(r, WINDOW_POLL_MS));
  }
}

/**
 * Promote the parked chunk, if it exists and is still parked (else nothing). One round trip
 * when it is parked: the promote goes by id through a job handle without data (`Job.fromId`
 * would read and parse the whole chunk payload back); when it fails, the job's state says
 * whether that was a real error (still parked: rethrown) or nothing to do (not added yet,
 * added runnable, or released by the other side in between).
 */
async function release(
  ctx: ChunkQueueContext,
  p: Pick<ApplyPayload, 'districtId' | 'runId' | 'generation' | 'chunkNo'>,
): Promise<void> {
  const id = jobId.chunk(p.districtId, p.runId, p.generation, p.chunkNo);
  try {
    await new Job(ctx.queues.apply, 'apply', {}, {}, id).promote();
  } catch (err) {
    // Released by the other side in between (no longer delayed): the turn is taken.
    if ((await ctx.queues.apply.getJobState(id)) === 'delayed') throw err;
    return;
  }
  // Its wait for a slot starts now (aging, src/jobs/priority.ts).
  await chunkReleased(ctx, id);
}

/** The fields of an apply job's payload that name its chunk (zod: data read back from Redis). */
const ChunkRef = z.object({
  districtId: z.string(),
  runId: z.string(),
  generation: z.number().int().nonnegative(),
  chunkNo: z.number().int().nonnegative(),
});

/**
 * Wrap the apply processor: once a chunk's job returns (applied, or skipped as stale or
 * cancelled), pass its district's turn to the next chunk. A failed attempt keeps the turn
 * (the retry comes first); `passTurnAfterFinalFailure` passes it when no attempt is left.
 */
export function inTurn<T>(
  ctx: AppContext,
  fn: (job: Job, token?: string) => Promise<T>,
): (job: Job, token?: string) => Promise<T> {
  return async (job, token) => {
    if (job.id) await chunkNoLongerWaiting(ctx, job.id);
    const out = await fn(job, token);
    await passTurn(ctx, ChunkRef.parse(job.data));
    // A slot frees: a chunk that waited too long goes first (src/jobs/priority.ts). Best
    // effort: this chunk is done either way, and the next one to finish checks again.
    await ageChunks(ctx).catch((err: unknown) =>
      ctx.logger.warn({ err: explainError(err) }, 'aging waiting chunks failed'),
    );
    return out;
  };
}

/**
 * An apply job failed for good: pass its turn, so the run's later chunks are applied as they
 * were before chunks took turns (the run itself is failed by the caller) and none stays
 * parked in Redis. A job without a chunk reference is ignored.
 */
export async function passTurnAfterFinalFailure(ctx: AppContext, job: Job): Promise<void> {
  if (job.id) await chunkNoLongerWaiting(ctx, job.id);
  const ref = ChunkRef.safeParse(job.data);
  if (ref.success) await passTurn(ctx, ref.data);
}
