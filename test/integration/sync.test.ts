/**
 * End to end: fake PowerSchool (HTTP) → connector → BullMQ (real Redis) → reconcile →
 * SQLite. Expected values come from the generator's ground truth (`expectedRoster`).
 */
import { Job } from 'bullmq';
import {
  addGuardian,
  changeEmail,
  expectedRoster,
  removeRelationship,
  restoreStudent,
  withdrawStudent,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import { approveRun, handleApply, newRunId, triggerSync, waitForRun } from '../../src/jobs/sync.js';
import { FINALIZE_HOOKS } from '../../src/jobs/finalize-hooks.js';
import { APPLY_PAYLOAD_VERSION, applyJobData } from '../../src/jobs/payloads.js';
import { jobId } from '../../src/workers/queues.js';
import type { RosterStore } from '../../src/models/types.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const POLICY = { requireDataAccess: true, requireCustodial: false };

/** The store's active roster in ground-truth terms (personKey instead of account ids). */
async function activeRoster(store: RosterStore, districtId: string, sis: SyntheticDistrict) {
  const personOf = new Map(sis.contacts.map(c => [String(c.contactId), c.personKey]));
  const parents = (await store.getParents(districtId)).filter(p => p.status === 'active');
  const accountPerson = new Map<string, string>();
  for (const p of parents) {
    const persons = new Set(p.sources.map(s => personOf.get(s.sourcedId)));
    expect(persons.size).toBe(1); // one account never mixes two people
    accountPerson.set(p.id, [...persons][0] ?? '?');
  }
  const links = (await store.getLinks(districtId)).filter(
    l => l.status === 'active' && l.origin === 'sis',
  );
  return {
    students: (await store.getStudents(districtId))
      .filter(s => s.status === 'active')
      .map(s => s.sourcedId)
      .sort(),
    persons: [...accountPerson.values()].sort(),
    links: links
      .map(
        l => `${accountPerson.get(l.parentId) ?? `inactive:${l.parentId}`}>${l.studentSourcedId}`,
      )
      .sort(),
  };
}

function truthRoster(sis: SyntheticDistrict) {
  const t = expectedRoster(sis, POLICY);
  return {
    students: t.students.map(s => String(s.dcid)).sort(),
    persons: t.accounts.map(a => a.personKey).sort(),
    links: t.links.map(l => `${l.personKey}>${l.studentDcid}`).sort(),
  };
}

describe('sync pipeline (PowerSchool → SQLite through BullMQ)', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ students: 400, seed: 11 });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('initial sync creates exactly the accounts and links of the ground truth', async () => {
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    const truth = truthRoster(h.sis);
    const got = await activeRoster(h.store, h.districtId, h.sis);
    expect(got.students).toEqual(truth.students);
    expect(got.persons).toEqual(truth.persons);
    expect(got.links).toEqual(truth.links);
    expect(run.counts.student?.create).toBe(truth.students.length);
    // finalize reports its steps (ms), each hook by name, within the finalize total
    const steps = Object.keys(run.timings).filter(k => k.startsWith('finalize.'));
    expect(steps).toEqual(
      expect.arrayContaining(['finalize.read', 'finalize.decide', 'finalize.deactivate']),
    );
    expect(steps).toEqual(expect.arrayContaining(FINALIZE_HOOKS.map(h => `finalize.${h.name}`)));
    const stepSum = steps.reduce((sum, k) => sum + (run.timings[k] ?? 0), 0);
    expect(stepSum).toBeLessThanOrEqual(run.timings.finalize ?? -1);
    expect(run.counts.parent?.create).toBe(truth.persons.length);
    expect(writes).toBeGreaterThan(truth.students.length + truth.persons.length);
    // emergency-only contacts never became parent accounts
    const emergencyOnly = h.sis.contacts.filter(c => c.links.every(l => !l.canAccessData));
    expect(emergencyOnly.length).toBeGreaterThan(0);
    const sourced = new Set(
      (await h.store.getParents(h.districtId)).flatMap(p => p.sources.map(s => s.sourcedId)),
    );
    for (const c of emergencyOnly) expect(sourced.has(String(c.contactId))).toBe(false);
  });

  it('running the same sync again performs zero store writes', async () => {
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(writes).toBe(0);
    // no changes; what the snapshot leaves out by rule is reported again (issue 18 §4)
    const changes = Object.entries(run.counts).flatMap(([entity, actions]) =>
      Object.keys(actions)
        .filter(a => !a.startsWith('excluded:'))
        .map(a => `${entity}.${a}`),
    );
    expect(changes).toEqual([]);
    expect(run.counts.relationship?.['excluded:no data access']).toBeGreaterThan(0);
  });

  it('a dry run reports the plan and writes nothing', async () => {
    const student = h.sis.students[5];
    if (!student) throw new Error('fixture too small');
    const g = addGuardian(h.sis, student.id);
    const { run, writes } = await h.sync({ dryRun: true });
    expect(writes).toBe(0);
    expect(run.dryRun).toBe(true);
    expect(run.counts.parent?.create).toBe(1);
    expect(run.counts.link?.add).toBe(1);
    const parents = await h.store.getParents(h.districtId);
    expect(parents.some(p => p.sources.some(s => s.sourcedId === String(g.contactId)))).toBe(false);
    removeRelationship(h.sis, g.contactId, student.id); // undo for the next tests
  });

  it('reflects SIS changes (new guardian, changed email, removed relationship, withdrawn student), and only those', async () => {
    const sis = h.sis;
    const personCount = new Map<string, number>();
    for (const c of sis.contacts)
      personCount.set(c.personKey, (personCount.get(c.personKey) ?? 0) + 1);
    const eligible = (c: (typeof sis.contacts)[number]) =>
      c.links.filter(l => l.canAccessData && l.detailActive);
    const single = sis.contacts.filter(c => personCount.get(c.personKey) === 1 && c.email);
    const emailChanged = single.find(c => eligible(c).length >= 1);
    const twoKids = single.find(c => c !== emailChanged && eligible(c).length >= 2);
    if (!emailChanged || !twoKids) throw new Error('fixture lacks the contacts this test needs');
    const dropped = eligible(twoKids)[0]!.studentDcid;
    const newGuardianStudent = sis.students[10]!;
    const withdrawn = sis.students.find(
      s =>
        s.id !== dropped &&
        s.id !== newGuardianStudent.id &&
        !eligible(emailChanged).some(l => l.studentDcid === s.id),
    )!;

    const before = await activeRoster(h.store, h.districtId, sis);
    const withdrawnLinks = before.links.filter(l => l.endsWith(`>${withdrawn.id}`)).length;
    expect(withdrawnLinks).toBeGreaterThan(0);
    addGuardian(sis, newGuardianStudent.id);
    changeEmail(sis, emailChanged.contactId, `changed.${emailChanged.contactId}@example.net`);
    removeRelationship(sis, twoKids.contactId, dropped);
    withdrawStudent(sis, withdrawn.id);

    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    const truth = truthRoster(sis);
    const after = await activeRoster(h.store, h.districtId, sis);
    expect(after).toEqual(truth);

    // only the changes: compare with the state before
    expect(before.students.filter(s => !after.students.includes(s))).toEqual([
      String(withdrawn.id),
    ]);
    expect(run.counts.student).toEqual({ deactivate: 1 });
    expect(run.counts.parent?.create).toBe(1);
    expect(run.counts.parent?.update).toBe(1);
    expect(run.counts.link?.add).toBe(1);
    // the removed relationship, plus the withdrawn student's links (restored when they return)
    expect(run.counts.link?.remove).toBe(1 + withdrawnLinks);
    const account = (await h.store.getParents(h.districtId)).find(p =>
      p.sources.some(s => s.sourcedId === String(emailChanged.contactId)),
    );
    expect(account?.email).toBe(`changed.${emailChanged.contactId}@example.net`);
    // removed link is deactivated, not deleted
    const removed = (await h.store.getLinks(h.districtId)).filter(
      l => l.studentSourcedId === String(dropped) && l.status === 'inactive',
    );
    expect(removed).toHaveLength(1);
    expect(writes).toBeLessThan(20);
    restoreStudent(sis, withdrawn.id);
    await h.sync();
  });

  it('import and manual links survive a sync that does not contain them', async () => {
    const [parent] = (await h.store.getParents(h.districtId)).filter(p => p.status === 'active');
    const student = h.sis.students.at(-1)!;
    if (!parent) throw new Error('no parent');
    await h.store.addLink({
      districtId: h.districtId,
      parentId: parent.id,
      studentSourcedId: String(student.id),
      origin: 'import',
      status: 'active',
    });
    await h.store.addLink({
      districtId: h.districtId,
      parentId: parent.id,
      studentSourcedId: String(h.sis.students[0]!.id),
      origin: 'manual',
      status: 'active',
    });
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const links = await h.store.getLinks(h.districtId);
    const kept = links.filter(
      l => l.parentId === parent.id && (l.origin === 'import' || l.origin === 'manual'),
    );
    expect(kept.map(l => l.status)).toEqual(['active', 'active']);
  });

  it('a student who leaves and comes back is the same record with the same parent account and links', async () => {
    const s = h.sis.students[20]!;
    const linksBefore = (await h.store.getLinks(h.districtId)).filter(
      l => l.studentSourcedId === String(s.id) && l.origin === 'sis',
    );
    const parentsBefore = await h.store.getParents(h.districtId);
    withdrawStudent(h.sis, s.id);
    const gone = await h.sync();
    expect(gone.run.counts.student).toEqual({ deactivate: 1 });
    expect(
      (await h.store.getStudents(h.districtId)).find(x => x.sourcedId === String(s.id))?.status,
    ).toBe('inactive');
    restoreStudent(h.sis, s.id);
    const back = await h.sync();
    expect(back.run.counts.student).toEqual({ reactivate: 1 });
    expect(back.run.counts.parent?.create).toBeUndefined();
    const students = (await h.store.getStudents(h.districtId)).filter(
      x => x.sourcedId === String(s.id),
    );
    expect(students).toHaveLength(1);
    expect(students[0]?.status).toBe('active');
    const parentsAfter = await h.store.getParents(h.districtId);
    expect(parentsAfter.length).toBe(parentsBefore.length);
    const linksAfter = (await h.store.getLinks(h.districtId)).filter(
      l => l.studentSourcedId === String(s.id) && l.origin === 'sis',
    );
    expect(linksAfter.map(l => [l.parentId, l.status])).toEqual(
      linksBefore.map(l => [l.parentId, 'active']),
    );
    expect(await activeRoster(h.store, h.districtId, h.sis)).toEqual(truthRoster(h.sis));
  });

  it('re-delivering apply jobs (each chunk applied three times) leaves the state of one application', async () => {
    const student = h.sis.students[7]!;
    addGuardian(h.sis, student.id);
    // A run driven by hand: read the chunks, then deliver every chunk job to the worker
    // AND apply it twice more directly, as a stalled-job re-delivery would.
    const run = await h.store.createRun({
      id: newRunId(),
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
    const generation = await h.ctx.ledger.startGeneration(run.id);
    const connector = h.ctx.connectorFor(h.ctx.district(h.districtId));
    const ac = new AbortController();
    const chunks = [];
    for await (const chunk of connector.readRoster({
      logger: h.ctx.logger,
      signal: ac.signal,
      reject: () => undefined,
    }))
      chunks.push(chunk);
    await h.ctx.ledger.setTotal(run.id, chunks.length);
    const before = h.store.writeCount();
    for (const [chunkNo, chunk] of chunks.entries()) {
      const job = await h.ctx.queues.apply.add(
        'apply',
        applyJobData({
          v: APPLY_PAYLOAD_VERSION,
          districtId: h.districtId,
          runId: run.id,
          chunkNo,
          generation,
          chunk,
        }),
        { jobId: jobId.chunk(h.districtId, run.id, generation, chunkNo) },
      );
      await handleApply(h.ctx, job);
      await handleApply(h.ctx, job);
    }
    const done = await waitForRun(h.ctx, run.id, { timeoutMs: 30000 });
    expect(done.status).toBe('succeeded');
    expect(done.counts.parent).toEqual({ create: 1 });
    expect(done.counts.link).toEqual({ add: 1 });
    // SQLite rows: the account, its source row and the link — once, not three times
    expect(h.store.writeCount() - before).toBe(3);
    expect(await activeRoster(h.store, h.districtId, h.sis)).toEqual(truthRoster(h.sis));
    const again = await h.sync();
    expect(again.writes).toBe(0);
  });

  it('a chunk of an earlier pull attempt is ignored once a new attempt started', async () => {
    const { run } = await h.sync();
    const generation = await h.ctx.ledger.startGeneration(run.id);
    const stale = await h.ctx.ledger.recordChunk(run.id, generation - 1, {
      chunkNo: 0,
      seenStudents: ['x'],
      seenParents: [],
      linkRemovals: [],
      counts: { student: { create: 1 } },
      rejects: [],
    });
    expect(stale).toBe(false);
    expect(await h.ctx.ledger.counts(run.id)).toEqual({});
    const fresh = await h.ctx.ledger.recordChunk(run.id, generation, {
      chunkNo: 0,
      seenStudents: ['x'],
      seenParents: [],
      linkRemovals: [],
      counts: { student: { create: 1 } },
      rejects: [],
    });
    expect(fresh).toBe(true);
    expect(await h.ctx.ledger.counts(run.id)).toEqual({ student: { create: 1 } });
    await h.ctx.ledger.clear(run.id);
  });

  it("a pull retried after the SIS changed mid-run applies only the retry's pages", async () => {
    // first attempt fails on page 3; meanwhile a student on page 1 withdraws, shifting pages
    h.fake.faults.failStudentsAfterPage(2);
    const { run } = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    const pullJob = jobId.pull(h.districtId, run.id);
    const deadline = Date.now() + 30000;
    for (;;) {
      const job = await Job.fromId(h.ctx.queues.pull, pullJob);
      if ((job?.attemptsMade ?? 0) >= 1) break;
      if (Date.now() > deadline) throw new Error('first pull attempt did not fail in time');
      await new Promise(r => setTimeout(r, 50));
    }
    const leaver = h.sis.students[3]!;
    withdrawStudent(h.sis, leaver.id);
    h.fake.faults.failStudentsAfterPage(null);
    const done = await waitForRun(h.ctx, run.id, { timeoutMs: 60000 });
    expect(done.status).toBe('succeeded');
    expect(done.counts.student).toEqual({ deactivate: 1 });
    expect(await activeRoster(h.store, h.districtId, h.sis)).toEqual(truthRoster(h.sis));
    restoreStudent(h.sis, leaver.id);
    expect((await h.sync()).run.counts.student).toEqual({ reactivate: 1 });
  });

  it('holds deactivations above the threshold and applies them on approval', async () => {
    const victims = h.sis.students.slice(100, 160); // 15 % of 400
    for (const s of victims) withdrawStudent(h.sis, s.id);
    const held = await h.sync();
    expect(held.run.status).toBe('needs-approval');
    expect(held.run.held?.students).toBe(60);
    const listed = await h.store.listHeld(held.run.id, 'student', 0, 1000);
    expect(listed.studentSourcedIds.sort()).toEqual(victims.map(s => String(s.id)).sort());
    expect(held.run.counts.student).toEqual({ 'deactivate-held': 60 });
    const active = (await h.store.getStudents(h.districtId)).filter(s => s.status === 'active');
    expect(active).toHaveLength(400);
    const approved = await approveRun(h.ctx, held.run.id);
    expect(approved.status).toBe('succeeded');
    const activeAfter = (await h.store.getStudents(h.districtId)).filter(
      s => s.status === 'active',
    );
    expect(activeAfter).toHaveLength(340);
    for (const s of victims) restoreStudent(h.sis, s.id);
    const back = await h.sync();
    expect(back.run.counts.student).toEqual({ reactivate: 60 });
  });

  it('an HTTP 200 with zero students is held, not applied', async () => {
    const all = h.sis.students.map(s => s.id);
    for (const id of all) withdrawStudent(h.sis, id);
    const { run, writes } = await h.sync();
    expect(run.status).toBe('needs-approval');
    expect(run.error).toContain('no students');
    expect(writes).toBe(0);
    for (const id of all) restoreStudent(h.sis, id);
  });

  it('a connector failure half way fails the run with the reason and deactivates nothing', async () => {
    const s = h.sis.students[30]!;
    withdrawStudent(h.sis, s.id);
    h.fake.faults.failStudentsAfterPage(2);
    try {
      const { run } = await h.sync();
      expect(run.status).toBe('failed');
      expect(run.error).toMatch(/500/);
    } finally {
      h.fake.faults.failStudentsAfterPage(null);
    }
    const stored = (await h.store.getStudents(h.districtId)).find(
      x => x.sourcedId === String(s.id),
    );
    expect(stored?.status).toBe('active');
    restoreStudent(h.sis, s.id);
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
  });

  it('a second trigger while a run is active returns the active run', async () => {
    h.fake.faults.slowMs(30);
    try {
      const a = await triggerSync(h.ctx, {
        districtId: h.districtId,
        dryRun: false,
        trigger: 'test',
      });
      const b = await triggerSync(h.ctx, {
        districtId: h.districtId,
        dryRun: false,
        trigger: 'test',
      });
      expect(a.started).toBe(true);
      expect(b.started).toBe(false);
      expect(b.run.id).toBe(a.run.id);
      await waitForRun(h.ctx, a.run.id, { timeoutMs: 60000 });
    } finally {
      h.fake.faults.slowMs(0);
    }
  });
});
