/**
 * Delta pulls in the pipeline (OneRoster `dateLastModified` deltas; design.md invariant 9):
 *
 * - pull: `loadDeltaState` hands the district's saved watermark to the connector
 *   (`PullContext.deltaState`); `snapshotMeta` records in the run ledger whether the pull was
 *   `full` or `delta` and the watermark to save;
 * - finalize: `scopeFinalizeInput` keeps a delta (or a feed that does not vouch for its
 *   guardian lists) from deactivating anything for absence;
 * - the `connector-state` finalize hook saves the watermark and the delta count when the
 *   run finishes (not for dry runs), so the next run knows whether to pull a delta.
 */
import type { AppContext } from '../app.js';
import type {
  ConnectorCapabilities,
  DeltaState,
  PullStats,
  SisConnector,
} from '../connectors/types.js';
import { connectorStateRepository } from '../models/connector-state/index.js';
import type { RunCounts } from '../models/types.js';
import { noActive, type FinalizeInput } from '../reconcile/finalize.js';
import type { FinalizeHook } from './finalize-hooks.js';

/** The saved delta state of a district's connector, for connectors that pull deltas. */
export async function loadDeltaState(
  ctx: Pick<AppContext, 'store'>,
  districtId: string,
  connector: Pick<SisConnector, 'kind' | 'capabilities'>,
): Promise<DeltaState | undefined> {
  if (!connector.capabilities.delta) return undefined;
  const repo = await connectorStateRepository(ctx.store);
  const s = await repo.get(districtId, connector.kind);
  return s ? { watermark: s.watermark, runsSinceFull: s.runsSinceFull } : undefined;
}

/** Ledger meta fields (`snapshot`, `watermark`) from a connector's pull stats. */
export function snapshotMeta(
  stats: Pick<PullStats, 'snapshot' | 'watermark'>,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (stats.snapshot) out.snapshot = stats.snapshot;
  if (stats.watermark) out.watermark = stats.watermark;
  return out;
}

/**
 * Narrow the finalize decision to what the snapshot can vouch for (pure):
 * - a `delta` snapshot deactivates nothing for absence (no students, parents or links
 *   removed, and an empty delta is not "suspicious");
 * - a connector with `guardianLinksComplete: false` (Infinite Campus: guardians only with
 *   portal access) deactivates no parent account for absence (its links would go with it).
 * Link removals in the input come only from chunks with `relationshipsSupplied: true`.
 */
export function scopeFinalizeInput(
  input: FinalizeInput,
  meta: Record<string, string>,
  capabilities: Pick<ConnectorCapabilities, 'guardianLinksComplete'>,
): FinalizeInput {
  const scope = absenceScope(meta, capabilities);
  return {
    ...input,
    ...(scope.students ? {} : { activeStudents: noActive(), linkRemovals: [] }),
    ...(scope.parents ? {} : { activeSisParents: noActive() }),
  };
}

/**
 * Which absences the snapshot vouches for (`scopeFinalizeInput`): students (and links) unless
 * a delta, parent accounts unless a delta or a feed without complete guardian lists. Finalize
 * collects absent ids only for these (the other scans only count).
 */
export function absenceScope(
  meta: Record<string, string>,
  capabilities: Pick<ConnectorCapabilities, 'guardianLinksComplete'>,
): { students: boolean; parents: boolean } {
  const full = meta.snapshot !== 'delta';
  return { students: full, parents: full && capabilities.guardianLinksComplete !== false };
}

/**
 * Finalize hook `connector-state`: record the run's snapshot kind and watermark (skipped for
 * dry runs and connectors without deltas). Idempotent per run. Returns
 * `{ pull: { full | delta: 1 } }` so the run report says which it was.
 */
export const connectorStateHook: FinalizeHook = async (ctx, input): Promise<RunCounts | void> => {
  if (input.dryRun || !input.capabilities.delta) return;
  const meta = await ctx.ledger.meta(input.run.id);
  const snapshot =
    meta.snapshot === 'delta' ? 'delta' : meta.snapshot === 'full' ? 'full' : undefined;
  if (!snapshot) return;
  const repo = await connectorStateRepository(ctx.store);
  await repo.recordRun({
    districtId: input.run.districtId,
    connector: input.run.connector,
    runId: input.run.id,
    snapshot,
    watermark: meta.watermark || undefined,
    at: new Date().toISOString(),
  });
  return { pull: { [snapshot]: 1 } };
};
