/**
 * The run ledger: per-run scratch state in Redis, written by apply jobs and read by the
 * finalize job. It keeps the store free of bookkeeping writes (a no-change resync writes
 * nothing to the store) and survives worker restarts. Every write is idempotent, so a
 * re-delivered job never double-counts: each chunk's ids and figures are one hash field per
 * chunk (HSETNX), and readers take the union. One JSON list per chunk rather than one set
 * member per id keeps a 500,000-student run's ledger at about a third of the Redis memory
 * and lets finalize read it in a few hundred calls instead of 1.2 million bulk strings
 * (docs/performance.md). Keys expire after `LEDGER_TTL_SECONDS`.
 */
import type { Redis } from 'ioredis';
import type { Reject, RunCounts } from '../models/types.js';
import { yieldToEventLoop } from '../reconcile/finalize.js';

export const LEDGER_TTL_SECONDS = 7 * 24 * 3600;

/**
 * Chunk fields per HSCAN page: each field is one chunk's list (about 1,000–1,500 ids, or a
 * chunk's rejects), so a page is about 100,000 ids, parsed in tens of ms. More round trips
 * cost finalize wall time on a loaded machine (each one waits to be scheduled again).
 */
const SCAN_FIELDS = 100;

/** Reject fields parsed between two turns of the event loop. */
const LIST_FIELDS_PER_TURN = 25;

/** Ledger parts cleared when a new pull generation starts (and at the end of the run). */
const PARTS = [
  'seenStudents',
  'seenParents',
  'linkRemovals',
  'counts',
  'rejects',
  'applied',
  'meta',
  'dryRunParents',
  'applyWait',
] as const;

/**
 * KEYS: generation, seenStudents, seenParents, linkRemovals, counts, rejects, applied,
 * applyWait (all hashes keyed by chunk field, except `applied`: a set of chunk numbers).
 * ARGV: generation, ttl, chunk field, then one value per hash in KEYS order 2..6 ('' = none),
 * then the chunk's wait in ms for `applyWait` ('' = none).
 */
const RECORD_CHUNK_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local ttl = tonumber(ARGV[2])
for s = 2, 6 do
  local v = ARGV[2 + s]
  if v ~= '' then
    redis.call('HSETNX', KEYS[s], ARGV[3], v)
    redis.call('EXPIRE', KEYS[s], ttl)
  end
end
redis.call('SADD', KEYS[7], string.sub(ARGV[3], 7))
redis.call('EXPIRE', KEYS[7], ttl)
if ARGV[9] ~= '' then
  redis.call('HSETNX', KEYS[8], ARGV[3], ARGV[9])
  redis.call('EXPIRE', KEYS[8], ttl)
end
return 1
`;

/** A JSON list, or '' for an empty one (nothing stored). */
const listField = (xs: readonly string[]): string => (xs.length ? JSON.stringify(xs) : '');

export interface ChunkOutcome {
  chunkNo: number;
  seenStudents: string[];
  seenParents: string[];
  linkRemovals: { parentId: string; studentSourcedId: string }[];
  counts: RunCounts;
  rejects: Reject[];
  /**
   * Milliseconds from the chunk's enqueueing to the start of its apply (a worker slot and
   * the district's turn); the first recorded attempt is kept.
   */
  applyWaitMs?: number | undefined;
}

export class RunLedger {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(runId: string, part: string): string {
    return `${this.prefix}:ledger:${runId}:${part}`;
  }

  /**
   * Start a new pull generation for a run: forget what earlier (failed or interrupted)
   * pull attempts recorded and return the new generation number. Apply jobs of older
   * generations are then ignored (`recordChunk` returns false), so a retried pull whose
   * pages shifted can never leave stale chunks standing.
   */
  async startGeneration(runId: string): Promise<number> {
    const res = await this.redis
      .multi()
      .del(...PARTS.map(p => this.key(runId, p)))
      .incr(this.key(runId, 'generation'))
      .expire(this.key(runId, 'generation'), LEDGER_TTL_SECONDS)
      .exec();
    const gen = res?.[1]?.[1];
    if (typeof gen !== 'number')
      throw new Error(`run ${runId}: could not start a ledger generation`);
    return gen;
  }

  /** The run's current pull generation (0 when none started). */
  async generation(runId: string): Promise<number> {
    return Number((await this.redis.get(this.key(runId, 'generation'))) ?? 0);
  }

  /**
   * Record what one chunk of pull generation `generation` saw and did, atomically (one Lua
   * script). Safe to call twice for the same chunk. Returns false, recording nothing, when
   * the run has moved on to another generation.
   */
  async recordChunk(runId: string, generation: number, o: ChunkOutcome): Promise<boolean> {
    const k = (p: string) => this.key(runId, p);
    const links = o.linkRemovals.map(l => `${l.parentId}\t${l.studentSourcedId}`);
    const args: (string | number)[] = [
      generation,
      LEDGER_TTL_SECONDS,
      `chunk:${o.chunkNo}`,
      listField(o.seenStudents),
      listField(o.seenParents),
      listField(links),
      JSON.stringify(o.counts),
      o.rejects.length ? JSON.stringify(o.rejects) : '',
      o.applyWaitMs === undefined ? '' : String(Math.max(0, Math.round(o.applyWaitMs))),
    ];
    const keys = [
      'generation',
      'seenStudents',
      'seenParents',
      'linkRemovals',
      'counts',
      'rejects',
      'applied',
      'applyWait',
    ].map(k);
    const ok = await this.redis.eval(RECORD_CHUNK_LUA, keys.length, ...keys, ...args);
    return ok === 1;
  }

  /**
   * A dry run's planned parent-account changes of one chunk (`DryRunParents` as JSON), kept
   * so finalize counts a guardian shared across chunks once (invariant 12). Idempotent per
   * chunk (HSETNX). Record it before `recordChunk`, which may complete the run.
   */
  async recordDryRunParents(runId: string, chunkNo: number, json: string): Promise<void> {
    const k = this.key(runId, 'dryRunParents');
    await this.redis
      .multi()
      .hsetnx(k, `chunk:${chunkNo}`, json)
      .expire(k, LEDGER_TTL_SECONDS)
      .exec();
  }

  /** The JSON values `recordDryRunParents` stored, in chunk order. */
  async dryRunParents(runId: string): Promise<string[]> {
    const all = await this.redis.hgetall(this.key(runId, 'dryRunParents'));
    return Object.keys(all)
      .sort((a, b) => Number(a.slice(6)) - Number(b.slice(6)))
      .map(f => all[f] ?? '');
  }

  /** Rejects found while pulling (before chunk `seq` was enqueued). */
  async recordPullRejects(runId: string, seq: string, rejects: Reject[]): Promise<void> {
    if (!rejects.length) return;
    const k = this.key(runId, 'rejects');
    await this.redis
      .multi()
      .hsetnx(k, `pull:${seq}`, JSON.stringify(rejects))
      .expire(k, LEDGER_TTL_SECONDS)
      .exec();
  }

  /** The pull finished: `total` chunks were enqueued. */
  async setTotal(runId: string, total: number, extra: Record<string, string> = {}): Promise<void> {
    const k = this.key(runId, 'meta');
    await this.redis
      .multi()
      .hset(k, { total: String(total), ...extra })
      .expire(k, LEDGER_TTL_SECONDS)
      .exec();
  }

  /** Merge `values` into the run's meta hash (cleared with the generation). */
  async setMeta(runId: string, values: Record<string, string>): Promise<void> {
    const k = this.key(runId, 'meta');
    await this.redis.multi().hset(k, values).expire(k, LEDGER_TTL_SECONDS).exec();
  }

  async meta(runId: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.key(runId, 'meta'));
  }

  /** True when the pull finished and every chunk it enqueued was applied. */
  async isComplete(runId: string): Promise<boolean> {
    const [total, applied] = await Promise.all([
      this.redis.hget(this.key(runId, 'meta'), 'total'),
      this.redis.scard(this.key(runId, 'applied')),
    ]);
    return total !== null && applied >= Number(total);
  }

  /**
   * How far the run got: chunks applied in the current generation, and the pull's chunk
   * total once the pull finished (undefined before). Read by the run reconciler.
   */
  async progress(runId: string): Promise<{ applied: number; total: number | undefined }> {
    const [total, applied] = await Promise.all([
      this.redis.hget(this.key(runId, 'meta'), 'total'),
      this.redis.scard(this.key(runId, 'applied')),
    ]);
    return { applied, total: total === null ? undefined : Number(total) };
  }

  async seen(runId: string): Promise<{ students: Set<string>; parents: Set<string> }> {
    const [students, parents] = await Promise.all([
      this.readLists(this.key(runId, 'seenStudents')),
      this.readLists(this.key(runId, 'seenParents')),
    ]);
    return { students, parents };
  }

  async linkRemovals(runId: string): Promise<{ parentId: string; studentSourcedId: string }[]> {
    const raw = await this.readLists(this.key(runId, 'linkRemovals'));
    return [...raw].map(s => {
      const [parentId = '', studentSourcedId = ''] = s.split('\t');
      return { parentId, studentSourcedId };
    });
  }

  /**
   * How long the chunks applied in this generation waited for their apply (ms): the average
   * and the longest; undefined when none was recorded.
   */
  async applyWaits(runId: string): Promise<{ avg: number; max: number } | undefined> {
    const all = (await this.redis.hvals(this.key(runId, 'applyWait'))).map(Number);
    if (!all.length) return undefined;
    let sum = 0;
    let max = 0;
    for (const ms of all) {
      sum += ms;
      if (ms > max) max = ms;
    }
    return { avg: Math.round(sum / all.length), max };
  }

  /** Sum of the per-chunk counts. */
  async counts(runId: string): Promise<RunCounts> {
    const all = await this.redis.hvals(this.key(runId, 'counts'));
    const out: RunCounts = {};
    for (const json of all) mergeCounts(out, JSON.parse(json) as RunCounts);
    return out;
  }

  /**
   * Every reject recorded for the run, in field order (pull rejects by sequence, then chunk
   * rejects). Read in HSCAN pages and parsed one field at a time, with a turn of the event
   * loop every `LIST_FIELDS_PER_TURN` fields: a 500,000-student run has ~150,000 exclusions.
   */
  async rejects(runId: string): Promise<Reject[]> {
    const fields: [string, string][] = [];
    await this.scanFields(this.key(runId, 'rejects'), (f, v) => void fields.push([f, v]));
    fields.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const out: Reject[] = [];
    for (let i = 0; i < fields.length; i++) {
      for (const r of JSON.parse(fields[i]?.[1] ?? '[]') as Reject[]) out.push(r);
      if ((i + 1) % LIST_FIELDS_PER_TURN === 0) await yieldToEventLoop();
    }
    return out;
  }

  async clear(runId: string): Promise<void> {
    // UNLINK: a half-million-member set is freed by Redis in the background instead of
    // blocking every other client while it is deleted.
    await this.redis.unlink(...[...PARTS, 'generation'].map(p => this.key(runId, p)));
  }

  /** The union of the JSON lists a hash holds (one field per chunk). */
  private async readLists(key: string): Promise<Set<string>> {
    const out = new Set<string>();
    await this.scanFields(key, (_, v) => {
      for (const id of JSON.parse(v) as string[]) out.add(id);
    });
    return out;
  }

  /**
   * Call `each` for every field of a hash, in HSCAN pages of about `SCAN_FIELDS` fields: the
   * synchronous work between two round trips stays one page, and the event loop turns (timers,
   * a job's lock renewal) while finalize reads a district-sized ledger.
   */
  private async scanFields(key: string, each: (field: string, value: string) => void) {
    let cursor = '0';
    do {
      const [next, flat] = await this.redis.hscan(key, cursor, 'COUNT', SCAN_FIELDS);
      for (let i = 1; i < flat.length; i += 2) each(flat[i - 1] ?? '', flat[i] ?? '[]');
      cursor = next;
    } while (cursor !== '0');
  }
}

/** Add `b` into `a` (entity → action → n). */
export function mergeCounts(a: RunCounts, b: RunCounts): RunCounts {
  for (const [entity, actions] of Object.entries(b)) {
    const target = (a[entity] ??= {});
    for (const [action, n] of Object.entries(actions)) target[action] = (target[action] ?? 0) + n;
  }
  return a;
}
