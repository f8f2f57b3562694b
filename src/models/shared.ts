/**
 * Small, store-independent helpers shared by the SQLite and MongoDB adapters, so both
 * interpret plans, patches and run states the same way (the contract suite checks it).
 */
import type {
  ChunkKeys,
  ChunkPlan,
  ParentAccount,
  ParentUpdate,
  RunDeferredStudent,
  Deactivations,
  HeldKind,
  HeldSummary,
  RunStatus,
  SyncRun,
  SyncRunPatch,
} from './types.js';

/** Run statuses that hold the district's single "active run" slot (invariant 3). */
export const ACTIVE_RUN_STATUSES: readonly RunStatus[] = ['queued', 'running'];

/** True when a run in `status` blocks another run of the same district. */
export function isActiveRunStatus(status: RunStatus): boolean {
  return ACTIVE_RUN_STATUSES.includes(status);
}

/** Parent-account fields a `ParentUpdate.set` may touch, in a fixed order. */
export const PARENT_UPDATE_FIELDS = [
  'givenName',
  'familyName',
  'email',
  'emailNormalized',
  'phone',
  'sisRole',
  'status',
  'uniqueId',
] as const satisfies readonly (keyof ParentUpdate['set'])[];
export type ParentUpdateField = (typeof PARENT_UPDATE_FIELDS)[number];

/**
 * The fields an update sets, in `PARENT_UPDATE_FIELDS` order. A key that is present with
 * the value `undefined` means "clear this field"; an absent key means "leave it alone".
 * Throws on keys the port does not allow (a planner bug must not write silently).
 */
export function parentUpdateEntries(
  set: ParentUpdate['set'],
): [ParentUpdateField, string | undefined][] {
  const allowed = new Set<string>(PARENT_UPDATE_FIELDS);
  for (const key of Object.keys(set)) {
    if (!allowed.has(key)) throw new Error(`parent update may not set field '${key}'`);
  }
  const entries: [ParentUpdateField, string | undefined][] = [];
  for (const field of PARENT_UPDATE_FIELDS) {
    if (Object.hasOwn(set, field)) entries.push([field, set[field]]);
  }
  return entries;
}

/**
 * Refuse a plan that is a promise (planners are synchronous: SQLite runs them inside its
 * transaction) or that writes outside `districtId` (every record carries its district; a
 * mismatch is a planner bug and would break tenant isolation).
 */
export function assertPlanInDistrict(districtId: string, plan: ChunkPlan): void {
  if (typeof (plan as unknown as { then?: unknown }).then === 'function') {
    throw new Error('the chunk planner must be synchronous (it returned a promise)');
  }
  const bad = (what: string, other: string): never => {
    throw new Error(`plan for district ${districtId} contains a ${what} of district ${other}`);
  };
  for (const s of plan.students)
    if (s.record.districtId !== districtId) bad('student', s.record.districtId);
  for (const p of plan.parentCreates)
    if (p.districtId !== districtId) bad('parent account', p.districtId);
  for (const l of plan.links) if (l.link.districtId !== districtId) bad('link', l.link.districtId);
}

/** Optional `SyncRun` fields: a patch key present with `undefined` clears them. */
export const OPTIONAL_RUN_FIELDS = [
  'startedAt',
  'finishedAt',
  'held',
  'error',
  'actor',
  'decidedBy',
  'decidedAt',
  'waiting',
  'config',
] as const;

/**
 * Apply a `SyncRunPatch` to a run: present keys replace, `undefined` clears optional fields
 * and is ignored for required ones.
 */
export function applyRunPatch(run: SyncRun, patch: SyncRunPatch): SyncRun {
  const next: SyncRun = { ...run };
  const optional = new Set<string>(OPTIONAL_RUN_FIELDS);
  for (const [key, value] of Object.entries(patch) as [keyof SyncRunPatch, unknown][]) {
    if (value === undefined) {
      if (optional.has(key)) delete next[key];
      continue;
    }
    (next as unknown as Record<string, unknown>)[key] = value;
  }
  return next;
}

/**
 * Every id of a store's `activeIdPages` stream, in its order (`listActiveStudentIds` /
 * `listActiveSisParentIds`: one query per store serves the whole list and finalize's pages).
 */
export async function allIds(pages: AsyncIterable<string[]>): Promise<string[]> {
  const out: string[] = [];
  for await (const page of pages) for (const id of page) out.push(id);
  return out;
}

/** Split `items` into arrays of at most `size` elements. */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The chunk plan that writes a run's deferred students (`RosterStore.applyDeferredStudents`):
 * with `remap`, a student with a proposed `remapFrom` is a `move` of that old record (its
 * links and codes follow), every other one a `create`; then each student's `sis` links.
 */
export function deferredPlan(
  districtId: string,
  rows: readonly RunDeferredStudent[],
  remap: boolean,
): ChunkPlan {
  const plan: ChunkPlan = {
    students: [],
    parentCreates: [],
    parentUpdates: [],
    links: [],
    linkRemovals: [],
    rejects: [],
    guardianAccounts: {},
  };
  for (const r of rows) {
    const record = { ...r.record, districtId };
    if (remap && r.remapFrom !== undefined)
      plan.students.push({ action: 'move', record, from: r.remapFrom });
    else plan.students.push({ action: 'create', record });
    for (const l of r.links)
      plan.links.push({
        action: 'add',
        link: {
          districtId,
          parentId: l.parentId,
          studentSourcedId: record.sourcedId,
          origin: 'sis',
          relationship: l.relationship,
          status: 'active',
        },
      });
  }
  return plan;
}

/** The sizes of held lists (what `SyncRun.held` records). */
export function heldSummary(d: Deactivations): HeldSummary {
  return {
    students: d.studentSourcedIds.length,
    parents: d.parentIds.length,
    links: d.links.length,
  };
}

/**
 * One held list's items (as stored in a held page) as a `Deactivations` holding only that
 * kind. Items that are not of the kind's shape are ignored (pages are written by the store).
 */
export function heldSlice(kind: HeldKind, items: readonly unknown[]): Deactivations {
  const out: Deactivations = { studentSourcedIds: [], parentIds: [], links: [] };
  for (const item of items) {
    if (kind === 'link') {
      if (typeof item === 'object' && item !== null) {
        const { parentId, studentSourcedId } = item as Record<string, unknown>;
        if (typeof parentId === 'string' && typeof studentSourcedId === 'string')
          out.links.push({ parentId, studentSourcedId });
      }
    } else if (typeof item === 'string') {
      (kind === 'student' ? out.studentSourcedIds : out.parentIds).push(item);
    }
  }
  return out;
}

/**
 * The `candidates` (sorted account ids, each with at least one link) left with no active link
 * once the `sis` links in `ending` end: every active link of theirs (`active`, any origin)
 * is a `sis` link listed in `ending`. Shared by both adapters' `listOrphanedSisParentIds`.
 */
export function orphansOf(
  candidates: readonly string[],
  active: readonly { parentId: string; studentSourcedId: string; origin: string }[],
  ending: readonly { parentId: string; studentSourcedId: string }[],
): string[] {
  const ends = new Set(ending.map(l => `${l.parentId}\u0000${l.studentSourcedId}`));
  const kept = new Set<string>();
  for (const l of active)
    if (l.origin !== 'sis' || !ends.has(`${l.parentId}\u0000${l.studentSourcedId}`))
      kept.add(l.parentId);
  return candidates.filter(id => !kept.has(id));
}

/**
 * Ids of loaded `sis` accounts whose first (field-owning) source is not one of the chunk's
 * guardians (`keys.connector` + `keys.guardianSourcedIds`): the store loads their other
 * active `sis` links (`ChunkState.accountLinks`) so the planner can tell a dead owning
 * source from one that is alive in another chunk. Usually none.
 */
export function ownerlessParentIds(parents: readonly ParentAccount[], keys: ChunkKeys): string[] {
  let guardians: Set<string> | undefined;
  const out: string[] = [];
  for (const p of parents) {
    const first = p.sources[0];
    if (p.origin !== 'sis' || !first || first.connector !== keys.connector) continue;
    guardians ??= new Set(keys.guardianSourcedIds);
    if (!guardians.has(first.sourcedId)) out.push(p.id);
  }
  return out;
}
