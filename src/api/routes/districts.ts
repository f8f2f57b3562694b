/**
 * Districts: list, detail (config summary without secrets, last and active run, schedule and
 * next run time), trigger a sync, list runs.
 */
import { refusedConfigNote } from '../../jobs/run-config.js';
import { z } from 'zod';
import type { AppContext } from '../../app.js';
import type { DistrictConfig } from '../../config/district.js';
import { triggerSync } from '../../jobs/sync.js';
import { ApiError, ErrorBody } from '../errors.js';
import { canSeeDistrict, requireRole } from '../auth.js';
import {
  DistrictDetail,
  DistrictIdParams,
  DistrictSummary,
  RunSummary,
  districtSummary,
  runSummary,
} from '../schemas.js';
import type { ApiRoutes } from './types.js';

/** How many recent runs `GET /districts/:id` looks through for held ones. */
const HELD_LOOKBACK = 50;

/** The district, or 404 `not_found` (call after the scope check, so nothing leaks). */
function districtOr404(ctx: AppContext, id: string): DistrictConfig {
  const d = ctx.districts.get(id);
  if (!d) throw new ApiError(404, 'not_found', `no district ${id}`);
  return d;
}

/** The job scheduler `syncSchedules` installs for a district (id `district.<id>`). */
async function schedulerOf(ctx: AppContext, d: DistrictConfig) {
  if (!d.schedule) return { installed: false };
  const s = await ctx.queues.trigger.getJobScheduler(`district.${d.id}`);
  return { installed: s !== undefined, next: s?.next };
}

const TriggerBody = z
  .object({
    dryRun: z.boolean().default(false).describe('compute the plan without writing anything'),
  })
  .strict();

const TriggerResponse = z.object({
  started: z.boolean().describe('false: a run was already queued or running; that run is returned'),
  run: RunSummary,
  warning: z
    .string()
    .optional()
    .describe(
      'the district file on disk could not be used (e.g. a secret it names is not set): the run uses the configuration loaded before (`run.config`)',
    ),
});

export const districtRoutes: ApiRoutes = (app, { ctx }) => {
  app.get(
    '/districts',
    {
      schema: {
        summary: 'Districts this token may see',
        tags: ['districts'],
        response: { 200: z.object({ items: z.array(DistrictSummary) }) },
      },
    },
    async request => {
      const p = requireRole(request, 'viewer');
      const visible = [...ctx.districts.values()].filter(d => canSeeDistrict(p, d.id));
      const items = [];
      for (const d of visible) items.push(districtSummary(d, await schedulerOf(ctx, d)));
      return { items };
    },
  );

  app.get(
    '/districts/:id',
    {
      schema: {
        summary:
          'One district: configuration summary, schedule, next run, last and active run, held runs waiting for approval',
        tags: ['districts'],
        params: DistrictIdParams,
        response: { 200: DistrictDetail, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      const d = districtOr404(ctx, request.params.id);
      const [scheduler, last, active] = await Promise.all([
        schedulerOf(ctx, d),
        ctx.store.listRuns(d.id, HELD_LOOKBACK),
        ctx.store.findActiveRun(d.id),
      ]);
      return {
        ...districtSummary(d, scheduler),
        lastRun: last[0] ? runSummary(last[0]) : null,
        activeRun: active ? runSummary(active) : null,
        heldRuns: last.filter(r => r.status === 'needs-approval').map(r => runSummary(r)),
      };
    },
  );

  app.post(
    '/districts/:id/syncs',
    {
      schema: {
        summary: 'Start a sync run (admin). While a run is active, returns that run instead',
        description:
          '202 with the new run, or 200 with `started: false` and the run already queued or running (one run per district at a time).',
        tags: ['districts'],
        params: DistrictIdParams,
        body: TriggerBody.nullish(),
        response: { 200: TriggerResponse, 202: TriggerResponse, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async (request, reply) => {
      requireRole(request, 'admin', request.params.id);
      const d = districtOr404(ctx, request.params.id);
      const { run, started } = await triggerSync(ctx, {
        districtId: d.id,
        dryRun: request.body?.dryRun ?? false,
        trigger: 'api',
        actor: `api:${request.principal?.name ?? 'unknown'}`,
      });
      request.log.info({ districtId: d.id, runId: run.id, started }, 'sync requested');
      const warning = refusedConfigNote(run.config);
      return reply
        .code(started ? 202 : 200)
        .send({ started, run: runSummary(run), ...(warning ? { warning } : {}) });
    },
  );

  app.get(
    '/districts/:id/runs',
    {
      schema: {
        summary: 'Recent runs of a district, newest first',
        tags: ['runs'],
        params: DistrictIdParams,
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(200).default(20) }),
        response: { 200: z.object({ items: z.array(RunSummary) }), 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      const d = districtOr404(ctx, request.params.id);
      const runs = await ctx.store.listRuns(d.id, request.query.limit);
      return { items: runs.map(r => runSummary(r)) };
    },
  );
};
