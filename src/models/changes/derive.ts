/**
 * Pure derivation of change-log entries from what a store is about to write, shared by the
 * SQLite and MongoDB adapters so both log exactly the same entries for the same change.
 *
 * A chunk plan is computed from the state the store loaded inside the write transaction, and
 * the planner emits nothing for an unchanged record, so every plan item is a real change and
 * `(state, plan)` gives its before/after values exactly. A plan item that changes nothing
 * against that state (a re-delivered plan: the store's writes are no-ops then) logs nothing,
 * and a `create`/`add` of a record the state already holds is logged as what the store's
 * upsert really does to it (update or reactivate).
 */
import type {
  ChunkPlan,
  ChunkState,
  GuardianLink,
  ParentAccount,
  ParentUpdate,
  StoredStudent,
} from '../types.js';
import { parentUpdateEntries } from '../shared.js';
import { linkRef, type ChangeFields, type NewChange } from './types.js';

const orNull = (v: string | undefined | null): string | null => v ?? null;

/** Logged fields of a student (every field; `null` for absent optional ones). */
export function studentFields(s: StoredStudent): ChangeFields {
  return {
    uniqueId: s.uniqueId,
    givenName: s.givenName,
    familyName: s.familyName,
    email: orNull(s.email),
    schoolSourcedIds: [...s.schoolSourcedIds],
    grade: orNull(s.grade),
    status: s.status,
  };
}

/** Logged fields of a parent account (sources as `connector:sourcedId`). */
export function parentFields(p: ParentAccount): ChangeFields {
  return {
    uniqueId: orNull(p.uniqueId),
    givenName: p.givenName,
    familyName: p.familyName,
    email: orNull(p.email),
    phone: orNull(p.phone),
    role: p.role,
    sisRole: orNull(p.sisRole),
    status: p.status,
    origin: p.origin,
    sources: p.sources.map(s => `${s.connector}:${s.sourcedId}`),
  };
}

/** Logged fields of a link. */
export function linkFields(l: GuardianLink): ChangeFields {
  return { relationship: orNull(l.relationship), status: l.status };
}

/** Only the fields that have a value (a `create` logs no nulls). */
function present(fields: ChangeFields): ChangeFields {
  const out: ChangeFields = {};
  for (const [k, v] of Object.entries(fields)) if (v !== null) out[k] = v;
  return out;
}

/** `before`/`after` of the fields that differ between two field sets. */
export function diffFields(
  before: ChangeFields,
  after: ChangeFields,
): { before: ChangeFields; after: ChangeFields } {
  const b: ChangeFields = {};
  const a: ChangeFields = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const x = before[key] ?? null;
    const y = after[key] ?? null;
    if (JSON.stringify(x) !== JSON.stringify(y)) {
      b[key] = x;
      a[key] = y;
    }
  }
  return { before: b, after: a };
}

/** Entry for a newly created parent account. */
export function parentCreateChange(p: ParentAccount): NewChange {
  return {
    entity: 'parent',
    entityId: p.id,
    action: 'create',
    parentId: p.id,
    after: present(parentFields(p)),
  };
}

/** Entry for a new or changed link (`action` from the caller: create, update, reactivate…). */
export function linkChange(
  action: NewChange['action'],
  link: GuardianLink,
  previous: GuardianLink | undefined,
): NewChange {
  const entry: NewChange = {
    entity: 'link',
    entityId: linkRef(link.origin, link.parentId, link.studentSourcedId),
    action,
    parentId: link.parentId,
    studentSourcedId: link.studentSourcedId,
    origin: link.origin,
  };
  if (previous) Object.assign(entry, diffFields(linkFields(previous), linkFields(link)));
  else entry.after = present(linkFields(link));
  return entry;
}

/** Entry for a field-level update of an existing account (undefined when nothing changes). */
export function parentUpdateChange(
  action: 'update' | 'reactivate' | 'match',
  previous: ParentAccount,
  update: ParentUpdate,
): NewChange | undefined {
  const next: ParentAccount = { ...previous, sources: [...previous.sources] };
  for (const [field, value] of parentUpdateEntries(update.set)) {
    if (field === 'emailNormalized') continue; // derived from email; not logged separately
    (next as unknown as Record<string, unknown>)[field] = value;
  }
  for (const s of update.addSources) {
    if (!next.sources.some(x => x.connector === s.connector && x.sourcedId === s.sourcedId))
      next.sources.push(s);
  }
  const { before, after } = diffFields(parentFields(previous), parentFields(next));
  if (Object.keys(after).length === 0) return undefined;
  return { entity: 'parent', entityId: previous.id, action, parentId: previous.id, before, after };
}

/** Entry for a status change (deactivate/reactivate) of a record whose fields are not loaded. */
export function statusChange(
  entity: 'student' | 'parent',
  id: string,
  action: 'deactivate' | 'reactivate',
): NewChange {
  const [from, to] = action === 'deactivate' ? ['active', 'inactive'] : ['inactive', 'active'];
  return {
    entity,
    entityId: id,
    action,
    ...(entity === 'parent' ? { parentId: id } : { studentSourcedId: id }),
    before: { status: from },
    after: { status: to },
  };
}

/** Entry for a deactivated link. */
export function linkDeactivateChange(
  origin: GuardianLink['origin'],
  parentId: string,
  studentSourcedId: string,
): NewChange {
  return {
    entity: 'link',
    entityId: linkRef(origin, parentId, studentSourcedId),
    action: 'deactivate',
    parentId,
    studentSourcedId,
    origin,
    before: { status: 'active' },
    after: { status: 'inactive' },
  };
}

/**
 * Entry for a student the SIS re-keyed (same Unique ID, new sourcedId): an `update` (or
 * `reactivate`) of the record now at `next.sourcedId`, whose `before`/`after` include the
 * `sourcedId` change and any other field that changed.
 */
export function studentMoveChange(prev: StoredStudent, next: StoredStudent): NewChange {
  const diff = diffFields(
    { sourcedId: prev.sourcedId, ...studentFields(prev) },
    { sourcedId: next.sourcedId, ...studentFields(next) },
  );
  return {
    entity: 'student',
    entityId: next.sourcedId,
    action: upsertAction(prev.status, next.status),
    studentSourcedId: next.sourcedId,
    ...diff,
  };
}

/** Entry for a link that follows its re-keyed student to the sourcedId `to`. */
export function linkMoveChange(link: GuardianLink, to: string): NewChange {
  return {
    entity: 'link',
    entityId: linkRef(link.origin, link.parentId, to),
    action: 'update',
    parentId: link.parentId,
    studentSourcedId: to,
    origin: link.origin,
    before: { studentSourcedId: link.studentSourcedId },
    after: { studentSourcedId: to },
  };
}

/** The action an upsert of `next` over the existing `prev` performs (by status change). */
function upsertAction(
  prevStatus: string,
  nextStatus: string,
): 'update' | 'reactivate' | 'deactivate' {
  if (prevStatus === nextStatus) return 'update';
  return nextStatus === 'active' ? 'reactivate' : 'deactivate';
}

/**
 * Every change a chunk plan makes, given the state it was planned on: parent accounts
 * (creates, then updates/matches/reactivations), students, links, in plan order. Items that
 * change nothing against `state` are skipped (see the header).
 * Throws when the plan updates an account or student missing from `state` (a planner bug).
 */
export function chunkChanges(state: ChunkState, plan: ChunkPlan): NewChange[] {
  const out: NewChange[] = [];
  const parents = new Map(state.parents.map(p => [p.id, p]));
  for (const p of plan.parentCreates) {
    // The store inserts an account only when its id is free: a loaded one stays as it is.
    if (!parents.has(p.id)) out.push(parentCreateChange(p));
  }
  for (const { action, update } of plan.parentUpdates) {
    const prev = parents.get(update.id);
    if (!prev) throw new Error(`plan updates parent account ${update.id} that was not loaded`);
    const entry = parentUpdateChange(action, prev, update);
    if (entry) out.push(entry);
  }
  const students = new Map(state.students.map(s => [s.sourcedId, s]));
  /** Old sourcedId → new, of the students this plan moves (links follow them). */
  const moved = new Map<string, string>();
  for (const { action, record, from } of plan.students) {
    if (action === 'move' && from !== undefined) {
      const prev = students.get(from);
      // Re-delivered: the record already has its new sourcedId (an upsert, logged below).
      if (!prev || students.has(record.sourcedId)) continue;
      moved.set(from, record.sourcedId);
      out.push(studentMoveChange(prev, record));
      continue;
    }
    const prev = students.get(record.sourcedId);
    if (!prev) {
      out.push({
        entity: 'student',
        entityId: record.sourcedId,
        action: 'create',
        studentSourcedId: record.sourcedId,
        after: present(studentFields(record)),
      });
      continue;
    }
    const diff = diffFields(studentFields(prev), studentFields(record));
    if (Object.keys(diff.after).length === 0) continue; // re-delivered: nothing changes
    out.push({
      entity: 'student',
      entityId: record.sourcedId,
      action:
        action === 'create' || action === 'move'
          ? upsertAction(prev.status, record.status)
          : action,
      studentSourcedId: record.sourcedId,
      ...diff,
    });
  }
  const movedLinks: GuardianLink[] = [];
  for (const l of state.links) {
    const to = moved.get(l.studentSourcedId);
    if (to === undefined) continue;
    out.push(linkMoveChange(l, to));
    movedLinks.push({ ...l, studentSourcedId: to });
  }
  const links = new Map(
    [...state.links.filter(l => !moved.has(l.studentSourcedId)), ...movedLinks].map(l => [
      linkRef(l.origin, l.parentId, l.studentSourcedId),
      l,
    ]),
  );
  for (const { action, link } of plan.links) {
    const prev = links.get(linkRef(link.origin, link.parentId, link.studentSourcedId));
    if (!prev) {
      out.push(linkChange('create', link, undefined));
      continue;
    }
    const entry = linkChange(
      action === 'add' ? upsertAction(prev.status, link.status) : action,
      link,
      prev,
    );
    if (Object.keys(entry.after ?? {}).length > 0) out.push(entry);
  }
  return out;
}
