/**
 * The reconcile engine: a pure diff from (existing store state, one snapshot chunk) to a
 * `ChunkPlan`. No I/O happens here; the store loads the state and writes the plan
 * (`RosterStore.reconcileChunk`). See design.md invariants 1, 6, 7, 10 and 11.
 */
import { createHash } from 'node:crypto';
import type { Guardian, RosterChunk, Student } from '../mapping/canonical.js';
import { normalizeEmail } from '../mapping/canonical.js';
import { EXCLUSION } from '../mapping/exclusions.js';
import type {
  ChunkKeys,
  ChunkPlan,
  ChunkState,
  DeferredStudent,
  GuardianLink,
  ParentAccount,
  ParentSource,
  ParentUpdate,
  StoredStudent,
} from '../models/types.js';

export interface PlanContext {
  districtId: string;
  /** Connector kind; guardian sourcedIds are matched within it. */
  connector: string;
  /** Platform role for sync-created accounts (district policy `parentRole`). */
  parentRole: string;
  /**
   * Keep new students that match nothing (neither sourcedId nor Unique ID) out of the chunk's
   * writes and return them as `deferredStudents` with their `sis` links: a mass re-key is
   * then held before any of its students is written (docs/decisions/0004). Default false.
   */
  deferUnmatched?: boolean | undefined;
  /**
   * District policy `guardiansWithoutLogin`: `exclude` (default) gives a guardian with no
   * login identifier (no email, no uniqueId/username) no new account: it is reported as an
   * exclusion (`EXCLUSION.noLogin`) and its students stay unlinked (they get access codes).
   * `create` creates the account anyway. An existing account keeps matching.
   */
  guardiansWithoutLogin?: 'exclude' | 'create' | undefined;
  /**
   * The whole chunk's student and active guardian sourcedIds, when `chunk` is only part of it
   * (unchanged students skipped, src/reconcile/digest.ts): the rules that ask "is this
   * student or contact in the chunk" (re-key moves, name matching, field owner) answer for
   * the whole chunk, so the part plans exactly as it would inside the whole.
   */
  present?: { studentIds: ReadonlySet<string>; guardianIds: ReadonlySet<string> } | undefined;
}

/** Normalized person name for identity matching: NFKC, lower-cased, inner spaces collapsed. */
export function normalizeName(givenName: string, familyName: string): string {
  const n = (s: string) => s.normalize('NFKC').trim().toLowerCase().replace(/\s+/g, ' ');
  return `${n(givenName)}\u0000${n(familyName)}`;
}

/** The keys `reconcileChunk` must load for a chunk. */
export function chunkKeys(chunk: RosterChunk, connector: string): ChunkKeys {
  const emails = new Set<string>();
  const uniqueIds = new Set<string>();
  for (const g of chunk.guardians) {
    const e = normalizeEmail(g.email);
    if (e) emails.add(e);
    if (g.uniqueId) uniqueIds.add(g.uniqueId);
  }
  return {
    connector,
    studentSourcedIds: [...new Set(chunk.students.map(s => s.sourcedId))],
    studentUniqueIds: [...new Set(chunk.students.map(s => s.uniqueId))],
    guardianSourcedIds: [...new Set(chunk.guardians.map(g => g.sourcedId))],
    guardianUniqueIds: [...uniqueIds],
    emailsNormalized: [...emails],
  };
}

/** SIS ids kept verbatim in account ids: short, URL-safe and id-like. */
const ID_LIKE = /^[A-Za-z0-9._-]{1,64}$/;
const idPrefixes = new Map<string, string>();

/**
 * Deterministic id of an account created by sync from `(district, connector, sourcedId)`,
 * so a re-delivered job that died half-way creates the same account, never a second one.
 *
 * An id-like sourcedId (`[A-Za-z0-9._-]{1,64}`, e.g. PowerSchool's numeric contact ids)
 * gives `pa_<12 hex of sha256(district, connector)>_<sourcedId>`: accounts created together
 * get neighbouring keys, so the store's primary-key and link indexes are written in order
 * instead of at random (2–3× fewer pages written per chunk; docs/performance.md). Any other
 * sourcedId (emails, spaces, long strings) gives `pa_<24 hex of sha256(district, connector,
 * sourcedId)>`, so nothing personal or URL-unsafe ends up in an id. The two forms never
 * collide (only the first has `_` after the prefix).
 */
export function parentAccountId(districtId: string, connector: string, sourcedId: string): string {
  if (!ID_LIKE.test(sourcedId)) {
    const h = createHash('sha256').update(`${districtId}\u0000${connector}\u0000${sourcedId}`);
    return `pa_${h.digest('hex').slice(0, 24)}`;
  }
  const key = `${districtId}\u0000${connector}`;
  let prefix = idPrefixes.get(key);
  if (prefix === undefined) {
    prefix = createHash('sha256').update(key).digest('hex').slice(0, 12);
    if (idPrefixes.size < 10000) idPrefixes.set(key, prefix);
  }
  return `pa_${prefix}_${sourcedId}`;
}

function toStoredStudent(districtId: string, s: Student): StoredStudent {
  return {
    districtId,
    sourcedId: s.sourcedId,
    uniqueId: s.uniqueId,
    givenName: s.givenName,
    familyName: s.familyName,
    email: s.email,
    schoolSourcedIds: [...s.schoolSourcedIds],
    grade: s.grade,
    status: s.status,
  };
}

function sameStudent(a: StoredStudent, b: StoredStudent): boolean {
  return (
    a.uniqueId === b.uniqueId &&
    a.givenName === b.givenName &&
    a.familyName === b.familyName &&
    (a.email ?? undefined) === (b.email ?? undefined) &&
    (a.grade ?? undefined) === (b.grade ?? undefined) &&
    a.status === b.status &&
    a.schoolSourcedIds.length === b.schoolSourcedIds.length &&
    a.schoolSourcedIds.every((v, i) => v === b.schoolSourcedIds[i])
  );
}

const sourceKey = (connector: string, sourcedId: string) => `${connector}\u0000${sourcedId}`;
const linkKey = (parentId: string, studentSourcedId: string) =>
  `${parentId}\u0000${studentSourcedId}`;

/** Mutable view of an account while planning (updates accumulate per account). */
interface Working {
  account: ParentAccount;
  isNew: boolean;
  update: ParentUpdate;
  action: 'update' | 'reactivate' | 'match' | undefined;
}

/**
 * Plan one chunk.
 *
 * Identity (invariant 7): known (connector, sourcedId) → same uniqueId → same normalized
 * email when exactly one account has it → same normalized name already linked to one of the
 * guardian's students (`nameCandidates`) → create (or exclude: no login identifier). An email
 * shared by two or more accounts is ambiguous: the guardian is rejected, never guessed.
 * Account fields are owned by the account's first source (`fieldOwner`: a live source takes
 * over when the first one is gone); a second SIS entry of the same person (matched by email)
 * adds its source and links but does not flip fields back and forth on every run. Fields in
 * `lockedFields`, and every field of accounts sync did not create, are never overwritten.
 *
 * Links: only `sis` links are added/reactivated/removed. Removals are returned as
 * `linkRemovals` (applied by finalize when the snapshot is complete) and only when the
 * chunk says relationships were supplied (invariant 9).
 */
export function planChunk(chunk: RosterChunk, state: ChunkState, ctx: PlanContext): ChunkPlan {
  const plan: ChunkPlan = {
    students: [],
    parentCreates: [],
    parentUpdates: [],
    links: [],
    linkRemovals: [],
    rejects: [],
    guardianAccounts: {},
  };

  // --- students ------------------------------------------------------------------------
  // Identity: sourcedId, then the district Unique ID (student number). A new sourcedId with a
  // known Unique ID is the same student re-keyed by the SIS: the record moves (links and
  // access codes follow) instead of one student deactivated and another created.
  const existingStudents = new Map(state.students.map(s => [s.sourcedId, s]));
  const studentsByUniqueId = new Map<string, StoredStudent[]>();
  for (const s of state.students) {
    const list = studentsByUniqueId.get(s.uniqueId);
    if (list) list.push(s);
    else studentsByUniqueId.set(s.uniqueId, [s]);
  }
  const chunkIds: ReadonlySet<string> =
    ctx.present?.studentIds ?? new Set(chunk.students.map(s => s.sourcedId));
  /** Old sourcedId → new, for the links loaded under the old one. */
  const movedFrom = new Map<string, string>();
  const chunkStudents = new Set<string>();
  const deferred = new Map<string, DeferredStudent>();
  for (const s of chunk.students) {
    if (chunkStudents.has(s.sourcedId)) {
      plan.rejects.push({
        entity: 'student',
        recordId: s.sourcedId,
        reason: 'duplicate student in snapshot',
      });
      continue;
    }
    chunkStudents.add(s.sourcedId);
    const next = toStoredStudent(ctx.districtId, s);
    const prev = existingStudents.get(s.sourcedId);
    if (prev) {
      if (prev.status === 'inactive' && next.status === 'active')
        plan.students.push({ action: 'reactivate', record: next });
      else if (!sameStudent(prev, next)) plan.students.push({ action: 'update', record: next });
      continue;
    }
    const sameUniqueId = (studentsByUniqueId.get(s.uniqueId) ?? []).filter(
      o => o.sourcedId !== s.sourcedId,
    );
    const old = sameUniqueId.length === 1 ? sameUniqueId[0] : undefined;
    if (old && !chunkIds.has(old.sourcedId) && !movedFrom.has(old.sourcedId)) {
      movedFrom.set(old.sourcedId, s.sourcedId);
      plan.students.push({ action: 'move', record: next, from: old.sourcedId });
      continue;
    }
    if (sameUniqueId.length > 1)
      plan.rejects.push({
        entity: 'student',
        recordId: s.sourcedId,
        kind: 'excluded',
        reason: `Unique ID ${s.uniqueId} is shared by ${sameUniqueId.length} stored students (${sameUniqueId
          .map(o => o.sourcedId)
          .join(', ')}): not matched by Unique ID`,
      });
    if (ctx.deferUnmatched && next.status === 'active')
      deferred.set(s.sourcedId, { record: next, links: [] });
    else plan.students.push({ action: 'create', record: next });
  }

  // --- parent accounts -----------------------------------------------------------------
  const bySource = new Map<string, Working>();
  const byUniqueId = new Map<string, Working>();
  const byEmail = new Map<string, Working[]>();
  const working = new Map<string, Working>();
  const index = (w: Working) => {
    working.set(w.account.id, w);
    for (const src of w.account.sources) bySource.set(sourceKey(src.connector, src.sourcedId), w);
    if (w.account.uniqueId) byUniqueId.set(w.account.uniqueId, w);
    const e = w.account.emailNormalized;
    if (e) {
      const list = byEmail.get(e) ?? [];
      if (!list.includes(w)) list.push(w);
      byEmail.set(e, list);
    }
  };
  for (const account of state.parents) {
    index({
      account: { ...account, sources: [...account.sources] },
      isNew: false,
      update: { id: account.id, set: {}, addSources: [] },
      action: undefined,
    });
  }

  // Name matching (a re-keyed contact without a usable email): the chunk's guardian ids, each
  // guardian's students in this chunk, and the accounts `sis`-linked to those students.
  const chunkGuardianIds: ReadonlySet<string> =
    ctx.present?.guardianIds ??
    new Set(chunk.guardians.filter(g => g.status === 'active').map(g => g.sourcedId));
  const studentsOf = new Map<string, Set<string>>();
  for (const r of chunk.relationships) {
    if (!chunkStudents.has(r.studentSourcedId)) continue;
    const set = studentsOf.get(r.guardianSourcedId) ?? new Set<string>();
    set.add(r.studentSourcedId);
    studentsOf.set(r.guardianSourcedId, set);
  }
  const linkedTo = new Map<string, string[]>();
  for (const l of state.links) {
    if (l.origin !== 'sis') continue;
    const list = linkedTo.get(l.studentSourcedId) ?? [];
    list.push(l.parentId);
    linkedTo.set(l.studentSourcedId, list);
  }
  const claimed = new Set<string>();
  const inWholeChunk = (sid: string) =>
    ctx.present ? ctx.present.studentIds.has(sid) : chunkStudents.has(sid);
  /** The chunk's active guardians by normalized name (`nameCandidates`; built on first use). */
  let guardiansByName: Map<string, Guardian[]> | undefined;

  const seenGuardians = new Set<string>();
  for (const g of chunk.guardians) {
    if (seenGuardians.has(g.sourcedId)) continue;
    seenGuardians.add(g.sourcedId);
    if (g.status !== 'active') continue;
    const email = normalizeEmail(g.email);

    let w = bySource.get(sourceKey(ctx.connector, g.sourcedId));
    if (!w && g.uniqueId) w = byUniqueId.get(g.uniqueId);
    if (!w && email) {
      const candidates = byEmail.get(email) ?? [];
      if (candidates.length > 1) {
        plan.rejects.push({
          entity: 'guardian',
          recordId: g.sourcedId,
          reason: `ambiguous identity: email is shared by ${candidates.length} parent accounts (${candidates
            .map(c => c.account.id)
            .join(', ')})`,
        });
        continue;
      }
      w = candidates[0];
    }
    if (!w) {
      const byName = nameCandidates(g, email);
      if (byName.length > 1) {
        plan.rejects.push({
          entity: 'guardian',
          recordId: g.sourcedId,
          reason: `ambiguous identity: ${byName.length} parent accounts with this name are linked to the same student (${byName
            .map(c => c.account.id)
            .join(', ')})`,
        });
        continue;
      }
      w = byName[0];
    }

    if (!w && !email && !g.uniqueId && (ctx.guardiansWithoutLogin ?? 'exclude') === 'exclude') {
      plan.rejects.push({
        entity: 'guardian',
        recordId: g.sourcedId,
        reason: EXCLUSION.noLogin,
        kind: 'excluded',
      });
      continue;
    }

    if (!w) {
      const account = newAccount(g, email, ctx);
      w = {
        account,
        isNew: true,
        update: { id: account.id, set: {}, addSources: [] },
        action: undefined,
      };
      index(w);
      plan.guardianAccounts[g.sourcedId] = account.id;
      continue;
    }

    plan.guardianAccounts[g.sourcedId] = w.account.id;
    claimed.add(w.account.id);
    const hasSource = w.account.sources.some(
      s => s.connector === ctx.connector && s.sourcedId === g.sourcedId,
    );
    if (!hasSource) {
      const src = { connector: ctx.connector, sourcedId: g.sourcedId };
      w.account.sources.push(src);
      if (!w.isNew) w.update.addSources.push(src);
      bySource.set(sourceKey(src.connector, src.sourcedId), w);
      w.action ??= 'match';
    }
    if (w.isNew) continue;
    if (w.account.status === 'inactive') {
      w.account.status = 'active';
      w.update.set.status = 'active';
      w.action = 'reactivate';
    }
    const owner = fieldOwner(w);
    const ownsFields =
      w.account.origin === 'sis' &&
      owner?.connector === ctx.connector &&
      owner.sourcedId === g.sourcedId;
    if (ownsFields) updateOwnedFields(w, g, email, byEmail, plan);
  }

  /**
   * Accounts that may be this unmatched guardian under a new SIS id (design invariant 7,
   * docs/decisions/0005): `sis`-linked (any status) to one of the guardian's students in this
   * chunk, with the same normalized name, an email that does not contradict the guardian's,
   * not matched to another guardian of this chunk and with no source of this connector still
   * in the chunk (that contact is alive: a second person). Empty when another guardian of the
   * same student in the chunk has the same name (two people, or a duplicate: never guessed).
   */
  function nameCandidates(g: Guardian, email: string | undefined): Working[] {
    const students = studentsOf.get(g.sourcedId);
    if (!students) return [];
    const name = normalizeName(g.givenName, g.familyName);
    const out = new Map<string, Working>();
    for (const s of students) {
      for (const parentId of linkedTo.get(s) ?? []) {
        const c = working.get(parentId);
        if (!c || c.isNew || claimed.has(parentId)) continue;
        if (normalizeName(c.account.givenName, c.account.familyName) !== name) continue;
        if (email && c.account.emailNormalized && c.account.emailNormalized !== email) continue;
        if (
          c.account.sources.some(
            x => x.connector === ctx.connector && chunkGuardianIds.has(x.sourcedId),
          )
        )
          continue;
        out.set(parentId, c);
      }
    }
    if (out.size === 0) return [];
    // Another active guardian of the chunk with the same name and a shared student: which
    // of the two is the re-keyed contact cannot be told, so neither takes the account.
    if (!guardiansByName) {
      guardiansByName = new Map();
      for (const other of chunk.guardians) {
        if (other.status !== 'active') continue;
        const key = normalizeName(other.givenName, other.familyName);
        const list = guardiansByName.get(key);
        if (list) list.push(other);
        else guardiansByName.set(key, [other]);
      }
    }
    for (const other of guardiansByName.get(name) ?? []) {
      if (other.sourcedId === g.sourcedId) continue;
      const theirs = studentsOf.get(other.sourcedId);
      if (theirs && [...theirs].some(s => students.has(s))) return [];
    }
    return [...out.values()];
  }

  /**
   * The source whose values an account's fields follow: its first source, unless that source
   * is gone — not a guardian of this chunk although the chunk's relationships are complete,
   * and every active `sis` link of the account is to a student of this chunk (so the source,
   * were it alive for one of the account's students, would be here). Then the first of the
   * account's sources that is in the chunk takes over (a contact re-keyed by the SIS). The
   * rule depends on the snapshot only, so the fields never flip between runs or chunks.
   */
  function fieldOwner(w: Working): ParentSource | undefined {
    const first = w.account.sources[0];
    const live = (s: ParentSource) =>
      s.connector === ctx.connector && chunkGuardianIds.has(s.sourcedId);
    if (!first || live(first) || first.connector !== ctx.connector) return first;
    if (!chunk.relationshipsSupplied) return first;
    for (const l of state.accountLinks ?? [])
      if (l.parentId === w.account.id && !inWholeChunk(l.studentSourcedId)) return first;
    return w.account.sources.find(live) ?? first;
  }

  for (const w of working.values()) {
    if (w.isNew) plan.parentCreates.push(w.account);
    else if (w.action) plan.parentUpdates.push({ action: w.action, update: w.update });
  }

  // --- links ---------------------------------------------------------------------------
  const existingLinks = new Map<string, GuardianLink>();
  for (const l of state.links) {
    if (l.origin !== 'sis') continue;
    // a moved student's links are already its own (the store moves them with it)
    const sid = movedFrom.get(l.studentSourcedId) ?? l.studentSourcedId;
    existingLinks.set(linkKey(l.parentId, sid), { ...l, studentSourcedId: sid });
  }
  const desired = new Set<string>();
  for (const r of chunk.relationships) {
    if (!chunkStudents.has(r.studentSourcedId)) {
      plan.rejects.push({
        entity: 'relationship',
        recordId: `${r.guardianSourcedId}->${r.studentSourcedId}`,
        reason: 'student is not in this snapshot (or was rejected)',
      });
      continue;
    }
    const parentId = plan.guardianAccounts[r.guardianSourcedId];
    if (!parentId) {
      const known = chunk.guardians.some(g => g.sourcedId === r.guardianSourcedId);
      if (!known)
        plan.rejects.push({
          entity: 'relationship',
          recordId: `${r.guardianSourcedId}->${r.studentSourcedId}`,
          reason: 'guardian is not in this snapshot',
        });
      continue; // rejected guardian: its reject already explains why
    }
    const key = linkKey(parentId, r.studentSourcedId);
    if (desired.has(key)) continue; // two SIS entries of one person → one link
    desired.add(key);
    const later = deferred.get(r.studentSourcedId);
    if (later) {
      later.links.push({ parentId, relationship: r.relationship });
      continue;
    }
    const prev = existingLinks.get(key);
    const link: GuardianLink = {
      districtId: ctx.districtId,
      parentId,
      studentSourcedId: r.studentSourcedId,
      origin: 'sis',
      relationship: r.relationship,
      status: 'active',
    };
    if (!prev) plan.links.push({ action: 'add', link });
    else if (prev.status === 'inactive') plan.links.push({ action: 'reactivate', link });
    else if ((prev.relationship ?? undefined) !== (r.relationship ?? undefined))
      plan.links.push({ action: 'update', link });
  }
  if (chunk.relationshipsSupplied) {
    for (const l of existingLinks.values()) {
      if (l.status !== 'active' || !chunkStudents.has(l.studentSourcedId)) continue;
      if (!desired.has(linkKey(l.parentId, l.studentSourcedId)))
        plan.linkRemovals.push({ parentId: l.parentId, studentSourcedId: l.studentSourcedId });
    }
  }
  if (deferred.size > 0) plan.deferredStudents = [...deferred.values()];
  return plan;
}

function newAccount(g: Guardian, email: string | undefined, ctx: PlanContext): ParentAccount {
  return {
    districtId: ctx.districtId,
    id: parentAccountId(ctx.districtId, ctx.connector, g.sourcedId),
    uniqueId: g.uniqueId,
    givenName: g.givenName,
    familyName: g.familyName,
    email: g.email,
    emailNormalized: email,
    phone: g.phone,
    role: ctx.parentRole,
    sisRole: g.role,
    status: 'active',
    origin: 'sis',
    sources: [{ connector: ctx.connector, sourcedId: g.sourcedId }],
    lockedFields: [],
  };
}

/** Apply the SIS's values to fields sync owns, skipping admin-locked fields. */
function updateOwnedFields(
  w: Working,
  g: Guardian,
  email: string | undefined,
  byEmail: Map<string, Working[]>,
  plan: ChunkPlan,
): void {
  const a = w.account;
  const locked = new Set(a.lockedFields);
  const set = w.update.set;
  const change = <K extends 'givenName' | 'familyName' | 'phone' | 'sisRole' | 'uniqueId'>(
    field: K,
    value: ParentAccount[K],
  ) => {
    if (locked.has(field) || value === undefined || a[field] === value) return;
    a[field] = value;
    set[field] = value;
    w.action ??= 'update';
    if (w.action === 'match') w.action = 'update';
  };
  change('givenName', g.givenName);
  change('familyName', g.familyName);
  change('phone', g.phone);
  change('sisRole', g.role);
  if (g.uniqueId && !a.uniqueId) change('uniqueId', g.uniqueId);

  // Email: compared normalized (case and surrounding spaces do not count as a change).
  if (!locked.has('email') && email && email !== a.emailNormalized) {
    const owners = (byEmail.get(email) ?? []).filter(o => o !== w);
    if (owners.length > 0) {
      plan.rejects.push({
        entity: 'guardian',
        recordId: g.sourcedId,
        reason: `email change not applied: the new email belongs to parent account ${owners
          .map(o => o.account.id)
          .join(', ')}`,
      });
      return;
    }
    a.email = g.email;
    a.emailNormalized = email;
    set.email = g.email;
    set.emailNormalized = email;
    byEmail.set(email, [w]);
    if (w.action === undefined || w.action === 'match') w.action = 'update';
  }
}
