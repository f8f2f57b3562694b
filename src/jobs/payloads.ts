/**
 * Job payloads, one zod schema per job name; checked when enqueued and again in the
 * processor (a payload from an older deployment fails loudly instead of half-working).
 * The apply payload is the exception (docs/decisions/0014): its chunk is our own pull's
 * output, whose records were validated at the SIS boundary (each connector's zod schemas), so
 * the processor checks only its version tag and shape (`trustedApplyPayload`), not every record.
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

/**
 * Version of the apply payload's layout: bump it when `ApplyPayload` or the canonical records
 * change, so that a chunk queued by an older deployment is refused instead of misread.
 */
export const APPLY_PAYLOAD_VERSION = 2;

export const ApplyPayload = z.strictObject({
  v: z.literal(APPLY_PAYLOAD_VERSION),
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

/** An apply payload of another version, or not shaped like one (not retryable). */
export class ApplyPayloadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ApplyPayloadError';
  }
}

/**
 * The apply payload our own pull wrote (`ApplyPayload`), checked cheaply: the version tag,
 * the ids and the chunk's arrays, not each record (validated at the SIS boundary when pulled).
 * Throws `ApplyPayloadError` for another version or shape.
 */
export function trustedApplyPayload(data: unknown): ApplyPayload {
  const d = data as Partial<Record<keyof ApplyPayload, unknown>> | null;
  if (typeof d !== 'object' || d === null)
    throw new ApplyPayloadError('apply payload: not an object');
  if (d.v !== APPLY_PAYLOAD_VERSION)
    throw new ApplyPayloadError(
      `apply payload version ${String(d.v)}, expected ${APPLY_PAYLOAD_VERSION} (queued by another deployment?)`,
    );
  const c = d.chunk as Partial<Record<string, unknown>> | null | undefined;
  const ok =
    typeof d.districtId === 'string' &&
    d.districtId !== '' &&
    typeof d.runId === 'string' &&
    d.runId !== '' &&
    Number.isInteger(d.chunkNo) &&
    Number.isInteger(d.generation) &&
    typeof c === 'object' &&
    c !== null &&
    Array.isArray(c.students) &&
    Array.isArray(c.guardians) &&
    Array.isArray(c.relationships) &&
    typeof c.relationshipsSupplied === 'boolean' &&
    (c.sections === undefined || Array.isArray(c.sections)) &&
    (c.enrollments === undefined || Array.isArray(c.enrollments));
  if (!ok) throw new ApplyPayloadError('apply payload: missing or mistyped fields');
  return d as ApplyPayload;
}
