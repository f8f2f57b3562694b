/**
 * Administration of the running API process: `POST /admin/districts/reload` re-reads the
 * district files (src/config/reload.ts) so a district added or changed after the start is
 * served without a restart (the process also watches the folder).
 */
import { z } from 'zod';
import { reloadDistricts } from '../../config/reload.js';
import { ConfigError } from '../../errors.js';
import { requireRole } from '../auth.js';
import { ApiError, ErrorBody } from '../errors.js';
import type { ApiRoutes } from './types.js';

const ReloadResponse = z.object({
  added: z.array(z.string()).describe('district ids now served'),
  changed: z.array(z.string()),
  removed: z.array(z.string()),
  unchanged: z.array(z.string()),
});

export const adminRoutes: ApiRoutes = (app, { ctx }) => {
  app.post(
    '/admin/districts/reload',
    {
      schema: {
        summary: 'Re-read the district files (admin, all districts)',
        description:
          'Validates every file and the secrets each new or changed district names. 422 `invalid_config` (each problem in `details`) leaves the previous configuration in force.',
        tags: ['admin'],
        response: { 200: ReloadResponse, 403: ErrorBody, 422: ErrorBody },
      },
    },
    request => {
      requireRole(request, 'admin', { allDistricts: true });
      try {
        const r = reloadDistricts(ctx);
        request.log.info(
          { added: r.added, changed: r.changed, removed: r.removed },
          'district files reloaded',
        );
        return r;
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        throw new ApiError(
          422,
          'invalid_config',
          err.message,
          (err.problems.length ? err.problems : [err.message]).map(m => ({
            path: 'districts',
            message: m,
          })),
        );
      }
    },
  );
};
