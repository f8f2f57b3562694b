/**
 * The finalize decision: which records a complete snapshot deactivates, and whether the
 * deletion safeguard holds them (design.md invariants 4, 5, 9, 10). Pure: the finalize job
 * gathers the inputs from the store and the run ledger.
 */
import type { Deactivations } from '../models/types.js';

export interface FinalizeInput {
  /** sourcedIds of students active in the store. */
  activeStudentIds: Iterable<string>;
  /** Active sync-owned parent accounts. */
  activeSisParentIds: Iterable<string>;
  /** Students delivered by this snapshot. */
  seenStudents: ReadonlySet<string>;
  /** Parent accounts this snapshot's guardians resolved to. */
  seenParents: ReadonlySet<string>;
  /** `sis` links the chunks found no longer listed by the SIS. */
  linkRemovals: { parentId: string; studentSourcedId: string }[];
  /**
   * Active `sis` accounts left with no active link by this run (their every link ended, and
   * none of another origin is active; issue 18 §5). Deactivated with the rest for every
   * connector, even one whose guardian lists are not complete, and counted by the safeguard.
   */
  orphanedParentIds?: readonly string[] | undefined;
  /**
   * Active `sis` accounts in the district: the safeguard's base for parents when
   * `activeSisParentIds` was scoped away (absence of guardians not counted). Defaults to the
   * number of `activeSisParentIds`.
   */
  activeSisParentTotal?: number | undefined;
  /** Deletion safeguard threshold, percent of active students or parents (default 10). */
  thresholdPercent: number;
}

export interface FinalizeDecision {
  deactivations: Deactivations;
  /** True when the safeguard holds every deactivation for an admin's approval. */
  hold: boolean;
  /** Why it was held (for the run record and the admin). */
  holdReason?: string | undefined;
}

/**
 * Decide deactivations. Held when students or parents to deactivate exceed
 * `thresholdPercent` of the active ones, or when the snapshot delivered no students at all
 * while the store has active students (an HTTP 200 with an empty list is suspicious).
 */
export function decideFinalize(input: FinalizeInput): FinalizeDecision {
  let activeStudents = 0;
  const studentSourcedIds: string[] = [];
  for (const id of input.activeStudentIds) {
    activeStudents++;
    if (!input.seenStudents.has(id)) studentSourcedIds.push(id);
  }
  let activeParents = 0;
  const parentIds: string[] = [];
  for (const id of input.activeSisParentIds) {
    activeParents++;
    if (!input.seenParents.has(id)) parentIds.push(id);
  }
  if (input.orphanedParentIds?.length) {
    const have = new Set(parentIds);
    for (const id of input.orphanedParentIds) if (!have.has(id)) parentIds.push(id);
  }
  activeParents = Math.max(activeParents, input.activeSisParentTotal ?? 0);
  const deactivations: Deactivations = {
    studentSourcedIds,
    parentIds,
    links: input.linkRemovals,
  };
  const limit = (active: number) => (active * input.thresholdPercent) / 100;
  const reasons: string[] = [];
  if (input.seenStudents.size === 0 && activeStudents > 0)
    reasons.push(`the snapshot has no students but ${activeStudents} are active`);
  if (studentSourcedIds.length > 0 && studentSourcedIds.length > limit(activeStudents))
    reasons.push(
      `${studentSourcedIds.length} of ${activeStudents} active students would be deactivated (threshold ${input.thresholdPercent} %)`,
    );
  if (parentIds.length > 0 && parentIds.length > limit(activeParents))
    reasons.push(
      `${parentIds.length} of ${activeParents} active parent accounts would be deactivated (threshold ${input.thresholdPercent} %)`,
    );
  return reasons.length
    ? { deactivations, hold: true, holdReason: reasons.join('; ') }
    : { deactivations, hold: false };
}
