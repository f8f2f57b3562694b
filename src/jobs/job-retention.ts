/**
 * What pipeline jobs keep in Redis once they are done (docs/operations.md "Roster data in
 * Redis"). Apply jobs carry a chunk of roster data (names, emails, phones): a completed one
 * is removed at once (`JOB_OPTIONS.apply.removeOnComplete`); a failed one is stripped to
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
 * Replace the roster chunk of an apply job that failed for good by its counts (the job's
 * ids, error and attempts stay for diagnosis). A stripped job cannot be retried by hand: its
 * run failed, and a new sync pulls the data again. Idempotent; throws when Redis fails.
 */
export async function stripFailedApplyJob(job: Job): Promise<void> {
  const data = job.data as Record<string, unknown> | undefined;
  const chunk = data?.chunk as Record<string, unknown> | undefined;
  if (!data || !chunk || chunk.stripped === true) return;
  const stripped: StrippedChunk = {
    stripped: true,
    students: len(chunk.students),
    guardians: len(chunk.guardians),
    relationships: len(chunk.relationships),
  };
  await job.updateData({ ...data, chunk: stripped });
}
