/**
 * The audit over HTTP (src/audit/service.ts), for district admins (viewer role; a token with
 * `districts` sees only those districts):
 *
 * - `GET /districts/:id/students/:student/guardians[?by=sourcedId|uniqueId]` — who is linked
 *   to the student (sourcedId or Unique ID) and why: every link, active first, with the
 *   parent, origin, `since`, the explaining change-log entry (cause, actor, run status) and a
 *   sentence; "no record: …" when the entry is missing.
 * - `GET /districts/:id/parents/:parent[?by=id|uniqueId|email&after=&limit=]` — the account
 *   (id, Unique ID or email), its children and a page of its history (`after` = the previous
 *   page's `nextAfter`).
 *
 * Errors: 400 `invalid_request`; 404 `not_found` (district), `student_not_found`,
 * `parent_not_found`; 409 `student_ambiguous`, `parent_ambiguous` (the message and `details`
 * name the candidates).
 */
import { z } from 'zod';
import {
  AuditError,
  MAX_HISTORY_LIMIT,
  DEFAULT_HISTORY_LIMIT,
  ParentRefKind,
  parentHistory,
  StudentRefKind,
  whyLinked,
  type AuditProblem,
} from '../../audit/service.js';
import { requireRole } from '../auth.js';
import { ApiError, ErrorBody } from '../errors.js';
import type { ApiRoutes } from './types.js';

const tags = ['audit'];

const Cause = z
  .object({
    kind: z
      .string()
      .describe('sync, approval, import, manual, redemption, code-issue, code-reset or system'),
    id: z
      .string()
      .optional()
      .describe("run id, import preview id, reset id or code ref (never the code's value)"),
    trigger: z
      .string()
      .optional()
      .describe(
        'sync: the run trigger; import: parents | associations; redemption: register | add-child',
      ),
  })
  .meta({ id: 'AuditCause' });

const Run = z
  .object({
    id: z.string(),
    status: z.string().describe('the run status now; `unknown` when the run is not recorded'),
    trigger: z.string().optional(),
    actor: z.string().optional(),
    createdAt: z.string().optional(),
    finishedAt: z.string().optional(),
  })
  .meta({ id: 'AuditRun' });

const EventFields = {
  seq: z.number().int().describe("the change-log entry's sequence number in the district"),
  at: z.string().describe('when the entry was written (ISO 8601)'),
  action: z.string().describe('create, update, match, reactivate or deactivate'),
  cause: Cause,
  actor: z.string().describe('schedule, api:<token name>, cli:<user>, guardian, system'),
  run: Run.optional().describe('run causes: the run and its status'),
  sentence: z.string(),
};
const Event = z.object(EventFields).meta({ id: 'AuditEvent' });

const LinkFields = {
  origin: z.string().describe('sis, import, manual or access-code'),
  status: z.string(),
  relationship: z.string().optional(),
  since: z
    .string()
    .nullable()
    .describe('when the entry that created or last reactivated the link was written'),
  how: Event.nullable().describe('that entry; null when there is no record of it'),
  until: z.string().nullable().optional().describe('inactive links: when it was removed'),
  ended: Event.nullable().optional().describe('inactive links: the entry that removed it'),
  explanation: z.string().describe('the answer in words ("no record: …" included)'),
};

const Parent = z
  .object({
    id: z.string(),
    uniqueId: z.string().optional(),
    givenName: z.string().optional(),
    familyName: z.string().optional(),
    name: z.string(),
    email: z.string().optional(),
    status: z.string().optional(),
    origin: z.string().optional(),
    missing: z.literal(true).optional().describe('the link names an account the store lacks'),
  })
  .meta({ id: 'AuditParent' });

const Student = z
  .object({
    sourcedId: z.string(),
    uniqueId: z.string().optional(),
    givenName: z.string().optional(),
    familyName: z.string().optional(),
    name: z.string(),
    grade: z.string().optional(),
    status: z.string().optional(),
    schoolSourcedIds: z.array(z.string()).optional(),
    missing: z.literal(true).optional(),
  })
  .meta({ id: 'AuditStudent' });

const StudentGuardians = z
  .object({
    districtId: z.string(),
    student: Student,
    counts: z.object({ active: z.number().int(), inactive: z.number().int() }),
    guardians: z.array(z.object({ parent: Parent, ...LinkFields })),
  })
  .meta({ id: 'StudentGuardians' });

const FieldValue = z.union([z.string(), z.array(z.string()), z.boolean(), z.null()]);
const Fields = z.record(z.string(), FieldValue);

const ParentHistoryBody = z
  .object({
    districtId: z.string(),
    account: z.object({
      id: z.string(),
      uniqueId: z.string().optional(),
      givenName: z.string(),
      familyName: z.string(),
      name: z.string(),
      email: z.string().optional(),
      phone: z.string().optional(),
      role: z.string(),
      sisRole: z.string().optional(),
      status: z.string(),
      origin: z.string(),
      sources: z.array(z.object({ connector: z.string(), sourcedId: z.string() })),
      lockedFields: z.array(z.string()),
      created: Event.nullable().describe('the entry that created (or reactivated) the account'),
      explanation: z.string(),
    }),
    counts: z.object({
      activeChildren: z.number().int(),
      inactiveChildren: z.number().int(),
    }),
    children: z.array(z.object({ student: Student, ...LinkFields })),
    history: z.object({
      afterSeq: z.number().int(),
      limit: z.number().int(),
      entries: z.array(
        z.object({
          ...EventFields,
          entity: z.enum(['parent', 'link']),
          studentSourcedId: z.string().optional(),
          origin: z.string().optional(),
          before: Fields.optional(),
          after: Fields.optional(),
        }),
      ),
      nextAfter: z.number().int().nullable().describe('`after` of the next page; null: last page'),
    }),
  })
  .meta({ id: 'ParentHistory' });

const STATUS: Record<AuditProblem, [number, string]> = {
  'invalid-request': [400, 'invalid_request'],
  'unknown-district': [404, 'not_found'],
  'unknown-student': [404, 'student_not_found'],
  'unknown-parent': [404, 'parent_not_found'],
  'ambiguous-student': [409, 'student_ambiguous'],
  'ambiguous-parent': [409, 'parent_ambiguous'],
};

async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof AuditError) {
      const [status, code] = STATUS[err.problem];
      const details = err.candidates.map(c => ({ path: 'candidates', message: c.label }));
      throw new ApiError(status, code, err.message, details.length ? details : undefined);
    }
    throw err;
  }
}

const errors = { 400: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody };

/** The audit routes: a student's guardians and why; a parent account's children and history. */
export const auditRoutes: ApiRoutes = (app, { ctx }) => {
  app.get(
    '/districts/:id/students/:student/guardians',
    {
      schema: {
        summary: 'who is linked to this student and why (every link, with its cause and actor)',
        tags,
        params: z.object({
          id: z.string().min(1),
          student: z.string().min(1).max(320).describe('sourcedId or Unique ID'),
        }),
        querystring: z.object({
          by: StudentRefKind.optional().describe('read `student` only as this kind of id'),
        }),
        response: { 200: StudentGuardians, ...errors },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      return mapped(() =>
        whyLinked(ctx, request.params.id, request.params.student, { by: request.query.by }),
      );
    },
  );

  app.get(
    '/districts/:id/parents/:parent',
    {
      schema: {
        summary: 'what happened to this parent account: fields, children, history',
        tags,
        params: z.object({
          id: z.string().min(1),
          parent: z.string().min(1).max(320).describe('account id, Unique ID or email'),
        }),
        querystring: z.object({
          by: ParentRefKind.optional().describe('read `parent` only as this kind of reference'),
          after: z.coerce
            .number()
            .int()
            .min(0)
            .default(0)
            .describe("history entries after this sequence number (the last page's nextAfter)"),
          limit: z.coerce
            .number()
            .int()
            .min(1)
            .max(MAX_HISTORY_LIMIT)
            .default(DEFAULT_HISTORY_LIMIT)
            .describe('history entries per page'),
        }),
        response: { 200: ParentHistoryBody, ...errors },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      const q = request.query;
      return mapped(() =>
        parentHistory(ctx, request.params.id, request.params.parent, {
          by: q.by,
          afterSeq: q.after,
          limit: q.limit,
        }),
      );
    },
  );
};
