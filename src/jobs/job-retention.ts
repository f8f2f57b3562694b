/**
 * What pipeline jobs keep in Redis once they are done (docs/operations.md "Roster data in
 * Redis"). Apply jobs carry a chunk of roster data (names, emails, phones; encoded, ADR 0015):
 * a completed one is removed at once (`JOB_OPTIONS.apply.removeOnComplete`); a failed one is stripped to
 * counts when it fails for good (`stripFailedApplyJob`) and removed after
 * `APPLY_FAILED_RETENTION_SECONDS`.
 */
import type { Job } from 'bullmq';

/** How long a failed apply job (stripped of roster data) stays in Redis, in seconds: 7 days. */
export const APPLY_FAILED_RETENTION_SECONDS = 7 * 24 * 3600;

/** Counts that replace a failed apply job's chunk (no personal data). */
export interface StrippedChunk {
  stripped: true;
  students: number;
  guardians: number;
  relationships: number;
}

const len = (v: unknown): number => (Array.isArray(v) ? v.length : 0);

/**
 * Remove the roster chunk of an apply job that failed for good (the job's ids, chunk counts,
 * error and attempts stay for diagnosis): the encoded `body` of an `ApplyJobData`
 * (src/jobs/payloads.ts) is dropped and `stripped: true` added; a plain JSON `chunk` (apply
 * payload version 2 and earlier, refused as such) is replaced by its counts (`StrippedChunk`).
 * A stripped job cannot be retried by hand: its run failed, and a new sync pulls the data
 * again. Idempotent; throws when Redis fails.
 */
export async function stripFailedApplyJob(job: Job): Promise<void> {
  const data = job.data as Record<string, unknown> | undefined;
  if (!data) return;
  if (typeof data.body === 'string') {
    const rest: Record<string, unknown> = { ...data, stripped: true };
    delete rest.body;
    await job.updateData(rest);
    return;
  }
  const chunk = data.chunk as Record<string, unknown> | undefined;
  if (!chunk || chunk.stripped === true) return;
  const stripped: StrippedChunk = {
    stripped: true,
    students: len(chunk.students),
    guardians: len(chunk.guardians),
    relationships: len(chunk.relationships),
  };
  await job.updateData({ ...data, chunk: stripped });
}
