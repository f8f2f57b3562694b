/**
 * Small, store-independent helpers shared by the SQLite and MongoDB adapters, so both
 * interpret plans, patches and run states the same way (the contract suite checks it).
 */
import type {
  ChunkKeys,
  ChunkPlan,
  ParentAccount,
  ParentUpdate,
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

/** Split `items` into arrays of at most `size` elements. */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
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
