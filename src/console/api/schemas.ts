/**
 * zod schemas of the API answers the console reads (a subset of the API's own schemas,
 * src/api/schemas.ts; unknown keys are kept, so new API fields do not break the console).
 */
import { z } from 'zod';

export const Principal = z.object({
  name: z.string(),
  role: z.enum(['admin', 'viewer']),
  districts: z.array(z.string()).nullable(),
});
export type Principal = z.infer<typeof Principal>;

export const Session = z.object({
  principal: Principal,
  via: z.enum(['session', 'bearer']),
  expiresAt: z.string().nullable(),
  csrfToken: z.string().nullable(),
});
export type Session = z.infer<typeof Session>;

export const RunSummary = z.looseObject({
  id: z.string(),
  districtId: z.string(),
  connector: z.string(),
  status: z.string(),
  dryRun: z.boolean(),
  trigger: z.string(),
  actor: z.string().optional(),
  decidedBy: z.string().optional(),
  decidedAt: z.string().optional(),
  createdAt: z.string(),
  startedAt: z.string().optional(),
  finishedAt: z.string().optional(),
  counts: z.record(z.string(), z.record(z.string(), z.number())),
  rejectCount: z.number(),
  timings: z.record(z.string(), z.number()),
  error: z.string().optional(),
  waiting: z.object({ until: z.string(), reason: z.string(), reschedules: z.number() }).optional(),
  held: z.object({ students: z.number(), parents: z.number(), links: z.number() }).optional(),
  waitingForWorkerSince: z.string().optional(),
});
export type RunSummary = z.infer<typeof RunSummary>;

export const FreezeWindow = z.object({
  from: z.string(),
  to: z.string(),
  mode: z.string(),
  reason: z.string().optional(),
});

export const DistrictSummary = z.looseObject({
  id: z.string(),
  name: z.string(),
  connector: z.object({ kind: z.string(), baseUrl: z.string().optional() }),
  schedule: z
    .object({
      cron: z.string(),
      timezone: z.string(),
      installed: z.boolean(),
      nextRunAt: z.string().nullable(),
    })
    .nullable(),
  policies: z.looseObject({
    deletionThresholdPercent: z.number(),
    parentRole: z.string(),
    addOnly: z.boolean(),
    freezeWindows: z.array(FreezeWindow),
  }),
  syncMode: z.string(),
});
export type DistrictSummary = z.infer<typeof DistrictSummary>;

export const DistrictDetail = DistrictSummary.extend({
  lastRun: RunSummary.nullable(),
  activeRun: RunSummary.nullable(),
  heldRuns: z.array(RunSummary).default([]),
});
export type DistrictDetail = z.infer<typeof DistrictDetail>;

export const DistrictList = z.object({ items: z.array(DistrictSummary) });
export const RunList = z.object({ items: z.array(RunSummary) });
export const TriggerResult = z.object({ started: z.boolean(), run: RunSummary });
export const HeldDecision = z.object({ run: RunSummary });

export const RejectItem = z.object({
  entity: z.string(),
  recordId: z.string(),
  reason: z.string(),
  kind: z.string(),
});
export type RejectItem = z.infer<typeof RejectItem>;

export const HeldItem = z.object({
  kind: z.string(),
  studentSourcedId: z.string().optional(),
  studentUniqueId: z.string().optional(),
  studentName: z.string().optional(),
  parentId: z.string().optional(),
  parentUniqueId: z.string().optional(),
  parentName: z.string().optional(),
  parentEmail: z.string().optional(),
  reason: z.string(),
});
export type HeldItem = z.infer<typeof HeldItem>;

/** A page of a server-paged list: `{total, offset, limit, items}`. */
export function pageOf<T extends z.ZodType>(item: T) {
  return z.looseObject({
    total: z.number(),
    offset: z.number(),
    limit: z.number(),
    items: z.array(item),
  });
}
