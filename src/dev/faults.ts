/**
 * Fault injection and request counting shared by the fake SIS servers (`*-server.ts`): the
 * next `n` requests rate-limited (429 + `Retry-After`) or failing (500), and a delay before
 * every guarded response. Each server decides which requests are guarded and how the 429/500
 * body looks (vendor error shapes differ); this module only keeps the counters.
 */
import { setTimeout as delay } from 'node:timers/promises';

/** Request counters of a fake server (updated before each response is sent). */
export interface RequestStats {
  /** All requests received, including token requests. */
  requests: number;
  /** By route label (each server names its routes); unknown routes under `"404"`. */
  byRoute: Record<string, number>;
  /** By HTTP status, e.g. `"200"`, `"429"`. */
  byStatus: Record<string, number>;
}

/**
 * Standing limits of a slow, rate-limited SIS (issue 15), set at start (`limits` option of
 * each fake server) or live (`faults.limits`). Unlike the one-shot faults, `reset()` keeps
 * them.
 */
export interface SisLimits {
  /** Added before every guarded response, in ms (like `slowMs`). Default 0. */
  latencyMs?: number | undefined;
  /**
   * Requests per second the server accepts (token bucket refilled continuously, holding at
   * most one second's worth, `burst`); a request over the cap gets 429 with
   * `Retry-After: retryAfterSeconds`. Default: no cap.
   */
  maxRequestsPerSecond?: number | undefined;
  /** Bucket size (requests). Default `maxRequestsPerSecond` (one second of burst). */
  burst?: number | undefined;
  /** `Retry-After` of a capped request, in seconds. Default 1. */
  retryAfterSeconds?: number | undefined;
}

/** What `FaultInjector.next()` tells a server to answer instead of the real response. */
export type InjectedFault =
  | {
      kind: 'rate-limit';
      /** `Retry-After` header value (seconds or HTTP date). */ retryAfter: string;
    }
  | { kind: 'server-error' };

/**
 * The live counters behind a fake server's `rateLimit` / `serverError` / `slowMs` switches.
 * `reset()` clears the three (the last `Retry-After` value is kept, as it only matters with
 * a new `rateLimit`).
 */
export class FaultInjector {
  private rateLimitLeft = 0;
  private retryAfter = '1';
  private serverErrorLeft = 0;
  private delayMs = 0;
  private gate: { held: Promise<void>; open: () => void } | undefined;
  private standing: SisLimits = {};
  private tokens = 0;
  private refilledAt = 0;
  /** Requests refused by the `maxRequestsPerSecond` cap since the limits were set. */
  cappedRequests = 0;

  /**
   * Set the standing latency and request-rate cap (replaces earlier limits; `{}` removes
   * them). Throws `RangeError` for a negative latency or a cap that is not positive.
   */
  limits(l: SisLimits): void {
    if (l.latencyMs !== undefined && !(l.latencyMs >= 0))
      throw new RangeError(`latencyMs ${l.latencyMs}`);
    if (l.maxRequestsPerSecond !== undefined && !(l.maxRequestsPerSecond > 0))
      throw new RangeError(`maxRequestsPerSecond ${l.maxRequestsPerSecond}`);
    this.standing = { ...l };
    this.tokens = l.burst ?? l.maxRequestsPerSecond ?? 0;
    this.refilledAt = performance.now();
    this.cappedRequests = 0;
  }

  /** True when this request is over the cap (takes a token otherwise). */
  private overCap(): boolean {
    const rps = this.standing.maxRequestsPerSecond;
    if (rps === undefined) return false;
    const now = performance.now();
    const burst = this.standing.burst ?? rps;
    this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) * rps) / 1000);
    this.refilledAt = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return false;
    }
    this.cappedRequests++;
    return true;
  }

  /** The next `n` guarded requests get 429 with `Retry-After: retryAfter` (seconds or HTTP date). */
  rateLimit(n: number, retryAfter: number | string): void {
    this.rateLimitLeft = n;
    this.retryAfter = String(retryAfter);
  }

  /** The next `n` guarded requests get 500. */
  serverError(n: number): void {
    this.serverErrorLeft = n;
  }

  /** Delay every guarded response by `ms` milliseconds (0 = off). */
  slowMs(ms: number): void {
    this.delayMs = ms;
  }

  /**
   * Hold every guarded request (they wait, unanswered) until `resume()`: a test pauses the
   * SIS mid-pull to act while the run is certainly still running.
   */
  pause(): void {
    if (this.gate) return;
    let open: () => void = () => undefined;
    const held = new Promise<void>(r => (open = r));
    this.gate = { held, open };
  }

  /** Answer the requests `pause()` held, and the next ones, again. */
  resume(): void {
    this.gate?.open();
    this.gate = undefined;
  }

  /** Clear rate limiting, server errors, the delay and a pause (standing `limits` stay). */
  reset(): void {
    this.rateLimitLeft = 0;
    this.serverErrorLeft = 0;
    this.delayMs = 0;
    this.resume();
  }

  /**
   * For one guarded request: check the standing request-rate cap on arrival, wait the
   * standing latency plus the configured delay, then answer 429 when over the cap, else
   * consume one pending fault — rate limiting first, then server errors (a paused injector
   * holds it first). Undefined when the request should proceed.
   */
  async next(): Promise<InjectedFault | undefined> {
    if (this.gate) await this.gate.held;
    const capped = this.overCap();
    const wait = this.delayMs + (this.standing.latencyMs ?? 0);
    if (wait > 0) await delay(wait);
    if (capped)
      return { kind: 'rate-limit', retryAfter: String(this.standing.retryAfterSeconds ?? 1) };
    if (this.rateLimitLeft > 0) {
      this.rateLimitLeft--;
      return { kind: 'rate-limit', retryAfter: this.retryAfter };
    }
    if (this.serverErrorLeft > 0) {
      this.serverErrorLeft--;
      return { kind: 'server-error' };
    }
    return undefined;
  }
}

/** Count one received request under `route` (call from `onRequest`, before any fault). */
export function countRequest(stats: RequestStats, route: string): void {
  stats.requests++;
  stats.byRoute[route] = (stats.byRoute[route] ?? 0) + 1;
}

/** Count one response by its HTTP status (call from `onSend`). */
export function countStatus(stats: RequestStats, statusCode: number): void {
  const key = String(statusCode);
  stats.byStatus[key] = (stats.byStatus[key] ?? 0) + 1;
}
