/**
 * Per-student digests of the canonical chunk data, so that a resync skips the students whose
 * SIS data is what was last applied without loading or diffing their state
 * (docs/decisions/0014-cheaper-apply-and-digests.md).
 *
 * A student's digest covers what the planner reads about it from the snapshot and from the
 * district's plan policies: the student record, each of its relationships with the
 * guardian's record, whether the chunk supplied relationships, the connector, the plan
 * policies (`parentRole`, `guardiansWithoutLogin`) and `PLAN_VERSION`. The store keeps the
 * digest with the student, written in the chunk's transaction, and clears it whenever
 * something else changes the student, its links, or an account or source linked to it (SQLite:
 * triggers, migration 8). A missing or different digest means a full diff.
 *
 * Students are skipped by groups: a group is the students and guardians joined by the
 * chunk's relationships and by guardians that belong to the same account; a group is skipped
 * only when every student in it has its stored digest and every guardian in it is related to
 * one of its students. A digest is stored only for the students of a planned group whose plan
 * was clean: no reject or exclusion, no held link removal, no deferred student (those are
 * planned again on every run, so they are reported every run).
 */
import { hash } from 'node:crypto';
import type { RosterChunk, Student } from '../mapping/canonical.js';
import type { ChunkPlan, NarrowedChunk, UnchangedCheck } from '../models/types.js';
import { chunkKeys, planChunk, type PlanContext } from './plan.js';

/**
 * Version of the planner's rules. Bump it whenever `planChunk` (or what the store does with
 * a plan) changes so that the same snapshot could give a different plan: every stored digest
 * then differs and the next run diffs every student once.
 */
export const PLAN_VERSION = 1;

/** The plan context's fields a student's digest covers (the rest only touch new students). */
function contextKey(ctx: PlanContext): string {
  return JSON.stringify([
    PLAN_VERSION,
    ctx.districtId,
    ctx.connector,
    ctx.parentRole,
    ctx.guardiansWithoutLogin ?? 'exclude',
  ]);
}

/**
 * studentSourcedId → digest (27-character base64 SHA-1) of each student of `chunk` (the
 * first record of a duplicated sourcedId; a duplicate makes its group unskippable anyway).
 *
 * The hashed text is one JSON array: `[student, [[relationship, guardian], …]]`, the
 * relationships sorted by their JSON text (order does not matter), after the context prefix.
 * Each guardian is serialized once per chunk and each relationship once, and the texts are
 * joined as they are (no second serialization of a serialized text).
 */
export function studentDigests(chunk: RosterChunk, ctx: PlanContext): Map<string, string> {
  const prefix = `${contextKey(ctx)}|${chunk.relationshipsSupplied ? 1 : 0}|`;
  const guardians = new Map<string, string>();
  for (const g of chunk.guardians)
    if (!guardians.has(g.sourcedId)) guardians.set(g.sourcedId, JSON.stringify(g));
  const relsOf = new Map<string, string[]>();
  for (const r of chunk.relationships) {
    const text = `[${JSON.stringify(r)},${guardians.get(r.guardianSourcedId) ?? 'null'}]`;
    const list = relsOf.get(r.studentSourcedId);
    if (list) list.push(text);
    else relsOf.set(r.studentSourcedId, [text]);
  }
  const out = new Map<string, string>();
  for (const s of chunk.students) {
    if (out.has(s.sourcedId)) continue;
    out.set(s.sourcedId, digestOf(prefix, s, relsOf.get(s.sourcedId)));
  }
  return out;
}

function digestOf(prefix: string, s: Student, rels: string[] | undefined): string {
  const body =
    rels === undefined ? '' : rels.length === 1 ? (rels[0] ?? '') : rels.sort(compare).join(',');
  return hash('sha1', `${prefix}[${JSON.stringify(s)},[${body}]]`, 'base64').slice(0, 27);
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The `UnchangedCheck` of a chunk for `reconcileChunk`: the groups to skip are decided from
 * the stored digests, and the rest is planned with `planChunk` under `ctx` (with the whole
 * chunk's ids as `ctx.present`).
 */
export function unchangedCheck(chunk: RosterChunk, ctx: PlanContext): UnchangedCheck {
  const digests = studentDigests(chunk, ctx);
  return {
    studentSourcedIds: [...digests.keys()],
    guardianSourcedIds: [...new Set(chunk.guardians.map(g => g.sourcedId))],
    narrow: (stored, accounts) => narrowChunk(chunk, ctx, digests, stored, accounts),
  };
}

/**
 * The chunk's groups: union-find over integer nodes, one per distinct student, per distinct
 * guardian and per account of a guardian's source; students and guardians are joined by the
 * chunk's relationships (both ends in the chunk), guardians by a shared account.
 */
class Groups {
  readonly student = new Map<string, number>();
  readonly guardian = new Map<string, number>();
  private readonly up: Int32Array;

  constructor(chunk: RosterChunk, accounts: ReadonlyMap<string, string>) {
    for (const s of chunk.students)
      if (!this.student.has(s.sourcedId)) this.student.set(s.sourcedId, this.student.size);
    let next = this.student.size;
    for (const g of chunk.guardians)
      if (!this.guardian.has(g.sourcedId)) this.guardian.set(g.sourcedId, next++);
    const account = new Map<string, number>();
    for (const g of chunk.guardians) {
      const a = accounts.get(g.sourcedId);
      if (a !== undefined && !account.has(a)) account.set(a, next++);
    }
    this.up = new Int32Array(next);
    for (let i = 0; i < next; i++) this.up[i] = i;
    for (const r of chunk.relationships) {
      const s = this.student.get(r.studentSourcedId);
      const g = this.guardian.get(r.guardianSourcedId);
      if (s !== undefined && g !== undefined) this.union(g, s);
    }
    for (const g of chunk.guardians) {
      const a = accounts.get(g.sourcedId);
      if (a !== undefined) this.union(this.guardian.get(g.sourcedId) ?? 0, account.get(a) ?? 0);
    }
  }

  find(x: number): number {
    const up = this.up;
    let root = x;
    while (up[root] !== root) root = up[root] ?? root;
    // path compression
    for (let y = x; y !== root;) {
      const next = up[y] ?? root;
      up[y] = root;
      y = next;
    }
    return root;
  }

  private union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.up[ra] = rb;
  }
}

function narrowChunk(
  chunk: RosterChunk,
  ctx: PlanContext,
  digests: ReadonlyMap<string, string>,
  stored: ReadonlyMap<string, string>,
  accounts: ReadonlyMap<string, string>,
): NarrowedChunk {
  // Every student dirty (an initial sync: no digest stored yet): every group is planned,
  // the part is the whole chunk and the groups are only built if the plan needs them.
  let anyMatch = false;
  for (const [sid, d] of stored)
    if (digests.get(sid) === d) {
      anyMatch = true;
      break;
    }
  if (!anyMatch) {
    let groups: Groups | undefined;
    return {
      keys: chunkKeys(chunk, ctx.connector),
      planner: state => planChunk(chunk, state, ctx),
      unchangedStudents: 0,
      skippedGuardianAccounts: {},
      digestsAfter: plan =>
        digestsAfter(chunk, plan, digests, () => (groups ??= new Groups(chunk, accounts))),
    };
  }

  const groups = new Groups(chunk, accounts);
  const dirtyRoots = new Set<number>(); // roots of the groups that must be planned
  const dirty = (node: number) => dirtyRoots.add(groups.find(node));
  const seenStudents = new Set<string>();
  for (const s of chunk.students) {
    const node = groups.student.get(s.sourcedId) ?? 0;
    if (seenStudents.has(s.sourcedId)) dirty(node); // duplicate: rejected
    seenStudents.add(s.sourcedId);
    const d = stored.get(s.sourcedId);
    if (d === undefined || d !== digests.get(s.sourcedId)) dirty(node);
  }
  const related = new Set<string>();
  for (const r of chunk.relationships) {
    const s = groups.student.get(r.studentSourcedId);
    const g = groups.guardian.get(r.guardianSourcedId);
    if (s === undefined || g === undefined) {
      // rejected relationship: planned (and reported) on every run
      if (g !== undefined) dirty(g);
      if (s !== undefined) dirty(s);
      continue;
    }
    related.add(r.guardianSourcedId);
  }
  for (const g of chunk.guardians)
    if (!related.has(g.sourcedId)) dirty(groups.guardian.get(g.sourcedId) ?? 0); // no digest covers it
  const planned = (node: number | undefined) =>
    node === undefined || dirtyRoots.has(groups.find(node));
  const plannedStudent = (id: string) => planned(groups.student.get(id));
  const plannedGuardian = (id: string) => planned(groups.guardian.get(id));

  const students = chunk.students.filter(s => plannedStudent(s.sourcedId));
  const guardians = chunk.guardians.filter(g => plannedGuardian(g.sourcedId));
  // a relationship whose guardian is not in the chunk is always planned (a reject)
  const relationships = chunk.relationships.filter(r => plannedGuardian(r.guardianSourcedId));
  const skippedGuardianAccounts: Record<string, string> = {};
  for (const g of chunk.guardians) {
    if (g.status !== 'active' || plannedGuardian(g.sourcedId)) continue;
    const account = accounts.get(g.sourcedId);
    if (account !== undefined) skippedGuardianAccounts[g.sourcedId] = account;
  }
  const part: RosterChunk = {
    students,
    guardians,
    relationships,
    relationshipsSupplied: chunk.relationshipsSupplied,
  };
  const present = {
    studentIds: seenStudents,
    guardianIds: new Set(chunk.guardians.filter(g => g.status === 'active').map(g => g.sourcedId)),
  };
  const partCtx: PlanContext = { ...ctx, present };
  return {
    keys: chunkKeys(part, ctx.connector),
    planner: state => planChunk(part, state, partCtx),
    unchangedStudents: seenStudents.size - new Set(students.map(s => s.sourcedId)).size,
    skippedGuardianAccounts,
    digestsAfter: plan => digestsAfter(part, plan, digests, () => groups),
  };
}

/**
 * Digests to store for the planned students once `plan` is written: the student's digest
 * when its group's plan is clean, null (clear) otherwise. `groups` are the whole chunk's.
 */
function digestsAfter(
  part: RosterChunk,
  plan: ChunkPlan,
  digests: ReadonlyMap<string, string>,
  chunkGroups: () => Groups,
): Map<string, string | null> {
  const unclean = new Set<number>();
  let groups: Groups | undefined;
  const mark = (node: number | undefined) => {
    if (node !== undefined) unclean.add((groups ??= chunkGroups()).find(node));
  };
  const markStudent = (id: string) => mark((groups ??= chunkGroups()).student.get(id));
  const markGuardian = (id: string) => mark((groups ??= chunkGroups()).guardian.get(id));
  let byRecordId: Map<string, RosterChunk['relationships']> | undefined;
  for (const r of plan.rejects) {
    if (r.entity === 'student') markStudent(r.recordId);
    else if (r.entity === 'guardian') markGuardian(r.recordId);
    else if (r.entity === 'relationship') {
      if (!byRecordId) {
        byRecordId = new Map();
        for (const rel of part.relationships) {
          const id = `${rel.guardianSourcedId}->${rel.studentSourcedId}`;
          const list = byRecordId.get(id);
          if (list) list.push(rel);
          else byRecordId.set(id, [rel]);
        }
      }
      for (const rel of byRecordId.get(r.recordId) ?? []) {
        markGuardian(rel.guardianSourcedId);
        markStudent(rel.studentSourcedId);
      }
    } else for (const s of part.students) markStudent(s.sourcedId); // unknown entity: keep none
  }
  for (const l of plan.linkRemovals) markStudent(l.studentSourcedId);
  for (const d of plan.deferredStudents ?? []) markStudent(d.record.sourcedId);
  const out = new Map<string, string | null>();
  for (const s of part.students) {
    if (out.has(s.sourcedId)) continue;
    const node = groups?.student.get(s.sourcedId);
    const clean = groups === undefined || node === undefined || !unclean.has(groups.find(node));
    out.set(s.sourcedId, clean ? (digests.get(s.sourcedId) ?? null) : null);
  }
  return out;
}
