/**
 * Bearer-token authentication and role/district authorization for the API.
 *
 * - Every route needs a token except those with `config: { public: true }` (liveness).
 * - The token comes as `Authorization: Bearer <token>`, or as the password of HTTP Basic
 *   auth (`curl -u :<token>`; browsers prompt for it on the dashboard and the docs), or, for
 *   the admin console, as a session cookie made by `POST /session` (`./session.ts`): same
 *   roles and district scopes, plus a CSRF token on every state-changing request. A request
 *   with an `Authorization` header is judged by it alone (cookies are ignored).
 * - The presented token is hashed (SHA-256) and compared with every configured hash with
 *   `crypto.timingSafeEqual`, without stopping at the first match.
 * - Roles: `admin` may do everything, `viewer` may read. A token with `districts` sees only
 *   those districts; routes that span all districts (metrics, dashboard) need an unscoped one.
 *
 * Route modules call `requireRole(request, role, scope)`; missing token → 401
 * `unauthorized`, wrong role or district → 403 `forbidden`.
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiRole, ApiTokenEntry } from '../config/api-tokens.js';
import { hashToken } from '../config/api-tokens.js';
import { ApiError, sendApiError } from './errors.js';
import { UNSAFE_METHODS, type ConsoleSessions } from './session.js';

/** Who a request is: the token entry's name, role and district scope. */
export interface Principal {
  name: string;
  role: ApiRole;
  /** Districts the token may see; `undefined` = all. */
  districts?: string[] | undefined;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook for every authenticated request. */
    principal: Principal | null;
  }
  interface FastifyContextConfig {
    /** No token needed (liveness only). */
    public?: boolean;
  }
}

/** Checks presented tokens against the configured hashes. */
export class TokenVerifier {
  private readonly entries: { entry: ApiTokenEntry; hash: Buffer }[];

  constructor(entries: readonly ApiTokenEntry[]) {
    this.entries = entries.map(entry => ({ entry, hash: Buffer.from(entry.sha256, 'hex') }));
  }

  /** The principal of `token`, or `undefined`. Compares against every entry (constant time). */
  verify(token: string): Principal | undefined {
    const presented = Buffer.from(hashToken(token), 'hex');
    let found: ApiTokenEntry | undefined;
    for (const { entry, hash } of this.entries) {
      if (timingSafeEqual(presented, hash) && !found) found = entry;
    }
    return found && { name: found.name, role: found.role, districts: found.districts };
  }

  /**
   * The principal of the entry called `name` whose hash starts with `hashPrefix` (a console
   * session's claims), or `undefined` when that token is no longer configured.
   */
  byNameAndHash(name: string, hashPrefix: string): Principal | undefined {
    const e = this.entries.find(x => x.entry.name === name)?.entry;
    if (!e || hashPrefix.length < 32 || !e.sha256.startsWith(hashPrefix)) return undefined;
    return { name: e.name, role: e.role, districts: e.districts };
  }

  /** Districts named by tokens that are not in `known` (for a start-up warning). */
  unknownDistricts(known: Iterable<string>): string[] {
    const k = new Set(known);
    const out = new Set<string>();
    for (const { entry } of this.entries)
      for (const d of entry.districts ?? []) if (!k.has(d)) out.add(d);
    return [...out].sort();
  }
}

/** The token in an `Authorization` header (Bearer, or Basic password), else `undefined`. */
export function tokenFromHeader(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(header);
  if (!m?.[1] || !m[2]) return undefined;
  if (m[1].toLowerCase() === 'bearer') return m[2];
  const decoded = Buffer.from(m[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const password = colon >= 0 ? decoded.slice(colon + 1) : '';
  return password || undefined;
}

/** Paths browsers open directly: a 401 there asks for Basic credentials (token as password). */
const BROWSER_PATHS = ['/admin/queues', '/docs'];

function challenge(request: FastifyRequest): Record<string, string> {
  const path = request.url.split('?')[0] ?? '';
  const browser = BROWSER_PATHS.some(p => path === p || path.startsWith(`${p}/`));
  return {
    'www-authenticate': browser
      ? 'Basic realm="guardian-sync", charset="UTF-8"'
      : 'Bearer realm="guardian-sync"',
  };
}

/** What the auth hook needs for console sessions (absent: bearer tokens only). */
export interface SessionAuth {
  sessions: ConsoleSessions;
  /** The CSRF check (`csrfPasses` bound to the server); false when it answered 403. */
  csrf: (request: FastifyRequest, reply: FastifyReply) => boolean;
}

/**
 * Fastify `onRequest` hook: authenticate every non-public request (401 otherwise) and set
 * `request.principal` (and `authMethod`, `sessionId`). A cookie-authenticated POST/PUT/PATCH/
 * DELETE without a valid CSRF token is answered 403 `csrf_failed`.
 */
export function authHook(verifier: TokenVerifier, session?: SessionAuth) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> => {
    request.principal = null;
    if (request.routeOptions.config.public === true) return;
    const token = tokenFromHeader(request.headers.authorization);
    if (token === undefined && session?.sessions.present(request)) {
      const s = session.sessions.check(request);
      if (!s.ok) {
        session.sessions.clear(reply);
        return sendApiError(request, reply, new ApiError(401, 'unauthorized', s.reason));
      }
      request.principal = s.principal;
      request.authMethod = 'session';
      request.sessionId = s.sid;
      request.log = request.log.child({ tokenName: s.principal.name, via: 'session' });
      if (UNSAFE_METHODS.has(request.method) && !session.csrf(request, reply)) return reply;
      return;
    }
    const principal = token === undefined ? undefined : verifier.verify(token);
    if (!principal) {
      return sendApiError(
        request,
        reply,
        new ApiError(
          401,
          'unauthorized',
          token === undefined
            ? 'an API token is required (Authorization: Bearer <token>)'
            : 'the API token is not valid',
          undefined,
          challenge(request),
        ),
      );
    }
    request.principal = principal;
    request.authMethod = 'bearer';
    request.log = request.log.child({ tokenName: principal.name });
  };
}

/** May `p` see `districtId`? */
export function canSeeDistrict(p: Principal, districtId: string): boolean {
  return p.districts === undefined || p.districts.includes(districtId);
}

/** Scope of a check: one district, every district, or none (role only). */
export type Scope = string | { allDistricts: true } | undefined;

/**
 * Require an authenticated principal with at least `role` (`admin` > `viewer`) whose district
 * scope covers `scope`. Returns the principal. Throws `ApiError` 401 `unauthorized` without a
 * principal, 403 `forbidden` for a viewer on an admin route, a district outside the token's
 * scope, or a scoped token on an all-districts route.
 */
export function requireRole(request: FastifyRequest, role: ApiRole, scope?: Scope): Principal {
  const p = request.principal;
  if (!p) throw new ApiError(401, 'unauthorized', 'an API token is required');
  if (role === 'admin' && p.role !== 'admin')
    throw new ApiError(403, 'forbidden', `token "${p.name}" is read-only (role viewer)`);
  if (typeof scope === 'string' && !canSeeDistrict(p, scope))
    throw new ApiError(403, 'forbidden', `token "${p.name}" has no access to district ${scope}`);
  if (typeof scope === 'object' && p.districts !== undefined)
    throw new ApiError(
      403,
      'forbidden',
      `token "${p.name}" is limited to some districts; this needs a token for all districts`,
    );
  return p;
}

/**
 * Fastify `onRequest` hook for a whole plugin (e.g. the dashboard): like `requireRole`, but
 * answers with the JSON error itself (third-party plugins have their own error handlers).
 */
export function requireRoleHook(role: ApiRole, scope?: Scope) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | void> => {
    try {
      requireRole(request, role, scope);
    } catch (err) {
      if (err instanceof ApiError) return sendApiError(request, reply, err);
      throw err;
    }
  };
}
