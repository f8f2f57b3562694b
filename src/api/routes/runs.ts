/**
 * Runs: detail, rejects (paged JSON and CSV download), approve and discard a run held by
 * the deletion safeguard.
 */
import { z } from 'zod';
import type { AppContext } from '../../app.js';
import { approveRun, discardRun } from '../../jobs/sync.js';
import { rejectsCsv, rejectTotal, withKind } from '../../jobs/rejects.js';
import type { SyncRun } from '../../models/types.js';
import { processMetrics } from '../../workers/metrics.js';
import { requireRole } from '../auth.js';
import { ApiError, ErrorBody } from '../errors.js';
import { RejectItem, RunDetail, RunIdParams, runDetail } from '../schemas.js';
import type { ApiRoutes } from './types.js';

async function runOr404(ctx: AppContext, id: string): Promise<SyncRun> {
  const run = await ctx.store.getRun(id);
  if (!run) throw new ApiError(404, 'not_found', `no run ${id}`);
  return run;
}

/**
 * Spreadsheet formula injection: a cell starting with `=`, `+`, `-`, `@`, tab or CR is
 * prefixed with `'` so Excel/Sheets show it as text (OWASP "CSV Injection").
 */
export function neutralizeCell(value: string): string {
  return /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}

/** `?kind=` of the rejects listing: `rejected`, `excluded`, or absent for both. */
const KindQuery = z
  .enum(['rejected', 'excluded'])
  .optional()
  .describe('only records refused (`rejected`) or left out by a rule (`excluded`); default both');

const HeldDecision = z.object({ run: RunDetail });

export const runRoutes: ApiRoutes = (app, { ctx }) => {
  app.get(
    '/runs/:id',
    {
      schema: {
        summary: 'One run: status, counts per entity and action, timings, held deactivations',
        tags: ['runs'],
        params: RunIdParams,
        response: { 200: RunDetail, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      const run = await runOr404(ctx, request.params.id);
      requireRole(request, 'viewer', run.districtId);
      return runDetail(run);
    },
  );

  app.get(
    '/runs/:id/rejects',
    {
      schema: {
        summary:
          "A page of the run's rejects (records refused) and exclusions (records left out by a rule), with the reason",
        tags: ['runs'],
        params: RunIdParams,
        querystring: z.object({
          offset: z.coerce.number().int().min(0).default(0),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
          kind: KindQuery,
        }),
        response: {
          200: z.object({
            runId: z.string(),
            total: z.number().int(),
            offset: z.number().int(),
            limit: z.number().int(),
            items: z.array(RejectItem),
          }),
          403: ErrorBody,
          404: ErrorBody,
        },
      },
    },
    async request => {
      const run = await runOr404(ctx, request.params.id);
      requireRole(request, 'viewer', run.districtId);
      const { offset, limit, kind } = request.query;
      const items = (await ctx.store.listRejects(run.id, offset, limit, { kind })).map(withKind);
      return { runId: run.id, total: rejectTotal(run, kind), offset, limit, items };
    },
  );

  app.get(
    '/runs/:id/rejects.csv',
    {
      schema: {
        summary: "All of the run's rejects and exclusions as CSV (entity, recordId, reason, kind)",
        tags: ['runs'],
        params: RunIdParams,
        querystring: z.object({ kind: KindQuery }),
        produces: ['text/csv'],
      },
    },
    async (request, reply) => {
      const run = await runOr404(ctx, request.params.id);
      requireRole(request, 'viewer', run.districtId);
      const { kind } = request.query;
      const csv = rejectsCsv(ctx.store, run.id, { kind });
      csv.on('error', err => request.log.error({ err: String(err) }, 'reading rejects failed'));
      return reply
        .type('text/csv; charset=utf-8')
        .header(
          'content-disposition',
          `attachment; filename="${kind === 'excluded' ? 'exclusions' : 'rejects'}-${run.id}.csv"`,
        )
        .send(csv);
    },
  );

  for (const decision of ['approve', 'discard'] as const) {
    app.post(
      `/runs/:id/${decision}`,
      {
        schema: {
          summary:
            decision === 'approve'
              ? 'Apply the deactivations a needs-approval run holds (admin)'
              : 'Drop the deactivations a needs-approval run holds (admin)',
          tags: ['runs'],
          params: RunIdParams,
          response: { 200: HeldDecision, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
        },
      },
      async request => {
        const run = await runOr404(ctx, request.params.id);
        requireRole(request, 'admin', run.districtId);
        if (run.status !== 'needs-approval')
          throw new ApiError(
            409,
            'run_not_held',
            `run ${run.id} is ${run.status}; only needs-approval runs can be approved or discarded`,
          );
        const actor = `api:${request.principal?.name ?? 'unknown'}`;
        const done =
          decision === 'approve'
            ? await approveRun(ctx, run.id, actor)
            : await discardRun(ctx, run.id, actor);
        processMetrics(ctx).recordDecision(
          run.districtId,
          decision === 'approve' ? 'approved' : 'discarded',
        );
        request.log.info(
          { runId: run.id, districtId: run.districtId, decision },
          'held run decided',
        );
        return { run: runDetail(done) };
      },
    );
  }
};
