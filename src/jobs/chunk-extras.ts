/**
 * What the apply step does for a chunk besides the roster (called once from `handleApply`,
 * after the chunk's roster plan):
 * - sections and enrollments (`RosterChunk.sections` / `.enrollments`): written through the
 *   sections repository with change detection, so a no-change resync writes nothing there
 *   either (invariant 1);
 * - dry runs only: the students the plan would create or reactivate, and which of them would
 *   get a guardian link, go to a per-run Redis set, so the finalize step's access-code count
 *   of a dry run includes students that are not in the store yet (invariant 12: the preview
 *   shows what the real run does).
 */
import type { AppContext } from '../app.js';
import type { RosterChunk } from '../mapping/canonical.js';
import type { ChunkPlan, RunCounts } from '../models/types.js';
import { sectionRepository } from '../models/sections/index.js';
import { LEDGER_TTL_SECONDS } from './ledger.js';

/** Redis keys of a dry run's would-be-new students (all, and those that would get a link). */
export function dryRunStudentKeys(
  prefix: string,
  runId: string,
): { added: string; linked: string } {
  return {
    added: `${prefix}:ac-dry:${runId}:added`,
    linked: `${prefix}:ac-dry:${runId}:linked`,
  };
}

/**
 * Apply (or with `dryRun`, count) a chunk's sections and enrollments, and for a dry run
 * record its would-be-new students. Returns `{ section: {…}, enrollment: {…} }` counts
 * (empty when unchanged or not supplied). Idempotent.
 */
export async function applyChunkExtras(
  ctx: Pick<AppContext, 'store' | 'redis' | 'prefix'>,
  p: { districtId: string; runId: string; chunk: RosterChunk },
  plan: ChunkPlan,
  dryRun: boolean,
): Promise<RunCounts> {
  if (dryRun) {
    const added = plan.students
      // a moved student keeps its codes: only creations and reactivations are new
      .filter(
        s => (s.action === 'create' || s.action === 'reactivate') && s.record.status === 'active',
      )
      .map(s => s.record.sourcedId);
    if (added.length > 0) {
      const addedSet = new Set(added);
      const linked = plan.links
        .filter(l => l.link.status === 'active' && addedSet.has(l.link.studentSourcedId))
        .map(l => l.link.studentSourcedId);
      const k = dryRunStudentKeys(ctx.prefix, p.runId);
      const m = ctx.redis
        .multi()
        .sadd(k.added, ...added)
        .expire(k.added, LEDGER_TTL_SECONDS);
      if (linked.length) m.sadd(k.linked, ...linked).expire(k.linked, LEDGER_TTL_SECONDS);
      await m.exec();
    }
  }
  const { chunk } = p;
  if (chunk.sections === undefined && chunk.enrollments === undefined) return {};
  const repo = await sectionRepository(ctx.store);
  return repo.applyChunk(
    p.districtId,
    {
      studentSourcedIds: chunk.students.map(s => s.sourcedId),
      sections: chunk.sections,
      enrollments: chunk.enrollments,
    },
    { dryRun },
  );
}
