/**
 * A fixed-window counter in Redis for failed redemption attempts (per client and per code).
 * No maintained limiter library is installed, and this needs three Redis commands:
 * `SET key 0 EX window NX` (open the window once), `INCR key`, `TTL key`.
 *
 * Keys are `{prefix}:ac-rl:{kind}:{sha256(subject)}`: client addresses and typed codes are
 * never written to Redis in clear.
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface LimitRule {
  /** Failed attempts allowed per window; the next attempt is refused. */
  limit: number;
  windowSeconds: number;
}

/** Defaults: 10 failures per client and 5 per code, per 15 minutes. */
export const DEFAULT_LIMITS: { client: LimitRule; code: LimitRule } = {
  client: { limit: 10, windowSeconds: 15 * 60 },
  code: { limit: 5, windowSeconds: 15 * 60 },
};

export class FixedWindowLimiter {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(kind: string, subject: string): string {
    const h = createHash('sha256').update(subject).digest('hex').slice(0, 32);
    return `${this.prefix}:ac-rl:${kind}:${h}`;
  }

  /**
   * Seconds until the window of `subject` ends when it has reached `rule.limit` failures,
   * else 0 (allowed).
   */
  async blockedFor(kind: string, subject: string, rule: LimitRule): Promise<number> {
    const k = this.key(kind, subject);
    const [count, ttl] = await Promise.all([this.redis.get(k), this.redis.ttl(k)]);
    if (count === null || Number(count) < rule.limit) return 0;
    return ttl > 0 ? ttl : rule.windowSeconds;
  }

  /** Count one failure for `subject`; returns the failures in the current window. */
  async fail(kind: string, subject: string, rule: LimitRule): Promise<number> {
    const k = this.key(kind, subject);
    const r = await this.redis.multi().set(k, '0', 'EX', rule.windowSeconds, 'NX').incr(k).exec();
    const n = r?.[1]?.[1];
    return typeof n === 'number' ? n : Number(n ?? 0);
  }
}
