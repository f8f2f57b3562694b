/**
 * Job payloads, one zod schema per job name; checked when enqueued and again in the
 * processor (a payload from an older deployment fails loudly instead of half-working).
 * The apply payload is the exception (docs/decisions/0014): its chunk is our own pull's
 * output, whose records were validated at the SIS boundary (each connector's zod schemas), so
 * the processor checks only its version tag and shape (`trustedApplyPayload`), not every record.
 * In Redis the apply payload's chunk travels encoded (`ApplyJobData`, docs/decisions/0015).
 */
import { z } from 'zod';
import { RosterChunkSchema } from '../mapping/canonical.js';
import {
  CHUNK_ENCODINGS,
  ChunkDecodeError,
  decodeChunk,
  encodeChunk,
  type ChunkEncoding,
} from './chunk-codec.js';

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
 * Version of the apply payload's layout: bump it when `ApplyPayload`, `ApplyJobData`, the
 * chunk encoding (src/jobs/chunk-codec.ts) or the canonical records change, so that a chunk
 * queued by an older deployment is refused instead of misread.
 * 3: the chunk travels as `ApplyJobData.body` (msgpackr records, base64; was plain JSON `chunk`).
 */
export const APPLY_PAYLOAD_VERSION = 3;

/** An apply job's payload once decoded: what `handleApply` works on. */
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

/** Record counts of a chunk, shown as plain fields of its apply job (dashboard, logs). */
export interface ChunkSize {
  students: number;
  guardians: number;
  relationships: number;
}

/**
 * An apply job's data as stored in Redis (BullMQ job `data`, one JSON string): the routing
 * fields in plain JSON (read by the dashboard, `src/jobs/chunk-turns.ts`, the failed-job
 * handler), the chunk's counts, and the chunk itself encoded (`body`: base64 text of its
 * msgpackr form, or JSON text for a chunk with a lone surrogate; `enc` names which,
 * src/jobs/chunk-codec.ts). A failed job is stripped of `body`
 * (`src/jobs/job-retention.ts`: `stripped: true`).
 */
export interface ApplyJobData extends Omit<ApplyPayload, 'chunk'> {
  size: ChunkSize;
  enc: ChunkEncoding;
  body: string;
}

/** The job data of an apply payload (`ApplyJobData`): the chunk encoded, the rest as is. Pure. */
export function applyJobData(p: ApplyPayload): ApplyJobData {
  const { chunk, ...rest } = p;
  return { ...rest, size: chunkSize(chunk), ...encodeChunk(chunk) };
}

/** A chunk's record counts (`ApplyJobData.size`). */
export function chunkSize(chunk: ApplyPayload['chunk']): ChunkSize {
  return {
    students: chunk.students.length,
    guardians: chunk.guardians.length,
    relationships: chunk.relationships.length,
  };
}

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
 * The apply payload our own pull wrote (`ApplyJobData`), checked cheaply and decoded: the
 * version tag, the ids, the encoding, then the decoded chunk's arrays, not each record
 * (validated at the SIS boundary when pulled). Throws `ApplyPayloadError` for another version
 * (an older deployment's plain JSON chunk included), a stripped job, or another shape.
 */
export function trustedApplyPayload(data: unknown): ApplyPayload {
  const d = data as Partial<Record<keyof ApplyJobData | 'chunk' | 'stripped', unknown>> | null;
  if (typeof d !== 'object' || d === null)
    throw new ApplyPayloadError('apply payload: not an object');
  if (d.v !== APPLY_PAYLOAD_VERSION)
    throw new ApplyPayloadError(
      `apply payload version ${String(d.v)}, expected ${APPLY_PAYLOAD_VERSION} (queued by another deployment?)`,
    );
  if (d.stripped === true)
    throw new ApplyPayloadError('apply payload: stripped of its chunk (the job had failed)');
  const ids =
    typeof d.districtId === 'string' &&
    d.districtId !== '' &&
    typeof d.runId === 'string' &&
    d.runId !== '' &&
    Number.isInteger(d.chunkNo) &&
    Number.isInteger(d.generation);
  const enc = CHUNK_ENCODINGS.find(e => e === d.enc);
  if (!ids || !enc || typeof d.body !== 'string' || d.chunk !== undefined)
    throw new ApplyPayloadError('apply payload: missing or mistyped fields');
  let c: Partial<Record<string, unknown>> | null;
  try {
    c = decodeChunk({ enc, body: d.body }) as Partial<Record<string, unknown>> | null;
  } catch (err) {
    if (err instanceof ChunkDecodeError) throw new ApplyPayloadError(err.message);
    throw err;
  }
  const ok =
    typeof c === 'object' &&
    c !== null &&
    Array.isArray(c.students) &&
    Array.isArray(c.guardians) &&
    Array.isArray(c.relationships) &&
    typeof c.relationshipsSupplied === 'boolean' &&
    (c.sections === undefined || Array.isArray(c.sections)) &&
    (c.enrollments === undefined || Array.isArray(c.enrollments));
  if (!ok) throw new ApplyPayloadError('apply payload: the decoded chunk is not shaped like one');
  return {
    v: APPLY_PAYLOAD_VERSION,
    districtId: d.districtId as string,
    runId: d.runId as string,
    chunkNo: d.chunkNo as number,
    generation: d.generation as number,
    chunk: c as unknown as ApplyPayload['chunk'],
  };
}
