/**
 * The change feed (pull API) and the webhook delivery state of a district:
 *
 * - `GET /districts/:id/changes?after=<cursor>&limit=<1..1000>` — change-log entries after the
 *   cursor, in sequence order, with `next` (the cursor to continue from), `hasMore` and
 *   `lastSeq` (src/jobs/change-feed.ts);
 * - `GET /districts/:id/changes/latest` — the last sequence number and a cursor at it
 *   ("start from now");
 * - `GET /districts/:id/webhook` — delivery state of the district's webhook
 *   (src/jobs/webhooks.ts).
 *
 * All need a viewer token that sees the district. Cursor problems are 400 `invalid_cursor`.
 */
import { z } from 'zod';
import type { AppContext } from '../../app.js';
import {
  ChangeCursorError,
  cursorSeqFor,
  encodeChangeCursor,
  readFeedPage,
} from '../../jobs/change-feed.js';
import { webhookStatus } from '../../jobs/webhooks.js';
import { changeLogRepository } from '../../models/changes/index.js';
import { requireRole } from '../auth.js';
import { ApiError, ErrorBody } from '../errors.js';
import { DistrictIdParams } from '../schemas.js';
import type { ApiRoutes } from './types.js';

/** Largest page of `GET /districts/:id/changes`. */
export const MAX_FEED_LIMIT = 1000;

const ChangeFieldValue = z.union([z.string(), z.array(z.string()), z.boolean(), z.null()]);
const ChangeFields = z
  .record(z.string(), ChangeFieldValue)
  .describe('field → value (strings, string lists, booleans, or null for a cleared field)');

/** One change-log entry as the feed and webhooks show it. */
export const ChangeFeedEntry = z
  .object({
    entity: z.string().describe('parent, link, student or code'),
    entityId: z
      .string()
      .describe(
        'parent: account id; student: sourcedId; code: its ref (never the code); link: <origin>:<parentId>:<studentSourcedId>',
      ),
    action: z.string().describe('create, update, match, reactivate or deactivate'),
    parentId: z.string().optional(),
    studentSourcedId: z.string().optional(),
    origin: z.string().optional().describe('links: sis, import, access-code or manual'),
    before: ChangeFields.optional().describe('previous values of the changed fields'),
    after: ChangeFields.optional().describe('new values (create: every field with a value)'),
    cause: z
      .object({
        kind: z
          .string()
          .describe('sync, approval, import, manual, redemption, code-issue, code-reset, system'),
        id: z.string().optional().describe('run id, import preview id, reset id or code ref'),
        trigger: z.string().optional(),
        notify: z.boolean().optional(),
      })
      .describe('why the change was made'),
    actor: z.string().describe('schedule, api:<token name>, cli:<user>, guardian, system'),
    at: z.string().describe('ISO time of the write'),
    seq: z.number().int().describe('per-district sequence number, increasing'),
  })
  .meta({ id: 'ChangeEntry' });

const FeedQuery = z.object({
  after: z
    .string()
    .max(200)
    .optional()
    .describe('cursor: the `next` of a previous page; omitted: from the first entry'),
  limit: z.coerce.number().int().min(1).max(MAX_FEED_LIMIT).default(100),
});

const FeedPageBody = z
  .object({
    districtId: z.string(),
    entries: z.array(ChangeFeedEntry),
    next: z.string().describe('cursor after the last entry (the request cursor when empty)'),
    hasMore: z.boolean().describe('more entries can be read now from `next`'),
    lastSeq: z.number().int().describe("the district's newest sequence number"),
  })
  .meta({ id: 'ChangeFeedPage' });

const LatestBody = z.object({
  districtId: z.string(),
  lastSeq: z.number().int(),
  cursor: z.string().describe('cursor at the newest entry: read from here to get only new ones'),
});

const WebhookStatusBody = z
  .object({
    districtId: z.string(),
    configured: z.boolean().describe('the district file has `webhooks`'),
    urlHost: z.string().nullable().describe('host of the receiver URL (no path, no secret)'),
    deliveredSeq: z.number().int().describe('last sequence number delivered with a 2xx'),
    lastSeq: z.number().int(),
    lag: z.number().int().describe('lastSeq − deliveredSeq (0 when no webhook is configured)'),
    consecutiveFailures: z.number().int(),
    lastError: z.string().nullable().describe('why the last failed attempt failed'),
    lastErrorAt: z.string().nullable(),
    lastAttemptAt: z.string().nullable(),
    lastDeliveredAt: z.string().nullable(),
    lastDelivery: z.string().nullable().describe('delivery id <district>:<firstSeq>-<lastSeq>'),
    nextAttemptAt: z.string().nullable().describe('when a failed delivery is retried'),
    job: z
      .object({ state: z.string(), attemptsMade: z.number().int(), attempts: z.number().int() })
      .nullable()
      .describe('the delivery job in the queue now (waiting, active, delayed), if any'),
  })
  .meta({ id: 'WebhookStatus' });

/** The district's config, or 404 `not_found` (call after the scope check). */
function districtOr404(ctx: AppContext, id: string): void {
  if (!ctx.districts.has(id)) throw new ApiError(404, 'not_found', `no district ${id}`);
}

function cursorError(err: unknown): never {
  if (err instanceof ChangeCursorError) throw new ApiError(400, 'invalid_cursor', err.message);
  throw err;
}

export const changeRoutes: ApiRoutes = (app, { ctx }) => {
  app.get(
    '/districts/:id/changes',
    {
      schema: {
        summary: "A page of the district's change feed (every account, link, student, code change)",
        description:
          'Entries after the `after` cursor in sequence order. Continue with `next` until `hasMore` is false; save `next` to resume later. Cursors are opaque and belong to one district.',
        tags: ['changes'],
        params: DistrictIdParams,
        querystring: FeedQuery,
        response: { 200: FeedPageBody, 400: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      const districtId = request.params.id;
      requireRole(request, 'viewer', districtId);
      districtOr404(ctx, districtId);
      const repo = await changeLogRepository(ctx.store);
      try {
        const after = cursorSeqFor(districtId, request.query.after);
        return await readFeedPage(repo, districtId, after, request.query.limit);
      } catch (err) {
        return cursorError(err);
      }
    },
  );

  app.get(
    '/districts/:id/changes/latest',
    {
      schema: {
        summary: "The district's newest sequence number and a cursor at it",
        tags: ['changes'],
        params: DistrictIdParams,
        response: { 200: LatestBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      const districtId = request.params.id;
      requireRole(request, 'viewer', districtId);
      districtOr404(ctx, districtId);
      const lastSeq = await (await changeLogRepository(ctx.store)).lastSeq(districtId);
      return { districtId, lastSeq, cursor: encodeChangeCursor(districtId, lastSeq) };
    },
  );

  app.get(
    '/districts/:id/webhook',
    {
      schema: {
        summary: "Delivery state of the district's change-feed webhook",
        tags: ['changes'],
        params: DistrictIdParams,
        response: { 200: WebhookStatusBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      const districtId = request.params.id;
      requireRole(request, 'viewer', districtId);
      districtOr404(ctx, districtId);
      const s = await webhookStatus(ctx, districtId);
      return {
        ...s,
        lastError: s.lastError ?? null,
        lastErrorAt: s.lastErrorAt ?? null,
        lastAttemptAt: s.lastAttemptAt ?? null,
        lastDeliveredAt: s.lastDeliveredAt ?? null,
        lastDelivery: s.lastDelivery ?? null,
        nextAttemptAt: s.nextAttemptAt ?? null,
      };
    },
  );
};
