/**
 * Steps that run at the end of every finished run, after deactivations (or the hold) and
 * before the run is closed: access-code issuance, connector state… (Activation emails are
 * not a hook: they are derived from the change log, src/jobs/changes.ts.)
 * Each feature registers one hook in `FINALIZE_HOOKS`; counts it returns are merged into
 * the run's counts (e.g. `{ code: { issue: 12 } }`). A hook that throws fails the finalize
 * job, which BullMQ retries, so hooks must be idempotent.
 */
import type { AppContext } from '../app.js';
import type { DistrictConfig } from '../config/district.js';
import type { ConnectorCapabilities } from '../connectors/types.js';
import type { RunCounts, SyncRun } from '../models/types.js';
import { ACCESS_CODES_HOOK_NAME, accessCodesFinalizeHook } from '../access-codes/finalize-hook.js';
import { connectorStateHook } from './connector-state.js';

export interface FinalizeHookInput {
  run: SyncRun;
  district: DistrictConfig;
  capabilities: ConnectorCapabilities;
  /** True for a dry run: hooks compute what they would do and change nothing. */
  dryRun: boolean;
  /** True when the deletion safeguard held this run's deactivations. */
  held: boolean;
}

export type FinalizeHook = (ctx: AppContext, input: FinalizeHookInput) => Promise<RunCounts | void>;

/** Registered hooks, run in order. */
export const FINALIZE_HOOKS: { name: string; run: FinalizeHook }[] = [
  { name: ACCESS_CODES_HOOK_NAME, run: accessCodesFinalizeHook },
  { name: 'connector-state', run: connectorStateHook },
];
