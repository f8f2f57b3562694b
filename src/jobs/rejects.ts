/**
 * A run's rejects and exclusions as one listing (API `GET /runs/:id/rejects[.csv]`, CLI
 * `guardian-sync rejects`): rejects are records refused (validation), exclusions valid records
 * a rule or district policy left out (docs/operations.md "Exclusions").
 */
import type { Reject, RejectFilter, RosterStore, SyncRun } from '../models/types.js';
import { csvStream, type Stringifier } from '../csv.js';

/** Rejects read from the store per page of a full listing. */
const PAGE = 1000;

/** Count label prefix of exclusions in run counts: `counts[entity]['excluded:<reason>']`. */
export const EXCLUDED_PREFIX = 'excluded:';

/** CSV columns of the listing, in order. */
export const REJECT_CSV_COLUMNS = ['entity', 'recordId', 'reason', 'kind'] as const;

/** A reject with its kind spelled out (`rejected` when absent). */
export function withKind(r: Reject): Required<Reject> {
  return { ...r, kind: r.kind ?? 'rejected' };
}

/** Every stored reject of a run (of `filter.kind` only when given), in insertion order. */
export async function* allRejects(
  store: Pick<RosterStore, 'listRejects'>,
  runId: string,
  filter: RejectFilter = {},
): AsyncGenerator<Required<Reject>> {
  for (let offset = 0; ; offset += PAGE) {
    const page = await store.listRejects(runId, offset, PAGE, filter);
    yield* page.map(withKind);
    if (page.length < PAGE) return;
  }
}

/**
 * The listing as a CSV stream (header `entity,recordId,reason,kind`), with formula-looking
 * cells neutralised (`csvStream`). A store error destroys the stream with that error.
 */
export function rejectsCsv(
  store: Pick<RosterStore, 'listRejects'>,
  runId: string,
  filter: RejectFilter = {},
): Stringifier {
  return csvStream(allRejects(store, runId, filter), REJECT_CSV_COLUMNS);
}

/**
 * How many stored records of `kind` a run has: `rejectCount` counts the rejects (records
 * refused), exclusions are counted per reason in the run's counts (`excluded:<reason>`);
 * no kind gives both.
 */
export function rejectTotal(run: SyncRun, kind: RejectFilter['kind']): number {
  let excluded = 0;
  for (const actions of Object.values(run.counts))
    for (const [action, n] of Object.entries(actions))
      if (action.startsWith(EXCLUDED_PREFIX)) excluded += n;
  if (kind === 'excluded') return excluded;
  return kind === 'rejected' ? run.rejectCount : run.rejectCount + excluded;
}

/** Rejects without repeats (same kind, entity, record id and reason), in first-seen order. */
export function uniqueRejects(rejects: readonly Reject[]): Reject[] {
  const seen = new Set<string>();
  return rejects.filter(r => {
    const k = `${r.kind ?? 'rejected'}\u0000${r.entity}\u0000${r.recordId}\u0000${r.reason}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * Exclusions per entity and reason (`{ guardian: { 'excluded:no email or username': 3 } }`),
 * from a run's de-duplicated rejects: what the run left out by rule, beside what it changed.
 */
export function exclusionCounts(
  rejects: readonly Reject[],
): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const r of rejects) {
    if (r.kind !== 'excluded') continue;
    const t = (out[r.entity] ??= {});
    const label = `${EXCLUDED_PREFIX}${r.reason}`;
    t[label] = (t[label] ?? 0) + 1;
  }
  return out;
}

/** `counts` without the exclusion labels (`excluded:<reason>`): only what the run changed or held. */
export function withoutExclusions(
  counts: Record<string, Record<string, number>>,
): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [entity, actions] of Object.entries(counts)) {
    const kept = Object.entries(actions).filter(([a]) => !a.startsWith(EXCLUDED_PREFIX));
    if (kept.length) out[entity] = Object.fromEntries(kept);
  }
  return out;
}
