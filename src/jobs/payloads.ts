/**
 * Job payloads, one zod schema per job name; checked when enqueued and again in the
 * processor (a payload from an older deployment fails loudly instead of half-working).
 */
import { z } from 'zod';
import { RosterChunkSchema } from '../mapping/canonical.js';

export const TriggerPayload = z.strictObject({
  districtId: z.string().min(1),
  dryRun: z.boolean().default(false),
  trigger: z.string().min(1).default('schedule'),
  /** Who asked: `schedule`, `api:<token name>`, `cli:<os user>` (default: the trigger). */
  actor: z.string().min(1).optional(),
});
export type TriggerPayload = z.infer<typeof TriggerPayload>;

export const PullPayload = z.strictObject({
  districtId: z.string().min(1),
  runId: z.string().min(1),
});
export type PullPayload = z.infer<typeof PullPayload>;

export const ApplyPayload = z.strictObject({
  districtId: z.string().min(1),
  runId: z.string().min(1),
  chunkNo: z.number().int().min(0),
  /** Pull generation that produced the chunk; stale generations are ignored. */
  generation: z.number().int().min(1),
  chunk: RosterChunkSchema,
});
export type ApplyPayload = z.infer<typeof ApplyPayload>;

export const FinalizePayload = PullPayload;
export type FinalizePayload = PullPayload;
