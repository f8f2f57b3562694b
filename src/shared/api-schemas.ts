/**
 * zod schemas of the admin API's run and district answers, shared by the API (which validates
 * and shapes its output with them and generates the OpenAPI document from them,
 * src/api/schemas.ts) and the admin console (which validates the answers it reads with them,
 * src/console/api/schemas.ts). One definition, so the two cannot drift.
 *
 * Browser-safe: this module imports zod only (eslint enforces it for src/shared). Parsing with
 * these schemas drops keys they do not list (zod's default), so an older console never fails
 * on a field a newer API adds.
 */
import { z } from 'zod';

/**
 * How long a run waited in queues, in ms (derived when a run is read: `runQueueWait` in
 * src/api/schemas.ts).
 */
export const RunQueueWait = z
  .object({
    pullMs: z
      .number()
      .int()
      .describe(
        'trigger (createdAt) → the pull started (startedAt): waiting for a worker or a pull slot; while still queued, the wait so far',
      ),
    queued: z.boolean().describe('true: the run is still queued, `pullMs` keeps growing'),
    applyAvgMs: z
      .number()
      .int()
      .optional()
      .describe(
        "a chunk's average wait from enqueued to applied start (worker slot and the district's turn); set when the run finalized",
      ),
    applyMaxMs: z.number().int().optional().describe("the longest chunk's wait"),
  })
  .meta({ id: 'RunQueueWait' });
export type RunQueueWait = z.infer<typeof RunQueueWait>;

/**
 * Keys of `timings` (ms) where finalize stores how long the run's chunks waited from enqueued
 * to their apply start: the average and the longest (src/jobs/sync.ts).
 */
export const APPLY_WAIT_TIMINGS = { avg: 'applyWait.avg', max: 'applyWait.max' } as const;

/**
 * The queue wait of a run (see `RunQueueWait`): from its `createdAt`, `startedAt` and the
 * apply-wait `timings`; undefined for a run that ended without starting (cancelled while
 * queued). `nowMs`: the clock, for a run still queued.
 */
export function runQueueWait(
  run: {
    status: string;
    createdAt: string;
    startedAt?: string | undefined;
    timings: Record<string, number>;
  },
  nowMs = Date.now(),
): RunQueueWait | undefined {
  const created = Date.parse(run.createdAt);
  const queued = run.status === 'queued' && run.startedAt === undefined;
  if (!queued && run.startedAt === undefined) return undefined;
  const pullMs = Math.max(0, (queued ? nowMs : Date.parse(run.startedAt ?? '')) - created);
  if (!Number.isFinite(pullMs)) return undefined;
  const avg = run.timings[APPLY_WAIT_TIMINGS.avg];
  const max = run.timings[APPLY_WAIT_TIMINGS.max];
  return {
    pullMs: Math.round(pullMs),
    queued,
    ...(avg === undefined ? {} : { applyAvgMs: Math.round(avg) }),
    ...(max === undefined ? {} : { applyMaxMs: Math.round(max) }),
  };
}

/** A running run whose worker is not heard from (src/jobs/run-liveness.ts `RunStall`). */
export const RunStall = z
  .object({
    job: z.enum(['pull', 'apply', 'finalize']).describe('the stuck job'),
    jobId: z.string(),
    worker: z.string().optional().describe('the worker process that took it (host-pid-hex)'),
    workerConnected: z.boolean().describe('false: that worker is no longer connected to Redis'),
    lastHeardAt: z
      .string()
      .describe('last renewal of the job lock (ISO); when it expired, the latest it can have been'),
    silentForMs: z.number().int(),
    lockExpiresAt: z.string().optional().describe('absent: the lock has expired'),
    takeoverExpectedBy: z
      .string()
      .optional()
      .describe(
        'lock expiry + one stalled check (ISO); absent when no worker is connected to the queue',
      ),
    message: z.string().describe('the same in a sentence, for an admin'),
  })
  .meta({ id: 'RunStall' });
export type RunStall = z.infer<typeof RunStall>;

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
    queueWait: RunQueueWait.optional().describe(
      'how long the run waited in queues (absent for a run cancelled before it started)',
    ),
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
  stalled: RunStall.optional().describe(
    'running, but the worker that holds one of its jobs is not heard from (killed, hung or disconnected): which job, since when, when another worker should take it up. Absent while every worker of the run is alive',
  ),
}).meta({ id: 'RunDetail' });
export type RunDetail = z.infer<typeof RunDetail>;

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
export type HeldItem = z.infer<typeof HeldItem>;

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
export type RejectItem = z.infer<typeof RejectItem>;

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
export type DistrictDetail = z.infer<typeof DistrictDetail>;

/** The console session (`POST|GET /session`). */
export const Principal = z.object({
  name: z.string(),
  role: z.enum(['admin', 'viewer']),
  districts: z.array(z.string()).nullable().describe('null: every district'),
});
export type Principal = z.infer<typeof Principal>;

export const ConsoleSession = z
  .object({
    principal: Principal,
    via: z.enum(['session', 'bearer']),
    expiresAt: z.string().nullable().describe('end of the console session (ISO 8601)'),
    csrfToken: z
      .string()
      .nullable()
      .describe('send as header x-csrf-token with every POST/PUT/PATCH/DELETE of the session'),
  })
  .meta({ id: 'ConsoleSession' });
export type ConsoleSession = z.infer<typeof ConsoleSession>;
