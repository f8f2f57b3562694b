/**
 * The console's typed fetch client. Every call goes to the same origin (the API serving the
 * console) with the session cookie; state-changing calls send the CSRF token of the session
 * (header `x-csrf-token`). Responses are validated with zod; errors become `ApiRequestError`
 * carrying the API's own message (`{code, message, requestId}`, docs/api.md).
 */
import { z } from 'zod';

/** An API call that failed: HTTP status, the API's error code and message. */
export class ApiRequestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
  ) {
    super(message);
    this.name = 'ApiRequestError';
  }
}

const ErrorBody = z.object({
  code: z.string(),
  message: z.string(),
  requestId: z.string().optional(),
  details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

let csrfToken: string | null = null;
const unauthorizedListeners = new Set<(message: string) => void>();

/** Set the CSRF token the session routes returned (null after logout). */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Be told when a call answers 401 (the session ended): the app shows the login page. */
export function onUnauthorized(fn: (message: string) => void): () => void {
  unauthorizedListeners.add(fn);
  return () => unauthorizedListeners.delete(fn);
}

async function toError(res: Response): Promise<ApiRequestError> {
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const body = ErrorBody.safeParse(parsed);
  if (body.success) {
    const details = body.data.details?.map(d => `${d.path}: ${d.message}`).join('; ');
    return new ApiRequestError(
      res.status,
      body.data.code,
      details ? `${body.data.message} (${details})` : body.data.message,
      body.data.requestId,
    );
  }
  return new ApiRequestError(
    res.status,
    'http_error',
    `the server answered ${res.status} ${res.statusText}`.trim(),
  );
}

async function request<T>(
  method: string,
  path: string,
  schema: z.ZodType<T>,
  body?: unknown,
  opts: { quiet401?: boolean; file?: File } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (opts.file) headers['content-type'] = opts.file.type || 'application/octet-stream';
  else if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      body: opts.file ?? (body === undefined ? null : JSON.stringify(body)),
    });
  } catch (err) {
    throw new ApiRequestError(0, 'network', `the API cannot be reached (${String(err)})`);
  }
  if (!res.ok) {
    const err = await toError(res);
    if (res.status === 401 && !opts.quiet401)
      for (const fn of unauthorizedListeners) fn(err.message);
    throw err;
  }
  const json: unknown = await res.json();
  const parsed = schema.safeParse(json);
  if (!parsed.success)
    throw new ApiRequestError(
      res.status,
      'unexpected_response',
      `unexpected answer from ${method} ${path}: ${parsed.error.issues[0]?.message ?? 'invalid'}`,
    );
  return parsed.data;
}

/** GET `path` (with `query`), validated by `schema`. */
export function apiGet<T>(
  path: string,
  schema: z.ZodType<T>,
  query?: Record<string, string | number | undefined>,
  opts?: { quiet401?: boolean },
): Promise<T> {
  return request('GET', withQuery(path, query), schema, undefined, opts);
}

/** POST/PUT/PATCH/DELETE `path` with a JSON body (CSRF token added), validated by `schema`. */
export function apiSend<T>(
  method: 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  schema: z.ZodType<T>,
  body?: unknown,
  opts?: { quiet401?: boolean },
): Promise<T> {
  return request(method, path, schema, body, opts);
}

/** POST a file as the raw request body (the import routes' upload format), CSRF token added. */
export function apiUpload<T>(
  path: string,
  file: File,
  schema: z.ZodType<T>,
  query?: Record<string, string | number | undefined>,
): Promise<T> {
  return request('POST', withQuery(path, query), schema, undefined, { file });
}

/** `path?query` without the undefined/empty values. */
export function withQuery(
  path: string,
  query?: Record<string, string | number | undefined>,
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {}))
    if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

/** The message to show for any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiRequestError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
