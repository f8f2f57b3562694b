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
import { createHash } from 'node:crypto';
import type { Guardian, Relationship, RosterChunk, Student } from '../mapping/canonical.js';
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
 */
export function studentDigests(chunk: RosterChunk, ctx: PlanContext): Map<string, string> {
  const prefix = `${contextKey(ctx)}|${chunk.relationshipsSupplied ? 1 : 0}|`;
  const guardians = new Map<string, Guardian>();
  for (const g of chunk.guardians) if (!guardians.has(g.sourcedId)) guardians.set(g.sourcedId, g);
  const relsOf = new Map<string, Relationship[]>();
  for (const r of chunk.relationships) {
    const list = relsOf.get(r.studentSourcedId);
    if (list) list.push(r);
    else relsOf.set(r.studentSourcedId, [r]);
  }
  const out = new Map<string, string>();
  for (const s of chunk.students) {
    if (out.has(s.sourcedId)) continue;
    // each relationship with its guardian, serialized once; sorted so order does not matter
    const rels = (relsOf.get(s.sourcedId) ?? [])
      .map(r => JSON.stringify([r, guardians.get(r.guardianSourcedId)]))
      .sort(compare);
    out.set(s.sourcedId, digestOf(prefix, s, rels));
  }
  return out;
}

function digestOf(prefix: string, s: Student, rels: string[]): string {
  return createHash('sha1')
    .update(prefix + JSON.stringify([s, rels]))
    .digest('base64')
    .slice(0, 27);
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

/** Union-find over string nodes. */
class Groups {
  private readonly parent = new Map<string, string>();
  find(x: string): string {
    let root = x;
    for (;;) {
      const p = this.parent.get(root);
      if (p === undefined) this.parent.set(root, root);
      if (p === undefined || p === root) break;
      root = p;
    }
    // path compression
    for (let y = x; y !== root;) {
      const next = this.parent.get(y) ?? root;
      this.parent.set(y, root);
      y = next;
    }
    return root;
  }
  union(a: string, b: string): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra !== rb) this.parent.set(ra, rb);
  }
}

const S = (id: string) => `s\u0000${id}`;
const G = (id: string) => `g\u0000${id}`;
const A = (id: string) => `a\u0000${id}`;

function narrowChunk(
  chunk: RosterChunk,
  ctx: PlanContext,
  digests: ReadonlyMap<string, string>,
  stored: ReadonlyMap<string, string>,
  accounts: ReadonlyMap<string, string>,
): NarrowedChunk {
  const groups = new Groups();
  const dirty = new Set<string>(); // nodes whose group must be planned
  const studentIds = new Set<string>();
  for (const s of chunk.students) {
    if (studentIds.has(s.sourcedId)) dirty.add(S(s.sourcedId)); // duplicate: rejected
    studentIds.add(s.sourcedId);
    groups.find(S(s.sourcedId));
    const d = stored.get(s.sourcedId);
    if (d === undefined || d !== digests.get(s.sourcedId)) dirty.add(S(s.sourcedId));
  }
  const guardianIds = new Set(chunk.guardians.map(g => g.sourcedId));
  const related = new Set<string>();
  for (const r of chunk.relationships) {
    const g = G(r.guardianSourcedId);
    if (!studentIds.has(r.studentSourcedId) || !guardianIds.has(r.guardianSourcedId)) {
      // rejected relationship: planned (and reported) on every run
      dirty.add(g);
      if (studentIds.has(r.studentSourcedId)) dirty.add(S(r.studentSourcedId));
      groups.find(g);
      continue;
    }
    related.add(r.guardianSourcedId);
    groups.union(g, S(r.studentSourcedId));
  }
  for (const g of chunk.guardians) {
    const node = G(g.sourcedId);
    groups.find(node);
    if (!related.has(g.sourcedId)) dirty.add(node); // no digest covers it
    const account = accounts.get(g.sourcedId);
    if (account !== undefined) groups.union(node, A(account));
  }
  const dirtyRoots = new Set([...dirty].map(n => groups.find(n)));
  const planned = (node: string) => dirtyRoots.has(groups.find(node));

  const students = chunk.students.filter(s => planned(S(s.sourcedId)));
  const guardians = chunk.guardians.filter(g => planned(G(g.sourcedId)));
  const relationships = chunk.relationships.filter(r => planned(G(r.guardianSourcedId)));
  const skippedGuardianAccounts: Record<string, string> = {};
  for (const g of chunk.guardians) {
    if (g.status !== 'active' || planned(G(g.sourcedId))) continue;
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
    studentIds,
    guardianIds: new Set(chunk.guardians.filter(g => g.status === 'active').map(g => g.sourcedId)),
  };
  const partCtx: PlanContext = { ...ctx, present };
  return {
    keys: chunkKeys(part, ctx.connector),
    planner: state => planChunk(part, state, partCtx),
    unchangedStudents: studentIds.size - new Set(students.map(s => s.sourcedId)).size,
    skippedGuardianAccounts,
    digestsAfter: plan => digestsAfter(part, plan, digests, groups),
  };
}

/**
 * Digests to store for the planned students once `plan` is written: the student's digest
 * when its group's plan is clean, null (clear) otherwise.
 */
function digestsAfter(
  part: RosterChunk,
  plan: ChunkPlan,
  digests: ReadonlyMap<string, string>,
  groups: Groups,
): Map<string, string | null> {
  const unclean = new Set<string>();
  const mark = (node: string) => unclean.add(groups.find(node));
  for (const r of plan.rejects) {
    if (r.entity === 'student') mark(S(r.recordId));
    else if (r.entity === 'guardian') mark(G(r.recordId));
    else if (r.entity === 'relationship') {
      for (const rel of part.relationships)
        if (`${rel.guardianSourcedId}->${rel.studentSourcedId}` === r.recordId) {
          mark(G(rel.guardianSourcedId));
          mark(S(rel.studentSourcedId));
        }
    } else for (const s of part.students) mark(S(s.sourcedId)); // unknown entity: keep none
  }
  for (const l of plan.linkRemovals) mark(S(l.studentSourcedId));
  for (const d of plan.deferredStudents ?? []) mark(S(d.record.sourcedId));
  const out = new Map<string, string | null>();
  for (const s of part.students) {
    if (out.has(s.sourcedId)) continue;
    const clean = !unclean.has(groups.find(S(s.sourcedId)));
    out.set(s.sourcedId, clean ? (digests.get(s.sourcedId) ?? null) : null);
  }
  return out;
}
