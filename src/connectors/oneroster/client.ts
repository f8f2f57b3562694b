/**
 * HTTP client shared by the OneRoster REST connectors (generic, Infinite Campus, Skyward
 * OneRoster) and the Skyward LMS API (sis-reference §1.2, §1.3, §3.3, §5.3):
 *
 * - auth: OAuth2 client credentials (client id/secret as Basic header or form fields, optional
 *   scopes), OAuth2 resource-owner password grant with Basic client auth (Skyward LMS), or
 *   OAuth 1.0a request signing (HMAC-SHA1/SHA256, via the `oauth-1.0a` library; 1.1);
 * - one cached token, one shared refresh; a 401 re-authenticates once (OAuth2);
 * - 429 waits for a short `Retry-After` (seconds or HTTP date) exactly, and a long one
 *   reschedules the pull (`SisRateLimitError`, `withRetryAfter`); 408/5xx/network errors are
 *   retried with exponential backoff and jitter (p-retry); other 4xx fail at once;
 * - IMSX error bodies become `OneRosterApiError`s (typed, with code major/minor);
 * - an optional per-district request rate (requests per second);
 * - `Link`/`X-Total-Count` headers are returned for paging.
 *
 * Secrets (client secret, bearer token, signatures) are only placed in headers or the token
 * request body; never in URLs, logs, error messages or error causes.
 */
import { createHmac } from 'node:crypto';
import axios, { type AxiosInstance, type AxiosResponse } from 'axios';
import OAuth from 'oauth-1.0a';
import { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import { ConfigError, SisHttpError, SisPayloadError, notJsonMessage } from '../../errors.js';
import {
  abortReason,
  PARSE_RETRY_AFTER_CAP_MS,
  parseRetryAfter,
  sleep,
  retrySisRequest,
} from '../http.js';
import { imsxStatusOf, OrTokenResponse, zodReason, type OrImsxStatus } from './payloads.js';

/** How requests are authorised. */
export type RestAuth =
  | {
      type: 'oauth2-client-credentials';
      tokenUrl: string;
      clientId: string;
      clientSecret: string;
      /** `basic`: HTTP Basic header; `form`: `client_id`/`client_secret` form fields. */
      credentials: 'basic' | 'form';
      scope?: string | undefined;
    }
  | {
      /** Skyward LMS API: password grant, client id/secret as Basic header (§5.3). */
      type: 'oauth2-password';
      tokenUrl: string;
      clientId: string;
      clientSecret: string;
      username: string;
      password: string;
    }
  | {
      type: 'oauth1';
      consumerKey: string;
      consumerSecret: string;
      signatureMethod: 'HMAC-SHA1' | 'HMAC-SHA256';
    };

export interface RestClientOptions {
  /** Base URL; paths are appended to it (`{base}/users`). */
  baseUrl: string;
  auth: RestAuth;
  /** Product name for messages and logs (`Infinite Campus`, `Skyward`, `OneRoster`). */
  vendor: string;
  timeoutMs: number;
  /** Retries after the first attempt for 429/408/5xx/network errors. */
  retries: number;
  logger: Logger;
  /** Requests per second (all requests of this client, token requests included). */
  maxRequestsPerSecond?: number | undefined;
  /** `Accept` header. Default `application/json`. */
  accept?: string | undefined;
  /** First backoff delay (ms). Default 1000. */
  minBackoffMs?: number | undefined;
  /** Largest backoff delay (ms). Default 30000. */
  maxBackoffMs?: number | undefined;
  /**
   * Cap applied when a `Retry-After` is parsed (ms). Default one day: the operator's maximum
   * (`SIS_RETRY_AFTER_MAX_SECONDS`) is applied when the pull reschedules itself.
   */
  maxRetryAfterMs?: number | undefined;
  /**
   * Longest `Retry-After` waited in line (ms); a longer one throws `SisRateLimitError` at once
   * and the pull is rescheduled. Default `INLINE_RETRY_AFTER_MS` (5 s).
   */
  inlineRetryAfterMs?: number | undefined;
  /** Refresh a token this long before it expires (ms). Default 60000 (half-life for short tokens). */
  tokenRefreshMarginMs?: number | undefined;
  /** Clock (ms since epoch). Default `Date.now`. */
  now?: (() => number) | undefined;
}

/** Timing knobs tests and benchmarks may override (never district config). */
export type RestClientTuning = Pick<
  RestClientOptions,
  | 'minBackoffMs'
  | 'maxBackoffMs'
  | 'maxRetryAfterMs'
  | 'inlineRetryAfterMs'
  | 'tokenRefreshMarginMs'
  | 'now'
>;

export interface RestClientStats {
  httpRequests: number;
  httpByStatus: Record<string, number>;
  tokenRequests: number;
}

/** A 2xx response: parsed JSON body and the paging headers. */
export interface RestResponse {
  status: number;
  body: unknown;
  /** Raw `Link` header, when sent. */
  link?: string | undefined;
  /** `X-Total-Count`, when sent and numeric. */
  totalCount?: number | undefined;
  /** The absolute URL requested. */
  url: string;
}

/**
 * An HTTP error whose body was an IMSX status object (§1.3): `codeMajor`/`codeMinor` say
 * why (e.g. `unknownobject`, `invalid_filter_field`). Retry decision as `SisHttpError`.
 */
export class OneRosterApiError extends SisHttpError {
  constructor(
    method: string,
    path: string,
    status: number,
    readonly imsx: OrImsxStatus,
    options?: { retryAfterMs?: number },
  ) {
    const minor = imsx.codeMinor.length ? ` ${imsx.codeMinor.join(',')}` : '';
    const desc = imsx.description ? `: ${imsx.description.slice(0, 200)}` : '';
    super(method, path, status, `IMSX ${imsx.codeMajor}${minor}${desc}`, options);
  }
}

interface CachedToken {
  value: string;
  refreshAt: number;
}

function headerValue(res: AxiosResponse, name: string): string | undefined {
  const v: unknown = res.headers[name];
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return v.filter(x => typeof x === 'string').join(', ') || undefined;
  return undefined;
}

/** RFC 3986 percent-encoding (what OAuth 1.0a signs): also `!'()*`. */
export function encodeRfc3986(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    c => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** `url` with `params` appended as an RFC 3986 query string (keeps an existing query). */
export function withQuery(
  url: string,
  params: Record<string, string | number> | undefined,
): string {
  if (!params) return url;
  const q = Object.entries(params)
    .map(([k, v]) => `${encodeRfc3986(k)}=${encodeRfc3986(String(v))}`)
    .join('&');
  if (q === '') return url;
  return `${url}${url.includes('?') ? '&' : '?'}${q}`;
}

/**
 * Parse a `Link` header (RFC 8288) into `rel → URL` (first URL per rel). Tolerates several
 * rels in one entry (`rel="next last"`) and unquoted rels.
 */
export function parseLinkHeader(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!value) return out;
  const re = /<([^>]*)>\s*((?:;\s*[^;,]+)*)/g;
  for (let m = re.exec(value); m !== null; m = re.exec(value)) {
    const url = m[1] ?? '';
    const params = m[2] ?? '';
    const rel = /;\s*rel\s*=\s*"?([^";,]+)"?/i.exec(params)?.[1];
    if (!rel) continue;
    for (const r of rel.trim().toLowerCase().split(/\s+/)) if (!(r in out)) out[r] = url;
  }
  return out;
}

/**
 * A REST client for one district connection. Safe for concurrent requests (shared token,
 * one refresh in flight, one rate limiter).
 */
export class RestClient {
  private readonly http: AxiosInstance;
  private readonly base: URL;
  private readonly oauth1: OAuth | undefined;
  private readonly now: () => number;
  private token: CachedToken | undefined;
  private tokenInFlight: Promise<string> | undefined;
  private nextSlot = 0;
  private readonly counters: RestClientStats = {
    httpRequests: 0,
    httpByStatus: {},
    tokenRequests: 0,
  };

  constructor(private readonly opts: RestClientOptions) {
    this.base = new URL(opts.baseUrl.replace(/\/+$/, ''));
    this.http = axios.create({
      timeout: opts.timeoutMs,
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
      maxRedirects: 0,
    });
    this.now = opts.now ?? Date.now;
    const auth = opts.auth;
    if (auth.type === 'oauth1') {
      const algo = auth.signatureMethod === 'HMAC-SHA1' ? 'sha1' : 'sha256';
      this.oauth1 = new OAuth({
        consumer: { key: auth.consumerKey, secret: auth.consumerSecret },
        signature_method: auth.signatureMethod,
        hash_function: (base, key) => createHmac(algo, key).update(base).digest('base64'),
      });
    }
  }

  /** A copy of the counters. */
  stats(): RestClientStats {
    return { ...this.counters, httpByStatus: { ...this.counters.httpByStatus } };
  }

  /** The absolute URL of `path` under the base URL (`/users` → `{base}/users`). */
  url(path: string): string {
    return `${this.base.href.replace(/\/+$/, '')}${path.startsWith('/') ? path : `/${path}`}`;
  }

  /**
   * `GET` a path under the base URL, or an absolute URL on the same origin (a `Link` next
   * URL), with query `params`. Returns the parsed body and paging headers.
   *
   * Throws `SisHttpError`/`OneRosterApiError` (after retries for 429/408/5xx/network; at once
   * for other 4xx, or a second 401 after re-authentication), `SisPayloadError` when the body
   * is not JSON or a URL leaves the configured origin, `ConfigError` when the token endpoint
   * refuses the credentials.
   */
  async get(
    pathOrUrl: string,
    params?: Record<string, string | number>,
    signal?: AbortSignal,
  ): Promise<RestResponse> {
    const url = withQuery(this.resolve(pathOrUrl), params);
    const label = new URL(url).pathname;
    return this.withRetries('GET', label, signal, async () => {
      let token = await this.tokenOrAbort(signal);
      let res = await this.send('GET', url, label, signal, this.resourceHeaders(url, token));
      if (res.status === 401 && token !== undefined) {
        this.opts.logger.info(
          { path: label },
          `${this.opts.vendor} token refused (401); re-authenticating`,
        );
        this.invalidate(token);
        token = await this.tokenOrAbort(signal);
        res = await this.send('GET', url, label, signal, this.resourceHeaders(url, token));
      }
      if (res.status === 401) {
        throw new AbortError(
          new SisHttpError(
            'GET',
            label,
            401,
            token === undefined
              ? 'request signature refused (check the consumer key and secret)'
              : 'unauthorized after re-authentication',
          ),
        );
      }
      return this.responseOrThrow('GET', label, url, res);
    });
  }

  private resolve(pathOrUrl: string): string {
    if (!/^https?:\/\//i.test(pathOrUrl)) return this.url(pathOrUrl);
    const u = new URL(pathOrUrl);
    if (u.origin !== this.base.origin) {
      throw new SisPayloadError(
        `${this.opts.vendor}: a paging link points to another origin (${u.origin}); refusing to send credentials there`,
      );
    }
    return u.href;
  }

  private resourceHeaders(url: string, token: string | undefined): Record<string, string> {
    const headers: Record<string, string> = { Accept: this.opts.accept ?? 'application/json' };
    if (token !== undefined) headers.Authorization = `Bearer ${token}`;
    else if (this.oauth1) {
      const signed = this.oauth1.authorize({ url, method: 'GET' });
      headers.Authorization = this.oauth1.toHeader(signed).Authorization;
    }
    return headers;
  }

  /**
   * A valid bearer token (cached, shared refresh), or undefined for OAuth 1.0a. Retries
   * 429/5xx/network; throws `ConfigError` when the token endpoint answers 400/401/403.
   */
  async accessToken(signal?: AbortSignal): Promise<string | undefined> {
    if (this.opts.auth.type === 'oauth1') return undefined;
    if (this.token && this.now() < this.token.refreshAt) return this.token.value;
    this.tokenInFlight ??= this.fetchToken(signal).finally(() => {
      this.tokenInFlight = undefined;
    });
    return this.tokenInFlight;
  }

  private invalidate(token: string): void {
    if (this.token?.value === token) this.token = undefined;
  }

  private async tokenOrAbort(signal: AbortSignal | undefined): Promise<string | undefined> {
    try {
      return await this.accessToken(signal);
    } catch (err) {
      throw new AbortError(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private async fetchToken(signal: AbortSignal | undefined): Promise<string> {
    const auth = this.opts.auth;
    if (auth.type === 'oauth1') throw new Error('unreachable: OAuth 1.0a has no token');
    const tokenUrl = auth.tokenUrl;
    const label = new URL(tokenUrl).pathname;
    const form = new URLSearchParams();
    const headers: Record<string, string> = {
      'Content-Type': 'application/x-www-form-urlencoded;charset=UTF-8',
      Accept: 'application/json',
    };
    // Raw `id:secret` (what PowerSchool, IC and Skyward clients send; §1.2, §5.3).
    const basic = (id: string, secret: string) =>
      `Basic ${Buffer.from(`${id}:${secret}`, 'utf8').toString('base64')}`;
    if (auth.type === 'oauth2-password') {
      form.set('grant_type', 'password');
      form.set('username', auth.username);
      form.set('password', auth.password);
      headers.Authorization = basic(auth.clientId, auth.clientSecret);
    } else {
      form.set('grant_type', 'client_credentials');
      if (auth.scope) form.set('scope', auth.scope);
      if (auth.credentials === 'form') {
        form.set('client_id', auth.clientId);
        form.set('client_secret', auth.clientSecret);
      } else {
        headers.Authorization = basic(auth.clientId, auth.clientSecret);
      }
    }
    const res = await this.withRetries('POST', label, signal, async () => {
      this.counters.tokenRequests++;
      const r = await this.send('POST', tokenUrl, label, signal, headers, form.toString());
      if (r.status === 400 || r.status === 401 || r.status === 403) {
        throw new AbortError(
          new ConfigError(
            `${this.opts.vendor} refused the credentials (POST ${label}: HTTP ${r.status}); ` +
              'check the client id/secret (and key/secret) environment variables and the token URL',
          ),
        );
      }
      return this.responseOrThrow('POST', label, tokenUrl, r);
    });
    const parsed = OrTokenResponse.safeParse(res.body);
    if (!parsed.success) {
      throw new SisPayloadError(
        `POST ${label}: unexpected token response: ${zodReason(parsed.error)}`,
      );
    }
    const expiresInMs = (parsed.data.expires_in ?? 3600) * 1000;
    const margin = Math.min(this.opts.tokenRefreshMarginMs ?? 60000, expiresInMs / 2);
    this.token = { value: parsed.data.access_token, refreshAt: this.now() + expiresInMs - margin };
    return parsed.data.access_token;
  }

  /** Wait for this request's slot under `maxRequestsPerSecond`. */
  private async throttle(signal: AbortSignal | undefined): Promise<void> {
    const rps = this.opts.maxRequestsPerSecond;
    if (rps === undefined) return;
    const interval = 1000 / rps;
    const now = Date.now();
    const slot = Math.max(now, this.nextSlot);
    this.nextSlot = slot + interval;
    if (slot > now) await sleep(slot - now, signal);
  }

  private async send(
    method: 'GET' | 'POST',
    url: string,
    label: string,
    signal: AbortSignal | undefined,
    headers: Record<string, string>,
    data?: string,
  ): Promise<AxiosResponse<unknown>> {
    await this.throttle(signal);
    this.counters.httpRequests++;
    try {
      const res = await this.http.request<unknown>({
        method,
        url,
        headers,
        signal,
        ...(data !== undefined ? { data } : {}),
      });
      this.count(String(res.status));
      return res;
    } catch (err) {
      if (signal?.aborted) throw new AbortError(abortReason(signal));
      this.count('network');
      const code = axios.isAxiosError(err) ? (err.code ?? 'unknown') : 'unknown';
      throw new SisHttpError(method, label, undefined, `network error (${code})`);
    }
  }

  private count(key: string): void {
    this.counters.httpByStatus[key] = (this.counters.httpByStatus[key] ?? 0) + 1;
  }

  private parseBody(method: string, label: string, res: AxiosResponse<unknown>): unknown {
    const text = typeof res.data === 'string' ? res.data : '';
    if (res.status === 204 || text.trim() === '') return undefined;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      if (res.status >= 200 && res.status < 300) {
        throw new AbortError(
          new SisPayloadError(
            notJsonMessage(method, label, res.status, headerValue(res, 'content-type'), text),
          ),
        );
      }
      return undefined;
    }
  }

  private responseOrThrow(
    method: string,
    label: string,
    url: string,
    res: AxiosResponse<unknown>,
  ): RestResponse {
    const status = res.status;
    const body = this.parseBody(method, label, res);
    if (status >= 200 && status < 300) {
      const total = headerValue(res, 'x-total-count')?.trim();
      return {
        status,
        body,
        link: headerValue(res, 'link'),
        totalCount: total !== undefined && /^\d+$/.test(total) ? Number(total) : undefined,
        url,
      };
    }
    const imsx = imsxStatusOf(body);
    const retryAfterMs =
      status === 429
        ? parseRetryAfter(
            headerValue(res, 'retry-after'),
            this.now(),
            this.opts.maxRetryAfterMs ?? PARSE_RETRY_AFTER_CAP_MS,
          )
        : undefined;
    const opts = retryAfterMs !== undefined ? { retryAfterMs } : {};
    const err = imsx
      ? new OneRosterApiError(method, label, status, imsx, opts)
      : new SisHttpError(
          method,
          label,
          status,
          status === 429 ? 'rate limited' : status >= 500 ? 'server error' : 'request refused',
          opts,
        );
    if (status === 429 || status === 408 || status >= 500) throw err;
    throw new AbortError(err);
  }

  private withRetries<T>(
    method: string,
    label: string,
    signal: AbortSignal | undefined,
    attempt: () => Promise<T>,
  ): Promise<T> {
    return retrySisRequest(attempt, {
      vendor: this.opts.vendor,
      method,
      path: label,
      signal,
      logger: this.opts.logger,
      retries: this.opts.retries,
      minBackoffMs: this.opts.minBackoffMs ?? 1000,
      maxBackoffMs: this.opts.maxBackoffMs ?? 30000,
      inlineMaxMs: this.opts.inlineRetryAfterMs,
      now: this.now,
    });
  }
}
