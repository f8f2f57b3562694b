/** `GET /metrics`: Prometheus text (any role; a token for all districts). */
import { requireRole } from '../auth.js';
import { ApiError } from '../errors.js';
import { TimeoutError, withTimeout } from '../timeout.js';
import { renderMetrics } from '../metrics.js';
import type { ApiRoutes } from './types.js';

/** A scrape gives up after this long (Prometheus' default scrape timeout is 10 s). */
export const METRICS_TIMEOUT_MS = 5000;

export const metricsRoutes: ApiRoutes = (app, { ctx }) => {
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics (text exposition format); needs a token for all districts',
        tags: ['operations'],
        produces: ['text/plain'],
      },
    },
    async (request, reply) => {
      requireRole(request, 'viewer', { allDistricts: true });
      let out: { contentType: string; text: string };
      try {
        out = await withTimeout(renderMetrics(ctx), METRICS_TIMEOUT_MS, 'metrics sources');
      } catch (err) {
        if (!(err instanceof TimeoutError)) throw err;
        throw new ApiError(503, 'service_unavailable', err.message);
      }
      const { contentType, text } = out;
      return reply.type(contentType).send(text);
    },
  );
};
