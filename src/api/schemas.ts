/**
 * zod schemas of the API's request parameters and responses. They validate input, shape
 * output (unknown keys are stripped, so nothing internal leaks) and generate the OpenAPI
 * document (`/docs/json`). Schemas with `.meta({ id })` become named OpenAPI components.
 */
import { z } from 'zod';
import type { DistrictConfig } from '../config/district.js';
import type { SyncRun } from '../models/types.js';
import { syncModeAt, describeSyncMode } from '../reconcile/freeze.js';

export const DistrictIdParams = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a district id'),
});
export const RunIdParams = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be a run id'),
});

export const RunCounts = z
  .record(z.string(), z.record(z.string(), z.number()))
  .describe('entity → action → number, e.g. {"student":{"create":10}}');

/** A string, not an enum: a status added later must not make run lists fail to serialize. */
export const RunStatus = z
  .string()
  .describe('queued, running, succeeded, failed, needs-approval, discarded or cancelled');

export const RunSummary = z
  .object({
    id: z.string(),
    districtId: z.string(),
    connector: z.string(),
    status: RunStatus,
    dryRun: z.boolean(),
    trigger: z.string().describe('schedule, api, cli, …'),
    actor: z.string().optional().describe('who started it: schedule, api:<token>, cli:<user>'),
    decidedBy: z
      .string()
      .optional()
      .describe('who approved or discarded a held run, or cancelled a run'),
    decidedAt: z.string().optional(),
    createdAt: z.string(),
    startedAt: z.string().optional(),
    finishedAt: z.string().optional(),
    counts: RunCounts.describe(
      'changes by entity and action, from the change log; deactivate-held / remove-held: held for approval; -skipped: add-only',
    ),
    rejectCount: z.number().int(),
    timings: z.record(z.string(), z.number()).describe('milliseconds per phase'),
    error: z.string().optional(),
    waiting: z
      .object({ until: z.string(), reason: z.string(), reschedules: z.number().int() })
      .optional()
      .describe(
        'the pull waits for the SIS (HTTP 429 with a long Retry-After): rescheduled to `until`; kept after it resumed',
      ),
    held: z
      .object({ students: z.number(), parents: z.number(), links: z.number() })
      .optional()
      .describe('numbers of deactivations held by the deletion safeguard'),
    config: z
      .object({
        file: z.string().optional().describe('the district file (absent: configured in code)'),
        sha256: z
          .string()
          .optional()
          .describe(
            "sha256 (hex) of the file's bytes as loaded (absent until a worker took the run)",
          ),
        loadedAt: z.string().optional().describe('when the process read it (ISO)'),
        refused: z
          .object({
            file: z.string(),
            sha256: z.string().optional(),
            at: z.string(),
            problems: z.array(z.string()),
          })
          .optional()
          .describe(
            'the district file on disk could not be used (e.g. a secret it names is not set): the run used the configuration loaded before (file, sha256, loadedAt above)',
          ),
      })
      .optional()
      .describe(
        'which district configuration the run used: recorded at trigger and again by the worker when its pull starts',
      ),
  })
  .meta({ id: 'RunSummary' });
export type RunSummary = z.infer<typeof RunSummary>;

export const RunDetail = RunSummary.extend({
  heldLists: z
    .object({ students: z.string(), parents: z.string(), links: z.string() })
    .optional()
    .describe('where to list what approving this run deactivates (paged JSON; add .csv for CSV)'),
  waitingForWorkerSince: z
    .string()
    .optional()
    .describe(
      'queued and no worker is connected to the queues: waiting since then (ISO); start `guardian-sync worker` or cancel the run',
    ),
}).meta({ id: 'RunDetail' });
export type RunDetail = z.infer<typeof RunDetail>;

/** A run as the API shows it in lists. */
export function runSummary(run: SyncRun): RunSummary {
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

/** One held record as the API and its CSV list it (names and Unique IDs from the store). */
export const HeldItem = z
  .object({
    kind: z.enum(['student', 'parent', 'link']),
    studentSourcedId: z.string().optional(),
    studentUniqueId: z.string().optional(),
    studentName: z.string().optional(),
    parentId: z.string().optional(),
    parentUniqueId: z.string().optional(),
    parentName: z.string().optional(),
    parentEmail: z.string().optional(),
    reason: z.string().describe('why approving deactivates it'),
  })
  .meta({ id: 'HeldItem' });

export const RejectItem = z
  .object({
    entity: z.string(),
    recordId: z.string().describe('SIS record id or file row'),
    reason: z.string(),
    kind: z
      .enum(['rejected', 'excluded'])
      .describe(
        '`rejected`: the record failed validation; `excluded`: a valid record a rule or district policy left out (`reason` names the rule)',
      ),
  })
  .meta({ id: 'Reject' });

export const DistrictSummary = z
  .object({
    id: z.string(),
    name: z.string(),
    connector: z.object({
      kind: z.string(),
      baseUrl: z.string().optional().describe('without credentials'),
    }),
    schedule: z
      .object({
        cron: z.string(),
        timezone: z.string(),
        installed: z.boolean().describe('a worker has installed the job scheduler'),
        nextRunAt: z.string().nullable().describe('next scheduled run (ISO 8601)'),
      })
      .nullable(),
    policies: z.object({
      deletionThresholdPercent: z.number(),
      parentRole: z.string(),
      addOnly: z.boolean(),
      freezeWindows: z.array(
        z.object({
          from: z.string(),
          to: z.string(),
          mode: z.string(),
          reason: z.string().optional(),
        }),
      ),
    }),
    syncMode: z.string().describe('normal, add-only or no-sync now, with the reason'),
  })
  .meta({ id: 'DistrictSummary' });
export type DistrictSummary = z.infer<typeof DistrictSummary>;

export const DistrictDetail = DistrictSummary.extend({
  lastRun: RunSummary.nullable(),
  activeRun: RunSummary.nullable(),
  heldRuns: z
    .array(RunSummary)
    .describe(
      'runs held by the deletion safeguard, waiting for approval (newest first, of the last 50 runs)',
    ),
}).meta({ id: 'DistrictDetail' });

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
