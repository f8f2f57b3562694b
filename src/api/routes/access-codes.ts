/**
 * Parent Access Code routes (issue 5) over the service functions in src/access-codes/
 * (the CLI `codes …` calls the same functions). Details: docs/access-codes.md.
 *
 * Admin (district-scoped tokens; codes are credentials, so anything that shows or changes
 * them needs `admin`):
 *   GET    /districts/:id/access-codes/settings               viewer
 *   PATCH  /districts/:id/access-codes/settings               admin  (null clears an override)
 *   POST   /districts/:id/access-codes/issue                  admin
 *   POST   /districts/:id/access-codes/resets                 admin  (one student / list / all)
 *   GET    /districts/:id/access-codes/resets                 viewer (who, when, how many)
 *   GET    /districts/:id/access-codes.csv                    admin  (download all, streamed)
 *   GET    /districts/:id/sections                            viewer
 *   GET    /districts/:id/sections/:sectionId/access-codes.csv admin (one section, streamed)
 *   GET    /districts/:id/students/:uniqueId/access-codes     admin
 * Redemption (called by the learning platform's backend with an admin token; `client` is
 * the end user's address or id as that backend sees it — the per-client rate-limit subject,
 * namespaced by token — else the caller's IP):
 *   POST   /access-codes/register                              admin (codes of the token's districts)
 *   POST   /districts/:id/parents/:parentId/children           admin (Add Child)
 *
 * Every failure about a code is 400 `invalid_access_code` with one fixed message — also for
 * a code of a district outside the token's scope (no 403 that would reveal the code exists);
 * throttled attempts are 429 `too_many_attempts` with `Retry-After`.
 */
import { z } from 'zod';
import {
  AccessCodeServiceError,
  InvalidInputError,
  TooManyAttemptsError,
} from '../../access-codes/errors.js';
import {
  exportDistrictCodes,
  exportSectionCodes,
  listSections,
} from '../../access-codes/export.js';
import {
  addChildWithAccessCode,
  getAccessCodeSettings,
  issueAccessCodes,
  listAccessCodeResets,
  registerWithAccessCode,
  resetAccessCodes,
  studentAccessCodes,
  updateAccessCodeSettings,
  type RedeemOptions,
  type SettingsView,
} from '../../access-codes/service.js';
import type { AppContext } from '../../app.js';
import { DEFAULT_LIMITS } from '../../access-codes/rate-limit.js';
import { processMetrics } from '../../workers/metrics.js';
import { canSeeDistrict, requireRole, type Principal } from '../auth.js';
import { ApiError, ErrorBody, apiErrorHandler } from '../errors.js';
import { DistrictIdParams } from '../schemas.js';
import type { ApiRoutes } from './types.js';

/** The service's errors as API errors (same status and code; `Retry-After` on 429). */
export function accessCodeApiError(err: unknown): unknown {
  if (!(err instanceof AccessCodeServiceError)) return err;
  const headers: Record<string, string> =
    err instanceof TooManyAttemptsError ? { 'retry-after': String(err.retryAfterSeconds) } : {};
  if (err instanceof InvalidInputError)
    return new ApiError(
      400,
      'invalid_request',
      'invalid request',
      err.problems.map(p => {
        const i = p.indexOf(': ');
        return i > 0 ? { path: p.slice(0, i), message: p.slice(i + 2) } : { path: '', message: p };
      }),
    );
  return new ApiError(err.status, err.code, err.message, undefined, headers);
}

const actorOf = (p: Principal) => `api:${p.name}`;
/** Rate-limit subject: the end user as the calling backend names them, per token. */
const clientOf = (p: Principal, client: string | undefined, ip: string) =>
  `${p.name}|${client ?? ip}`;

/**
 * The failure budgets only the server knows (the token and its districts), and the alert
 * metric counting refusals per budget.
 */
const budgetsOf = (
  ctx: AppContext,
  p: Principal,
): Pick<RedeemOptions, 'caller' | 'onBudgetSpent' | 'limits'> => ({
  caller: { token: p.name, districts: p.districts },
  limits: {
    token: {
      limit: ctx.env.REDEEM_TOKEN_FAILURES,
      windowSeconds: DEFAULT_LIMITS.token.windowSeconds,
    },
    district: {
      limit: ctx.env.REDEEM_DISTRICT_FAILURES,
      windowSeconds: DEFAULT_LIMITS.district.windowSeconds,
    },
    global: {
      limit: ctx.env.REDEEM_GLOBAL_FAILURES,
      windowSeconds: DEFAULT_LIMITS.global.windowSeconds,
    },
  },
  onBudgetSpent: budget => processMetrics(ctx).redemptionBudgetTripped.inc({ budget }),
});

const Settings = z
  .object({ enabled: z.boolean(), defaultRole: z.string(), issueTo: z.enum(['unlinked', 'all']) })
  .meta({ id: 'AccessCodeSettings' });
const SettingsResponse = z.object({
  districtId: z.string(),
  effective: Settings.describe(
    'what applies: the override, else the district file, else the default',
  ),
  file: Settings.describe('from the district file'),
  override: z
    .object({
      enabled: z.boolean().optional(),
      defaultRole: z.string().optional(),
      issueTo: z.enum(['unlinked', 'all']).optional(),
      updatedAt: z.string(),
      updatedBy: z.string(),
    })
    .optional(),
});
const settingsBody = (v: SettingsView) => ({
  districtId: v.districtId,
  effective: v.effective,
  file: v.file,
  ...(v.override ? { override: v.override } : {}),
});
const SettingsPatch = z.strictObject({
  enabled: z.boolean().nullable().optional(),
  defaultRole: z.string().trim().min(1).max(100).nullable().optional(),
  issueTo: z.enum(['unlinked', 'all']).nullable().optional(),
});

const ResetBody = z
  .strictObject({
    uniqueIds: z.array(z.string().min(1)).min(1).optional().describe('students by Unique ID'),
    studentSourcedIds: z.array(z.string().min(1)).min(1).optional(),
    all: z.literal(true).optional().describe('every student of the district holding a code'),
  })
  .describe('exactly one of uniqueIds, studentSourcedIds, all');
const ResetRecord = z.object({
  id: z.string(),
  districtId: z.string(),
  actor: z.string(),
  at: z.string(),
  scope: z.enum(['student', 'list', 'district']),
  requested: z.number().int(),
  revoked: z.number().int(),
  issued: z.number().int(),
});
const ResetResponse = ResetRecord.extend({
  notFound: z.array(z.string()),
  codes: z.array(z.object({ studentSourcedId: z.string(), code: z.string() })),
});

const Redeemed = z.object({
  districtId: z.string(),
  parentId: z.string(),
  studentSourcedId: z.string(),
  created: z.boolean(),
  linked: z.boolean().describe('false: the parent was already linked to this student'),
});
const Client = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .optional()
  .describe("the end user's IP or id, for rate limiting (default: the caller's IP)");

const errors = { 400: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };
/** CSV routes: the 200 body is a byte stream (sent as is, never serialized). */
const CSV_RESPONSES = {
  200: z.unknown().describe('text/csv; charset=utf-8, with a UTF-8 byte-order mark'),
  ...errors,
};

export const accessCodeRoutes: ApiRoutes = (app, { ctx }) => {
  app.setErrorHandler((err, request, reply) =>
    apiErrorHandler(accessCodeApiError(err), request, reply),
  );
  const tags = ['access codes'];
  const capabilities = (id: string) => {
    const d = ctx.districts.get(id);
    if (!d) throw new ApiError(404, 'not_found', `no district ${id}`);
    return ctx.connectorFor(d).capabilities;
  };

  app.get(
    '/districts/:id/access-codes/settings',
    {
      schema: {
        summary: 'Access-code settings: effective, from the district file, and the override',
        tags,
        params: DistrictIdParams,
        response: { 200: SettingsResponse, ...errors },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      return settingsBody(await getAccessCodeSettings(ctx, { districtId: request.params.id }));
    },
  );

  app.patch(
    '/districts/:id/access-codes/settings',
    {
      schema: {
        summary: 'Override settings (admin); `null` removes an override',
        tags,
        params: DistrictIdParams,
        body: SettingsPatch,
        response: { 200: SettingsResponse, ...errors },
      },
    },
    async request => {
      const p = requireRole(request, 'admin', request.params.id);
      const v = await updateAccessCodeSettings(ctx, {
        districtId: request.params.id,
        actor: actorOf(p),
        ...request.body,
      });
      return settingsBody(v);
    },
  );

  app.post(
    '/districts/:id/access-codes/issue',
    {
      schema: {
        summary: 'Issue codes now to the students who need one (as a sync would)',
        tags,
        params: DistrictIdParams,
        response: {
          200: z.object({ districtId: z.string(), issued: z.number(), active: z.number() }),
          ...errors,
        },
      },
    },
    async request => {
      const p = requireRole(request, 'admin', request.params.id);
      const caps = capabilities(request.params.id);
      return issueAccessCodes(ctx, { districtId: request.params.id, actor: actorOf(p) }, caps);
    },
  );

  app.post(
    '/districts/:id/access-codes/resets',
    {
      schema: {
        summary: 'Reset the codes of one student, a list, or the whole district (recorded)',
        description:
          'The old codes stop working at once; links already made with them stay. New codes are issued to active students.',
        tags,
        params: DistrictIdParams,
        body: ResetBody,
        response: { 200: ResetResponse, ...errors },
      },
    },
    async request => {
      const p = requireRole(request, 'admin', request.params.id);
      return resetAccessCodes(ctx, {
        districtId: request.params.id,
        actor: actorOf(p),
        ...request.body,
      });
    },
  );

  app.get(
    '/districts/:id/access-codes/resets',
    {
      schema: {
        summary: 'Recorded resets (who, when, how many), newest first',
        tags,
        params: DistrictIdParams,
        querystring: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(50) }),
        response: { 200: z.object({ items: z.array(ResetRecord) }), ...errors },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      const items = await listAccessCodeResets(ctx, {
        districtId: request.params.id,
        limit: request.query.limit,
      });
      return { items };
    },
  );

  app.get(
    '/districts/:id/access-codes.csv',
    {
      schema: {
        summary: 'Download all: every active student with their code (CSV, UTF-8 with BOM)',
        tags,
        params: DistrictIdParams,
        produces: ['text/csv'],
        response: CSV_RESPONSES,
      },
    },
    async (request, reply) => {
      requireRole(request, 'admin', request.params.id);
      const dl = await exportDistrictCodes(ctx, { districtId: request.params.id });
      return reply
        .type(dl.contentType)
        .header('content-disposition', `attachment; filename="${dl.filename}"`)
        .headers(dl.note ? { 'x-access-codes-note': dl.note } : {})
        .send(dl.stream);
    },
  );

  app.get(
    '/districts/:id/sections',
    {
      schema: {
        summary: 'Course sections of a district, with active student counts',
        tags,
        params: DistrictIdParams,
        response: {
          200: z.object({
            items: z.array(
              z.object({
                sourcedId: z.string(),
                title: z.string(),
                schoolSourcedId: z.string(),
                students: z.number().int(),
              }),
            ),
          }),
          ...errors,
        },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      return { items: await listSections(ctx, { districtId: request.params.id }) };
    },
  );

  app.get(
    '/districts/:id/sections/:sectionId/access-codes.csv',
    {
      schema: {
        summary: "One course section's students with their codes (CSV, UTF-8 with BOM)",
        tags,
        params: DistrictIdParams.extend({ sectionId: z.string().min(1).max(200) }),
        produces: ['text/csv'],
        response: CSV_RESPONSES,
      },
    },
    async (request, reply) => {
      requireRole(request, 'admin', request.params.id);
      const dl = await exportSectionCodes(ctx, {
        districtId: request.params.id,
        sectionSourcedId: request.params.sectionId,
      });
      return reply
        .type(dl.contentType)
        .header('content-disposition', `attachment; filename="${dl.filename}"`)
        .headers(dl.note ? { 'x-access-codes-note': dl.note } : {})
        .send(dl.stream);
    },
  );

  app.get(
    '/districts/:id/students/:uniqueId/access-codes',
    {
      schema: {
        summary: "A student's codes (active and revoked), by Unique ID",
        tags,
        params: DistrictIdParams.extend({ uniqueId: z.string().min(1).max(200) }),
        response: {
          200: z.object({
            studentSourcedId: z.string(),
            codes: z.array(
              z.object({
                formatted: z.string(),
                status: z.enum(['active', 'revoked']),
                createdAt: z.string(),
                revokedAt: z.string().optional(),
                resetId: z.string().optional(),
              }),
            ),
          }),
          ...errors,
        },
      },
    },
    async request => {
      requireRole(request, 'admin', request.params.id);
      return studentAccessCodes(ctx, {
        districtId: request.params.id,
        uniqueId: request.params.uniqueId,
      });
    },
  );

  app.post(
    '/access-codes/register',
    {
      schema: {
        summary: 'Register a new parent with a code (platform backend, admin token)',
        description:
          "Creates a parent account (the district's default role) linked to the code's student. Any failure about the code is the same 400 `invalid_access_code`; too many attempts 429 with `Retry-After`; an email/username that already has an account 409 `account_exists` (sign in, then Add Child). The answer is not proof of identity.",
        tags,
        body: z.strictObject({
          code: z.string().max(200),
          givenName: z.string().max(100),
          familyName: z.string().max(100),
          email: z.string().max(254).optional(),
          username: z.string().max(64).optional(),
          client: Client,
        }),
        response: { 200: Redeemed, 429: ErrorBody, ...errors },
      },
    },
    async request => {
      const p = requireRole(request, 'admin');
      const { client, ...form } = request.body;
      return registerWithAccessCode(
        ctx,
        { ...form, client: clientOf(p, client, request.ip) },
        { allowDistrict: d => canSeeDistrict(p, d), ...budgetsOf(ctx, p) },
      );
    },
  );

  app.post(
    '/districts/:id/parents/:parentId/children',
    {
      schema: {
        summary: 'Add Child: link an existing parent account to the student of a code',
        tags,
        params: DistrictIdParams.extend({ parentId: z.string().min(1).max(200) }),
        body: z.strictObject({ code: z.string().max(200), client: Client }),
        response: { 200: Redeemed, 429: ErrorBody, ...errors },
      },
    },
    async request => {
      const p = requireRole(request, 'admin', request.params.id);
      return addChildWithAccessCode(
        ctx,
        {
          districtId: request.params.id,
          parentId: request.params.parentId,
          code: request.body.code,
          client: clientOf(p, request.body.client, request.ip),
        },
        budgetsOf(ctx, p),
      );
    },
  );
};
