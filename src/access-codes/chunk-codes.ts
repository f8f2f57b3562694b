/**
 * Access codes issued in the apply step of a district's first sync (ADR 0018), instead of in
 * one serial pass at finalize. The finalize hook (`finalize-hook.ts`) still runs after every
 * run and issues whatever is missing; for a first sync it then finds nothing to do.
 *
 * Codes are issued here only when the outcome cannot differ from finalize's:
 * - a real run (a dry run counts at finalize);
 * - codes enabled for the district (stored override, else the district file);
 * - every active student gets a code whatever its links (`includeLinked`: a connector without
 *   guardian links, or `issueTo: "all"`). Under `unlinked`, "no active link at the end of the
 *   run" is known only at finalize;
 * - the district had no active student and no active parent account before the run
 *   (`baselineStudents` and `baselineParents` of the run's ledger meta, written by the pull).
 *   The deletion safeguard measures deactivations against that baseline, so such a run has
 *   nothing it could hold (a held run issues no code, docs/access-codes.md).
 *
 * The students are those of the chunk that are active in the store after the chunk's write
 * (a rejected or deferred student is not there and gets nothing). Each code goes in with its
 * change-log entry (cause `code-issue` with the run id, the run's actor) in one transaction
 * per page (`issueCodes`), so the run's counts (from the log) include them. Idempotent: a
 * student holding an active code is skipped, so a retried chunk issues nothing twice.
 */
import type { AppContext } from '../app.js';
import type { DistrictConfig } from '../config/district.js';
import type { ConnectorCapabilities } from '../connectors/types.js';
import { accessCodeRepository } from '../models/access-codes/index.js';
import type { SyncRun } from '../models/types.js';
import { generateAccessCode } from './code.js';
import { ISSUE_BATCH, mergeSettings } from './service.js';

/** What `issueChunkCodes` needs about the chunk's run. */
export interface ChunkCodesInput {
  run: Pick<SyncRun, 'id' | 'dryRun' | 'actor' | 'trigger'>;
  district: DistrictConfig;
  /** The run's ledger meta (`baselineStudents`, `baselineParents` written by the pull). */
  meta: Record<string, string | undefined>;
  /** The connector's capabilities (read only when the other conditions hold). */
  capabilities: () => ConnectorCapabilities;
  /** The chunk's students marked active in the snapshot (SIS ids). */
  studentSourcedIds: string[];
}

/**
 * True when the run started on a district with no active student and no active parent
 * account of any origin (ledger meta; false when the meta lacks the figures).
 */
export function isFirstSync(meta: Record<string, string | undefined>): boolean {
  return meta.baselineStudents === '0' && meta.baselineParents === '0';
}

/**
 * Issue the chunk's codes when the conditions of the module header hold. Returns the number
 * of codes issued (0 when the conditions do not hold). Throws the store's errors (the apply
 * job is then retried; the chunk's roster write is already committed and is a no-op again).
 */
export async function issueChunkCodes(
  ctx: Pick<AppContext, 'store'>,
  input: ChunkCodesInput,
): Promise<number> {
  const { run, district } = input;
  if (run.dryRun || !isFirstSync(input.meta) || input.studentSourcedIds.length === 0) return 0;
  const repo = await accessCodeRepository(ctx.store);
  const settings = mergeSettings(district.accessCodes, await repo.getSettingsOverride(district.id));
  if (!settings.enabled) return 0;
  if (input.capabilities().guardianLinks && settings.issueTo !== 'all') return 0;
  let n = 0;
  for (let i = 0; i < input.studentSourcedIds.length; i += ISSUE_BATCH) {
    const rows = await repo.studentCodeRowsOf(
      district.id,
      input.studentSourcedIds.slice(i, i + ISSUE_BATCH),
    );
    const ids = rows
      .filter(r => r.status === 'active' && r.code === undefined)
      .map(r => r.sourcedId);
    if (ids.length === 0) continue;
    const r = await repo.issueCodes(district.id, ids, {
      generate: generateAccessCode,
      at: new Date().toISOString(),
      change: {
        cause: { kind: 'code-issue', id: run.id },
        actor: run.actor ?? run.trigger,
      },
    });
    n += r.issued.length;
  }
  return n;
}
