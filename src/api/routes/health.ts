/** Liveness (`/healthz`, no token) and readiness (`/readyz`: Redis and store reachable). */
import { z } from 'zod';
import { describeError } from '../../errors.js';
import { requireRole } from '../auth.js';
import { withTimeout } from '../timeout.js';
import type { ApiRoutes } from './types.js';

/** A readiness check gives up after this long (ms). */
export const READY_CHECK_TIMEOUT_MS = 1500;

const Check = z.object({
  ok: z.boolean(),
  ms: z.number().describe('time the check took'),
  error: z.string().optional(),
});
const Readiness = z.object({
  status: z.enum(['ready', 'unavailable']),
  checks: z.object({ redis: Check, store: Check }),
});

async function timed(what: string, fn: () => Promise<unknown>): Promise<z.infer<typeof Check>> {
  const started = Date.now();
  try {
    await withTimeout(fn(), READY_CHECK_TIMEOUT_MS, what);
    return { ok: true, ms: Date.now() - started };
  } catch (err) {
    return { ok: false, ms: Date.now() - started, error: describeError(err) };
  }
}

export const healthRoutes: ApiRoutes = (app, { ctx }) => {
  app.get(
    '/healthz',
    {
      config: { public: true },
      schema: {
        summary: 'Liveness: the process answers (no token needed)',
        tags: ['health'],
        security: [],
        response: { 200: z.object({ status: z.literal('ok') }) },
      },
    },
    () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: 'Readiness: Redis and the store answer; 503 names the failing part',
        tags: ['health'],
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (request, reply) => {
      requireRole(request, 'viewer');
      const [redis, store] = await Promise.all([
        timed('redis', () => ctx.redis.ping()),
        timed('store', () => ctx.store.ping()),
      ]);
      const ok = redis.ok && store.ok;
      return reply
        .code(ok ? 200 : 503)
        .send({ status: ok ? 'ready' : 'unavailable', checks: { redis, store } });
    },
  );
};
