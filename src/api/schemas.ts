/**
 * zod schemas of the API's request parameters and responses. They validate input, shape
 * output (unknown keys are stripped, so nothing internal leaks) and generate the OpenAPI
 * document (`/docs/json`). Schemas with `.meta({ id })` become named OpenAPI components.
 * The run, district, held and reject answers are defined once in src/shared/api-schemas.ts,
 * which the admin console reads too; this module re-exports them and maps store records to
 * them.
 */
import { z } from 'zod';
import type { DistrictConfig } from '../config/district.js';
import type { SyncRun } from '../models/types.js';
import { syncModeAt, describeSyncMode } from '../reconcile/freeze.js';
import {
  runQueueWait,
  type DistrictSummary,
  type RunDetail,
  type RunSummary,
} from '../shared/api-schemas.js';

export {
  DistrictDetail,
  DistrictSummary,
  HeldItem,
  RejectItem,
  RunCounts,
  RunDetail,
  RunQueueWait,
  RunStall,
  RunStatus,
  RunSummary,
} from '../shared/api-schemas.js';

export const DistrictIdParams = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a district id'),
});
export const RunIdParams = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a run id'),
});

/** A run as the API shows it in lists. `nowMs`: the clock (the wait of a queued run). */
export function runSummary(run: SyncRun, nowMs = Date.now()): RunSummary {
  return {
    id: run.id,
    districtId: run.districtId,
    connector: run.connector,
    status: run.status,
    dryRun: run.dryRun,
    trigger: run.trigger,
    actor: run.actor,
    decidedBy: run.decidedBy,
    decidedAt: run.decidedAt,
    createdAt: run.createdAt,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    counts: run.counts,
    rejectCount: run.rejectCount,
    timings: run.timings,
    error: run.error,
    waiting: run.waiting,
    held: run.held && { ...run.held },
    queueWait: runQueueWait(run, nowMs),
    config: run.config && {
      ...run.config,
      refused: run.config.refused && {
        ...run.config.refused,
        problems: [...run.config.refused.problems],
      },
    },
  };
}

/** A run with the addresses of the lists it holds (`GET /runs/:id/held/{kind}`). */
export function runDetail(run: SyncRun): RunDetail {
  const at = (kind: string) => `/runs/${run.id}/held/${kind}`;
  return {
    ...runSummary(run),
    heldLists: run.held && { students: at('students'), parents: at('parents'), links: at('links') },
  };
}

/** `url` without user info (a base URL could carry credentials). */
function withoutCredentials(url: string): string | undefined {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return undefined;
  }
}

/** The public part of a district's configuration (no secrets, no variable names). */
export function districtSummary(
  d: DistrictConfig,
  scheduler: { installed: boolean; next?: number | undefined },
  now = new Date(),
): DistrictSummary {
  const conn = d.connector as { kind: string; baseUrl?: unknown };
  return {
    id: d.id,
    name: d.name,
    connector: {
      kind: conn.kind,
      baseUrl: typeof conn.baseUrl === 'string' ? withoutCredentials(conn.baseUrl) : undefined,
    },
    schedule: d.schedule
      ? {
          cron: d.schedule.cron,
          timezone: d.schedule.timezone,
          installed: scheduler.installed,
          nextRunAt: scheduler.next !== undefined ? new Date(scheduler.next).toISOString() : null,
        }
      : null,
    policies: {
      deletionThresholdPercent: d.policies.deletionThresholdPercent,
      parentRole: d.policies.parentRole,
      addOnly: d.policies.addOnly,
      freezeWindows: d.policies.freezeWindows,
    },
    syncMode: describeSyncMode(syncModeAt(d, now)),
  };
}
