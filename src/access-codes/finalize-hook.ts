/**
 * The access-code step of a sync's finalize (registered as `access-codes` in
 * src/jobs/finalize-hooks.ts). Issues a code to each active student who needs one:
 * - connectors without guardian links (`capabilities.guardianLinks: false`, e.g.
 *   eSchoolPLUS): every active student — their parent accounts were created by the apply
 *   step, links cannot be made, codes are the way in;
 * - otherwise per the district's `issueTo` setting: only students without an active
 *   guardian link (default), or all.
 * A code, once issued, stays until reset: a later link does not revoke it.
 *
 * Dry run: writes nothing and counts what the real run would issue — students in the store
 * that this snapshot still has, plus the students the dry run's apply steps would have
 * created (recorded by src/jobs/chunk-extras.ts). Held run (deletion safeguard): the
 * snapshot is suspicious, so nothing is issued; the count is reported as `code.held` and
 * the codes come with the next run (or `codes issue`). Idempotent (at-least-once safe): a
 * student who holds a code is never given another.
 *
 * Every code issued is logged in the change log (cause `code-issue` with the run id, actor
 * the run's actor — its trigger for runs that name none), in the transaction that issues it.
 *
 * Returns `{ code: { issue: n } }` (or `{ code: { held: n } }`), nothing when n is 0.
 */
import type { AppContext } from '../app.js';
import { dryRunStudentKeys } from '../jobs/chunk-extras.js';
import type { FinalizeHook, FinalizeHookInput } from '../jobs/finalize-hooks.js';
import { accessCodeRepository } from '../models/access-codes/index.js';
import type { RunCounts } from '../models/types.js';
import { ISSUE_BATCH, issueMissingCodes, mergeSettings } from './service.js';

export const ACCESS_CODES_HOOK_NAME = 'access-codes';

export const accessCodesFinalizeHook: FinalizeHook = async (
  ctx,
  input,
): Promise<RunCounts | void> => {
  const { district, capabilities } = input;
  const repo = await accessCodeRepository(ctx.store);
  const settings = mergeSettings(district.accessCodes, await repo.getSettingsOverride(district.id));
  const log = ctx.logger.child({
    districtId: district.id,
    runId: input.run.id,
    step: 'access-codes',
  });
  const keys = dryRunStudentKeys(ctx.prefix, input.run.id);
  if (!settings.enabled) {
    if (!capabilities.guardianLinks)
      log.warn(
        'this connector gives no guardian links and access codes are disabled: families cannot be linked (enable accessCodes)',
      );
    if (input.dryRun) await ctx.redis.del(keys.added, keys.linked);
    return;
  }
  const includeLinked = !capabilities.guardianLinks || settings.issueTo === 'all';
  let n: number;
  if (input.dryRun) {
    n = await dryRunCount(ctx, input, includeLinked);
    await ctx.redis.del(keys.added, keys.linked);
  } else {
    n = await issueMissingCodes(ctx, district.id, {
      includeLinked,
      dryRun: input.held,
      change: {
        cause: { kind: 'code-issue', id: input.run.id },
        actor: input.run.actor ?? input.run.trigger,
      },
    });
  }
  if (n === 0) return;
  if (input.held) {
    log.info({ codes: n }, 'run held: access codes not issued until the next run');
    return { code: { held: n } };
  }
  log.info({ codes: n, dryRun: input.dryRun }, 'access codes issued');
  return { code: { issue: n } };
};

/**
 * What the real run would issue: stored students needing a code that this snapshot still
 * has (the others it would deactivate first), plus would-be-new students without a code
 * (and, unless `includeLinked`, without a would-be link).
 */
async function dryRunCount(
  ctx: AppContext,
  input: FinalizeHookInput,
  includeLinked: boolean,
): Promise<number> {
  const districtId = input.district.id;
  const repo = await accessCodeRepository(ctx.store);
  const seen = (await ctx.ledger.seen(input.run.id)).students;
  let n = 0;
  let after: string | undefined;
  do {
    const page = await repo.studentsNeedingCodes(districtId, {
      includeLinked,
      after,
      limit: ISSUE_BATCH,
    });
    for (const id of page.ids) if (seen.has(id)) n++;
    after = page.next;
  } while (after !== undefined);

  const keys = dryRunStudentKeys(ctx.prefix, input.run.id);
  const [added, linked] = await Promise.all([
    ctx.redis.smembers(keys.added),
    ctx.redis.smembers(keys.linked),
  ]);
  const linkedSet = new Set(linked);
  const candidates = added.filter(id => includeLinked || !linkedSet.has(id));
  for (let i = 0; i < candidates.length; i += ISSUE_BATCH) {
    const rows = await repo.studentCodeRowsOf(districtId, candidates.slice(i, i + ISSUE_BATCH));
    const holding = new Set(rows.filter(r => r.code !== undefined).map(r => r.sourcedId));
    n += candidates.slice(i, i + ISSUE_BATCH).filter(id => !holding.has(id)).length;
  }
  return n;
}
