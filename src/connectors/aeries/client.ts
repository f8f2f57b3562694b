/**
 * HTTP client for the Aeries REST API v5 (sis-reference §4.2–§4.3): the `AERIES-CERT`
 * header on every request (no token, no expiry), `Accept: application/json` (Aeries answers
 * XML otherwise), the optional `DatabaseYear` query parameter, JSON bodies parsed with zod
 * at the boundary, retries for 429/408/5xx/network errors (honouring `Retry-After`), and
 * fail-fast for other 4xx and for 501 (an endpoint behind a feature flag that is off).
 *
 * The certificate is only ever placed in the header: never in URLs (Aeries demo links pass
 * `?cert=`; we do not), logs, error messages or error causes.
 */
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { SisHttpError, SisPayloadError, notJsonMessage } from '../../errors.js';
import {
  abortReason,
  headerValue,
  PARSE_RETRY_AFTER_CAP_MS,
  parseRetryAfter,
  retrySisRequest,
} from '../http.js';
import { formatZodIssues } from '../powerschool/payloads.js';

/** Construction options. Retry timing knobs are code-level (tests), not district config. */
export interface AeriesClientOptions {
  /** The district's Aeries root, e.g. `https://district.aeries.net/aeries` (trailing slash ignored). */
  baseUrl: string;
  /** The `AERIES-CERT` certificate. */
  cert: string;
  /** `DatabaseYear=YYYY-YYYY` sent with every request when set. */
  databaseYear?: string | undefined;
  /** Per-request timeout (ms). */
  timeoutMs: number;
  /** Retries after the first attempt for 429/408/5xx/network errors (`0` = one attempt). */
  retries: number;
  logger: Logger;
  /** First exponential backoff delay (ms). Default 1000. */
  minBackoffMs?: number;
  /** Largest exponential backoff delay (ms). Default 30000. */
  maxBackoffMs?: number;
  /**
   * Cap applied when a `Retry-After` is parsed (ms). Default one day: the operator's maximum
   * (`SIS_RETRY_AFTER_MAX_SECONDS`) is applied when the pull reschedules itself.
   */
  maxRetryAfterMs?: number;
  /**
   * Longest `Retry-After` waited in line (ms); a longer one throws `SisRateLimitError` at once
   * and the pull is rescheduled. Default `INLINE_RETRY_AFTER_MS` (5 s).
   */
  inlineRetryAfterMs?: number;
}

/**
 * The certificate was refused (401/403). A `SisHttpError` (name included, so it is reported
 * like any refused request) that retrying cannot fix: `retryable` is false, so neither the
 * client nor the queue tries again.
 */
export class AeriesCertificateError extends SisHttpError {
  override readonly retryable = false;
  constructor(path: string, status: number) {
    super(
      'GET',
      path,
      status,
      'certificate refused; check the AERIES-CERT environment variable and the vendor permissions in Security > API Security',
    );
    this.name = 'SisHttpError';
  }
}

/** Counters of one client (every HTTP attempt). */
export interface AeriesClientStats {
  httpRequests: number;
  /** Attempts by HTTP status (`"200"`, `"429"`) or `"network"`. */
  httpByStatus: Record<string, number>;
}

/** An Aeries API client; safe for concurrent requests. */
export class AeriesClient {
  private readonly http: AxiosInstance;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly counters: AeriesClientStats = { httpRequests: 0, httpByStatus: {} };

  constructor(private readonly opts: AeriesClientOptions) {
    this.http = axios.create({
      baseURL: `${opts.baseUrl.replace(/\/+$/, '')}/api/v5`,
      timeout: opts.timeoutMs,
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
      maxRedirects: 0,
    });
    this.minBackoffMs = opts.minBackoffMs ?? 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30000;
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? PARSE_RETRY_AFTER_CAP_MS;
  }

  /** A copy of the counters. */
  stats(): AeriesClientStats {
    return { ...this.counters, httpByStatus: { ...this.counters.httpByStatus } };
  }

  /**
   * `GET {baseUrl}/api/v5{path}` and parse the JSON body with `schema` (an empty body parses
   * `undefined`). Throws `AeriesCertificateError` (a non-retryable `SisHttpError`) when the
   * certificate is refused (401/403),
   * `SisHttpError` (after retries for 429/408/5xx/network; at once for other 4xx and 501),
   * `SisPayloadError` when the body is not JSON or does not match `schema`.
   */
  async get<S extends z.ZodType>(
    path: string,
    schema: S,
    opts: { params?: Record<string, string | number>; signal?: AbortSignal | undefined } = {},
  ): Promise<z.output<S>> {
    const signal = opts.signal;
    const params: Record<string, string | number> = { ...opts.params };
    if (this.opts.databaseYear) params.DatabaseYear = this.opts.databaseYear;
    const body = await retrySisRequest(() => this.attempt(path, params, signal), {
      vendor: 'Aeries',
      path,
      signal,
      logger: this.opts.logger,
      retries: this.opts.retries,
      minBackoffMs: this.minBackoffMs,
      maxBackoffMs: this.maxBackoffMs,
      inlineMaxMs: this.opts.inlineRetryAfterMs,
    });
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      throw new SisPayloadError(
        `GET ${path}: response does not match the documented shape: ${formatZodIssues(parsed.error)}`,
      );
    }
    return parsed.data;
  }

  private async attempt(
    path: string,
    params: Record<string, string | number>,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    this.counters.httpRequests++;
    let res: AxiosResponse<unknown>;
    try {
      res = await this.http.request<unknown>({
        method: 'GET',
        url: path,
        params,
        signal,
        headers: { 'AERIES-CERT': this.opts.cert, Accept: 'application/json' },
      });
    } catch (err) {
      if (signal?.aborted) throw new AbortError(abortReason(signal));
      this.count('network');
      const code = axios.isAxiosError(err) ? (err.code ?? 'unknown') : 'unknown';
      throw new SisHttpError('GET', path, undefined, `network error (${code})`);
    }
    this.count(String(res.status));
    const status = res.status;
    if (status >= 200 && status < 300) {
      const text = typeof res.data === 'string' ? res.data : '';
      if (status === 204 || text.trim() === '') return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        const type = headerValue(res, 'content-type') ?? 'unknown';
        throw new AbortError(new SisPayloadError(notJsonMessage('GET', path, status, type, text)));
      }
    }
    if (status === 401 || status === 403)
      throw new AbortError(new AeriesCertificateError(path, status));
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(
        headerValue(res, 'retry-after'),
        Date.now(),
        this.maxRetryAfterMs,
      );
      throw new SisHttpError('GET', path, status, 'rate limited', {
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
    }
    if (status === 501) {
      throw new AbortError(
        new SisHttpError('GET', path, status, 'not implemented (feature flag off on this server)'),
      );
    }
    if (status === 408 || status >= 500)
      throw new SisHttpError('GET', path, status, 'server error');
    throw new AbortError(new SisHttpError('GET', path, status, 'request refused'));
  }

  private count(key: string): void {
    this.counters.httpByStatus[key] = (this.counters.httpByStatus[key] ?? 0) + 1;
  }
}
