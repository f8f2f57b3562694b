/**
 * Serves the admin console (a single-page app built by Vite from src/console into
 * dist/console, `npm run build`) under `/console/`. Assets and pages are public (they hold no
 * data; the data comes from the API, which needs a session or a token). Paths under
 * `/console/` that are no file get `index.html` (the app's own routes). When the console was
 * not built, `/console/` answers 503 with a page that says how to build it.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyReply } from 'fastify';
import type { ApiServer } from './routes/index.js';

const here = dirname(fileURLToPath(import.meta.url));

/**
 * Where the built console is: `dir` when given, else `CONSOLE_DIR`, else `dist/console` next to
 * the running code (dist/src/api → dist/console; src/api under tsx → dist/console).
 */
export function consoleDir(dir?: string): string {
  if (dir) return resolve(dir);
  if (process.env.CONSOLE_DIR) return resolve(process.env.CONSOLE_DIR);
  const compiled = resolve(here, '../../console');
  if (existsSync(join(compiled, 'index.html'))) return compiled;
  return resolve(here, '../../dist/console');
}

const NOT_BUILT = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Console not built</title></head>
<body><main><h1>The admin console is not built</h1>
<p>Build it with <code>npm run build</code> (or <code>npm run build:console</code>) and restart <code>guardian-sync api</code>.
The API itself works without it.</p></main></body></html>`;

/** Mount the console under `/console/`. Returns whether a built console was found. */
export async function registerConsole(app: ApiServer, dir?: string): Promise<boolean> {
  const root = consoleDir(dir);
  const built = existsSync(join(root, 'index.html'));
  app.get('/console', { config: { public: true }, schema: { hide: true } }, (_req, reply) =>
    reply.redirect('/console/'),
  );
  if (!built) {
    app.log.warn(
      { dir: root },
      'the admin console is not built (npm run build); /console/ says so',
    );
    app.get('/console/*', { config: { public: true }, schema: { hide: true } }, (_req, reply) =>
      reply.code(503).type('text/html; charset=utf-8').send(NOT_BUILT),
    );
    return false;
  }
  await app.register(async scope => {
    // Every route of this scope (the files @fastify/static lists) is public.
    scope.addHook('onRoute', route => {
      route.config = { ...route.config, public: true };
      route.schema = { ...route.schema, hide: true };
    });
    await scope.register(fastifyStatic, {
      root,
      prefix: '/console/',
      wildcard: false,
      index: false,
      cacheControl: false,
      setHeaders: (res, path) => {
        // Hashed asset names may be cached for long; index.html must be revalidated.
        void res.header(
          'cache-control',
          path.includes(`${join(root, 'assets')}`)
            ? 'public, max-age=31536000, immutable'
            : 'no-cache',
        );
      },
    });
    const sendIndex = (_req: unknown, reply: FastifyReply) =>
      reply.header('cache-control', 'no-cache').sendFile('index.html', root);
    scope.get('/console/', sendIndex);
    scope.get('/console/*', sendIndex);
  });
  return true;
}
