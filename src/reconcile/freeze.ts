/**
 * Which kind of sync a district allows right now: its `addOnly` policy and its freeze
 * windows (`policies.freezeWindows`, dates inclusive in the district's schedule time zone).
 * Pure: the caller passes the clock.
 */
import type { DistrictConfig, FreezeWindow } from '../config/district.js';

/**
 * `normal`: everything; `add-only`: creates and updates, no deactivations;
 * `no-sync`: scheduled runs are skipped (runs an admin starts by hand still run, add-only).
 */
export type SyncMode = 'normal' | 'add-only' | 'no-sync';

export interface SyncModeDecision {
  mode: SyncMode;
  /** Why: `policy` (addOnly) or the freeze window in force. */
  because?: 'policy' | FreezeWindow;
}

/**
 * The calendar date `YYYY-MM-DD` of `now` in IANA time zone `timeZone`.
 * Throws `RangeError` for an unknown time zone (Intl).
 */
export function localDate(now: Date, timeZone: string): string {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(now);
}

/**
 * The sync mode of `district` at `now`. A `no-sync` window wins over an `add-only` one when
 * both are in force; the `addOnly` policy makes every other moment `add-only`.
 */
export function syncModeAt(
  district: Pick<DistrictConfig, 'policies' | 'schedule'>,
  now: Date,
): SyncModeDecision {
  const today = localDate(now, district.schedule?.timezone ?? 'UTC');
  const inForce = district.policies.freezeWindows.filter(w => w.from <= today && today <= w.to);
  const noSync = inForce.find(w => w.mode === 'no-sync');
  if (noSync) return { mode: 'no-sync', because: noSync };
  const addOnly = inForce.find(w => w.mode === 'add-only');
  if (addOnly) return { mode: 'add-only', because: addOnly };
  if (district.policies.addOnly) return { mode: 'add-only', because: 'policy' };
  return { mode: 'normal' };
}

/** Short text for run reports and logs, e.g. `freeze window 2025-06-20..2025-08-15 (summer)`. */
export function describeSyncMode(d: SyncModeDecision): string {
  if (!d.because) return d.mode;
  if (d.because === 'policy') return `${d.mode} (district policy addOnly)`;
  const w = d.because;
  return `${d.mode} (freeze window ${w.from}..${w.to}${w.reason ? `: ${w.reason}` : ''})`;
}
