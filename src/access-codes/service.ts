/**
 * Parent Access Code operations (issue 5) as plain functions `(ctx, input) → result`, each
 * with a zod input schema, so the CLI (src/cli/codes.ts) and the admin HTTP API
 * (src/api/routes/access-codes.ts) call the same code. Errors are `AccessCodeServiceError`
 * subclasses carrying an HTTP status and a safe body (./errors.ts).
 *
 * Design references: ../shared/design.md invariants 8 and 13 and the access-code paragraph;
 * docs/access-codes.md.
 *
 * Change log (invariant 13): every code issued or revoked, and every account and link a
 * redemption makes, is logged by the store in the same transaction as the write, with its
 * cause and actor — finalize issuance `code-issue` (run id, the run's actor), `codes issue`
 * `code-issue` (the admin), reset `code-reset` (reset id, the admin), redemption `redemption`
 * (the code's `codeRef`, never its value; actor `guardian`).
 */
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import type { AppContext } from '../app.js';
import { DEFAULT_ACCESS_CODE_SETTINGS, type AccessCodeSettings } from '../config/access-codes.js';
import type { DistrictConfig } from '../config/district.js';
import { normalizeEmail } from '../mapping/canonical.js';
import {
  accessCodeRepository,
  type AccessCodeRecord,
  type AccessCodeRepository,
  type AccessCodeReset,
  type AccessCodeSettingsOverride,
  UsernameTakenError,
} from '../models/access-codes/index.js';
import { codeRef, type ChangeContext } from '../models/changes/types.js';
import type { ParentAccount } from '../models/types.js';
import { StoreConflictError } from '../errors.js';
import { parentAccountId } from '../reconcile/plan.js';
import { attemptKeyOf, formatAccessCode, generateAccessCode, normalizeAccessCode } from './code.js';
import {
  AccessCodesDisabledError,
  AccountExistsError,
  InvalidAccessCodeError,
  InvalidInputError,
  NotFoundError,
  TooManyAttemptsError,
} from './errors.js';
import {
  DEFAULT_LIMITS,
  FixedWindowLimiter,
  type Budget,
  type BudgetKind,
  type Limits,
} from './rate-limit.js';

/** What the service needs from the application context. */
export type AccessCodeContext = Pick<
  AppContext,
  'store' | 'redis' | 'prefix' | 'districts' | 'logger'
>;

/** Students handled per store round trip when issuing or resetting. */
export const ISSUE_BATCH = 1000;

// ---------------------------------------------------------------------------------------
// Input schemas

const Id = z.string().trim().min(1).max(200);
const Actor = z.string().trim().min(1).max(200);

export const DistrictInput = z.strictObject({ districtId: Id });
export type DistrictInput = z.infer<typeof DistrictInput>;

export const UpdateSettingsInput = z.strictObject({
  districtId: Id,
  /** `null` removes the override (the district file's value applies again). */
  enabled: z.boolean().nullable().optional(),
  defaultRole: z.string().trim().min(1).max(100).nullable().optional(),
  issueTo: z.enum(['unlinked', 'all']).nullable().optional(),
  actor: Actor,
});
export type UpdateSettingsInput = z.infer<typeof UpdateSettingsInput>;

export const IssueInput = z.strictObject({
  districtId: Id,
  /** Who asks (change-log actor): `api:<token name>`, `cli:<os user>`. */
  actor: Actor.default('system'),
});
export type IssueInput = z.input<typeof IssueInput>;

export const ResetInput = z
  .strictObject({
    districtId: Id,
    actor: Actor,
    /** Students by district-wide Unique ID (what admins know). */
    uniqueIds: z.array(Id).min(1).max(100000).optional(),
    /** Students by SIS sourcedId. */
    studentSourcedIds: z.array(Id).min(1).max(100000).optional(),
    /** Every student of the district that holds a code. */
    all: z.literal(true).optional(),
  })
  .refine(
    v => [v.uniqueIds, v.studentSourcedIds, v.all].filter(x => x !== undefined).length === 1,
    { message: 'give exactly one of uniqueIds, studentSourcedIds or all' },
  );
export type ResetInput = z.infer<typeof ResetInput>;

export const ListResetsInput = z.strictObject({
  districtId: Id,
  limit: z.coerce.number().int().min(1).max(1000).default(50),
});
export type ListResetsInput = z.infer<typeof ListResetsInput>;

export const StudentCodesInput = z.strictObject({ districtId: Id, uniqueId: Id });
export type StudentCodesInput = z.infer<typeof StudentCodesInput>;

/** What a person types. Length-capped; the format is checked by `normalizeAccessCode`. */
const CodeInput = z.string().max(200);
/** Who is trying (client IP or API client id): the per-client rate-limit subject. */
const ClientInput = z.string().trim().min(1).max(200);

export const RegisterInput = z
  .strictObject({
    code: CodeInput,
    givenName: z.string().trim().min(1).max(100),
    familyName: z.string().trim().min(1).max(100),
    email: z.string().trim().max(254).pipe(z.email()).optional(),
    username: z
      .string()
      .trim()
      .min(3)
      .max(64)
      .regex(/^[\p{L}\p{N}._@+-]+$/u, 'letters, digits and . _ @ + - only')
      .optional(),
    client: ClientInput,
  })
  .refine(v => v.email !== undefined || v.username !== undefined, {
    message: 'give an email or a username',
  });
export type RegisterInput = z.infer<typeof RegisterInput>;

export const AddChildInput = z.strictObject({
  districtId: Id,
  parentId: Id,
  code: CodeInput,
  client: ClientInput,
});
export type AddChildInput = z.infer<typeof AddChildInput>;

/** Parse `raw` with `schema`; `InvalidInputError` naming each bad field otherwise. */
export function parseInput<S extends z.ZodType>(schema: S, raw: unknown): z.output<S> {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  throw new InvalidInputError(
    'invalid input',
    r.error.issues.map(i => `${i.path.length ? i.path.join('.') : '(input)'}: ${i.message}`),
  );
}

// ---------------------------------------------------------------------------------------
// Settings

/** The district's config, or `NotFoundError`. */
export function districtOf(ctx: Pick<AppContext, 'districts'>, districtId: string): DistrictConfig {
  const d = ctx.districts.get(districtId);
  if (!d) throw new NotFoundError(`unknown district "${districtId}"`);
  return d;
}

/**
 * Effective settings: each field of the stored override (API/CLI) wins over the district
 * file's `accessCodes`, which wins over the defaults.
 */
export function mergeSettings(
  file: AccessCodeSettings | undefined,
  override: AccessCodeSettingsOverride | undefined,
): AccessCodeSettings {
  const f = file ?? DEFAULT_ACCESS_CODE_SETTINGS;
  return {
    enabled: override?.enabled ?? f.enabled,
    defaultRole: override?.defaultRole ?? f.defaultRole,
    issueTo: override?.issueTo ?? f.issueTo,
  };
}

export interface SettingsView {
  districtId: string;
  effective: AccessCodeSettings;
  /** From the district file. */
  file: AccessCodeSettings;
  /** Stored through the API/CLI (absent fields: none). */
  override?: AccessCodeSettingsOverride | undefined;
}

async function settingsView(
  repo: AccessCodeRepository,
  district: DistrictConfig,
): Promise<SettingsView> {
  const override = await repo.getSettingsOverride(district.id);
  const file = district.accessCodes;
  return { districtId: district.id, effective: mergeSettings(file, override), file, override };
}

/** The district's access-code settings (effective, file, override). */
export async function getAccessCodeSettings(
  ctx: AccessCodeContext,
  raw: unknown,
): Promise<SettingsView> {
  const input = parseInput(DistrictInput, raw);
  const district = districtOf(ctx, input.districtId);
  return settingsView(await accessCodeRepository(ctx.store), district);
}

/**
 * Change settings through the API/CLI. A field given a value overrides the file; `null`
 * removes that override; an absent field keeps the current override.
 */
export async function updateAccessCodeSettings(
  ctx: AccessCodeContext,
  raw: unknown,
): Promise<SettingsView> {
  const input = parseInput(UpdateSettingsInput, raw);
  const district = districtOf(ctx, input.districtId);
  const repo = await accessCodeRepository(ctx.store);
  if (typeof input.defaultRole === 'string') {
    // Only a role the district defines (its file) may be the default: a setting must never
    // invent a role (imports accept the effective default role as an existing one).
    const known = [
      'Parent',
      district.policies.parentRole,
      district.accessCodes.defaultRole,
      ...district.roles,
    ];
    const role = input.defaultRole;
    if (!known.some(r => r.toLowerCase() === role.toLowerCase()))
      throw new InvalidInputError('invalid input', [
        `defaultRole: "${role}" is not a role of district ${district.id} (known: ${[...new Set(known)].join(', ')}; add custom roles to the district file's "roles")`,
      ]);
  }
  const prev = await repo.getSettingsOverride(district.id);
  const pick = <K extends 'enabled' | 'defaultRole' | 'issueTo'>(k: K) =>
    input[k] === undefined ? prev?.[k] : (input[k] ?? undefined);
  await repo.putSettingsOverride({
    districtId: district.id,
    enabled: pick('enabled'),
    defaultRole: pick('defaultRole'),
    issueTo: pick('issueTo'),
    updatedAt: new Date().toISOString(),
    updatedBy: input.actor,
  });
  ctx.logger.info(
    { districtId: district.id, actor: input.actor, component: 'access-codes' },
    'access-code settings changed',
  );
  return settingsView(repo, district);
}

// ---------------------------------------------------------------------------------------
// Issuance

/**
 * Issue codes to the district's active students who have none: every such student when
 * `includeLinked`, else only those without an active guardian link. With `dryRun` only
 * counts. Idempotent: a student holding a code is never given a second one. Each code issued
 * is logged with `opts.change` (cause `code-issue`).
 * Returns the number of codes issued (or that would be).
 */
export async function issueMissingCodes(
  ctx: Pick<AppContext, 'store'>,
  districtId: string,
  opts: { includeLinked: boolean; dryRun: boolean; change: ChangeContext },
): Promise<number> {
  const repo = await accessCodeRepository(ctx.store);
  let n = 0;
  let after: string | undefined;
  do {
    const page = await repo.studentsNeedingCodes(districtId, {
      includeLinked: opts.includeLinked,
      after,
      limit: ISSUE_BATCH,
    });
    if (page.ids.length > 0) {
      if (opts.dryRun) n += page.ids.length;
      else {
        const r = await repo.issueCodes(districtId, page.ids, {
          generate: generateAccessCode,
          at: new Date().toISOString(),
          change: opts.change,
        });
        n += r.issued.length;
      }
    }
    after = page.next;
  } while (after !== undefined);
  return n;
}

/**
 * `codes issue`: issue missing codes now (outside a sync) under the district's settings.
 * `guardianLinks` is the connector's capability (false: every active student gets one).
 * Logged with cause `code-issue` and `actor` (default `system`).
 * Throws `AccessCodesDisabledError` when codes are disabled.
 */
export async function issueAccessCodes(
  ctx: AccessCodeContext,
  raw: unknown,
  capabilities: { guardianLinks: boolean },
): Promise<{ districtId: string; issued: number; active: number }> {
  const input = parseInput(IssueInput, raw);
  const district = districtOf(ctx, input.districtId);
  const repo = await accessCodeRepository(ctx.store);
  const { effective } = await settingsView(repo, district);
  if (!effective.enabled) throw new AccessCodesDisabledError(district.id);
  const issued = await issueMissingCodes(ctx, district.id, {
    includeLinked: !capabilities.guardianLinks || effective.issueTo === 'all',
    dryRun: false,
    change: { cause: { kind: 'code-issue' }, actor: input.actor },
  });
  return { districtId: district.id, issued, active: await repo.countActiveCodes(district.id) };
}

// ---------------------------------------------------------------------------------------
// Reset

export interface ResetResult extends AccessCodeReset {
  /** Requested students not found in the district (by the id kind given). */
  notFound: string[];
  /** New codes (formatted), for one student or a list; empty for a district reset. */
  codes: { studentSourcedId: string; code: string }[];
}

/**
 * Reset codes: revoke the active code of each student (the old code stops working at
 * once) and issue a new one to each active student. Links made with the old code stay.
 * Recorded with actor, time and counts; each code revoked and issued is logged with cause
 * `code-reset` (the reset id) and the actor. Throws `AccessCodesDisabledError`.
 */
export async function resetAccessCodes(ctx: AccessCodeContext, raw: unknown): Promise<ResetResult> {
  const input = parseInput(ResetInput, raw);
  const district = districtOf(ctx, input.districtId);
  const repo = await accessCodeRepository(ctx.store);
  const { effective } = await settingsView(repo, district);
  if (!effective.enabled) throw new AccessCodesDisabledError(district.id);
  const reset: AccessCodeReset = {
    id: `rs_${randomUUID()}`,
    districtId: district.id,
    actor: input.actor,
    at: new Date().toISOString(),
    scope: 'district',
    requested: 0,
    revoked: 0,
    issued: 0,
  };
  const notFound: string[] = [];
  const codes: { studentSourcedId: string; code: string }[] = [];
  const change: ChangeContext = {
    cause: { kind: 'code-reset', id: reset.id },
    actor: input.actor,
  };

  const resetBatch = async (ids: string[], keepCodes: boolean): Promise<void> => {
    const rows = await repo.studentCodeRowsOf(district.id, ids);
    const found = new Set(rows.map(r => r.sourcedId));
    for (const id of ids) if (!found.has(id)) notFound.push(id);
    reset.revoked += await repo.revokeCodes(district.id, [...found], {
      at: reset.at,
      resetId: reset.id,
      change,
    });
    const active = rows.filter(r => r.status === 'active').map(r => r.sourcedId);
    const r = await repo.issueCodes(district.id, active, {
      generate: generateAccessCode,
      at: reset.at,
      change,
    });
    reset.issued += r.issued.length;
    if (keepCodes)
      for (const c of r.issued)
        codes.push({ studentSourcedId: c.studentSourcedId, code: formatAccessCode(c.code) });
  };

  if (input.all) {
    // Collect first: the keyset walk must not see the codes this reset issues.
    const holders: string[] = [];
    let after: string | undefined;
    do {
      const page = await repo.studentsWithActiveCodes(district.id, { after, limit: ISSUE_BATCH });
      holders.push(...page.ids);
      after = page.next;
    } while (after !== undefined);
    reset.requested = holders.length;
    for (let i = 0; i < holders.length; i += ISSUE_BATCH)
      await resetBatch(holders.slice(i, i + ISSUE_BATCH), false);
  } else {
    let ids: string[];
    if (input.uniqueIds) {
      const byUnique = await repo.studentIdsByUniqueId(district.id, input.uniqueIds);
      ids = [];
      for (const u of new Set(input.uniqueIds)) {
        const sid = byUnique.get(u);
        if (sid === undefined) notFound.push(u);
        else ids.push(sid);
      }
      reset.requested = new Set(input.uniqueIds).size;
    } else {
      ids = [...new Set(input.studentSourcedIds ?? [])];
      reset.requested = ids.length;
    }
    reset.scope = reset.requested === 1 ? 'student' : 'list';
    for (let i = 0; i < ids.length; i += ISSUE_BATCH)
      await resetBatch(ids.slice(i, i + ISSUE_BATCH), true);
  }
  await repo.recordReset(reset);
  ctx.logger.info(
    { component: 'access-codes', ...reset, notFound: notFound.length },
    'access codes reset',
  );
  return { ...reset, notFound, codes };
}

/** Recorded resets of a district, newest first. */
export async function listAccessCodeResets(
  ctx: AccessCodeContext,
  raw: unknown,
): Promise<AccessCodeReset[]> {
  const input = parseInput(ListResetsInput, raw);
  const district = districtOf(ctx, input.districtId);
  return (await accessCodeRepository(ctx.store)).listResets(district.id, input.limit);
}

/** A student's codes (admin lookup by Unique ID): formatted, active first then newest. */
export async function studentAccessCodes(
  ctx: AccessCodeContext,
  raw: unknown,
): Promise<{ studentSourcedId: string; codes: (AccessCodeRecord & { formatted: string })[] }> {
  const input = parseInput(StudentCodesInput, raw);
  const district = districtOf(ctx, input.districtId);
  const repo = await accessCodeRepository(ctx.store);
  const sid = (await repo.studentIdsByUniqueId(district.id, [input.uniqueId])).get(input.uniqueId);
  if (sid === undefined) throw new NotFoundError(`no student with Unique ID ${input.uniqueId}`);
  const codes = await repo.codesOfStudent(district.id, sid);
  codes.sort((a, b) => Number(b.status === 'active') - Number(a.status === 'active'));
  return {
    studentSourcedId: sid,
    codes: codes.map(c => ({ ...c, formatted: formatAccessCode(c.code) })),
  };
}

// ---------------------------------------------------------------------------------------
// Redemption

/** Options of the redemption functions (tests use small windows). */
export interface RedeemOptions {
  /** Failure budgets; each one not given keeps its `DEFAULT_LIMITS` value. */
  limits?: Partial<Limits>;
  /**
   * Who calls, as the server knows it (never a caller-supplied value): the API token's name
   * (its own failure budget) and the districts it is scoped to (their budgets, when the
   * request names no district). Unset (CLI, tests): no token budget.
   */
  caller?: { token: string; districts?: string[] | undefined };
  /** Told each time an attempt is refused because `budget` is spent (alert metric). */
  onBudgetSpent?: (budget: BudgetKind) => void;
  now?: () => Date;
  /**
   * Districts the caller may redeem in (an API token's scope). A code of any other district
   * fails like an unknown code, so the scope check reveals nothing either.
   */
  allowDistrict?: (districtId: string) => boolean;
}

export interface RedeemResult {
  districtId: string;
  parentId: string;
  studentSourcedId: string;
  /** A parent account was created by this call. */
  created: boolean;
  /** A link was added by this call (false: it already existed — redeeming twice). */
  linked: boolean;
}

/**
 * Check a typed code under the rate limits. Every failure about the code — malformed,
 * unknown, revoked, inactive or unknown student, unknown district, codes disabled, another
 * district than the caller's — throws the same `InvalidAccessCodeError` after the same
 * store reads, and counts one failure in each budget (client, code, global, and the API
 * token's and district's when known: `RedeemOptions.caller`). Throws `TooManyAttemptsError`
 * before looking anything up when a budget is spent.
 */
async function checkCode(
  ctx: AccessCodeContext,
  repo: AccessCodeRepository,
  typed: string,
  client: string,
  opts: RedeemOptions,
  expectDistrict?: string,
): Promise<{ record: AccessCodeRecord; district: DistrictConfig; role: string }> {
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const limiter = new FixedWindowLimiter(ctx.redis, ctx.prefix);
  const attemptKey = attemptKeyOf(typed);
  // One failure is reserved in every budget before the lookup, atomically; a good code gives
  // it back. Concurrent guesses therefore never get more evaluations than a limit allows.
  const budgets: Budget[] = [
    { kind: 'client', subject: client, rule: limits.client },
    { kind: 'code', subject: attemptKey, rule: limits.code },
    { kind: 'global', subject: 'all', rule: limits.global },
  ];
  if (opts.caller) budgets.push({ kind: 'token', subject: opts.caller.token, rule: limits.token });
  for (const d of expectDistrict !== undefined ? [expectDistrict] : (opts.caller?.districts ?? []))
    budgets.push({ kind: 'district', subject: d, rule: limits.district });
  const reserved = await limiter.reserve(budgets);
  if (!reserved.ok) {
    if (reserved.budget !== 'client' && reserved.budget !== 'code')
      ctx.logger.warn(
        { budget: reserved.budget, retryAfterSeconds: reserved.retryAfterSeconds },
        'redemption failure budget spent: attempts refused',
      );
    opts.onBudgetSpent?.(reserved.budget);
    throw new TooManyAttemptsError(reserved.retryAfterSeconds);
  }

  // The same reads happen whatever the outcome (no early return), so an unknown code and a
  // revoked one cost the same.
  const canonical = normalizeAccessCode(typed);
  const record = await repo.findCode(canonical ?? '');
  const districtId = record?.districtId ?? '';
  const [studentStatus, override] = await Promise.all([
    repo.studentStatus(districtId, record?.studentSourcedId ?? ''),
    repo.getSettingsOverride(districtId),
  ]);
  const district = ctx.districts.get(districtId);
  const settings = mergeSettings(district?.accessCodes, override);
  const ok =
    canonical !== undefined &&
    record !== undefined &&
    district !== undefined &&
    record.status === 'active' &&
    studentStatus === 'active' &&
    settings.enabled &&
    (expectDistrict === undefined || expectDistrict === districtId) &&
    (opts.allowDistrict?.(districtId) ?? true);
  // A failure keeps its reservation in every budget.
  if (!ok || !record || !district) throw new InvalidAccessCodeError();
  await limiter.release(budgets);
  return { record, district, role: settings.defaultRole };
}

/**
 * Register a new parent with a code: creates a parent account (origin `access-code`, the
 * district's default role) and links it to the code's student (origin `access-code`).
 *
 * Identity (invariant 7): an email or username that already belongs to an account in the
 * district is `AccountExistsError` (sign in, then Add Child) — except the replay of this
 * very registration (that account is already linked to the student), which is a no-op.
 * The result is not proof of identity: an API must not sign anyone in because of it.
 */
export async function registerWithAccessCode(
  ctx: AccessCodeContext,
  raw: unknown,
  opts: RedeemOptions = {},
): Promise<RedeemResult> {
  const input = parseInput(RegisterInput, raw);
  const repo = await accessCodeRepository(ctx.store);
  const { record, district, role } = await checkCode(ctx, repo, input.code, input.client, opts);
  const districtId = district.id;
  const student = record.studentSourcedId;
  const change = redemptionChange(record, 'register');
  const email = normalizeEmail(input.email);
  const username = input.username?.toLowerCase();

  const candidates = new Set<string>();
  if (email) for (const id of await repo.parentIdsByEmail(districtId, email)) candidates.add(id);
  if (username) {
    const acc = await repo.accountByUsername(districtId, username);
    if (acc) candidates.add(acc.parentId);
  }
  if (candidates.size > 1) throw new AccountExistsError();
  const [existing] = [...candidates];
  if (existing !== undefined) {
    if (await repo.hasActiveLink(districtId, existing, student))
      return {
        districtId,
        parentId: existing,
        studentSourcedId: student,
        created: false,
        linked: false,
      };
    throw new AccountExistsError();
  }

  const now = (opts.now ?? (() => new Date()))().toISOString();
  const id = parentAccountId(
    districtId,
    'access-code',
    email ? `email:${email}` : `username:${username ?? ''}`,
  );
  const account: ParentAccount = {
    districtId,
    id,
    givenName: input.givenName,
    familyName: input.familyName,
    email: input.email,
    emailNormalized: email,
    role,
    status: 'active',
    origin: 'access-code',
    sources: [],
    lockedFields: [],
  };
  let created = true;
  try {
    await ctx.store.createParent(account, change);
  } catch (err) {
    // The same registration, submitted twice at once: the deterministic id collided.
    if (
      !(err instanceof StoreConflictError) ||
      (await repo.parentStatus(districtId, id)) === undefined
    )
      throw err;
    created = false;
  }
  if (username) {
    try {
      await repo.recordAccount({
        districtId,
        parentId: id,
        username: input.username,
        usernameNormalized: username,
        createdAt: now,
      });
    } catch (err) {
      if (!(err instanceof UsernameTakenError)) throw err;
      // Another registration took the username in between: undo ours (deactivate; nothing
      // is ever deleted) and tell this person to pick another or sign in.
      if (created)
        await ctx.store.applyDeactivations(
          districtId,
          { studentSourcedIds: [], parentIds: [id], links: [] },
          change,
        );
      throw new AccountExistsError();
    }
  }
  const linked = await link(ctx, repo, districtId, id, record, 'register', now);
  ctx.logger.info(
    { component: 'access-codes', districtId, parentId: id, created, linked },
    'parent registered with an access code',
  );
  return { districtId, parentId: id, studentSourcedId: student, created, linked };
}

/**
 * "Add Child": link an existing, active parent account of `districtId` to the code's
 * student (origin `access-code`). Redeeming a code whose student is already linked to the
 * parent is a no-op. Throws `NotFoundError` when the parent account does not exist or is
 * inactive; code failures as `registerWithAccessCode`.
 */
export async function addChildWithAccessCode(
  ctx: AccessCodeContext,
  raw: unknown,
  opts: RedeemOptions = {},
): Promise<RedeemResult> {
  const input = parseInput(AddChildInput, raw);
  const repo = await accessCodeRepository(ctx.store);
  if ((await repo.parentStatus(input.districtId, input.parentId)) !== 'active')
    throw new NotFoundError('no active parent account with this id in this district');
  const { record } = await checkCode(ctx, repo, input.code, input.client, opts, input.districtId);
  const now = (opts.now ?? (() => new Date()))().toISOString();
  const linked = await link(ctx, repo, input.districtId, input.parentId, record, 'add-child', now);
  return {
    districtId: input.districtId,
    parentId: input.parentId,
    studentSourcedId: record.studentSourcedId,
    created: false,
    linked,
  };
}

/**
 * Change-log context of a redemption: the code by its ref (never its value), the guardian as
 * actor.
 */
function redemptionChange(record: AccessCodeRecord, kind: 'register' | 'add-child'): ChangeContext {
  return {
    cause: { kind: 'redemption', id: codeRef(record.code), trigger: kind },
    actor: 'guardian',
  };
}

/** Add the `access-code` link unless the parent already has an active link to the student. */
async function link(
  ctx: AccessCodeContext,
  repo: AccessCodeRepository,
  districtId: string,
  parentId: string,
  record: AccessCodeRecord,
  kind: 'register' | 'add-child',
  at: string,
): Promise<boolean> {
  const student = record.studentSourcedId;
  const already = await repo.hasActiveLink(districtId, parentId, student);
  if (!already)
    await ctx.store.addLink(
      {
        districtId,
        parentId,
        studentSourcedId: student,
        origin: 'access-code',
        status: 'active',
      },
      redemptionChange(record, kind),
    );
  await repo.recordRedemption({
    districtId,
    code: record.code,
    parentId,
    studentSourcedId: student,
    kind,
    at,
  });
  return !already;
}
