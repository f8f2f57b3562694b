/**
 * The finalize decision: which records a complete snapshot deactivates, and whether the
 * deletion safeguard holds them (design.md invariants 4, 5, 9, 10). Pure: the finalize job
 * gathers the inputs from the store and the run ledger.
 *
 * The safeguard has three measures, each against the district's active state *before* the
 * run (docs/operations.md, "Deletion safeguard: students, parents, links and re-keys"):
 * students deactivated, `sis` parent accounts deactivated, and `sis` links removed. A run that
 * would also create more than the threshold of new students that match nothing is a probable
 * re-key (docs/decisions/0004-safeguard-and-rekeys.md).
 */
import type { Deactivations, StoredStudent } from '../models/types.js';

/** Active records of the district before the run (the safeguard's denominators). */
export interface ActiveBaseline {
  students: number;
  /** Active `sis`-origin parent accounts. */
  parents: number;
  /**
   * Active `sis`-origin links; undefined when not counted (finalize counts them only when the
   * run has link removals: the link measure is 0 otherwise). Removals measured against an
   * uncounted base are held (base 0).
   */
  links: number | undefined;
}

/**
 * Active records of one kind in the store, counted, with those the snapshot did not deliver:
 * what finalize keeps of a scan of the district's active ids (`scanActive`), instead of the
 * ids themselves (docs/decisions/0012).
 */
export interface ActiveScan {
  /** Active records scanned. */
  count: number;
  /** Ids of the active records not in the snapshot, in scan (id) order. */
  absent: string[];
}

/** No active record (a scan that was scoped away); a new object each time. */
export const noActive = (): ActiveScan => ({ count: 0, absent: [] });

/**
 * Count `ids` and keep those not in `seen`; with `seen` undefined only count (`absent` stays
 * empty: absence is not measured). Synchronous form of `scanActive`.
 */
export function scanIds(ids: Iterable<string>, seen?: ReadonlySet<string>): ActiveScan {
  const out: ActiveScan = { count: 0, absent: [] };
  for (const id of ids) {
    out.count++;
    if (seen && !seen.has(id)) out.absent.push(id);
  }
  return out;
}

/** Let timers and I/O run (one `setImmediate` turn) before going on. */
export const yieldToEventLoop = (): Promise<void> => new Promise(r => setImmediate(r));

/**
 * Stream pages of active ids (`RosterStore.activeIdPages`) into an `ActiveScan`: memory is
 * one page plus the absent ids, whatever the district's size. `seen` undefined: count only.
 * The event loop turns once between pages.
 */
export async function scanActive(
  pages: AsyncIterable<readonly string[]> | Iterable<readonly string[]>,
  seen?: ReadonlySet<string>,
): Promise<ActiveScan> {
  const out: ActiveScan = { count: 0, absent: [] };
  for await (const page of pages) {
    out.count += page.length;
    if (seen) for (const id of page) if (!seen.has(id)) out.absent.push(id);
    // A synchronous store (SQLite) resolves every page at once: without a turn of the event
    // loop between pages, a 500,000-student scan is one long stall (timers and socket reads
    // wait, a job's lock renewal among them).
    await yieldToEventLoop();
  }
  return out;
}

export interface FinalizeInput {
  /** Students active in the store, and those of them the snapshot did not deliver. */
  activeStudents: ActiveScan;
  /** Active sync-owned parent accounts, and those no guardian of the snapshot resolved to. */
  activeSisParents: ActiveScan;
  /** Number of (active) students delivered by this snapshot. */
  seenStudents: number;
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
   * `activeSisParents` was scoped away (absence of guardians not counted). Defaults to
   * `activeSisParents.count`.
   */
  activeSisParentTotal?: number | undefined;
  /** Deletion safeguard threshold, percent of active students or parents (default 10). */
  thresholdPercent: number;
  /**
   * Active counts before the run (what this run created or reactivated does not count). When
   * absent, the active lists above are the denominators and links are not measured.
   */
  baseline?: ActiveBaseline | undefined;
  /** New students this run creates that match no stored student (by sourcedId or Unique ID). */
  unmatchedStudents?: number | undefined;
}

export interface FinalizeDecision {
  deactivations: Deactivations;
  /** True when the safeguard holds every deactivation for an admin's approval. */
  hold: boolean;
  /** Why it was held (for the run record and the admin). */
  holdReason?: string | undefined;
  /**
   * True when both the students created (matching nothing) and the students deactivated
   * exceed the threshold: a probable re-key. The new students are held too (not created).
   */
  rekey: boolean;
}

/**
 * Decide deactivations. Held when students, `sis` parent accounts or `sis` links to
 * deactivate exceed `thresholdPercent` of the active ones before the run, or when the
 * snapshot delivered no students at all while the store has active students (an HTTP 200
 * with an empty list is suspicious). A probable re-key (see `FinalizeDecision.rekey`) is held
 * with its own reason.
 */
export function decideFinalize(input: FinalizeInput): FinalizeDecision {
  const activeStudents = input.activeStudents.count;
  // not copied: the absent list can be district-sized (an empty feed); nothing mutates it
  const studentSourcedIds = input.activeStudents.absent;
  const parentIds = [...input.activeSisParents.absent];
  if (input.orphanedParentIds?.length) {
    const have = new Set(parentIds);
    for (const id of input.orphanedParentIds) if (!have.has(id)) parentIds.push(id);
  }
  const activeParents = Math.max(input.activeSisParents.count, input.activeSisParentTotal ?? 0);
  const deactivations: Deactivations = {
    studentSourcedIds,
    parentIds,
    links: input.linkRemovals,
  };
  const students = input.baseline?.students ?? activeStudents;
  const parents = input.baseline?.parents ?? activeParents;
  const pct = input.thresholdPercent;
  const over = (n: number, active: number) => n > 0 && n > (active * pct) / 100;
  const reasons: string[] = [];
  if (input.seenStudents === 0 && activeStudents > 0)
    reasons.push(`the snapshot has no students but ${activeStudents} are active`);
  const created = input.unmatchedStudents ?? 0;
  const rekey = over(created, students) && over(studentSourcedIds.length, students);
  if (rekey)
    reasons.push(
      `probable re-key: ${created} new students match no known student (sourcedId or Unique ID) ` +
        `while ${studentSourcedIds.length} of ${students} active students would be deactivated ` +
        `(threshold ${pct} %); the new students are held too`,
    );
  else if (over(studentSourcedIds.length, students))
    reasons.push(
      `${studentSourcedIds.length} of ${students} active students would be deactivated (threshold ${pct} %)`,
    );
  if (over(parentIds.length, parents))
    reasons.push(
      `${parentIds.length} of ${parents} active parent accounts would be deactivated (threshold ${pct} %)`,
    );
  if (input.baseline && over(input.linkRemovals.length, input.baseline.links ?? 0))
    reasons.push(
      `${input.linkRemovals.length} of ${input.baseline.links ?? 0} active SIS links would be removed (threshold ${pct} %)`,
    );
  return reasons.length
    ? { deactivations, hold: true, holdReason: reasons.join('; '), rekey }
    : { deactivations, hold: false, rekey };
}

/** Matching key of a remap proposal: normalized given + family name, schools, grade. */
function remapKey(s: StoredStudent): string {
  const norm = (v: string | undefined) =>
    (v ?? '').normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
  return [
    norm(s.givenName),
    norm(s.familyName),
    [...s.schoolSourcedIds].sort().join(','),
    norm(s.grade),
  ].join('\u0000');
}

/**
 * Propose a remap for a held re-key: each new student (deferred, matching nothing) paired with
 * the old student (to be deactivated) that has the same name, school(s) and grade. Only
 * unambiguous pairs: a key shared by two old or two new students proposes nothing for it
 * (those students are listed as `ambiguous`, never guessed). Returns pairs in new-sourcedId
 * order.
 */
export function proposeRemap(
  oldStudents: readonly StoredStudent[],
  newStudents: readonly StoredStudent[],
): { pairs: { sourcedId: string; remapFrom: string }[]; ambiguous: string[] } {
  const group = (list: readonly StoredStudent[]) => {
    const m = new Map<string, StoredStudent[]>();
    for (const s of list) {
      const k = remapKey(s);
      const g = m.get(k);
      if (g) g.push(s);
      else m.set(k, [s]);
    }
    return m;
  };
  const olds = group(oldStudents);
  const pairs: { sourcedId: string; remapFrom: string }[] = [];
  const ambiguous: string[] = [];
  for (const [k, news] of group(newStudents)) {
    const candidates = olds.get(k) ?? [];
    const [n] = news;
    const [o] = candidates;
    if (news.length === 1 && candidates.length === 1 && n && o)
      pairs.push({ sourcedId: n.sourcedId, remapFrom: o.sourcedId });
    else if (candidates.length > 0) ambiguous.push(...news.map(s => s.sourcedId));
  }
  pairs.sort((a, b) => (a.sourcedId < b.sourcedId ? -1 : a.sourcedId > b.sourcedId ? 1 : 0));
  return { pairs, ambiguous: ambiguous.sort() };
}
