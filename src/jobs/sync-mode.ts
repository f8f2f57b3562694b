/**
 * Freeze windows at trigger time: a scheduled sync inside a `no-sync` window is skipped
 * (runs an admin starts by hand still run, add-only; see `handleFinalize`).
 */
import type { AppContext } from '../app.js';
import { describeSyncMode, syncModeAt } from '../reconcile/freeze.js';
import type { TriggerPayload } from './payloads.js';

/**
 * Why a scheduled trigger must not start a run now, or `undefined` when it may.
 * Throws `ConfigError` for an unknown district.
 */
export function scheduledSyncSkipped(
  ctx: Pick<AppContext, 'district' | 'logger'>,
  req: TriggerPayload,
  now = new Date(),
): string | undefined {
  if (req.trigger !== 'schedule') return undefined;
  const mode = syncModeAt(ctx.district(req.districtId), now);
  if (mode.mode !== 'no-sync') return undefined;
  const why = describeSyncMode(mode);
  ctx.logger.info({ districtId: req.districtId, mode: why }, 'scheduled sync skipped');
  return why;
}
