/**
 * The run ledger: per-run scratch state in Redis, written by apply jobs and read by the
 * finalize job. It keeps the store free of bookkeeping writes (a no-change resync writes
 * nothing to the store) and survives worker restarts. Every write is idempotent, so a
 * re-delivered job never double-counts: sets for seen ids, HSETNX for per-chunk figures.
 * Keys expire after `LEDGER_TTL_SECONDS`.
 */
import type { Redis } from 'ioredis';
import type { Reject, RunCounts } from '../models/types.js';

export const LEDGER_TTL_SECONDS = 7 * 24 * 3600;
const BATCH = 5000;

export interface ChunkOutcome {
  chunkNo: number;
  seenStudents: string[];
  seenParents: string[];
  /** Parent accounts this chunk created. */
  createdParents: string[];
  linkRemovals: { parentId: string; studentSourcedId: string }[];
  counts: RunCounts;
  rejects: Reject[];
}

export class RunLedger {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(runId: string, part: string): string {
    return `${this.prefix}:ledger:${runId}:${part}`;
  }

  /** Record what one chunk saw and did. Safe to call twice for the same chunk. */
  async recordChunk(runId: string, o: ChunkOutcome): Promise<void> {
    const k = (p: string) => this.key(runId, p);
    const m = this.redis.multi();
    for (let i = 0; i < o.seenStudents.length; i += BATCH)
      m.sadd(k('seenStudents'), ...o.seenStudents.slice(i, i + BATCH));
    for (let i = 0; i < o.seenParents.length; i += BATCH)
      m.sadd(k('seenParents'), ...o.seenParents.slice(i, i + BATCH));
    for (let i = 0; i < o.createdParents.length; i += BATCH)
      m.sadd(k('createdParents'), ...o.createdParents.slice(i, i + BATCH));
    if (o.linkRemovals.length)
      m.sadd(k('linkRemovals'), ...o.linkRemovals.map(l => `${l.parentId}\t${l.studentSourcedId}`));
    m.hsetnx(k('counts'), `chunk:${o.chunkNo}`, JSON.stringify(o.counts));
    if (o.rejects.length) m.hsetnx(k('rejects'), `chunk:${o.chunkNo}`, JSON.stringify(o.rejects));
    m.sadd(k('applied'), String(o.chunkNo));
    for (const p of [
      'seenStudents',
      'seenParents',
      'createdParents',
      'linkRemovals',
      'counts',
      'rejects',
      'applied',
    ])
      m.expire(k(p), LEDGER_TTL_SECONDS);
    await m.exec();
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

  async seen(runId: string): Promise<{ students: Set<string>; parents: Set<string> }> {
    const [students, parents] = await Promise.all([
      this.readSet(this.key(runId, 'seenStudents')),
      this.readSet(this.key(runId, 'seenParents')),
    ]);
    return { students, parents };
  }

  /** Parent accounts created by this run's chunks. */
  async createdParents(runId: string): Promise<string[]> {
    return [...(await this.readSet(this.key(runId, 'createdParents')))];
  }

  async linkRemovals(runId: string): Promise<{ parentId: string; studentSourcedId: string }[]> {
    const raw = await this.readSet(this.key(runId, 'linkRemovals'));
    return [...raw].map(s => {
      const [parentId = '', studentSourcedId = ''] = s.split('\t');
      return { parentId, studentSourcedId };
    });
  }

  /** Sum of the per-chunk counts. */
  async counts(runId: string): Promise<RunCounts> {
    const all = await this.redis.hvals(this.key(runId, 'counts'));
    const out: RunCounts = {};
    for (const json of all) mergeCounts(out, JSON.parse(json) as RunCounts);
    return out;
  }

  async rejects(runId: string): Promise<Reject[]> {
    const all = await this.redis.hgetall(this.key(runId, 'rejects'));
    return Object.keys(all)
      .sort()
      .flatMap(f => JSON.parse(all[f] ?? '[]') as Reject[]);
  }

  async clear(runId: string): Promise<void> {
    const parts = [
      'seenStudents',
      'seenParents',
      'linkRemovals',
      'counts',
      'rejects',
      'applied',
      'meta',
    ];
    await this.redis.del(...parts.map(p => this.key(runId, p)));
  }

  private async readSet(key: string): Promise<Set<string>> {
    const out = new Set<string>();
    let cursor = '0';
    do {
      const [next, members] = await this.redis.sscan(key, cursor, 'COUNT', 10000);
      for (const m of members) out.add(m);
      cursor = next;
    } while (cursor !== '0');
    return out;
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
