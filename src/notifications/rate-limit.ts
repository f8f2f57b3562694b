/**
 * Per-district send limits: at most `ratePerHour` emails per UTC clock hour and `ratePerDay`
 * per UTC day (providers cap sending per hour/day). Fixed-window counters in Redis, checked
 * and incremented in one Lua script so concurrent workers never overshoot. A send that finds
 * a window full learns when the next window opens.
 */
import type { Redis } from 'ioredis';

const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

// KEYS: hour counter, day counter. ARGV: hour limit, day limit (0 = none), hour ttl, day ttl (s).
// Returns 0 when a slot was taken, 1 when the hour is full, 2 when the day is full.
const TAKE_SLOT = `
local h = tonumber(redis.call('GET', KEYS[1]) or '0')
local d = tonumber(redis.call('GET', KEYS[2]) or '0')
local hl = tonumber(ARGV[1])
local dl = tonumber(ARGV[2])
if dl > 0 and d >= dl then return 2 end
if hl > 0 and h >= hl then return 1 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 0
`;

export interface RateLimits {
  ratePerHour?: number | undefined;
  ratePerDay?: number | undefined;
}

/** Redis keys of the windows containing `now` (exported for tests and operators). */
export function rateWindowKeys(
  prefix: string,
  districtId: string,
  now: number,
): { hour: string; day: string } {
  return {
    hour: `${prefix}:notify-rate:${districtId}:h:${Math.floor(now / HOUR_MS)}`,
    day: `${prefix}:notify-rate:${districtId}:d:${Math.floor(now / DAY_MS)}`,
  };
}

/** Start of the next UTC hour / day after `now` (ms since epoch). */
export function nextWindow(now: number, unit: 'hour' | 'day'): number {
  const size = unit === 'hour' ? HOUR_MS : DAY_MS;
  return (Math.floor(now / size) + 1) * size;
}

/**
 * Take one send slot for `districtId` at `now`. Returns `{ ok: true }`, or `{ ok: false,
 * until, window }` with the start of the next window of the limit that is reached. No limits
 * configured → always ok (no Redis call).
 */
export async function takeSendSlot(
  redis: Redis,
  prefix: string,
  districtId: string,
  limits: RateLimits,
  now: number = Date.now(),
): Promise<{ ok: true } | { ok: false; until: number; window: 'hour' | 'day' }> {
  if (!limits.ratePerHour && !limits.ratePerDay) return { ok: true };
  const k = rateWindowKeys(prefix, districtId, now);
  const r = await redis.eval(
    TAKE_SLOT,
    2,
    k.hour,
    k.day,
    String(limits.ratePerHour ?? 0),
    String(limits.ratePerDay ?? 0),
    String(2 * 3600),
    String(2 * 86400),
  );
  if (r === 0) return { ok: true };
  const window = r === 2 ? 'day' : 'hour';
  return { ok: false, until: nextWindow(now, window), window };
}
