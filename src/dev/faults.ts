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

  /** Clear rate limiting, server errors, the delay and a pause. */
  reset(): void {
    this.rateLimitLeft = 0;
    this.serverErrorLeft = 0;
    this.delayMs = 0;
    this.resume();
  }

  /**
   * For one guarded request: wait the configured delay, then consume one pending fault —
   * rate limiting first, then server errors (a paused injector holds it first). Undefined when the request should proceed.
   */
  async next(): Promise<InjectedFault | undefined> {
    if (this.gate) await this.gate.held;
    if (this.delayMs > 0) await delay(this.delayMs);
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
