/**
 * Bull Board (queue dashboard) under `/admin/queues`, for admin tokens valid for every
 * district. Browsers get an HTTP Basic prompt: leave the user name empty and paste the token
 * as the password (the dashboard's own API calls then carry the same credentials).
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { AppContext } from '../app.js';
import { requireRoleHook } from './auth.js';
import type { ApiServer } from './routes/types.js';

export const DASHBOARD_PATH = '/admin/queues';

/** Mount Bull Board for every queue of `ctx.queues` (queues added there show up too). */
export async function registerDashboard(app: ApiServer, ctx: AppContext): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(DASHBOARD_PATH);
  createBullBoard({
    queues: Object.values(ctx.queues).map(q => new BullMQAdapter(q)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'guardian-sync' } },
  });
  await app.register(async scope => {
    scope.addHook('onRequest', requireRoleHook('admin', { allDistricts: true }));
    await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
  });
}
