/**
 * Small HTTP helpers shared by the SIS connector clients (PowerSchool, Aeries, OneRoster
 * REST / Infinite Campus / Skyward): `Retry-After` parsing, first-value header reads and an
 * abortable wait that rejects with the signal's own reason, and the retry policy they share
 * (`retrySisRequest`).
 */
import { setTimeout as sleepFor } from 'node:timers/promises';
import type { AxiosResponse } from 'axios';
import type { Logger } from 'pino';
import pRetry, { AbortError } from 'p-retry';
import { SisHttpError, SisRateLimitError } from '../errors.js';

/**
 * Longest `Retry-After` a client waits in line (ms), holding its worker slot; a longer one
 * reschedules the pull (`SisRateLimitError`, docs/decisions/0007-retry-after-reschedules.md).
 */
export const INLINE_RETRY_AFTER_MS = 5000;

/**
 * Cap applied when a `Retry-After` is parsed (ms): effectively none (one day). The
 * operator's maximum (`SIS_RETRY_AFTER_MAX_SECONDS`) is applied when the pull is rescheduled.
 */
export const PARSE_RETRY_AFTER_CAP_MS = 24 * 3600 * 1000;

/**
 * Parse a `Retry-After` header value (RFC 9110 §10.2.3): delta-seconds (`"120"`) or an HTTP
 * date. Returns the wait in ms (≥ 0, at most `capMs`), or undefined when absent/unparseable.
 *
 * @param value the raw header value
 * @param nowMs the current time (ms since epoch), for HTTP-date values
 * @param capMs the largest wait honoured (ms)
 */
export function parseRetryAfter(
  value: string | undefined,
  nowMs: number,
  capMs: number,
): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  if (v === '') return undefined;
  let ms: number;
  if (/^\d+$/.test(v)) ms = Number.parseInt(v, 10) * 1000;
  else {
    const at = Date.parse(v);
    if (Number.isNaN(at)) return undefined;
    ms = at - nowMs;
  }
  return Math.min(Math.max(0, ms), capMs);
}

/**
 * A response header as a string: numbers are stringified, for repeated headers the first
 * value; undefined when absent. `name` is lower-case (axios normalises header names).
 */
export function headerValue(res: AxiosResponse, name: string): string | undefined {
  const v: unknown = res.headers[name];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return undefined;
}

/**
 * Why a request was aborted: the signal's `reason` when it is an `Error`, otherwise
 * `Error('aborted')`.
 */
export function abortReason(signal: AbortSignal | undefined): Error {
  const r: unknown = signal?.reason;
  return r instanceof Error ? r : new Error('aborted');
}

/**
 * Wait `ms` milliseconds (Node's `timers/promises` `setTimeout`), or less when `signal`
 * aborts. Rejects with `abortReason(signal)` (the signal's own reason, not Node's
 * `AbortError` wrapper) when the signal is aborted before or during the wait.
 */
export async function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleepFor(ms, undefined, signal ? { signal } : {});
  } catch (err) {
    if (signal?.aborted) throw abortReason(signal);
    throw err;
  }
}

/**
 * Run `attempt` (one request with its own status handling, as the clients' p-retry loops
 * call it) and handle a 429 that carries a `Retry-After` (`SisHttpError` with status 429 and
 * `retryAfterMs`):
 *
 * - up to `inlineMaxMs` (default `INLINE_RETRY_AFTER_MS`): wait exactly that long, then
 *   send again (at most `maxWaits` times; after that the 429 goes to the caller's backoff);
 * - longer: throw `SisRateLimitError` wrapped in p-retry's `AbortError` at once (no early
 *   retry; the pull job reschedules itself for the server's time).
 *
 * A 429 without `Retry-After` is left to the caller's exponential backoff. `now` gives the
 * clock (ms since epoch) used for `SisRateLimitError.untilMs`.
 */
export async function withRetryAfter<T>(
  attempt: () => Promise<T>,
  opts: {
    signal?: AbortSignal | undefined;
    inlineMaxMs?: number | undefined;
    maxWaits: number;
    now?: (() => number) | undefined;
    onWait?: ((ms: number, err: SisHttpError) => void) | undefined;
  },
): Promise<T> {
  const inlineMax = opts.inlineMaxMs ?? INLINE_RETRY_AFTER_MS;
  for (let waits = 0; ; waits++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof SisHttpError) || err.status !== 429 || err.retryAfterMs === undefined)
        throw err;
      const ms = err.retryAfterMs;
      if (ms > inlineMax) {
        const now = (opts.now ?? Date.now)();
        throw new AbortError(new SisRateLimitError(err.method, err.path, ms, now + ms));
      }
      if (waits >= opts.maxWaits) throw err;
      opts.onWait?.(ms, err);
      if (ms > 0) await sleep(ms, opts.signal);
    }
  }
}

/** What `retrySisRequest` needs to know about the client calling it. */
export interface SisRetryOptions {
  /** Vendor name for log lines (`PowerSchool`, `Aeries`, `Infinite Campus`…). */
  vendor: string;
  /** Request method and path (or label) for log lines; absent method: not logged. */
  method?: string | undefined;
  path: string;
  signal?: AbortSignal | undefined;
  logger: Pick<Logger, 'warn'>;
  /** Retries after the first attempt (exponential backoff), and most in-line Retry-After waits. */
  retries: number;
  /** Exponential backoff bounds (ms). */
  minBackoffMs: number;
  maxBackoffMs: number;
  /** Longest Retry-After waited in line (ms); see `withRetryAfter`. */
  inlineMaxMs?: number | undefined;
  now?: (() => number) | undefined;
}

/**
 * One SIS request with the clients' shared retry policy: a short `Retry-After` is waited in
 * line and a long one reschedules the pull (`withRetryAfter`); other retryable failures
 * (`SisHttpError.retryable`: 408, 429 without Retry-After, 5xx, network) are retried
 * `retries` times with randomized exponential backoff (p-retry); anything else is thrown at
 * once. Each wait and retry is logged at warn with the vendor, path and status.
 */
export function retrySisRequest<T>(attempt: () => Promise<T>, o: SisRetryOptions): Promise<T> {
  const where = o.method === undefined ? { path: o.path } : { method: o.method, path: o.path };
  const once = () =>
    withRetryAfter(attempt, {
      signal: o.signal,
      inlineMaxMs: o.inlineMaxMs,
      maxWaits: o.retries,
      now: o.now,
      onWait: (ms, err) =>
        o.logger.warn(
          { ...where, status: err.status, retryAfterMs: ms },
          `${o.vendor} rate limit; waiting as Retry-After asks`,
        ),
    });
  return pRetry(once, {
    retries: o.retries,
    factor: 2,
    minTimeout: o.minBackoffMs,
    maxTimeout: o.maxBackoffMs,
    randomize: true,
    ...(o.signal ? { signal: o.signal } : {}),
    shouldRetry: ({ error }) => error instanceof SisHttpError && error.retryable,
    onFailedAttempt: ({ error, attemptNumber, retriesLeft }) => {
      if (!(error instanceof SisHttpError) || !error.retryable || retriesLeft <= 0) return;
      o.logger.warn(
        {
          ...where,
          status: error.status ?? 'network',
          attempt: attemptNumber,
          retriesLeft,
          retryAfterMs: error.retryAfterMs,
        },
        `${o.vendor} request failed; retrying`,
      );
    },
  });
}
