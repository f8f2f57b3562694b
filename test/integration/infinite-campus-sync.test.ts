/**
 * End to end: fake Infinite Campus OneRoster (1.2 OAuth2 and 1.1 OAuth 1.0a, HTTP on
 * loopback) → connector → BullMQ (real Redis) → reconcile → SQLite. Expected values come
 * from the generator's ground truth (`expectedRoster`), through the fake's id maps.
 */
import {
  addGuardian,
  addStudent,
  changeEmail,
  withdrawStudent,
  type SyntheticDistrict,
  generateDistrict,
} from '../../src/dev/district-generator.js';
import { startFakeOneRoster, type FakeOneRoster } from '../../src/dev/oneroster-server.js';
import { accessCodeRepository } from '../../src/models/access-codes/index.js';
import { connectorStateRepository } from '../../src/models/connector-state/index.js';
import { storeRoster, truthRoster } from '../helpers/roster-truth.js';
import { startSisHarness, type SisHarness } from '../helpers/sis-harness.js';
import { withoutExclusions } from '../../src/jobs/rejects.js';

const FAST = { oneroster: { client: { minBackoffMs: 5, maxBackoffMs: 20 } } };

async function icHarness(
  sis: SyntheticDistrict,
  fake: FakeOneRoster,
  connector: Record<string, unknown>,
  extra: Record<string, unknown> = {},
): Promise<SisHarness> {
  return startSisHarness({
    district: {
      connector: {
        kind: 'infinite-campus',
        version: fake.version,
        baseUrl: fake.baseUrl,
        ...(fake.version === '1.2' ? { tokenUrl: fake.tokenUrl } : {}),
        clientIdEnv: 'IC_CLIENT_ID',
        clientSecretEnv: 'IC_CLIENT_SECRET',
        pageSize: 100,
        retries: 2,
        timeoutMs: 5000,
        ...connector,
      },
      ...extra,
    },
    secrets: { IC_CLIENT_ID: fake.clientId, IC_CLIENT_SECRET: fake.clientSecret },
    overrides: FAST,
  });
}

describe('Infinite Campus OneRoster 1.2 (OAuth2, GUIDs, agents on either side, deltas)', () => {
  let sis: SyntheticDistrict;
  let fake: FakeOneRoster;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 31, students: 300 });
    fake = await startFakeOneRoster(sis, { version: '1.2', agents: 'mixed' });
    h = await icHarness(sis, fake, {
      enrollments: true,
      deltas: { enabled: true, fullPullEveryRuns: 3 },
    });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('a full pull creates exactly the ground truth, links listed on either side included', async () => {
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    const truth = truthRoster(sis);
    const got = await storeRoster(h.store, h.districtId, sis, fake.roster.ids);
    expect(got).toEqual(truth);
    expect(run.counts.student?.create).toBe(truth.students.length);
    expect(run.counts.parent?.create).toBe(truth.persons.length);
    expect(run.counts.pull).toEqual({ full: 1 });
    expect(writes).toBeGreaterThan(truth.students.length + truth.persons.length);
    process.stdout.write(
      `IC 1.2 full sync: ${truth.students.length} students, ${truth.persons.length} parent accounts, ${truth.links.length} links, ${writes} writes\n`,
    );

    // A link the feed lists only on the guardian's side made it into the store.
    const view = fake.roster.view();
    const one = sis.contacts
      .flatMap(c => c.links.filter(l => l.canAccessData && l.detailActive).map(l => ({ c, l })))
      .find(({ c, l }) => fake.roster.agentsSideOf(c.contactId, l.studentDcid) === 'guardian');
    if (!one) throw new Error('fixture has no guardian-side-only link');
    const studentId = fake.roster.ids.student(one.l.studentDcid);
    const guardianId = fake.roster.ids.guardian(one.c.contactId);
    const agentsOf = (id: string) =>
      ((view.byId.get(id)?.agents ?? []) as { sourcedId: string }[]).map(a => a.sourcedId);
    expect(agentsOf(studentId)).not.toContain(guardianId);
    expect(agentsOf(guardianId)).toContain(studentId);
    expect(got.links).toContain(`${one.c.personKey}>${one.l.studentDcid}`);
  });

  it('the next run is a delta that reads no user and writes nothing', async () => {
    const served = fake.stats.recordsServed.users ?? 0;
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(run.counts).toEqual({ pull: { delta: 1 } });
    expect(writes).toBe(0);
    expect((fake.stats.recordsServed.users ?? 0) - served).toBe(0);
    const state = await (
      await connectorStateRepository(h.store)
    ).get(h.districtId, 'infinite-campus');
    expect(state?.runsSinceFull).toBe(1);
  });

  it('a delta adds and updates but never removes; the periodic full pull removes', async () => {
    const student = sis.students[12]!;
    const newGuardian = addGuardian(sis, student.id);
    const entries = new Map<string, number>();
    for (const c of sis.contacts) entries.set(c.personKey, (entries.get(c.personKey) ?? 0) + 1);
    // A person entered once (a duplicate entry never owns the account's fields).
    const someone = sis.contacts.find(
      c =>
        c.email &&
        entries.get(c.personKey) === 1 &&
        c.links.some(l => l.canAccessData && l.detailActive) &&
        c.contactId !== newGuardian.contactId,
    )!;
    changeEmail(sis, someone.contactId, `new.${someone.contactId}@example.net`);
    const withdrawn = sis.students[40]!;
    withdrawStudent(sis, withdrawn.id);

    const delta = await h.sync();
    expect(delta.run.status).toBe('succeeded');
    expect(delta.run.counts.pull).toEqual({ delta: 1 });
    expect(delta.run.counts.parent?.create).toBe(1);
    expect(delta.run.counts.student?.deactivate).toBeUndefined();
    expect(delta.run.counts.link?.remove).toBeUndefined();
    const afterDelta = await storeRoster(h.store, h.districtId, sis, fake.roster.ids);
    expect(afterDelta.students).toContain(withdrawn.id); // a delta never removes
    expect(afterDelta.links).toContain(`${newGuardian.personKey}>${student.id}`);
    const parents = await h.store.getParents(h.districtId);
    const changed = parents.find(p =>
      p.sources.some(s => s.sourcedId === fake.roster.ids.guardian(someone.contactId)),
    );
    expect(changed?.email).toBe(`new.${someone.contactId}@example.net`);

    const full = await h.sync();
    expect(full.run.status).toBe('succeeded');
    expect(full.run.counts.pull).toEqual({ full: 1 });
    expect(full.run.counts.student).toEqual({ deactivate: 1 });
    const truth = truthRoster(sis);
    const got = await storeRoster(h.store, h.districtId, sis, fake.roster.ids);
    expect(got.students).toEqual(truth.students);
    expect(got.links).toEqual(truth.links);
    // IC lists guardians only with portal access (guardianLinksComplete: false): a guardian
    // the feed stops listing keeps their account, unless it is left with no child at all —
    // their only links went with the withdrawn student — which is deactivated (issue 18 §5).
    const withdrawnGuardians = sis.contacts
      .filter(c => c.links.some(l => l.studentDcid === withdrawn.id && l.canAccessData))
      .map(c => c.personKey);
    const orphans = new Set(
      withdrawnGuardians.filter(p => !truth.links.some(l => l.startsWith(`${p}>`))),
    );
    expect(orphans.size).toBeGreaterThan(0);
    expect(full.run.counts.parent).toEqual({ deactivate: orphans.size });
    expect(got.persons).toEqual(truth.persons);
  });

  it('stores the classes and student enrollments as sections and enrollments', async () => {
    const { sectionRepository } = await import('../../src/models/sections/index.js');
    const repo = await sectionRepository(h.store);
    const expected = fake.roster
      .expectedEnrollments()
      .map(e => `${e.classSourcedId}>${e.studentSourcedId}`)
      .sort();
    expect(expected.length).toBeGreaterThan(300);
    const active = new Set(
      (await h.store.getStudents(h.districtId))
        .filter(x => x.status === 'active')
        .map(x => x.sourcedId),
    );
    const stored = (await repo.listEnrollments(h.districtId))
      .filter(e => e.status === 'active' && active.has(e.studentSourcedId))
      .map(e => `${e.sectionSourcedId}>${e.studentSourcedId}`)
      .sort();
    expect(stored).toEqual(expected);
  });
});

describe('Infinite Campus OneRoster 1.1 (OAuth 1.0a signed requests, prefixed ids)', () => {
  let sis: SyntheticDistrict;
  let fake: FakeOneRoster;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 32, students: 250 });
    fake = await startFakeOneRoster(sis, { version: '1.1', auth: 'oauth1' });
    h = await icHarness(sis, fake, { oauth: 'oauth1', signatureMethod: 'HMAC-SHA1' });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('syncs the ground truth, then a no-change resync writes nothing', async () => {
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    const truth = truthRoster(sis);
    expect(await storeRoster(h.store, h.districtId, sis, fake.roster.ids)).toEqual(truth);
    expect(fake.stats.byStatus['401']).toBeUndefined();
    process.stdout.write(
      `IC 1.1 full sync: ${truth.students.length} students, ${truth.persons.length} parent accounts, ${truth.links.length} links, ${writes} writes\n`,
    );
    const again = await h.sync();
    expect(again.run.status).toBe('succeeded');
    expect(again.writes).toBe(0);
    // no changes (what the snapshot leaves out by rule is reported on every run)
    expect(withoutExclusions(again.run.counts)).toEqual({});
  });
});

describe('Infinite Campus without portal access (guardians not supplied)', () => {
  let sis: SyntheticDistrict;
  let fake: FakeOneRoster;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 33, students: 200 });
    fake = await startFakeOneRoster(sis, { version: '1.2' });
    h = await icHarness(sis, fake, {}, { accessCodes: { enabled: true } });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('keeps earlier links and accounts, and issues an access code only to students with no link at all', async () => {
    const first = await h.sync();
    expect(first.run.status).toBe('succeeded');
    const truth = truthRoster(sis);
    const before = await storeRoster(h.store, h.districtId, sis, fake.roster.ids);
    expect(before).toEqual(truth);
    const linked = new Set(truth.links.map(l => Number(l.split('>')[1])));
    const unlinked = truth.students.filter(s => !linked.has(s));
    expect(first.run.counts.code?.issue ?? 0).toBe(unlinked.length);

    // The connection loses guardian access (a roster-only connection); a new student arrives.
    fake.roster.configure({ guardians: 'none' });
    const newcomer = addStudent(sis, sis.schools[0]!.id);
    const second = await h.sync();
    expect(second.run.status).toBe('succeeded');
    expect(second.run.counts.link?.remove).toBeUndefined();
    expect(second.run.counts.parent?.deactivate).toBeUndefined();
    const after = await storeRoster(h.store, h.districtId, sis, fake.roster.ids);
    expect(after.links).toEqual(before.links);
    expect(after.persons).toEqual(before.persons);
    expect(after.students).toEqual([...before.students, newcomer.id].sort((a, b) => a - b));
    expect(second.run.counts.code).toEqual({ issue: 1 });
    const codes = await accessCodeRepository(h.store);
    expect(
      await codes.codesOfStudent(h.districtId, fake.roster.ids.student(newcomer.id)),
    ).toHaveLength(1);
    const rejects = await h.store.listRejects(second.run.id, 0, 100);
    const hint = rejects.find(r => r.recordId === 'no-guardian-supplied');
    expect(hint?.reason).toMatch(/no guardian supplied for 201 of 201 students/);
    expect(hint?.reason).toMatch(/no guardian users at all/);
  });
});
