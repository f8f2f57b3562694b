/**
 * Pure planner of a chunk's sections and enrollments (no I/O; both adapters use it so they
 * behave the same). See `SectionRepository` for the rules.
 */
import type { RunCounts } from '../types.js';
import type { SectionChunk, SectionPlan, SectionState, StoredEnrollment } from './types.js';

const key = (section: string, student: string) => `${section}\u0000${student}`;

/** Compute the writes that bring `state` in line with `chunk`. */
export function planSections(
  districtId: string,
  chunk: SectionChunk,
  state: SectionState,
): SectionPlan {
  const plan: SectionPlan = { sections: [], enrollments: [] };
  const existing = new Map(state.sections.map(s => [s.sourcedId, s]));
  const seenSections = new Set<string>();
  for (const s of chunk.sections ?? []) {
    if (seenSections.has(s.sourcedId)) continue;
    seenSections.add(s.sourcedId);
    const next = {
      districtId,
      sourcedId: s.sourcedId,
      title: s.title,
      schoolSourcedId: s.schoolSourcedId,
    };
    const prev = existing.get(s.sourcedId);
    if (!prev) plan.sections.push({ action: 'create', section: next });
    else if (prev.title !== next.title || prev.schoolSourcedId !== next.schoolSourcedId)
      plan.sections.push({ action: 'update', section: next });
  }

  if (chunk.enrollments === undefined) return plan; // not supplied: change nothing
  const students = new Set(chunk.studentSourcedIds);
  const have = new Map<string, StoredEnrollment>();
  for (const e of state.enrollments) have.set(key(e.sectionSourcedId, e.studentSourcedId), e);
  const desired = new Set<string>();
  for (const e of chunk.enrollments) {
    if (!students.has(e.studentSourcedId)) continue; // another chunk's student: not ours to change
    const k = key(e.sectionSourcedId, e.studentSourcedId);
    if (desired.has(k)) continue;
    desired.add(k);
    const prev = have.get(k);
    const enrollment: StoredEnrollment = {
      districtId,
      sectionSourcedId: e.sectionSourcedId,
      studentSourcedId: e.studentSourcedId,
      status: 'active',
    };
    if (!prev) plan.enrollments.push({ action: 'add', enrollment });
    else if (prev.status === 'inactive')
      plan.enrollments.push({ action: 'reactivate', enrollment });
  }
  for (const e of state.enrollments) {
    if (e.status !== 'active' || !students.has(e.studentSourcedId)) continue;
    if (!desired.has(key(e.sectionSourcedId, e.studentSourcedId)))
      plan.enrollments.push({ action: 'remove', enrollment: { ...e, status: 'inactive' } });
  }
  return plan;
}

/** `{ section: {create, update}, enrollment: {add, reactivate, remove} }` of a plan. */
export function countSectionPlan(plan: SectionPlan): RunCounts {
  const c: RunCounts = {};
  const inc = (entity: string, action: string) => {
    const t = (c[entity] ??= {});
    t[action] = (t[action] ?? 0) + 1;
  };
  for (const s of plan.sections) inc('section', s.action);
  for (const e of plan.enrollments) inc('enrollment', e.action);
  return c;
}
