/**
 * HTTP client for the PowerSchool plugin APIs (sis-reference §2.2–§2.4): OAuth2
 * client-credentials token with caching and a single shared refresh, JSON requests parsed
 * with zod at the boundary, retries for 429/5xx/network errors, fail-fast for other 4xx.
 *
 * Secrets (client secret, bearer token) are only ever placed in the `Authorization` header.
 * They never appear in URLs, logs, error messages or error causes.
 */
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { ConfigError, SisHttpError, SisPayloadError, notJsonMessage } from '../../errors.js';
import {
  abortReason,
  headerValue,
  PARSE_RETRY_AFTER_CAP_MS,
  parseRetryAfter,
  retrySisRequest,
} from '../http.js';
import { formatZodIssues, PsTokenResponse } from './payloads.js';

/** Re-exported from `../http.js` (its former home). */
export { parseRetryAfter };

/** Construction options. Retry timing knobs are code-level (tests), not district config. */
export interface PowerSchoolClientOptions {
  /** e.g. `https://district.powerschool.com` (a trailing slash is ignored). */
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  /** Where the credentials come from, for error messages (e.g. "PS_ID/PS_SECRET of district x"). */
  credentialsSource?: string;
  /** Per-request timeout (ms). */
  timeoutMs: number;
  /**
   * Retries after the first attempt for 429/408/5xx/network errors (p-retry `retries`):
   * `0` = one attempt only.
   */
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
  /** Refresh a cached token this long before it expires (ms). Default 60000. */
  tokenRefreshMarginMs?: number;
  /** Clock (ms since epoch), for tests. Default `Date.now`. */
  now?: () => number;
}

/** Counters of one client (all HTTP attempts, token requests included). */
export interface ClientStats {
  httpRequests: number;
  /** Attempts by HTTP status (`"200"`, `"429"`) or `"network"` (no response). */
  httpByStatus: Record<string, number>;
  /** Token requests made (`POST /oauth/access_token`). */
  tokenRequests: number;
}

export interface RequestOptions {
  /** Query parameters (never secrets). */
  params?: Record<string, string | number>;
  /** JSON body (POST). */
  body?: unknown;
  /** Aborts between attempts and cancels the in-flight request. */
  signal?: AbortSignal | undefined;
}

interface CachedToken {
  value: string;
  /** ms since epoch after which the token is not used any more (expiry minus margin). */
  refreshAt: number;
}

/**
 * A PowerSchool API client. One instance per connector; safe for concurrent requests (they
 * share the cached token and at most one in-flight token request).
 */
export class PowerSchoolClient {
  private readonly http: AxiosInstance;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxRetryAfterMs: number;
  private readonly marginMs: number;
  private readonly now: () => number;
  private token: CachedToken | undefined;
  private tokenInFlight: Promise<string> | undefined;
  private readonly counters: ClientStats = { httpRequests: 0, httpByStatus: {}, tokenRequests: 0 };

  constructor(private readonly opts: PowerSchoolClientOptions) {
    this.http = axios.create({
      baseURL: opts.baseUrl.replace(/\/+$/, ''),
      timeout: opts.timeoutMs,
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
      maxRedirects: 0,
    });
    this.minBackoffMs = opts.minBackoffMs ?? 1000;
    this.maxBackoffMs = opts.maxBackoffMs ?? 30000;
    this.maxRetryAfterMs = opts.maxRetryAfterMs ?? PARSE_RETRY_AFTER_CAP_MS;
    this.marginMs = opts.tokenRefreshMarginMs ?? 60000;
    this.now = opts.now ?? Date.now;
  }

  /** A copy of the counters. */
  stats(): ClientStats {
    return { ...this.counters, httpByStatus: { ...this.counters.httpByStatus } };
  }

  /**
   * `GET path` and parse the JSON body with `schema` (a 204/empty body parses `undefined`).
   * Throws `SisHttpError` (after retries for 429/408/5xx/network; at once for other 4xx or a
   * second 401 after re-authentication), `SisPayloadError` when the body does not match,
   * `ConfigError` when the token endpoint refuses the credentials.
   */
  get<S extends z.ZodType>(
    path: string,
    schema: S,
    opts: RequestOptions = {},
  ): Promise<z.output<S>> {
    return this.request('GET', path, schema, opts);
  }

  /** `POST path` with a JSON body; otherwise as `get`. */
  post<S extends z.ZodType>(
    path: string,
    schema: S,
    opts: RequestOptions = {},
  ): Promise<z.output<S>> {
    return this.request('POST', path, schema, opts);
  }

  /**
   * A valid bearer token: the cached one, the in-flight refresh, or a new token request
   * (`POST /oauth/access_token`, Basic auth, form body `grant_type=client_credentials`,
   * §2.3). Retries 429/5xx/network; throws `ConfigError` on 400/401/403 (bad credentials).
   */
  async accessToken(signal?: AbortSignal): Promise<string> {
    if (this.token && this.now() < this.token.refreshAt) return this.token.value;
    this.tokenInFlight ??= this.fetchToken(signal).finally(() => {
      this.tokenInFlight = undefined;
    });
    return this.tokenInFlight;
  }

  /** Forget `token` if it is still the cached one (it was refused with 401). */
  private invalidate(token: string): void {
    if (this.token?.value === token) this.token = undefined;
  }

  private async fetchToken(signal: AbortSignal | undefined): Promise<string> {
    const path = '/oauth/access_token';
    const basic = Buffer.from(`${this.opts.clientId}:${this.opts.clientSecret}`, 'utf8').toString(
      'base64',
    );
    const body = await this.withRetries('POST', path, signal, async () => {
      this.counters.tokenRequests++;
      const res = await this.send('POST', path, signal, {
        headers: {
          Authorization: `Basic ${basic}`,
          'Content-Type': 'application/x-www-form-urlencoded;charset=UTF-8',
          Accept: 'application/json',
        },
        data: 'grant_type=client_credentials',
      });
      if (res.status === 400 || res.status === 401 || res.status === 403) {
        throw new AbortError(
          new ConfigError(
            `PowerSchool refused the client credentials (POST ${path}: HTTP ${res.status}); ` +
              `check the client id/secret (${this.opts.credentialsSource ?? 'environment variables'}) and the plugin`,
          ),
        );
      }
      return this.bodyOrThrow('POST', path, res);
    });
    const parsed = PsTokenResponse.safeParse(body);
    if (!parsed.success) {
      throw new SisPayloadError(
        `POST ${path}: unexpected token response: ${formatZodIssues(parsed.error)}`,
      );
    }
    const expiresInMs = (parsed.data.expires_in ?? 3600) * 1000;
    // Short-lived tokens: refresh at half-life rather than never using them.
    const margin = Math.min(this.marginMs, expiresInMs / 2);
    this.token = { value: parsed.data.access_token, refreshAt: this.now() + expiresInMs - margin };
    return parsed.data.access_token;
  }

  private async request<S extends z.ZodType>(
    method: 'GET' | 'POST',
    path: string,
    schema: S,
    opts: RequestOptions,
  ): Promise<z.output<S>> {
    const body = await this.withRetries(method, path, opts.signal, async () => {
      let token = await this.tokenOrAbort(opts.signal);
      let res = await this.sendWs(method, path, token, opts);
      if (res.status === 401) {
        // Re-authenticate once (shared with concurrent requests) and retry this request.
        this.opts.logger.info(
          { method, path },
          'PowerSchool token refused (401); re-authenticating',
        );
        this.invalidate(token);
        token = await this.tokenOrAbort(opts.signal);
        res = await this.sendWs(method, path, token, opts);
        if (res.status === 401) {
          throw new AbortError(
            new SisHttpError(method, path, 401, 'unauthorized after re-authentication'),
          );
        }
      }
      return this.bodyOrThrow(method, path, res);
    });
    const parsed = schema.safeParse(body);
    if (!parsed.success) {
      throw new SisPayloadError(
        `${method} ${path}: response does not match the documented shape: ${formatZodIssues(parsed.error)}`,
      );
    }
    return parsed.data;
  }

  private async tokenOrAbort(signal: AbortSignal | undefined): Promise<string> {
    try {
      return await this.accessToken(signal);
    } catch (err) {
      // The token request has had its own retries.
      throw new AbortError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private sendWs(
    method: 'GET' | 'POST',
    path: string,
    token: string,
    opts: RequestOptions,
  ): Promise<AxiosResponse<unknown>> {
    return this.send(method, path, opts.signal, {
      headers: {
        Authorization: `Bearer ${token}`,
        Accept: 'application/json',
        ...(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      },
      ...(opts.params ? { params: opts.params } : {}),
      ...(opts.body !== undefined ? { data: JSON.stringify(opts.body) } : {}),
    });
  }

  /** One HTTP attempt. Network failures become retryable `SisHttpError`s (no cause attached: it would hold headers). */
  private async send(
    method: 'GET' | 'POST',
    path: string,
    signal: AbortSignal | undefined,
    cfg: {
      headers: Record<string, string>;
      params?: Record<string, string | number>;
      data?: string;
    },
  ): Promise<AxiosResponse<unknown>> {
    this.counters.httpRequests++;
    try {
      const res = await this.http.request<unknown>({ method, url: path, signal, ...cfg });
      this.count(String(res.status));
      return res;
    } catch (err) {
      if (signal?.aborted) throw new AbortError(abortReason(signal));
      this.count('network');
      const code = axios.isAxiosError(err) ? (err.code ?? 'unknown') : 'unknown';
      throw new SisHttpError(method, path, undefined, `network error (${code})`);
    }
  }

  private count(key: string): void {
    this.counters.httpByStatus[key] = (this.counters.httpByStatus[key] ?? 0) + 1;
  }

  /** The parsed JSON body of a 2xx response; otherwise the right error (see `get`). */
  private bodyOrThrow(method: string, path: string, res: AxiosResponse<unknown>): unknown {
    const status = res.status;
    if (status >= 200 && status < 300) {
      const text = typeof res.data === 'string' ? res.data : '';
      if (status === 204 || text.trim() === '') return undefined;
      try {
        return JSON.parse(text) as unknown;
      } catch {
        throw new AbortError(
          new SisPayloadError(
            notJsonMessage(method, path, status, headerValue(res, 'content-type'), text),
          ),
        );
      }
    }
    if (status === 429) {
      const retryAfterMs = parseRetryAfter(
        headerValue(res, 'retry-after'),
        this.now(),
        this.maxRetryAfterMs,
      );
      throw new SisHttpError(method, path, status, 'rate limited', {
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
    }
    if (status === 408 || status >= 500) {
      throw new SisHttpError(method, path, status, 'server error');
    }
    throw new AbortError(new SisHttpError(method, path, status, 'request refused'));
  }

  private withRetries<T>(
    method: string,
    path: string,
    signal: AbortSignal | undefined,
    attempt: () => Promise<T>,
  ): Promise<T> {
    return retrySisRequest(attempt, {
      vendor: 'PowerSchool',
      method,
      path,
      signal,
      logger: this.opts.logger,
      retries: this.opts.retries,
      minBackoffMs: this.minBackoffMs,
      maxBackoffMs: this.maxBackoffMs,
      inlineMaxMs: this.opts.inlineRetryAfterMs,
      now: this.now,
    });
  }
}
