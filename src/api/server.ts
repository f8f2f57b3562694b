/**
 * The admin and status HTTP API (fastify 5 + zod type provider). JSON everywhere; the
 * OpenAPI document is generated from the routes' zod schemas (`/docs`, `/docs/json`).
 *
 * - Auth: bearer tokens (`./auth.ts`); every route but `/healthz` needs one. The admin
 *   console (`/console/`, `./console.ts`) logs in with a token and then uses a session cookie
 *   with CSRF tokens (`./session.ts`).
 * - Errors: JSON `{code, message, requestId}` (`./errors.ts`), never a stack.
 * - Request ids: `x-request-id` from the client when it is a safe string (≤ 64 of
 *   `A-Za-z0-9._-`), else a UUID; logged as `reqId` and echoed in the response header.
 * - Logs: query strings are not logged; tokens, emails and names are redacted.
 * - Shutdown: `app.close()` stops accepting, lets in-flight requests finish, answers 503 to
 *   requests that arrive on kept-alive connections meanwhile.
 */
import { randomUUID } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import {
  jsonSchemaTransform,
  jsonSchemaTransformObject,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { AppContext } from '../app.js';
import type { ApiTokenEntry } from '../config/api-tokens.js';
import { describeError } from '../errors.js';
import { REDACT_PATHS } from '../logger.js';
import { TokenVerifier, authHook } from './auth.js';
import { registerConsole } from './console.js';
import { registerDashboard } from './dashboard.js';
import { apiErrorHandler, apiNotFoundHandler } from './errors.js';
import {
  ConsoleSessions,
  csrfPasses,
  registerSessionPlugins,
  sessionRoutes,
  type ConsoleSessionOptions,
} from './session.js';
import { ROUTE_PLUGINS, type ApiRoutePlugin, type ApiServer } from './routes/index.js';

/** Log paths redacted on top of the application's (`REDACT_PATHS`). */
export const API_REDACT_PATHS = [
  ...REDACT_PATHS,
  'req.headers.authorization',
  'req.headers.cookie',
  'email',
  'givenName',
  'familyName',
  '*.givenName',
  '*.familyName',
  '*.*.email',
  '*.*.givenName',
  '*.*.familyName',
];

export interface ApiServerOptions {
  /** Configured tokens (hashes). */
  tokens: readonly ApiTokenEntry[];
  /** Route modules; default `ROUTE_PLUGINS`. */
  routes?: readonly ApiRoutePlugin[];
  /** Largest request body in bytes; default 1 MiB. */
  bodyLimit?: number;
  /** Mount Bull Board under `/admin/queues` (default true). */
  dashboard?: boolean;
  /** Console sessions (`CONSOLE_SESSION_*`); default: a random key per process, 8 hours. */
  session?: ConsoleSessionOptions;
  /** Folder of the built console (default `consoleDir()`, src/api/console.ts). */
  consoleDir?: string;
}

const SAFE_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

function requestId(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  return typeof h === 'string' && SAFE_REQUEST_ID.test(h) ? h : randomUUID();
}

/**
 * Build the server (not listening yet). Throws when a plugin fails to register.
 * The caller owns `ctx` and closes it after `app.close()`.
 */
export async function buildApiServer(ctx: AppContext, opts: ApiServerOptions): Promise<ApiServer> {
  const verifier = new TokenVerifier(opts.tokens);
  const logger: FastifyBaseLogger = ctx.logger.child(
    { component: 'api' },
    {
      redact: { paths: API_REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        // The path only: query strings may carry search terms (names).
        req: (req: { method?: string; url?: string; ip?: string }) => ({
          method: req.method,
          path: req.url?.split('?')[0],
          remoteAddress: req.ip,
        }),
      },
    },
  );
  const unknown = verifier.unknownDistricts(ctx.districts.keys());
  if (unknown.length)
    logger.warn({ districts: unknown }, 'API tokens name districts that are not configured');

  // Queues and the shared Redis client report connection errors as events; log them (at most
  // every 30 s per source) instead of letting them print or throw. Readiness shows the state.
  const lastLogged = new Map<string, number>();
  const listeners: { target: EventEmitter; fn: (err: Error) => void }[] = [];
  const watch = (target: EventEmitter, source: string) => {
    const fn = (err: Error) => {
      const now = Date.now();
      if (now - (lastLogged.get(source) ?? 0) < 30000) return;
      lastLogged.set(source, now);
      logger.warn({ source, err: describeError(err) }, 'Redis connection error');
    };
    target.on('error', fn);
    listeners.push({ target, fn });
  };
  watch(ctx.redis, 'redis');
  for (const q of Object.values(ctx.queues)) watch(q, `queue ${q.name}`);

  const app: ApiServer = Fastify({
    loggerInstance: logger,
    genReqId: requestId,
    bodyLimit: opts.bodyLimit ?? 1048576,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null);
  app.setErrorHandler(apiErrorHandler);
  app.setNotFoundHandler(apiNotFoundHandler);
  app.addHook('onRequest', (request, reply, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  const sessions = new ConsoleSessions(verifier, opts.session);
  if (sessions.ephemeral)
    logger.warn(
      'CONSOLE_SESSION_SECRET is not set: console sessions use a random key and end when the API restarts',
    );
  await registerSessionPlugins(app, sessions);
  app.addHook(
    'onRequest',
    authHook(verifier, { sessions, csrf: (req, reply) => csrfPasses(app, req, reply) }),
  );
  app.addHook('onClose', (_app, done) => {
    for (const l of listeners) l.target.off('error', l.fn);
    done();
  });

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'guardian-sync admin and status API',
        description:
          'Trigger syncs, read runs and their reports, approve held runs. Send `Authorization: Bearer <token>`.',
        version: '1',
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer' },
          basicAuth: {
            type: 'http',
            scheme: 'basic',
            description: 'any user name, the token as password (for browsers)',
          },
        },
      },
      security: [{ bearerAuth: [] }, { basicAuth: [] }],
    },
    transform: jsonSchemaTransform,
    transformObject: jsonSchemaTransformObject,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  sessionRoutes(app, sessions);
  await registerConsole(app, opts.consoleDir);
  for (const r of opts.routes ?? ROUTE_PLUGINS)
    await app.register(
      async scope => {
        await r.routes(scope, { ctx });
      },
      r.prefix ? { prefix: r.prefix } : {},
    );
  if (opts.dashboard ?? true) await registerDashboard(app, ctx);
  return app;
}
