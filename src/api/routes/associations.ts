/**
 * Manual associations over HTTP (src/imports/manual.ts): search students by name (viewer),
 * associate a parent account with a student and remove that association (admin).
 *
 * - `GET /districts/:id/students?q=&limit=` → `{ students: [...] }`
 * - `GET /districts/:id/parents?q=&offset=&limit=` → `{ total, offset, limit, items }`:
 *   parent accounts by exact account id, Unique ID or email, then by first/last-name prefix
 * - `POST /districts/:id/parents/:parentId/associations` `{ studentUniqueId }` (or
 *   `{ studentSourcedId }`) → 200 with `status` `created`/`reactivated`/`unchanged`
 * - `DELETE /districts/:id/parents/:parentId/associations/:studentUniqueId` → 200 with
 *   `status` `deactivated`/`already-inactive` (only the `manual` link; never deleted)
 *
 * Errors: 400 `invalid_request`; 404 `not_found` (district), `parent_not_found`,
 * `student_not_found`, `association_not_found`; 409 `parent_inactive`, `student_inactive`,
 * `student_ambiguous`, `not_manual` (the pair is linked only by sis/import/access-code links).
 */
import { z } from 'zod';
import {
  associate,
  ManualAssociationError,
  MAX_SEARCH_LIMIT,
  removeAssociation,
  searchParents,
  searchStudents,
  type ManualAssociationProblem,
} from '../../imports/manual.js';
import { requireRole } from '../auth.js';
import { ApiError } from '../errors.js';
import type { ApiRoutes } from './types.js';

const DistrictParams = z.object({ id: z.string().min(1) });
const ParentParams = z.object({ id: z.string().min(1), parentId: z.string().min(1) });
const RemoveParams = ParentParams.extend({ studentUniqueId: z.string().min(1) });

const StudentHit = z
  .object({
    sourcedId: z.string(),
    uniqueId: z.string(),
    givenName: z.string(),
    familyName: z.string(),
    grade: z.string().optional(),
    schoolSourcedIds: z.array(z.string()),
  })
  .meta({ id: 'StudentHit' });

const ParentHit = z
  .object({
    id: z.string(),
    uniqueId: z.string().optional(),
    givenName: z.string(),
    familyName: z.string(),
    email: z.string().optional(),
    role: z.string(),
    status: z.string(),
    origin: z.string(),
    matchedBy: z
      .enum(['id', 'uniqueId', 'email', 'name'])
      .describe('exact matches (id, uniqueId, email) come first, then name-prefix matches'),
  })
  .meta({ id: 'ParentHit' });

const AssociationBody = z
  .object({
    status: z.enum(['created', 'reactivated', 'unchanged', 'deactivated', 'already-inactive']),
    parentId: z.string(),
    studentSourcedId: z.string(),
    studentUniqueId: z.string(),
    otherActiveOrigins: z.array(z.string()),
  })
  .meta({ id: 'ManualAssociation' });

const STATUS: Record<ManualAssociationProblem, [number, string]> = {
  'invalid-request': [400, 'invalid_request'],
  'unknown-district': [404, 'not_found'],
  'unknown-parent': [404, 'parent_not_found'],
  'unknown-student': [404, 'student_not_found'],
  'no-association': [404, 'association_not_found'],
  'inactive-parent': [409, 'parent_inactive'],
  'inactive-student': [409, 'student_inactive'],
  'ambiguous-student': [409, 'student_ambiguous'],
  'not-manual': [409, 'not_manual'],
};

async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ManualAssociationError) {
      const [status, code] = STATUS[err.problem];
      throw new ApiError(status, code, err.message);
    }
    throw err;
  }
}

export const associationRoutes: ApiRoutes = (app, { ctx }) => {
  app.get(
    '/districts/:id/students',
    {
      schema: {
        summary: 'search active students by first- or last-name prefix (case/accent-insensitive)',
        params: DistrictParams,
        querystring: z.object({
          q: z.string().min(1).max(200),
          limit: z.coerce.number().int().min(1).max(MAX_SEARCH_LIMIT).default(20),
        }),
        response: { 200: z.object({ students: z.array(StudentHit) }) },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      const students = await mapped(() =>
        searchStudents(ctx, {
          districtId: request.params.id,
          q: request.query.q,
          limit: request.query.limit,
        }),
      );
      return { students };
    },
  );

  app.get(
    '/districts/:id/parents',
    {
      schema: {
        summary:
          'search parent accounts (any status): exact account id, Unique ID or email, then first- or last-name prefix (case-insensitive); server-paged',
        params: DistrictParams,
        querystring: z.object({
          q: z.string().trim().min(1).max(320),
          offset: z.coerce.number().int().min(0).default(0),
          limit: z.coerce.number().int().min(1).max(MAX_SEARCH_LIMIT).default(20),
        }),
        response: {
          200: z.object({
            total: z.number().int(),
            offset: z.number().int(),
            limit: z.number().int(),
            items: z.array(ParentHit),
          }),
        },
      },
    },
    async request => {
      requireRole(request, 'viewer', request.params.id);
      return mapped(() => searchParents(ctx, { districtId: request.params.id, ...request.query }));
    },
  );

  app.post(
    '/districts/:id/parents/:parentId/associations',
    {
      schema: {
        summary: 'associate a parent account with a student (link origin manual)',
        params: ParentParams,
        body: z
          .object({
            studentUniqueId: z.string().trim().min(1).optional(),
            studentSourcedId: z.string().trim().min(1).optional(),
          })
          .refine(b => (b.studentUniqueId === undefined) !== (b.studentSourcedId === undefined), {
            message: 'give exactly one of studentUniqueId and studentSourcedId',
          }),
        response: { 200: AssociationBody },
      },
    },
    async request => {
      const who = requireRole(request, 'admin', request.params.id);
      return mapped(() =>
        associate(ctx, {
          districtId: request.params.id,
          parentId: request.params.parentId,
          ...request.body,
          actor: `api:${who.name}`,
        }),
      );
    },
  );

  app.delete(
    '/districts/:id/parents/:parentId/associations/:studentUniqueId',
    {
      schema: {
        summary: 'remove a manual association (deactivates the manual link only)',
        params: RemoveParams,
        response: { 200: AssociationBody },
      },
    },
    async request => {
      const who = requireRole(request, 'admin', request.params.id);
      return mapped(() =>
        removeAssociation(ctx, {
          districtId: request.params.id,
          parentId: request.params.parentId,
          studentUniqueId: request.params.studentUniqueId,
          actor: `api:${who.name}`,
        }),
      );
    },
  );
};
