/**
 * Fixed-window failure budgets in Redis for redemption attempts. No maintained limiter
 * library is installed, and this is one small Lua script.
 *
 * Budgets (docs/operations.md "Redemption failure budgets"): per client (the caller's
 * `client` value, namespaced by API token), per typed code, and three that no caller-supplied
 * value can dodge — per API token, per district (the one the request targets: Add Child's
 * district, or a district-scoped token's districts) and one global budget.
 *
 * An attempt *reserves* one failure in every budget that applies before the code is looked
 * up, atomically (`reserve`: one script checks every budget and increments them all, or none
 * when one is spent), so concurrent wrong guesses can never exceed a limit. A successful check
 * gives the reservation back (`release`); a failed one keeps it.
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

/** The budgets an attempt is checked against. */
export type BudgetKind = 'client' | 'code' | 'token' | 'district' | 'global';

export type Limits = Record<BudgetKind, LimitRule>;

/**
 * Defaults, per 15 minutes: 10 failures per client, 5 per code, 200 per API token, 200 per
 * district, 1000 in all. A platform backend serving many parents shares its token's budget:
 * raise `token`/`district` for a very large district (tests pass their own).
 */
export const DEFAULT_LIMITS: Limits = {
  client: { limit: 10, windowSeconds: 15 * 60 },
  code: { limit: 5, windowSeconds: 15 * 60 },
  token: { limit: 200, windowSeconds: 15 * 60 },
  district: { limit: 200, windowSeconds: 15 * 60 },
  global: { limit: 1000, windowSeconds: 15 * 60 },
};

/** One budget an attempt counts against. */
export interface Budget {
  kind: BudgetKind;
  subject: string;
  rule: LimitRule;
}

/**
 * KEYS: one per budget. ARGV: limit, window seconds per key (in KEYS order).
 * Returns {0, 0} when every budget had room (each was incremented, its window opened if
 * new), else {i, ttl} for the first spent budget i (1-based) and nothing is incremented.
 */
const RESERVE_LUA = `
for i = 1, #KEYS do
  local c = tonumber(redis.call('GET', KEYS[i]) or '0')
  if c >= tonumber(ARGV[2 * i - 1]) then
    return {i, redis.call('TTL', KEYS[i])}
  end
end
for i = 1, #KEYS do
  redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[2 * i]) end
end
return {0, 0}
`;

/** KEYS: one per budget. Decrements each key that is above 0 (a reservation given back). */
const RELEASE_LUA = `
for i = 1, #KEYS do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
`;

export type Reservation =
  { ok: true } | { ok: false; budget: BudgetKind; retryAfterSeconds: number };

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
   * Atomically reserve one failure in each of `budgets`: `{ ok: true }` when every budget
   * had room (all were counted), else the first spent budget and the seconds until its
   * window ends (nothing counted). Throws when Redis fails.
   */
  async reserve(budgets: readonly Budget[]): Promise<Reservation> {
    if (!budgets.length) return { ok: true };
    const keys = budgets.map(b => this.key(b.kind, b.subject));
    const args = budgets.flatMap(b => [b.rule.limit, b.rule.windowSeconds]);
    const r = (await this.redis.eval(RESERVE_LUA, keys.length, ...keys, ...args)) as [
      number,
      number,
    ];
    const [i, ttl] = r;
    if (i === 0) return { ok: true };
    const b = budgets[i - 1];
    if (!b) throw new Error(`rate limiter: unexpected answer ${JSON.stringify(r)}`);
    return { ok: false, budget: b.kind, retryAfterSeconds: ttl > 0 ? ttl : b.rule.windowSeconds };
  }

  /** Give back a reservation of `budgets` (the attempt did not fail). Throws when Redis fails. */
  async release(budgets: readonly Budget[]): Promise<void> {
    if (!budgets.length) return;
    const keys = budgets.map(b => this.key(b.kind, b.subject));
    await this.redis.eval(RELEASE_LUA, keys.length, ...keys);
  }
}
