/**
 * Runs: detail, rejects (paged JSON and CSV download), the remap a held re-key proposes, approve
 * and discard a run held by the deletion safeguard, cancel a queued or running run.
 */
import { z } from 'zod';
import type { AppContext } from '../../app.js';
import { heldCsv, heldItems, heldTotal } from '../../jobs/held.js';
import { neutralizeCell } from '../../csv.js';
import { RunStateError } from '../../errors.js';
import { approveRun, cancelRun, discardRun } from '../../jobs/sync.js';
import { workerWait } from '../../jobs/worker-wait.js';
import { runStall } from '../../jobs/run-liveness.js';
import { rejectsCsv, rejectTotal, withKind } from '../../jobs/rejects.js';
import type { SyncRun } from '../../models/types.js';
import { requireRole } from '../auth.js';
import { ApiError, ErrorBody } from '../errors.js';
import { HeldItem, RejectItem, RunDetail, RunIdParams, runDetail } from '../schemas.js';
import type { ApiRoutes } from './types.js';

async function runOr404(ctx: AppContext, id: string): Promise<SyncRun> {
  const run = await ctx.store.getRun(id);
  if (!run) throw new ApiError(404, 'not_found', `no run ${id}`);
  return run;
}

/** The product's one CSV formula neutraliser (src/csv.ts), re-exported where it was. */
export { neutralizeCell };

/** `?kind=` of the rejects listing: `rejected`, `excluded`, or absent for both. */
const KindQuery = z
  .enum(['rejected', 'excluded'])
  .optional()
  .describe('only records refused (`rejected`) or left out by a rule (`excluded`); default both');

const HeldDecision = z.object({ run: RunDetail });

/** A page of a held re-key's proposed remap (`GET /runs/:id/remap`). */
const RemapPage = z.object({
  runId: z.string(),
  status: z.string(),
  /** New students the run kept back (they match no known student). */
  newStudents: z.number().int(),
  /** Of those, how many the remap pairs with an existing student. */
  proposed: z.number().int(),
  offset: z.number().int(),
  limit: z.number().int(),
  items: z.array(
    z.object({
      /** The existing student this new one replaces (absent: it would be created). */
      remapFrom: z.string().optional(),
      sourcedId: z.string(),
      uniqueId: z.string(),
      givenName: z.string(),
      familyName: z.string(),
      schoolSourcedIds: z.array(z.string()),
      grade: z.string().optional(),
    }),
  ),
});
/** `students|parents|links` in held-list routes → the store's held kind. */
const HELD_KIND = { students: 'student', parents: 'parent', links: 'link' } as const;

export const runRoutes: ApiRoutes = (app, { ctx }) => {
  app.get(
    '/runs/:id',
    {
      schema: {
        summary:
          'One run: status, counts per entity and action, timings, queue wait, held deactivations, a stalled worker',
        tags: ['runs'],
        params: RunIdParams,
        response: { 200: RunDetail, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      const run = await runOr404(ctx, request.params.id);
      requireRole(request, 'viewer', run.districtId);
      const [wait, stall] = await Promise.all([workerWait(ctx, run), runStall(ctx, run)]);
      return {
        ...runDetail(run),
        ...(wait ? { waitingForWorkerSince: wait.since } : {}),
        ...(stall ? { stalled: stall } : {}),
      };
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

  app.get(
    '/runs/:id/remap',
    {
      schema: {
        summary:
          'The remap a run held as a probable re-key proposes (old sourcedId → new), applied on approval',
        tags: ['runs'],
        params: RunIdParams,
        querystring: z.object({
          /** `proposed`: the pairs only; `all`: every new student the run holds back. */
          students: z.enum(['proposed', 'all']).default('proposed'),
          offset: z.coerce.number().int().min(0).default(0),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
        response: { 200: RemapPage, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      const run = await runOr404(ctx, request.params.id);
      requireRole(request, 'viewer', run.districtId);
      const { offset, limit, students } = request.query;
      const [totals, rows] = await Promise.all([
        ctx.store.countDeferredStudents(run.id),
        ctx.store.listDeferredStudents(run.id, {
          onlyRemapped: students === 'proposed',
          offset,
          limit,
        }),
      ]);
      return {
        runId: run.id,
        status: run.status,
        newStudents: totals.students,
        proposed: totals.remapped,
        offset,
        limit,
        items: rows.map(r => ({
          ...(r.remapFrom === undefined ? {} : { remapFrom: r.remapFrom }),
          sourcedId: r.record.sourcedId,
          uniqueId: r.record.uniqueId,
          givenName: r.record.givenName,
          familyName: r.record.familyName,
          schoolSourcedIds: r.record.schoolSourcedIds,
          ...(r.record.grade === undefined ? {} : { grade: r.record.grade }),
        })),
      };
    },
  );
  for (const list of ['students', 'parents', 'links'] as const) {
    app.get(
      `/runs/:id/held/${list}`,
      {
        schema: {
          summary: `A page of the ${list} a needs-approval run holds for deactivation, with names and Unique IDs`,
          tags: ['runs'],
          params: RunIdParams,
          querystring: z.object({
            offset: z.coerce.number().int().min(0).default(0),
            limit: z.coerce.number().int().min(1).max(1000).default(100),
          }),
          response: {
            200: z.object({
              runId: z.string(),
              status: z.string(),
              kind: z.string(),
              total: z.number().int(),
              offset: z.number().int(),
              limit: z.number().int(),
              items: z.array(HeldItem),
            }),
            403: ErrorBody,
            404: ErrorBody,
          },
        },
      },
      async request => {
        const run = await runOr404(ctx, request.params.id);
        requireRole(request, 'viewer', run.districtId);
        const kind = HELD_KIND[list];
        const { offset, limit } = request.query;
        const items = await heldItems(ctx, run, kind, offset, limit);
        const total = heldTotal(run, kind);
        return {
          runId: run.id,
          status: run.status,
          kind: list,
          total,
          offset,
          limit,
          items,
        };
      },
    );

    app.get(
      `/runs/:id/held/${list}.csv`,
      {
        schema: {
          summary: `All the ${list} a needs-approval run holds, as CSV`,
          tags: ['runs'],
          params: RunIdParams,
          produces: ['text/csv'],
        },
      },
      async (request, reply) => {
        const run = await runOr404(ctx, request.params.id);
        requireRole(request, 'viewer', run.districtId);
        const kind = HELD_KIND[list];
        const csv = heldCsv(ctx, run, kind, err =>
          request.log.error({ err: String(err) }, 'reading held records failed'),
        );
        return reply
          .type('text/csv; charset=utf-8')
          .header('content-disposition', `attachment; filename="held-${list}-${run.id}.csv"`)
          .send(csv);
      },
    );
  }

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
        request.log.info(
          { runId: run.id, districtId: run.districtId, decision },
          'held run decided',
        );
        return { run: runDetail(done) };
      },
    );
  }

  app.post(
    '/runs/:id/cancel',
    {
      schema: {
        summary:
          'Cancel a queued or running run (admin): a queued run leaves the queue, a running one stops at the next chunk; nothing is deactivated, what it wrote stays',
        tags: ['runs'],
        params: RunIdParams,
        response: { 200: HeldDecision, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
    },
    async request => {
      const run = await runOr404(ctx, request.params.id);
      requireRole(request, 'admin', run.districtId);
      if (run.status !== 'queued' && run.status !== 'running')
        throw new ApiError(
          409,
          'run_not_active',
          `run ${run.id} is ${run.status}; only queued or running runs can be cancelled`,
        );
      const actor = `api:${request.principal?.name ?? 'unknown'}`;
      let done: SyncRun;
      try {
        done = await cancelRun(ctx, run.id, actor);
      } catch (err) {
        if (err instanceof RunStateError) throw new ApiError(409, 'run_not_active', err.message);
        throw err;
      }
      request.log.info({ runId: run.id, districtId: run.districtId }, 'run cancelled');
      return { run: runDetail(done) };
    },
  );
};
