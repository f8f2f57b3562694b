/**
 * Change-log entries of an import apply (design invariant 13), derived purely from the state
 * the repository re-loaded inside the apply's transaction and the write it is about to make.
 * Shared by the SQLite and MongoDB adapters so both log exactly the same entries.
 *
 * Only real changes are logged: an update that changes no logged field, a link upsert of a
 * link that already has the written status, or a deactivation of a link that is not active
 * gives no entry.
 *
 * Parent entries log the roster fields (`parentFields`) plus what an import manages besides:
 * `lockedFields`, and the profile's `username` and `schoolSourcedIds`.
 */
import {
  diffFields,
  linkChange,
  linkDeactivateChange,
  parentCreateChange,
  parentFields,
} from '../changes/derive.js';
import { linkRef, type ChangeFields, type NewChange } from '../changes/types.js';
import type { GuardianLink, ParentAccount } from '../types.js';
import type {
  AssociationImportState,
  AssociationWrite,
  ImportParentSet,
  ParentImportState,
  ParentImportWrite,
  ParentProfile,
  ProfileWrite,
} from './types.js';

type Profile = Pick<ParentProfile, 'username' | 'schoolSourcedIds'> | ProfileWrite;

/** Logged fields of an account with its import-managed attributes. */
function importParentFields(p: ParentAccount, profile: Profile | undefined): ChangeFields {
  return {
    ...parentFields(p),
    lockedFields: [...p.lockedFields].sort(),
    username: profile?.username ?? null,
    schoolSourcedIds: [...(profile?.schoolSourcedIds ?? [])].sort(),
  };
}

/** The entry of an account an import creates (its profile fields included when set). */
export function importParentCreateChange(account: ParentAccount, profile: ProfileWrite): NewChange {
  const entry = parentCreateChange(account);
  const after: ChangeFields = { ...entry.after };
  if (account.lockedFields.length > 0) after.lockedFields = [...account.lockedFields].sort();
  if (profile.username !== undefined) after.username = profile.username;
  if (profile.schoolSourcedIds.length > 0)
    after.schoolSourcedIds = [...profile.schoolSourcedIds].sort();
  return { ...entry, after };
}

/** The account after `set` (fields only; `emailNormalized` follows `email`). */
function applySet(p: ParentAccount, set: ImportParentSet): ParentAccount {
  const next: ParentAccount = { ...p, sources: [...p.sources], lockedFields: [...p.lockedFields] };
  for (const [k, v] of Object.entries(set) as [keyof ImportParentSet, unknown][]) {
    if (v === undefined) continue;
    (next as unknown as Record<string, unknown>)[k] = Array.isArray(v) ? [...(v as string[])] : v;
  }
  return next;
}

/** Entries of a parent import write: creates, then updates (with before/after), in order. */
export function parentImportChanges(
  state: ParentImportState,
  write: ParentImportWrite,
): NewChange[] {
  const out: NewChange[] = [];
  for (const { account, profile } of write.creates)
    out.push(importParentCreateChange(account, profile));
  const parents = new Map(state.parents.map(p => [p.id, p]));
  const profiles = new Map(state.profiles.map(p => [p.parentId, p]));
  for (const u of write.updates) {
    const prev = parents.get(u.parentId);
    if (!prev) {
      // Not in the state the write was checked against (the planner never does this): log
      // what is written, without a before.
      const after: ChangeFields = {};
      for (const [k, v] of Object.entries(u.set))
        if (v !== undefined && k !== 'emailNormalized') after[k] = v as string | string[];
      if (u.profile) {
        after.username = u.profile.username ?? null;
        after.schoolSourcedIds = [...u.profile.schoolSourcedIds].sort();
      }
      if (Object.keys(after).length > 0)
        out.push({
          entity: 'parent',
          entityId: u.parentId,
          action: 'update',
          parentId: u.parentId,
          after,
        });
      continue;
    }
    const prevProfile = profiles.get(u.parentId);
    const next = applySet(prev, u.set);
    const { before, after } = diffFields(
      importParentFields(prev, prevProfile),
      importParentFields(next, u.profile ?? prevProfile),
    );
    if (Object.keys(after).length === 0) continue;
    const action =
      prev.status !== next.status
        ? next.status === 'active'
          ? 'reactivate'
          : 'deactivate'
        : 'update';
    out.push({ entity: 'parent', entityId: prev.id, action, parentId: prev.id, before, after });
    parents.set(prev.id, next);
    if (u.profile)
      profiles.set(prev.id, { ...u.profile, districtId: prev.districtId, parentId: prev.id });
  }
  return out;
}

/**
 * Entries of an association import write: link upserts (create / reactivate; an import never
 * writes a relationship, so a reactivated link keeps its own), then deactivations.
 */
export function associationImportChanges(
  state: AssociationImportState,
  write: AssociationWrite,
): NewChange[] {
  const out: NewChange[] = [];
  const links = new Map<string, GuardianLink>(
    state.links.map(l => [linkRef(l.origin, l.parentId, l.studentSourcedId), l]),
  );
  for (const l of write.upserts) {
    const key = linkRef(l.origin, l.parentId, l.studentSourcedId);
    const prev = links.get(key);
    if (prev && prev.status === l.status) continue;
    const written: GuardianLink = { ...l, relationship: prev?.relationship };
    const action = !prev ? 'create' : l.status === 'active' ? 'reactivate' : 'deactivate';
    out.push(linkChange(action, written, prev));
    links.set(key, written);
  }
  for (const d of write.deactivations) {
    const key = linkRef(d.origin, d.parentId, d.studentSourcedId);
    const prev = links.get(key);
    if (prev?.status !== 'active') continue;
    out.push(linkDeactivateChange(d.origin, d.parentId, d.studentSourcedId));
    links.set(key, { ...prev, status: 'inactive' });
  }
  return out;
}
