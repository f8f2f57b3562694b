/**
 * Browser sessions of the admin console (docs/decisions/0009-admin-console.md).
 *
 * - `POST /session` `{token}` (public): checks the API token like a bearer token and answers
 *   `{principal, csrfToken, expiresAt}` with a session cookie `gs_session`: http-only,
 *   `SameSite=Strict`, `Path=/`, `Secure` over https (or always, `CONSOLE_SECURE_COOKIE`).
 * - The cookie holds `{v:1, name, h, exp, sid}` (base64url JSON), signed with HMAC-SHA256 by
 *   @fastify/cookie under `CONSOLE_SESSION_SECRET`: the token entry's name, the first 32 hex
 *   digits of its SHA-256, the expiry (ms since epoch) and a random session id. No server-side
 *   state: on every request the claims are checked against the configured token list, so a
 *   token removed or replaced in the configuration ends its sessions, and a changed role or
 *   district scope applies at once.
 * - CSRF: every cookie-authenticated POST/PUT/PATCH/DELETE needs header `x-csrf-token` with a
 *   token from `POST|GET /session` (@fastify/csrf-protection; its secret in the signed,
 *   http-only `_csrf` cookie, bound to the session id). Bearer-token clients never send it.
 * - `GET /session`: who is logged in and a CSRF token; `DELETE /session`: log out.
 */
import { randomBytes } from 'node:crypto';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { hashToken } from '../config/api-tokens.js';
import type { Principal, TokenVerifier } from './auth.js';
import { ErrorBody } from './errors.js';
import { ConsoleSession } from '../shared/api-schemas.js';
import type { ApiServer } from './routes/index.js';

/** Name of the session cookie. */
export const SESSION_COOKIE = 'gs_session';
/** Request header that carries the CSRF token. */
export const CSRF_HEADER = 'x-csrf-token';

export interface ConsoleSessionOptions {
  /** HMAC key of cookies and CSRF tokens (≥ 32 characters); default: random per process. */
  secret?: string | undefined;
  /** Session lifetime in hours (default 8). */
  hours?: number | undefined;
  /** `Secure` cookie flag: `auto` (when the request came over https, default) or `always`. */
  secureCookie?: 'auto' | 'always' | undefined;
}

const Claims = z.object({
  v: z.literal(1),
  name: z.string().min(1),
  h: z.string().regex(/^[0-9a-f]{32}$/),
  exp: z.number().int(),
  sid: z.string().regex(/^[A-Za-z0-9_-]{16,64}$/),
});
type Claims = z.infer<typeof Claims>;

/** What a session cookie says about a request. */
export type SessionCheck =
  | { ok: true; principal: Principal; sid: string; expiresAt: number }
  | { ok: false; reason: string };

declare module 'fastify' {
  interface FastifyRequest {
    /** How the request was authenticated (set by the auth hook). */
    authMethod: 'bearer' | 'session' | null;
    /** The console session's id when `authMethod` is `session`. */
    sessionId: string | null;
  }
}

/** Issues, reads and clears console session cookies. */
export class ConsoleSessions {
  readonly secret: string;
  /** True when no secret was configured (a random one was made). */
  readonly ephemeral: boolean;
  private readonly ttlMs: number;
  private readonly secure: boolean | 'auto';

  constructor(
    private readonly verifier: TokenVerifier,
    opts: ConsoleSessionOptions = {},
  ) {
    this.ephemeral = !opts.secret;
    this.secret = opts.secret ?? randomBytes(48).toString('base64url');
    this.ttlMs = Math.round((opts.hours ?? 8) * 3600_000);
    this.secure = opts.secureCookie === 'always' ? true : 'auto';
  }

  /** Cookie attributes of both console cookies. */
  cookieOptions() {
    return {
      path: '/',
      httpOnly: true,
      sameSite: 'strict' as const,
      secure: this.secure,
      signed: true,
    };
  }

  /**
   * Log in with `token`: set the session cookie and return the principal, or `undefined`
   * when the token is not configured.
   */
  issue(reply: FastifyReply, token: string, now = Date.now()): SessionCheck | undefined {
    const principal = this.verifier.verify(token);
    if (!principal) return undefined;
    const claims: Claims = {
      v: 1,
      name: principal.name,
      h: hashToken(token).slice(0, 32),
      exp: now + this.ttlMs,
      sid: randomBytes(18).toString('base64url'),
    };
    const value = Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url');
    void reply.setCookie(SESSION_COOKIE, value, {
      ...this.cookieOptions(),
      expires: new Date(claims.exp),
    });
    return { ok: true, principal, sid: claims.sid, expiresAt: claims.exp };
  }

  /** Does the request carry a session cookie at all? */
  present(request: FastifyRequest): boolean {
    return typeof request.cookies[SESSION_COOKIE] === 'string';
  }

  /** Check the request's session cookie against the signature, expiry and token list. */
  check(request: FastifyRequest, now = Date.now()): SessionCheck {
    const raw = request.cookies[SESSION_COOKIE];
    if (!raw) return { ok: false, reason: 'no console session' };
    const unsigned = request.unsignCookie(raw);
    if (!unsigned.valid || unsigned.value === null)
      return { ok: false, reason: 'the console session cookie is not valid; log in again' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(unsigned.value, 'base64url').toString('utf8'));
    } catch {
      return { ok: false, reason: 'the console session cookie is not valid; log in again' };
    }
    const c = Claims.safeParse(parsed);
    if (!c.success)
      return { ok: false, reason: 'the console session cookie is not valid; log in again' };
    if (c.data.exp <= now)
      return { ok: false, reason: 'the console session expired; log in again' };
    const principal = this.verifier.byNameAndHash(c.data.name, c.data.h);
    if (!principal)
      return {
        ok: false,
        reason: `the API token "${c.data.name}" of this session is no longer configured; log in again`,
      };
    return { ok: true, principal, sid: c.data.sid, expiresAt: c.data.exp };
  }

  /** Remove both console cookies. */
  clear(reply: FastifyReply): void {
    const { path } = this.cookieOptions();
    void reply.clearCookie(SESSION_COOKIE, { path });
    void reply.clearCookie('_csrf', { path });
  }
}

/** Register @fastify/cookie and @fastify/csrf-protection (before the auth hook is added). */
export async function registerSessionPlugins(app: ApiServer, sessions: ConsoleSessions) {
  await app.register(fastifyCookie, { secret: sessions.secret });
  await app.register(fastifyCsrf, {
    sessionPlugin: '@fastify/cookie',
    cookieOpts: sessions.cookieOptions(),
    csrfOpts: { hmacKey: sessions.secret },
    getToken: req => {
      const t = req.headers[CSRF_HEADER];
      return typeof t === 'string' ? t : undefined;
    },
    getUserInfo: req => req.sessionId ?? '',
  });
  app.decorateRequest('authMethod', null);
  app.decorateRequest('sessionId', null);
}

/** Methods that change state: cookie-authenticated requests with them need a CSRF token. */
export const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Run the CSRF check of @fastify/csrf-protection; returns false when it answered 403 itself
 * (the error handler turns its error into `csrf_failed` with an explanation).
 */
export function csrfPasses(app: ApiServer, request: FastifyRequest, reply: FastifyReply): boolean {
  let passed = false;
  app.csrfProtection(request, reply, () => {
    passed = true;
  });
  return passed;
}

/** The session answer, shared with the console (src/shared/api-schemas.ts). */
const SessionBody = ConsoleSession;

function principalBody(p: Principal) {
  return { name: p.name, role: p.role, districts: p.districts ?? null };
}

/** `POST|GET|DELETE /session`. */
export function sessionRoutes(app: ApiServer, sessions: ConsoleSessions): void {
  app.post(
    '/session',
    {
      config: { public: true },
      schema: {
        summary: 'Log in to the console with an API token: sets an http-only session cookie',
        tags: ['console'],
        body: z.object({ token: z.string().min(1).max(512) }).strict(),
        response: { 200: SessionBody, 401: ErrorBody },
      },
    },
    async (request, reply) => {
      const s = sessions.issue(reply, request.body.token.trim());
      if (!s?.ok) {
        request.log.info('console login refused');
        return reply.code(401).send({
          code: 'unauthorized',
          message: 'this API token is not valid (ask an administrator for one)',
          requestId: request.id,
        });
      }
      request.sessionId = s.sid;
      request.log.info({ tokenName: s.principal.name }, 'console login');
      return {
        principal: principalBody(s.principal),
        via: 'session' as const,
        expiresAt: new Date(s.expiresAt).toISOString(),
        csrfToken: reply.generateCsrf({ userInfo: s.sid }),
      };
    },
  );

  app.get(
    '/session',
    {
      schema: {
        summary: 'Who is logged in, and a fresh CSRF token for the console session',
        tags: ['console'],
        response: { 200: SessionBody, 401: ErrorBody },
      },
    },
    async (request, reply) => {
      const p = request.principal;
      if (!p) throw new Error('auth hook did not set a principal');
      if (request.authMethod !== 'session' || !request.sessionId)
        return {
          principal: principalBody(p),
          via: 'bearer' as const,
          expiresAt: null,
          csrfToken: null,
        };
      const s = sessions.check(request);
      return {
        principal: principalBody(p),
        via: 'session' as const,
        expiresAt: s.ok ? new Date(s.expiresAt).toISOString() : null,
        csrfToken: reply.generateCsrf({ userInfo: request.sessionId }),
      };
    },
  );

  app.delete(
    '/session',
    {
      schema: {
        summary: 'Log out of the console (removes the session cookies)',
        tags: ['console'],
        response: { 200: z.object({ loggedOut: z.boolean() }) },
      },
    },
    async (request, reply) => {
      sessions.clear(reply);
      request.log.info('console logout');
      return { loggedOut: true };
    },
  );
}
