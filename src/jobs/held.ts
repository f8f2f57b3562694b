/**
 * What a held run holds, record by record, for an admin deciding whether to approve it
 * (issue 18 §4b): the held lists read page by page from the store (`RosterStore.listHeld`),
 * with the names and Unique IDs of the students and parent accounts they name.
 */
import type { AppContext } from '../app.js';
import { csvStream, type Stringifier } from '../csv.js';
import type { HeldKind, SyncRun } from '../models/types.js';

/** One held record as the API, the CLI and the CSV list it. */
export interface HeldItem {
  kind: HeldKind;
  studentSourcedId?: string | undefined;
  studentUniqueId?: string | undefined;
  studentName?: string | undefined;
  parentId?: string | undefined;
  parentUniqueId?: string | undefined;
  parentName?: string | undefined;
  parentEmail?: string | undefined;
  /** Why approving the run deactivates it. */
  reason: string;
}

/** CSV columns of a held list (`GET /runs/:id/held/:kind.csv`, `guardian-sync held --csv`). */
export const HELD_CSV_COLUMNS = [
  'kind',
  'studentSourcedId',
  'studentUniqueId',
  'studentName',
  'parentId',
  'parentUniqueId',
  'parentName',
  'parentEmail',
  'reason',
] as const;

const REASONS: Record<HeldKind, string> = {
  student: 'not in the SIS roster as an active student',
  parent: 'not in the SIS roster, or left with no linked student',
  link: 'relationship no longer listed by the SIS, or its student or parent is deactivated',
};

/** Held records read per page when a whole list is streamed (CSV). */
export const HELD_STREAM_PAGE = 1000;

/** The number of held records of `kind` in `run` (0 when it holds nothing). */
export function heldTotal(run: SyncRun, kind: HeldKind): number {
  if (!run.held) return 0;
  return kind === 'student'
    ? run.held.students
    : kind === 'parent'
      ? run.held.parents
      : run.held.links;
}

/**
 * A page of `run`'s held records of `kind` (`offset` 0-based, at most `limit`), with names
 * and Unique IDs. A record the store no longer has is listed with its id only.
 */
export async function heldItems(
  ctx: Pick<AppContext, 'store'>,
  run: SyncRun,
  kind: HeldKind,
  offset: number,
  limit: number,
): Promise<HeldItem[]> {
  const page = await ctx.store.listHeld(run.id, kind, offset, limit);
  const studentIds = [...page.studentSourcedIds, ...page.links.map(l => l.studentSourcedId)];
  const parentIds = [...page.parentIds, ...page.links.map(l => l.parentId)];
  const found = await ctx.store.findRecords(run.districtId, {
    studentSourcedIds: studentIds,
    parentIds,
  });
  const students = new Map(found.students.map(s => [s.sourcedId, s]));
  const parents = new Map(found.parents.map(p => [p.id, p]));
  const studentFields = (id: string) => {
    const s = students.get(id);
    return {
      studentSourcedId: id,
      studentUniqueId: s?.uniqueId,
      studentName: s && `${s.givenName} ${s.familyName}`,
    };
  };
  const parentFields = (id: string) => {
    const p = parents.get(id);
    return {
      parentId: id,
      parentUniqueId: p?.uniqueId,
      parentName: p && `${p.givenName} ${p.familyName}`,
      parentEmail: p?.email,
    };
  };
  const reason = REASONS[kind];
  if (kind === 'student')
    return page.studentSourcedIds.map(id => ({ kind, ...studentFields(id), reason }));
  if (kind === 'parent') return page.parentIds.map(id => ({ kind, ...parentFields(id), reason }));
  return page.links.map(l => ({
    kind,
    ...studentFields(l.studentSourcedId),
    ...parentFields(l.parentId),
    reason,
  }));
}

/** Every held record of `kind`, page by page (for CSV downloads). */
export async function* allHeldItems(
  ctx: Pick<AppContext, 'store'>,
  run: SyncRun,
  kind: HeldKind,
): AsyncGenerator<HeldItem> {
  for (let offset = 0; ; offset += HELD_STREAM_PAGE) {
    const page = await heldItems(ctx, run, kind, offset, HELD_STREAM_PAGE);
    yield* page;
    if (page.length < HELD_STREAM_PAGE) return;
  }
}

/**
 * The whole held list of `kind` as a CSV stream (header `HELD_CSV_COLUMNS`, formula-looking
 * cells prefixed with `'`), read from the store page by page. A store error while reading
 * destroys the stream with that error (after `onError`).
 */
export function heldCsv(
  ctx: Pick<AppContext, 'store'>,
  run: SyncRun,
  kind: HeldKind,
  onError: (err: unknown) => void = () => undefined,
): Stringifier {
  return csvStream(allHeldItems(ctx, run, kind), HELD_CSV_COLUMNS, onError);
}
