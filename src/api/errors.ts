/**
 * API errors: every error response is JSON `{code, message, requestId, details?}` with a
 * stable machine-readable `code`; never a stack trace, never an internal message for 5xx.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  isResponseSerializationError,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { describeError, explainError } from '../errors.js';

/** Stable error codes (documented in docs/api.md). */
export type ApiErrorCode =
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'invalid_request'
  | 'invalid_json'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'conflict'
  | 'run_not_held'
  | 'invalid_cursor'
  | 'bad_request'
  | 'service_unavailable'
  | 'csrf_failed'
  | 'internal';

export const ErrorBody = z
  .object({
    code: z.string().describe('stable error code, e.g. `forbidden`'),
    message: z.string(),
    requestId: z.string(),
    details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Error' });
export type ErrorBody = z.infer<typeof ErrorBody>;

/** An error with an HTTP status and a stable code; its message is shown to the client. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    /** One of `ApiErrorCode`, or a feature's own stable code (e.g. `rate_limited`). */
    readonly code: ApiErrorCode | (string & Record<never, never>),
    message: string,
    readonly details?: { path: string; message: string }[],
    /** Extra response headers (e.g. `WWW-Authenticate`). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** Send `err` as the JSON error body (for hooks that answer instead of throwing). */
export function sendApiError(request: FastifyRequest, reply: FastifyReply, err: ApiError) {
  const body: ErrorBody = { code: err.code, message: err.message, requestId: request.id };
  if (err.details) body.details = err.details;
  return reply.code(err.statusCode).headers(err.headers).type('application/json').send(body);
}

const FASTIFY_CODES: Record<string, [number, ApiErrorCode]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'payload_too_large'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'unsupported_media_type'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'bad_request'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'invalid_json'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'invalid_json'],
};

/** Map any thrown value to an `ApiError` (unknown errors become a generic 500). */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as { validationContext?: string }).validationContext ?? 'request';
    return new ApiError(
      400,
      'invalid_request',
      `invalid ${where}`,
      err.validation.map(v => ({ path: `${where}${v.instancePath}`, message: v.message ?? '' })),
    );
  }
  const fe = err as Partial<FastifyError> | null;
  if (fe && typeof fe === 'object') {
    if (fe.code === 'FST_CSRF_MISSING_SECRET' || fe.code === 'FST_CSRF_INVALID_TOKEN')
      return new ApiError(
        403,
        'csrf_failed',
        fe.code === 'FST_CSRF_MISSING_SECRET'
          ? 'this request uses the console session cookie but the CSRF cookie is missing; reload the console (API clients: send Authorization: Bearer <token> instead)'
          : 'this request uses the console session cookie but has no valid CSRF token (header x-csrf-token from GET /session); reload the console (API clients: send Authorization: Bearer <token> instead)',
      );
    const mapped = fe.code ? FASTIFY_CODES[fe.code] : undefined;
    if (mapped) return new ApiError(mapped[0], mapped[1], fe.message ?? mapped[1]);
    // JSON.parse failures of the body parser carry status 400 without a code.
    if (err instanceof SyntaxError && fe.statusCode === 400)
      return new ApiError(400, 'invalid_json', 'request body is not valid JSON');
    if (
      !isResponseSerializationError(fe) &&
      typeof fe.statusCode === 'number' &&
      fe.statusCode >= 400 &&
      fe.statusCode < 500
    )
      return new ApiError(fe.statusCode, 'bad_request', fe.message ?? 'bad request');
  }
  // An operation that does not fit a run's state (approving a superseded held run): the
  // message says what to do instead.
  if (err instanceof Error && err.name === 'RunStateError')
    return new ApiError(409, 'conflict', explainError(err));
  return new ApiError(500, 'internal', 'internal error; see the server log for this request id');
}

/** Fastify error handler: log 5xx with the request id, answer with the JSON body. */
export function apiErrorHandler(error: unknown, request: FastifyRequest, reply: FastifyReply) {
  const e = toApiError(error);
  if (e.statusCode >= 500) request.log.error({ err: describeError(error) }, 'request failed');
  return sendApiError(request, reply, e);
}

/** Fastify not-found handler. */
export function apiNotFoundHandler(request: FastifyRequest, reply: FastifyReply) {
  const path = request.url.split('?')[0] ?? '';
  return sendApiError(
    request,
    reply,
    new ApiError(404, 'not_found', `no route ${request.method} ${path}`),
  );
}
