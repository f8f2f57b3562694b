/**
 * What a route module is: a function that adds routes to the API's fastify instance (zod
 * type provider), e.g. `export const fooRoutes: ApiRoutes = (app, { ctx }) => { app.get(...) }`.
 * It runs inside its own encapsulated fastify plugin, so hooks it adds stay local. Each
 * handler calls `requireRole(request, 'viewer' | 'admin', districtId)` (src/api/auth.ts) and
 * throws `ApiError` for client errors. List the module in `ROUTE_PLUGINS` (./index.ts).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance, RawServerDefault } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AppContext } from '../../app.js';

export interface ApiPluginOptions {
  ctx: AppContext;
}

export type ApiRoutes = (app: ApiServer, opts: ApiPluginOptions) => void | Promise<void>;

export interface ApiRoutePlugin {
  /** Shown in logs and used as the OpenAPI tag. */
  name: string;
  routes: ApiRoutes;
  /** URL prefix for every route of the module (default none). */
  prefix?: string;
}

/** The API's fastify instance (zod type provider). */
export type ApiServer = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  ZodTypeProvider
>;
