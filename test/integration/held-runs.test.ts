/**
 * Issue 20 finding 5: a held run's lists live outside the run document, in pages, so a held
 * list of any size is held (not a failed run), listable page by page and approvable; approval
 * streams the pages into `applyDeactivations` in batches. Issue 18 §4b: the held records are
 * listed with names and Unique IDs, and the counts say "held", not "applied".
 */
import { withdrawStudent } from '../../src/dev/district-generator.js';
import { heldItems } from '../../src/jobs/held.js';
import { approveRun, discardRun, newRunId } from '../../src/jobs/sync.js';
import { startHarness, type Harness } from '../helpers/harness.js';

describe('held runs: lists outside the run, listed, approved in batches', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ students: 200, seed: 23 });
    expect((await h.sync()).run.status).toBe('succeeded');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a held run reports held counts and lists the held students and links by name and Unique ID', async () => {
    const victims = h.sis.students.slice(0, 30);
    for (const s of victims) withdrawStudent(h.sis, s.id);
    const { run } = await h.sync();
    expect(run.status).toBe('needs-approval');
    expect(run.counts.student).toEqual({ 'deactivate-held': 30 });
    expect(run.counts.student?.deactivate).toBeUndefined();
    expect(run.held?.students).toBe(30);
    const items = await heldItems(h.ctx, run, 'student', 0, 100);
    expect(items.map(i => i.studentSourcedId).sort()).toEqual(
      victims.map(s => String(s.id)).sort(),
    );
    const stored = new Map((await h.store.getStudents(h.districtId)).map(s => [s.sourcedId, s]));
    for (const i of items) {
      const s = stored.get(i.studentSourcedId!)!;
      expect(i.studentUniqueId).toBe(s.uniqueId);
      expect(i.studentName).toBe(`${s.givenName} ${s.familyName}`);
    }
    const links = await heldItems(h.ctx, run, 'link', 0, 1000);
    expect(links).toHaveLength(run.held?.links ?? -1);
    expect(links.every(l => l.parentName && l.studentName)).toBe(true);
    const discarded = await discardRun(h.ctx, run.id, 'test');
    expect(discarded.status).toBe('discarded');
    expect(await heldItems(h.ctx, run, 'student', 0, 100)).toEqual([]);
  });

  it('a held list of 200,000 students is held outside the run and approved in batches', async () => {
    const real = await h.store.listActiveStudentIds(h.districtId);
    const victims = real.slice(0, 20);
    const ghosts = Array.from({ length: 200_000 - victims.length }, (_, i) => `ghost-${i}`);
    const links = await h.store.listActiveSisLinks(h.districtId, {
      studentSourcedIds: victims,
      parentIds: [],
    });
    const id = newRunId();
    await h.store.createRun({
      id,
      districtId: h.districtId,
      connector: 'powerschool',
      status: 'running',
      dryRun: false,
      trigger: 'test',
      createdAt: new Date().toISOString(),
      counts: {},
      rejectCount: 0,
      timings: {},
    });
    const t0 = Date.now();
    const held = await h.store.holdRun(
      id,
      { counts: { student: { 'deactivate-held': 200_000 } } },
      { studentSourcedIds: [...ghosts, ...victims], parentIds: [], links },
    );
    const holdMs = Date.now() - t0;
    expect(held.status).toBe('needs-approval');
    expect(JSON.stringify(await h.store.getRun(id)).length).toBeLessThan(4000);
    const last = await heldItems(h.ctx, held, 'student', 199_990, 100);
    expect(last.map(i => i.studentSourcedId)).toEqual(victims.slice(10));
    const t1 = Date.now();
    const approved = await approveRun(h.ctx, id, 'test');
    const approveMs = Date.now() - t1;
    expect(approved.status).toBe('succeeded');
    expect(approved).not.toHaveProperty('held');
    expect(approved.counts.student).toEqual({ deactivate: victims.length });
    expect(approved.counts.link).toEqual({ remove: links.length });
    const active = new Set(await h.store.listActiveStudentIds(h.districtId));
    for (const v of victims) expect(active.has(v)).toBe(false);
    expect((await h.store.listHeld(id, 'student', 0, 10)).studentSourcedIds).toEqual([]);
    process.stdout.write(
      `held list of 200,000 students (SQLite): hold ${holdMs} ms, approve ${approveMs} ms\n`,
    );
  }, 120_000);
});
