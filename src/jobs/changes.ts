/**
 * Change-log consumers (design invariant 13): side effects derived from the change log, never
 * from the run ledger or process memory. One `change-consumers` job per district reads the
 * entries after its durable cursor and derives activation emails and metrics from them.
 */
import type { AppContext } from '../app.js';
import { QueueName } from '../workers/queues.js';

/** BullMQ job id of a district's consumer job (one waiting job per district at a time). */
export function changesJobId(districtId: string): string {
  return `changes.${districtId}`;
}

/**
 * Ask the change-log consumers to catch up with the district's log (after any write that
 * logged changes). Cheap and idempotent: while a job for the district is waiting, adding
 * another is a no-op; a periodic sweep covers a kick lost in between.
 */
export async function kickChanges(
  ctx: Pick<AppContext, 'queues'>,
  districtId: string,
): Promise<void> {
  await ctx.queues.changes.add(
    QueueName.changes,
    { districtId },
    { jobId: changesJobId(districtId), removeOnComplete: true, removeOnFail: 100 },
  );
}
