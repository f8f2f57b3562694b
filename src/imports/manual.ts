/**
 * Manual association (issue 6): an admin searches students by name, picks an existing parent
 * account and associates them (a link of origin `manual`), or removes that association.
 *
 * - Search: first- or last-name prefix, case-, accent- and punctuation-insensitive (`nameKey`:
 *   NFD, combining marks removed, lower-case, letters and digits only — "jose" finds "José",
 *   "obr" and "O'Br" find "O'Brien"), active students only. Indexed (see
 *   `src/models/imports/student-lookup*.ts`), never a scan of the district per keystroke.
 * - Associate: a `manual` link is added through `RosterStore.addLink` (an inactive one is
 *   reactivated). The link key includes the origin, so it is added even when a `sis`,
 *   `import` or `access-code` link of the same pair exists, and a sync never removes it
 *   (sync owns only `sis` links, design invariant 6).
 * - Remove: the `manual` link is deactivated (never deleted). Links of other origins are never
 *   touched; when only such links exist the error says which and where they are managed.
 *
 * Both changes are recorded by the store in the change log (design invariant 13) with cause
 * `manual` and the request's `actor`, in the same transaction as the link write.
 *
 * Errors are `ManualAssociationError` with a `problem` code (the API maps them to statuses).
 */
import { z } from 'zod';
import type { AppContext } from '../app.js';
import { GuardianSyncError } from '../errors.js';
import { normalizeEmail } from '../mapping/canonical.js';
import { auditReads } from '../models/audit/index.js';
import type { GuardianLink, LinkOrigin, ParentAccount } from '../models/types.js';
import { nameKey, studentLookup, type ParentRef } from '../models/imports/student-lookup.js';
import type { StoredStudent } from '../models/types.js';

type Ctx = Pick<AppContext, 'store' | 'districts' | 'logger'>;

export type ManualAssociationProblem =
  | 'invalid-request'
  | 'unknown-district'
  | 'unknown-parent'
  | 'inactive-parent'
  | 'unknown-student'
  | 'inactive-student'
  | 'ambiguous-student'
  | 'not-manual'
  | 'no-association';

/** A refused manual-association request; `problem` says why (stable code). */
export class ManualAssociationError extends GuardianSyncError {
  readonly retryable = false;
  constructor(
    readonly problem: ManualAssociationProblem,
    message: string,
  ) {
    super(message);
  }
}

/** Most results one search returns. */
export const MAX_SEARCH_LIMIT = 100;

const Id = z.string().trim().min(1).max(200);

export const SearchStudentsInput = z.object({
  districtId: Id,
  /** What the admin typed: the start of a first or last name. */
  q: z.string().max(200),
  limit: z.number().int().min(1).max(MAX_SEARCH_LIMIT).default(20),
});
export type SearchStudentsInput = z.input<typeof SearchStudentsInput>;

const StudentRef = {
  districtId: Id,
  parentId: Id,
  studentUniqueId: Id.optional(),
  studentSourcedId: Id.optional(),
  /** Who did it (API token name, or the OS user for the CLI); logged. */
  actor: z.string().trim().min(1).max(200),
};
const refine = <
  T extends { studentUniqueId?: string | undefined; studentSourcedId?: string | undefined },
>(
  v: T,
) => (v.studentUniqueId === undefined) !== (v.studentSourcedId === undefined);
const REFINE_MESSAGE = { message: 'give exactly one of studentUniqueId and studentSourcedId' };

export const AssociateInput = z.object(StudentRef).refine(refine, REFINE_MESSAGE);
export type AssociateInput = z.input<typeof AssociateInput>;
export const RemoveAssociationInput = z.object(StudentRef).refine(refine, REFINE_MESSAGE);
export type RemoveAssociationInput = z.input<typeof RemoveAssociationInput>;

/** A search hit. */
export interface StudentHit {
  sourcedId: string;
  uniqueId: string;
  givenName: string;
  familyName: string;
  grade?: string | undefined;
  schoolSourcedIds: string[];
}

export interface AssociationResult {
  /** `created`/`reactivated`/`unchanged` (associate), `deactivated`/`already-inactive` (remove). */
  status: 'created' | 'reactivated' | 'unchanged' | 'deactivated' | 'already-inactive';
  parentId: string;
  studentSourcedId: string;
  studentUniqueId: string;
  /** Active links of the pair with other origins (left as they are). */
  otherActiveOrigins: LinkOrigin[];
}

function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success)
    throw new ManualAssociationError(
      'invalid-request',
      r.error.issues.map(i => `${i.path.join('.') || 'input'}: ${i.message}`).join('; '),
    );
  return r.data;
}

function district(ctx: Ctx, districtId: string): void {
  if (!ctx.districts.has(districtId))
    throw new ManualAssociationError('unknown-district', `no district ${districtId}`);
}

/**
 * Active students of a district whose first or last name starts with `q` (case, accents and
 * punctuation ignored), ordered by last name, first name; at most `limit` (default 20, ≤ 100).
 * Throws `ManualAssociationError` (`invalid-request` when `q` has no letter or digit,
 * `unknown-district`).
 */
export async function searchStudents(ctx: Ctx, input: SearchStudentsInput): Promise<StudentHit[]> {
  const { districtId, q, limit } = parse(SearchStudentsInput, input);
  district(ctx, districtId);
  const key = nameKey(q);
  if (!key)
    throw new ManualAssociationError(
      'invalid-request',
      `search "${q}" has no letter or digit: type the start of a first or last name`,
    );
  const found = await (await studentLookup(ctx)).searchActive(districtId, key, limit);
  return found.map(s => {
    const hit: StudentHit = {
      sourcedId: s.sourcedId,
      uniqueId: s.uniqueId,
      givenName: s.givenName,
      familyName: s.familyName,
      schoolSourcedIds: s.schoolSourcedIds,
    };
    if (s.grade !== undefined) hit.grade = s.grade;
    return hit;
  });
}

async function resolve(
  ctx: Ctx,
  v: {
    districtId: string;
    parentId: string;
    studentUniqueId?: string | undefined;
    studentSourcedId?: string | undefined;
  },
): Promise<{ parent: ParentRef; student: StoredStudent; links: GuardianLink[] }> {
  district(ctx, v.districtId);
  const lookup = await studentLookup(ctx);
  const parent = await lookup.parentById(v.districtId, v.parentId);
  if (!parent)
    throw new ManualAssociationError(
      'unknown-parent',
      `district ${v.districtId} has no parent account ${v.parentId}`,
    );
  let student: StoredStudent | undefined;
  if (v.studentUniqueId !== undefined) {
    const all = await lookup.studentsByUniqueId(v.districtId, v.studentUniqueId);
    if (all.length > 1)
      throw new ManualAssociationError(
        'ambiguous-student',
        `student Unique ID ${v.studentUniqueId} belongs to ${all.length} students (${all
          .map(s => s.sourcedId)
          .join(', ')}): use the student's sourcedId`,
      );
    student = all[0];
  } else if (v.studentSourcedId !== undefined)
    student = await lookup.studentBySourcedId(v.districtId, v.studentSourcedId);
  if (!student)
    throw new ManualAssociationError(
      'unknown-student',
      `district ${v.districtId} has no student ${
        v.studentUniqueId !== undefined
          ? `with Unique ID ${v.studentUniqueId}`
          : `with sourcedId ${v.studentSourcedId ?? ''}`
      }`,
    );
  const links = await lookup.linksBetween(v.districtId, parent.id, student.sourcedId);
  return { parent, student, links };
}

const others = (links: GuardianLink[]) =>
  links.filter(l => l.origin !== 'manual' && l.status === 'active').map(l => l.origin);

/**
 * Associate a parent account with a student (link origin `manual`). Reactivates an inactive
 * manual link; an active one is `unchanged`. Throws `ManualAssociationError`: unknown district,
 * parent or student; inactive parent or student; a Unique ID shared by several students.
 */
export async function associate(ctx: Ctx, input: AssociateInput): Promise<AssociationResult> {
  const v = parse(AssociateInput, input);
  const { parent, student, links } = await resolve(ctx, v);
  if (parent.status !== 'active')
    throw new ManualAssociationError(
      'inactive-parent',
      `parent account ${parent.id} is inactive: reactivate it before associating students`,
    );
  if (student.status !== 'active')
    throw new ManualAssociationError(
      'inactive-student',
      `student ${student.uniqueId} (${student.sourcedId}) is inactive`,
    );
  const manual = links.find(l => l.origin === 'manual');
  const status = !manual ? 'created' : manual.status === 'active' ? 'unchanged' : 'reactivated';
  if (status !== 'unchanged')
    await ctx.store.addLink(
      {
        districtId: v.districtId,
        parentId: parent.id,
        studentSourcedId: student.sourcedId,
        origin: 'manual',
        status: 'active',
        ...(manual?.relationship !== undefined ? { relationship: manual.relationship } : {}),
      },
      { cause: { kind: 'manual' }, actor: v.actor },
    );
  ctx.logger.info(
    {
      districtId: v.districtId,
      parentId: parent.id,
      studentSourcedId: student.sourcedId,
      actor: v.actor,
      status,
    },
    'manual association',
  );
  return {
    status,
    parentId: parent.id,
    studentSourcedId: student.sourcedId,
    studentUniqueId: student.uniqueId,
    otherActiveOrigins: others(links),
  };
}

/**
 * Remove a manual association: deactivate (never delete) the pair's `manual` link. Links of
 * other origins stay. Throws `ManualAssociationError`: unknown district, parent or student;
 * `not-manual` when the pair is linked only by sis/import/access-code links (naming them);
 * `no-association` when the pair has no link at all.
 */
export async function removeAssociation(
  ctx: Ctx,
  input: RemoveAssociationInput,
): Promise<AssociationResult> {
  const v = parse(RemoveAssociationInput, input);
  const { parent, student, links } = await resolve(ctx, v);
  const manual = links.find(l => l.origin === 'manual');
  const other = others(links);
  if (!manual) {
    if (other.length > 0)
      throw new ManualAssociationError(
        'not-manual',
        `parent ${parent.id} and student ${student.uniqueId} have no manual association; their ` +
          `link comes from ${other.join(', ')} and is not removed here (sis: remove the ` +
          `relationship in the SIS; import: re-import with "clear existing"; access-code: ` +
          `managed by the parent's code)`,
      );
    throw new ManualAssociationError(
      'no-association',
      `parent ${parent.id} and student ${student.uniqueId} are not associated`,
    );
  }
  let status: AssociationResult['status'] = 'already-inactive';
  if (manual.status === 'active') {
    await ctx.store.addLink(
      { ...manual, status: 'inactive' },
      { cause: { kind: 'manual' }, actor: v.actor },
    );
    status = 'deactivated';
  }
  ctx.logger.info(
    {
      districtId: v.districtId,
      parentId: parent.id,
      studentSourcedId: student.sourcedId,
      actor: v.actor,
      status,
    },
    'manual association removed',
  );
  return {
    status,
    parentId: parent.id,
    studentSourcedId: student.sourcedId,
    studentUniqueId: student.uniqueId,
    otherActiveOrigins: other,
  };
}

export const SearchParentsInput = z.object({
  districtId: Id,
  /** What the admin typed: an account id, a Unique ID, an email, or the start of a name. */
  q: z.string().trim().min(1).max(320),
  offset: z.number().int().min(0).default(0),
  limit: z.number().int().min(1).max(MAX_SEARCH_LIMIT).default(20),
});
export type SearchParentsInput = z.input<typeof SearchParentsInput>;

/** A parent search hit: the account and what matched. */
export interface ParentHit {
  id: string;
  uniqueId?: string | undefined;
  givenName: string;
  familyName: string;
  email?: string | undefined;
  role: string;
  status: string;
  origin: string;
  /** `id`, `uniqueId` or `email` (exact matches, listed first) or `name` (prefix). */
  matchedBy: 'id' | 'uniqueId' | 'email' | 'name';
}

/** A page of parent search hits; `total` counts them all. */
export interface ParentSearchPage {
  total: number;
  offset: number;
  limit: number;
  items: ParentHit[];
}

/**
 * Parent accounts (any status) a search names: first the exact matches — account id, Unique
 * ID, email (trimmed, case-insensitive; only when `q` has an `@`) — then the accounts whose
 * first or last name starts with `q` (letter case ignored, accents count), by last name,
 * first name, id. One page (`offset`, `limit` ≤ 100) and the total. Every read is an index
 * probe or range scan (`AuditReads`). Throws `ManualAssociationError` (`invalid-request`,
 * `unknown-district`).
 */
export async function searchParents(
  ctx: Ctx,
  input: SearchParentsInput,
): Promise<ParentSearchPage> {
  const { districtId, q, offset, limit } = parse(SearchParentsInput, input);
  district(ctx, districtId);
  const reads = await auditReads(ctx.store);
  const exact = new Map<string, ParentHit>();
  const add = (p: ParentAccount | undefined, by: ParentHit['matchedBy']) => {
    if (p && !exact.has(p.id)) exact.set(p.id, parentHit(p, by));
  };
  for (const p of await reads.parentsByIds(districtId, [q])) add(p, 'id');
  add(await reads.parentByUniqueId(districtId, q), 'uniqueId');
  const email = q.includes('@') ? normalizeEmail(q) : undefined;
  if (email !== undefined)
    for (const p of await reads.parentsByEmail(districtId, email)) add(p, 'email');
  const first = [...exact.values()];
  const head = first.slice(offset, offset + limit);
  const byName = await reads.parentsByNamePrefix(districtId, q, {
    exclude: [...exact.keys()],
    offset: Math.max(0, offset - first.length),
    limit: Math.max(1, limit - head.length),
  });
  const rest = head.length < limit ? byName.items.map(p => parentHit(p, 'name')) : [];
  return {
    total: first.length + byName.total,
    offset,
    limit,
    items: [...head, ...rest].slice(0, limit),
  };
}

function parentHit(p: ParentAccount, matchedBy: ParentHit['matchedBy']): ParentHit {
  const hit: ParentHit = {
    id: p.id,
    givenName: p.givenName,
    familyName: p.familyName,
    role: p.role,
    status: p.status,
    origin: p.origin,
    matchedBy,
  };
  if (p.uniqueId !== undefined) hit.uniqueId = p.uniqueId;
  if (p.email !== undefined) hit.email = p.email;
  return hit;
}
