/**
 * The API's route modules, mounted in this order by `buildApiServer`. To add a feature's
 * routes: write `src/api/routes/<feature>.ts` exporting an `ApiRoutes` plugin (see
 * `./types.ts`; check access with `requireRole(request, role, districtId)` from
 * `../auth.js`) and add one line below.
 */
import { accessCodeRoutes } from './access-codes.js';
import { adminRoutes } from './admin.js';
import { associationRoutes } from './associations.js';
import { auditRoutes } from './audit.js';
import { changeRoutes } from './changes.js';
import { districtRoutes } from './districts.js';
import { healthRoutes } from './health.js';
import { importRoutes } from './imports.js';
import { metricsRoutes } from './metrics.js';
import { runRoutes } from './runs.js';
import type { ApiRoutePlugin } from './types.js';

export type { ApiPluginOptions, ApiRoutePlugin, ApiRoutes, ApiServer } from './types.js';

export const ROUTE_PLUGINS: readonly ApiRoutePlugin[] = [
  { name: 'health', routes: healthRoutes },
  { name: 'districts', routes: districtRoutes },
  { name: 'runs', routes: runRoutes },
  { name: 'metrics', routes: metricsRoutes },
  { name: 'access-codes', routes: accessCodeRoutes },
  { name: 'imports', routes: importRoutes },
  { name: 'associations', routes: associationRoutes },
  { name: 'audit', routes: auditRoutes },
  { name: 'changes', routes: changeRoutes },
  { name: 'admin', routes: adminRoutes },
];
