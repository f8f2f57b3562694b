/**
 * Admin imports over HTTP (src/imports/service.ts): upload a CSV/XLSX file as the raw request
 * body to preview a parent or association import, read the preview and its row issues
 * (JSON pages or the CSV report), confirm it.
 *
 * Upload: `POST /districts/:id/imports/{parents|associations}/preview?fileName=…`
 * with the file's bytes as the body and its type as `Content-Type` (`text/csv`,
 * `text/plain`, `text/tab-separated-values`, `application/octet-stream`, the XLSX type, or
 * `application/vnd.ms-excel`, which is then refused with a save-as message when it is a
 * legacy .xls). Options are query parameters (`true`/`false` switches; `columns` and
 * `schoolValues` and `only` as JSON objects; `headerRow` a row number). Uploads up to `IMPORT_BODY_LIMIT` bytes.
 *
 * Inspect: `POST /districts/:id/imports/{parents|associations}/inspect?fileName=…` (same body;
 * options `sheet`, `headerRow`, `hasHeaders`, `columns`, `roleFromFile`, `schoolFromFile`,
 * `rows`) → the header row, the column each field would be read from (or `mappingError`) and
 * the first rows, for a column-mapping screen (src/imports/inspect.ts). Stores nothing.
 *
 * Confirm answers 200 with `status` `applied`, `already-applied`, or `changed` (nothing was
 * applied; the body carries the new preview to confirm instead).
 */
import { z } from 'zod';
import type { AppContext } from '../../app.js';
import { StoreConflictError } from '../../errors.js';
import { ImportFileError, ImportPreviewError } from '../../imports/errors.js';
import { DEFAULT_MAX_IMPORT_BYTES } from '../../imports/read.js';
import {
  ImportOptionsError,
  confirmImport,
  getImportPreview,
  importReportCsv,
  listImportIssues,
} from '../../imports/service.js';
import { inspectImportFile, MAX_INSPECT_ROWS } from '../../imports/inspect.js';
import { listPreviewJobs, runPreview } from '../../imports/preview-runner.js';
import { requireRole } from '../auth.js';
import { ApiError, ErrorBody } from '../errors.js';
import type { ApiRoutes } from './types.js';

/** Largest upload (bytes). */
export const IMPORT_BODY_LIMIT = DEFAULT_MAX_IMPORT_BYTES;

/** Content types accepted as an uploaded import file. */
export const IMPORT_CONTENT_TYPES = [
  'text/csv',
  'text/plain',
  'text/tab-separated-values',
  'application/octet-stream',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.ms-excel',
];

const DistrictParams = z.object({ id: z.string().min(1) });
const PreviewParams = z.object({ id: z.string().min(1), previewId: z.string().min(1) });
const Switch = z.enum(['true', 'false']).optional();
const JsonText = z.string().max(100_000).optional().describe('a JSON object');

const CommonQuery = {
  fileName: z.string().trim().min(1).max(255).describe('name of the uploaded file (for messages)'),
  sheet: z.string().trim().min(1).max(200).optional().describe('XLSX sheet (default: the first)'),
  columns: JsonText.describe('JSON: field → header text or 1-based column number'),
  expiresInMinutes: z.coerce.number().int().min(1).max(10080).optional(),
  headerRow: z.coerce
    .number()
    .int()
    .min(1)
    .optional()
    .describe('1-based row of the header (default: found among the top rows)'),
  only: JsonText.describe(
    'JSON: column (header text or number) → values to keep, e.g. {"relationshipRole":["parent","guardian"]}; other rows are left out and listed',
  ),
};
const ParentQuery = z.object({
  ...CommonQuery,
  role: z.string().trim().min(1).optional(),
  roleFromFile: Switch,
  school: z.string().trim().min(1).optional(),
  schoolFromFile: Switch,
  schoolValues: JsonText.describe('JSON: School value in the file → school sourcedId'),
  dontUpdateExisting: Switch,
  dontAllowDuplicates: Switch,
  sendActivationEmail: Switch,
});
const AssociationQuery = z.object({
  ...CommonQuery,
  hasHeaders: Switch.describe('the first row contains headers (default true)'),
  clearExisting: Switch.describe("replace the listed students' links by the file's"),
});

const InspectParams = z.object({
  id: z.string().min(1),
  kind: z.enum(['parents', 'associations']),
});
const InspectQuery = z.object({
  fileName: CommonQuery.fileName,
  sheet: CommonQuery.sheet,
  columns: CommonQuery.columns,
  headerRow: CommonQuery.headerRow,
  hasHeaders: Switch.describe('associations: the first row contains headers (default true)'),
  roleFromFile: Switch.describe('parents: the Role column is required'),
  schoolFromFile: Switch.describe('parents: the School column is required'),
  rows: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_INSPECT_ROWS)
    .default(10)
    .describe('data rows to return'),
});

const FileInfoBody = z.object({
  name: z.string(),
  bytes: z.number().int(),
  sha256: z.string(),
  format: z.enum(['csv', 'xlsx']),
  encoding: z.string().optional(),
  delimiter: z.string().optional(),
  sheet: z.string().optional(),
  headerRow: z.number().int().optional(),
  rowsAboveHeader: z.number().int().optional(),
});

const InspectBody = z
  .object({
    kind: z.enum(['parents', 'associations']),
    file: FileInfoBody,
    headerRow: z.number().int().optional().describe('1-based; absent without a header row'),
    columns: z.array(
      z.object({ column: z.number().int(), letter: z.string(), header: z.string() }),
    ),
    fields: z.array(
      z.object({
        key: z.string(),
        label: z.string(),
        required: z.boolean(),
        column: z.number().int().optional().describe('1-based column the importer would read'),
        header: z.string().optional(),
      }),
    ),
    mappingError: z
      .string()
      .optional()
      .describe('why the columns cannot be decided (map them explicitly)'),
    rows: z.array(z.object({ row: z.number().int(), cells: z.array(z.string()) })),
  })
  .meta({ id: 'ImportInspection' });

const Issue = z.object({
  file: z.string(),
  row: z.number().int(),
  column: z.string(),
  value: z.string(),
  reason: z.string(),
  severity: z.enum(['error', 'warning']),
});

const PreviewBody = z
  .object({
    previewId: z.string(),
    districtId: z.string(),
    kind: z.enum(['parents', 'associations']),
    status: z.enum(['previewed', 'applying', 'applied', 'superseded']),
    createdAt: z.string(),
    expiresAt: z.string(),
    appliedAt: z.string().optional(),
    supersededBy: z.string().optional(),
    supersedes: z.string().optional(),
    file: FileInfoBody,
    options: z.record(z.string(), z.unknown()),
    columns: z.record(z.string(), z.string()),
    rows: z.object({
      data: z.number().int(),
      used: z.number().int(),
      withErrors: z.number().int(),
      withWarnings: z.number().int(),
    }),
    counts: z.record(z.string(), z.number()),
    samples: z.record(z.string(), z.array(z.record(z.string(), z.unknown()))),
    issueCount: z.object({ errors: z.number().int(), warnings: z.number().int() }),
    issues: z.array(Issue),
    fingerprints: z.object({ input: z.string(), state: z.string(), plan: z.string() }),
    timings: z.record(z.string(), z.number()).optional(),
  })
  .meta({ id: 'ImportPreview' });

const ConfirmBody = z.object({
  status: z.enum(['applied', 'already-applied', 'changed']),
  previewId: z.string(),
  kind: z.enum(['parents', 'associations']).optional(),
  appliedAt: z.string().optional(),
  counts: z.record(z.string(), z.number()).optional(),
  writes: z.number().int().optional(),
  activationEmails: z
    .object({
      requested: z.number().int(),
      noEmail: z.array(z.string()),
    })
    .describe(
      'Activation emails this confirm asked for: the worker sends them from the change log (new accounts with an email: requested; without: noEmail)',
    )
    .optional(),
  result: z.record(z.string(), z.unknown()).optional(),
  message: z.string().optional(),
  preview: PreviewBody.optional(),
});

function districtOr404(ctx: AppContext, id: string): void {
  if (!ctx.districts.has(id)) throw new ApiError(404, 'not_found', `no district ${id}`);
}

function json(name: string, text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, 'invalid_request', `query parameter ${name} is not valid JSON`);
  }
}

const bool = (v: 'true' | 'false' | undefined) => (v === undefined ? undefined : v === 'true');

/** Drop undefined values (so the service's defaults apply). */
function defined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** Map import errors to API errors (others pass through to the generic handler). */
function toApi(err: unknown): unknown {
  if (err instanceof ImportFileError) return new ApiError(422, 'invalid_file', err.message);
  if (err instanceof ImportOptionsError)
    return new ApiError(
      400,
      'invalid_request',
      err.message.split('\n')[0] ?? err.message,
      err.problems.map(p => ({ path: 'query', message: p })),
    );
  if (err instanceof ImportPreviewError) {
    const status = { 'not-found': 404, expired: 410 }[err.problem as string] ?? 409;
    return new ApiError(status, `preview_${err.problem.replace(/-/g, '_')}`, err.message);
  }
  if (err instanceof StoreConflictError)
    return new ApiError(
      409,
      'conflict',
      'the import conflicts with data written meanwhile; confirm again',
    );
  return err;
}

async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toApi(err);
  }
}

function bodyBytes(body: unknown): Buffer {
  if (!Buffer.isBuffer(body) || body.length === 0)
    throw new ApiError(400, 'bad_request', 'the request body must be the file (non-empty)');
  return body;
}

export const importRoutes: ApiRoutes = (app, { ctx }) => {
  app.addContentTypeParser(
    IMPORT_CONTENT_TYPES,
    { parseAs: 'buffer', bodyLimit: IMPORT_BODY_LIMIT },
    (_req, body, done) => done(null, body),
  );

  app.post(
    '/districts/:id/imports/parents/preview',
    {
      bodyLimit: IMPORT_BODY_LIMIT,
      schema: {
        summary: 'Preview a parent account import (the file is the request body; admin)',
        tags: ['imports'],
        params: DistrictParams,
        querystring: ParentQuery,
        response: {
          200: PreviewBody,
          400: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
          422: ErrorBody,
        },
      },
    },
    async request => {
      const { id: districtId } = request.params;
      requireRole(request, 'admin', districtId);
      districtOr404(ctx, districtId);
      const q = request.query;
      const options = defined({
        sheet: q.sheet,
        columns: json('columns', q.columns),
        headerRow: q.headerRow,
        only: json('only', q.only),
        role: q.role,
        roleFromFile: bool(q.roleFromFile),
        school: q.school,
        schoolFromFile: bool(q.schoolFromFile),
        schoolValues: json('schoolValues', q.schoolValues),
        dontUpdateExisting: bool(q.dontUpdateExisting),
        dontAllowDuplicates: bool(q.dontAllowDuplicates),
        sendActivationEmail: bool(q.sendActivationEmail),
      });
      // Parsed and planned in a worker thread: the API keeps answering meanwhile.
      const preview = await mapped(() =>
        runPreview(ctx, {
          kind: 'parents',
          input: {
            districtId,
            file: { name: q.fileName, data: bodyBytes(request.body) },
            options,
            ...(q.expiresInMinutes ? { expiresInMinutes: q.expiresInMinutes } : {}),
          },
        }),
      );
      request.log.info(
        { districtId, previewId: preview.previewId, counts: preview.counts },
        'import previewed',
      );
      return preview;
    },
  );

  app.post(
    '/districts/:id/imports/associations/preview',
    {
      bodyLimit: IMPORT_BODY_LIMIT,
      schema: {
        summary:
          'Preview a parent↔student association import (the file is the request body; admin)',
        tags: ['imports'],
        params: DistrictParams,
        querystring: AssociationQuery,
        response: {
          200: PreviewBody,
          400: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
          422: ErrorBody,
        },
      },
    },
    async request => {
      const { id: districtId } = request.params;
      requireRole(request, 'admin', districtId);
      districtOr404(ctx, districtId);
      const q = request.query;
      const options = defined({
        sheet: q.sheet,
        columns: json('columns', q.columns),
        headerRow: q.headerRow,
        only: json('only', q.only),
        hasHeaders: bool(q.hasHeaders),
        clearExisting: bool(q.clearExisting),
      });
      const preview = await mapped(() =>
        runPreview(ctx, {
          kind: 'associations',
          input: {
            districtId,
            file: { name: q.fileName, data: bodyBytes(request.body) },
            options,
            ...(q.expiresInMinutes ? { expiresInMinutes: q.expiresInMinutes } : {}),
          },
        }),
      );
      request.log.info(
        { districtId, previewId: preview.previewId, counts: preview.counts },
        'import previewed',
      );
      return preview;
    },
  );

  app.post(
    '/districts/:id/imports/:kind/inspect',
    {
      bodyLimit: IMPORT_BODY_LIMIT,
      schema: {
        summary:
          'Read the top of an import file: the header row, the column each field would be read from, the first rows (the file is the request body; admin; stores nothing)',
        tags: ['imports'],
        params: InspectParams,
        querystring: InspectQuery,
        response: {
          200: InspectBody,
          400: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
          422: ErrorBody,
        },
      },
    },
    async request => {
      const { id: districtId, kind } = request.params;
      requireRole(request, 'admin', districtId);
      districtOr404(ctx, districtId);
      const q = request.query;
      const columns = json('columns', q.columns);
      return mapped(() =>
        inspectImportFile({
          kind,
          file: { name: q.fileName, data: bodyBytes(request.body) },
          rows: q.rows,
          ...(defined({
            sheet: q.sheet,
            headerRow: q.headerRow,
            columns,
            hasHeaders: bool(q.hasHeaders),
            roleFromFile: bool(q.roleFromFile),
            schoolFromFile: bool(q.schoolFromFile),
          }) as Partial<Parameters<typeof inspectImportFile>[0]>),
        }),
      );
    },
  );

  app.get(
    '/districts/:id/imports/preview-jobs',
    {
      schema: {
        summary:
          'Import previews being computed (or finished in the last 10 minutes) by this API process, with rows read so far',
        tags: ['imports'],
        params: DistrictParams,
        response: {
          200: z.object({
            items: z.array(
              z.object({
                id: z.string(),
                districtId: z.string(),
                kind: z.enum(['parents', 'associations']),
                fileName: z.string(),
                bytes: z.number().int(),
                status: z.enum(['waiting', 'running', 'done', 'failed']),
                rowsRead: z.number().int(),
                startedAt: z.string(),
                finishedAt: z.string().optional(),
                previewId: z.string().optional(),
                error: z.string().optional(),
              }),
            ),
          }),
          403: ErrorBody,
          404: ErrorBody,
        },
      },
    },
    request => {
      const { id: districtId } = request.params;
      requireRole(request, 'viewer', districtId);
      districtOr404(ctx, districtId);
      return { items: listPreviewJobs(districtId) };
    },
  );

  app.get(
    '/districts/:id/imports/:previewId',
    {
      schema: {
        summary: 'An import preview: counts, first rows of each action, first row issues',
        tags: ['imports'],
        params: PreviewParams,
        response: { 200: PreviewBody, 403: ErrorBody, 404: ErrorBody },
      },
    },
    async request => {
      const { id: districtId, previewId } = request.params;
      requireRole(request, 'viewer', districtId);
      return mapped(() => getImportPreview(ctx, { districtId, previewId }));
    },
  );

  app.get(
    '/districts/:id/imports/:previewId/issues',
    {
      schema: {
        summary: "A page of the preview's row issues (file, row, column, value, reason)",
        tags: ['imports'],
        params: PreviewParams,
        querystring: z.object({
          offset: z.coerce.number().int().min(0).default(0),
          limit: z.coerce.number().int().min(1).max(1000).default(100),
        }),
        response: {
          200: z.object({
            total: z.number().int(),
            offset: z.number().int(),
            limit: z.number().int(),
            items: z.array(Issue),
          }),
          403: ErrorBody,
          404: ErrorBody,
        },
      },
    },
    async request => {
      const { id: districtId, previewId } = request.params;
      requireRole(request, 'viewer', districtId);
      return mapped(() => listImportIssues(ctx, { districtId, previewId, ...request.query }));
    },
  );

  app.get(
    '/districts/:id/imports/:previewId/report.csv',
    {
      schema: {
        summary: 'Every row issue of the preview as CSV (file,row,column,value,severity,reason)',
        tags: ['imports'],
        params: PreviewParams,
        produces: ['text/csv'],
      },
    },
    async (request, reply) => {
      const { id: districtId, previewId } = request.params;
      requireRole(request, 'viewer', districtId);
      const text = await mapped(() => importReportCsv(ctx, { districtId, previewId }));
      return reply
        .type('text/csv; charset=utf-8')
        .header('content-disposition', `attachment; filename="import-report-${previewId}.csv"`)
        .send(text);
    },
  );

  app.post(
    '/districts/:id/imports/:previewId/confirm',
    {
      schema: {
        summary:
          'Apply the preview exactly; `changed` when the data changed since (nothing applied; confirm the new preview)',
        tags: ['imports'],
        params: PreviewParams,
        response: {
          200: ConfirmBody,
          403: ErrorBody,
          404: ErrorBody,
          409: ErrorBody,
          410: ErrorBody,
        },
      },
    },
    async request => {
      const { id: districtId, previewId } = request.params;
      const principal = requireRole(request, 'admin', districtId);
      districtOr404(ctx, districtId);
      const r = await mapped(() =>
        confirmImport(ctx, { districtId, previewId }, { actor: `api:${principal.name}` }),
      );
      request.log.info({ districtId, previewId, status: r.status }, 'import confirm');
      return r;
    },
  );
};
