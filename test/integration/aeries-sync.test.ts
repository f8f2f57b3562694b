/**
 * End to end: fake Aeries (HTTP) → Aeries connector → BullMQ (real Redis) → reconcile →
 * SQLite. Expected values come from the generator's ground truth (`personKey`), through the
 * Aeries adapter (`expectedAeriesRoster`), never from the mapper.
 */
import {
  aeriesPortalAccountId,
  aeriesStudentId,
  expectedAeriesRoster,
  type AeriesTruthPolicy,
} from '../../src/dev/aeries-adapter.js';
import { startFakeAeries, type FakeAeries } from '../../src/dev/aeries-server.js';
import {
  addGuardian,
  changeEmail,
  generateDistrict,
  removeRelationship,
  withdrawStudent,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import type { RosterStore } from '../../src/models/types.js';
import { startSisHarness, type SisHarness } from '../helpers/sis-harness.js';

const FAST = { aeries: { client: { minBackoffMs: 5, maxBackoffMs: 20 } } };

function districtConfig(fake: FakeAeries, extra: Record<string, unknown> = {}) {
  return {
    connector: {
      kind: 'aeries',
      baseUrl: fake.url,
      certEnv: 'AERIES_CERT',
      studentsPerRequest: 40,
      pageSize: 60,
      retries: 3,
      timeoutMs: 5000,
      ...extra,
    },
  };
}

/** Active accounts as `given|family|studentIds` lines (sorted), and their sources. */
async function storeRoster(store: RosterStore, districtId: string) {
  const parents = (await store.getParents(districtId)).filter(p => p.status === 'active');
  const links = (await store.getLinks(districtId)).filter(
    l => l.status === 'active' && l.origin === 'sis',
  );
  const studentsOf = new Map<string, string[]>();
  for (const l of links) {
    const list = studentsOf.get(l.parentId) ?? [];
    list.push(l.studentSourcedId);
    studentsOf.set(l.parentId, list);
  }
  const students = (await store.getStudents(districtId))
    .filter(s => s.status === 'active')
    .map(s => s.sourcedId)
    .sort();
  return {
    students,
    parents,
    lines: parents
      .map(p => `${p.givenName}|${p.familyName}|${(studentsOf.get(p.id) ?? []).sort().join(',')}`)
      .sort(),
    links: links.length,
  };
}

function truthLines(sis: SyntheticDistrict, policy: AeriesTruthPolicy) {
  const t = expectedAeriesRoster(sis, policy);
  return {
    ...t,
    lines: t.persons.map(p => `${p.givenName}|${p.familyName}|${p.students.join(',')}`).sort(),
  };
}

describe('Aeries → SQLite through BullMQ', () => {
  let sis: SyntheticDistrict;
  let fake: FakeAeries;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 21, students: 300 });
    fake = await startFakeAeries(sis);
    h = await startSisHarness({
      district: districtConfig(fake),
      secrets: { AERIES_CERT: fake.cert },
      overrides: FAST,
    });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('initial sync: students, accounts and links equal the ground truth; siblings share one account', async () => {
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const truth = truthLines(sis, { requirePortalAccess: true, requireEducationalRights: false });
    const got = await storeRoster(h.store, h.districtId);
    expect(got.students).toEqual(truth.students);
    expect(got.lines).toEqual(truth.lines);
    expect(got.links).toBe(truth.links);
    expect(run.counts.parent?.create).toBe(truth.persons.length);

    // Siblings: Aeries has one contact row per student, so a parent of k children is k rows
    // (more when entered twice); each such person is still one account.
    const multi = truth.persons.filter(p => p.students.length >= 2);
    expect(multi.length).toBeGreaterThan(10);
    const rows = fake.view().contacts.length;
    expect(rows).toBeGreaterThan(got.parents.length + multi.length);
    const accountsWithSiblings = got.lines.filter(l => (l.split('|')[2] ?? '').includes(','));
    expect(accountsWithSiblings.length).toBe(multi.length);
  });

  it('records how each person was matched: portal account id, else hashed name+phone/email/name+family', async () => {
    const parents = (await h.store.getParents(h.districtId)).filter(p => p.status === 'active');
    const sources = parents.flatMap(p => p.sources.map(s => s.sourcedId));
    for (const s of sources)
      expect(s).toMatch(/^(portal-account:\d+|(name-phone|email|name-family):[0-9a-f]{20})$/);
    // Persons with a portal account are identified by it (the truth knows who has one).
    const truth = expectedAeriesRoster(sis, {
      requirePortalAccess: true,
      requireEducationalRights: false,
    });
    const withPortal = new Set(
      sis.contacts.filter(c => c.account && c.email !== null).map(c => c.personKey),
    );
    const expectedPortalIds = truth.persons
      .filter(p => withPortal.has(p.personKey))
      .map(p => `portal-account:${aeriesPortalAccountId(p.personKey)}`)
      .sort();
    expect(expectedPortalIds.length).toBeGreaterThan(0);
    expect(sources.filter(s => s.startsWith('portal-account:')).sort()).toEqual(expectedPortalIds);
    // Every account has exactly one source: siblings' rows were merged before the planner.
    expect(parents.every(p => p.sources.length === 1)).toBe(true);
    expect(sources.some(s => s.startsWith('name-phone:'))).toBe(true);
  });

  it('a no-change resync performs zero store writes', async () => {
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(writes).toBe(0);
  });

  it('ids sent as strings and a student lookup that ignores SchoolCode change nothing', async () => {
    fake.faults.quirks.stringNumbers = true;
    fake.faults.quirks.studentLookupScopedBySchool = false;
    const { run, writes } = await h.sync();
    fake.faults.reset();
    expect(run.status).toBe('succeeded');
    expect(writes).toBe(0);
  });

  it('survives 429 (Retry-After) and 500 answers through the client retries', async () => {
    // 3 failed attempts of one request: within the client's 3 retries (no job retry needed).
    fake.faults.rateLimit(1, 0);
    fake.faults.serverError(2);
    const { run, writes } = await h.sync();
    fake.faults.reset();
    expect(run.status).toBe('succeeded');
    expect(writes).toBe(0);
    expect(fake.stats.byStatus['429']).toBe(1);
    expect(fake.stats.byStatus['500']).toBe(2);
  });

  it('a school whose contacts keep failing fails the run and deactivates nothing', async () => {
    const before = await storeRoster(h.store, h.districtId);
    const school = fake.view().schools[1];
    if (!school) throw new Error('fixture needs two schools');
    fake.faults.failSchoolContacts(school.SchoolCode);
    const { run, writes } = await h.sync();
    fake.faults.reset();
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/contacts/);
    expect(writes).toBe(0);
    expect(await storeRoster(h.store, h.districtId)).toEqual(before);
  });
});

describe('Aeries contact policy: flags, never position', () => {
  let sis: SyntheticDistrict;
  let fake: FakeAeries;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 22, students: 200 });
    fake = await startFakeAeries(sis);
  });
  afterAll(async () => {
    await fake?.close();
  });

  const cases: [string, Record<string, unknown>, AeriesTruthPolicy][] = [
    [
      'educational rights required',
      { requirePortalAccess: true, requireEducationalRights: true },
      { requirePortalAccess: true, requireEducationalRights: true },
    ],
    [
      'portal access not required (emergency contacts count too)',
      { requirePortalAccess: false },
      { requirePortalAccess: false, requireEducationalRights: false },
    ],
  ];
  it.each(cases)('%s', async (_name, contacts, truthPolicy) => {
    const h = await startSisHarness({
      district: districtConfig(fake, { contacts }),
      secrets: { AERIES_CERT: fake.cert },
      overrides: FAST,
    });
    try {
      const { run } = await h.sync();
      expect(run.status).toBe('succeeded');
      const truth = truthLines(sis, truthPolicy);
      const got = await storeRoster(h.store, h.districtId);
      expect(got.lines).toEqual(truth.lines);
      expect(got.links).toBe(truth.links);
      // The policy changes the outcome (so this test can tell policies apart).
      const def = truthLines(sis, { requirePortalAccess: true, requireEducationalRights: false });
      expect(truth.lines).not.toEqual(def.lines);
    } finally {
      await h.close();
    }
  });

  it('flags mix booleans, "Y"/"y"/"N" and "" in the feed', () => {
    const values = new Set(fake.view().contacts.map(c => JSON.stringify(c.AccessToPortal)));
    expect([...values].sort()).toEqual(['""', '"N"', '"Y"', '"y"', 'false', 'true']);
    const ids = new Set(sis.students.map(s => aeriesStudentId(s)));
    expect(fake.view().contacts.every(c => ids.has(c.StudentID))).toBe(true);
  });
});

describe('Aeries deltas (StudentDataChanges): add and update only; full pulls catch removals', () => {
  let sis: SyntheticDistrict;
  let fake: FakeAeries;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 23, students: 250 });
    fake = await startFakeAeries(sis, { utcOffsetMinutes: -420 });
    h = await startSisHarness({
      district: districtConfig(fake, {
        deltas: { enabled: true, fullPullEveryRuns: 4, overlapSeconds: 120 },
      }),
      secrets: { AERIES_CERT: fake.cert },
      overrides: FAST,
    });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  const perStudentRequests = () =>
    fake.stats.byRoute['GET /aeries/api/v5/schools/:sc/students/:id'] ?? 0;

  it('first run is full, then deltas fetch only the changed students', async () => {
    const first = await h.sync();
    expect(first.run.status).toBe('succeeded');
    expect(first.run.counts.pull).toEqual({ full: 1 });
    expect(perStudentRequests()).toBe(0);

    // Changes: a new guardian, a changed email (person with a portal account), a withdrawn
    // student and a removed relationship.
    const [a, b, c] = [sis.students[3], sis.students[40], sis.students[80]];
    if (!a || !b || !c) throw new Error('fixture too small');
    const newGuardian = addGuardian(sis, a.id);
    const portalPerson = sis.contacts.find(
      x =>
        x.account &&
        x.email &&
        x.links.length === 1 &&
        x.links[0]?.canAccessData &&
        x.links[0].detailActive &&
        sis.contacts.filter(y => y.personKey === x.personKey).length === 1,
    );
    if (!portalPerson) throw new Error('fixture lacks a single-row portal person');
    changeEmail(sis, portalPerson.contactId, 'New.Address@Example.org');
    withdrawStudent(sis, b.id);
    const cLink = sis.contacts.find(x =>
      x.links.some(l => l.studentDcid === c.id && l.canAccessData && l.detailActive),
    );
    if (!cLink) throw new Error('fixture: student c has no guardian');
    removeRelationship(sis, cLink.contactId, c.id);
    const changedIds = new Set(
      [a, b, c]
        .map(s => String(aeriesStudentId(s)))
        .concat(
          portalPerson.links.map(l =>
            String(sis.students.find(s => s.id === l.studentDcid)?.local_id),
          ),
        ),
    );

    const before = perStudentRequests();
    const second = await h.sync();
    expect(second.run.status).toBe('succeeded');
    expect(second.run.counts.pull).toEqual({ delta: 1 });
    expect(perStudentRequests() - before).toBe(changedIds.size);
    // Added and updated…
    expect(second.run.counts.parent?.create).toBe(1);
    expect(second.run.counts.link?.add).toBe(1);
    const parents = await h.store.getParents(h.districtId);
    const portal = parents.find(p =>
      p.sources.some(
        s => s.sourcedId === `portal-account:${aeriesPortalAccountId(portalPerson.personKey)}`,
      ),
    );
    expect(portal?.emailNormalized).toBe('new.address@example.org');
    expect(parents.some(p => p.givenName === newGuardian.firstName && p.status === 'active')).toBe(
      true,
    );
    // …but nothing removed: the withdrawn student and the dropped link stay until a full pull.
    expect(second.run.counts.student?.deactivate).toBeUndefined();
    expect(second.run.counts.link?.remove).toBeUndefined();
    const students = await h.store.getStudents(h.districtId);
    expect(students.find(s => s.sourcedId === String(aeriesStudentId(b)))?.status).toBe('active');
  });

  it('a delta over the same changes (overlap) writes nothing', async () => {
    const { run, writes } = await h.sync();
    expect(run.counts.pull).toEqual({ delta: 1 });
    expect(writes).toBe(0);
  });

  it('the periodic full pull catches the removals', async () => {
    await h.sync(); // third delta (fullPullEveryRuns 4: a full pull, then up to 3 deltas)
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(run.counts.pull).toEqual({ full: 1 });
    expect(run.counts.student?.deactivate).toBe(1);
    expect(run.counts.link?.remove).toBeGreaterThanOrEqual(1);
    const truth = truthLines(sis, { requirePortalAccess: true, requireEducationalRights: false });
    const got = await storeRoster(h.store, h.districtId);
    expect(got.students).toEqual(truth.students);
    expect(got.lines).toEqual(truth.lines);
  });

  it('a server without StudentDataChanges (501) gets a full pull', async () => {
    fake.faults.quirks.changesNotImplemented = true;
    const { run, writes } = await h.sync();
    fake.faults.reset();
    expect(run.status).toBe('succeeded');
    expect(run.counts.pull).toEqual({ full: 1 });
    expect(writes).toBe(0);
    expect(fake.stats.byStatus['501']).toBe(1);
  });
});

describe('Aeries through its OneRoster endpoint (api "oneroster", OneRoster core)', () => {
  it('syncs the roster with OAuth2 client credentials instead of the certificate', async () => {
    const { startFakeOneRoster } = await import('../../src/dev/oneroster-server.js');
    const sis = generateDistrict({ seed: 24, students: 120 });
    const or = await startFakeOneRoster(sis, { version: '1.1', style: 'plain', auth: 'oauth2' });
    const h = await startSisHarness({
      district: {
        connector: {
          kind: 'aeries',
          api: 'oneroster',
          baseUrl: or.url,
          oneroster: {
            clientIdEnv: 'AERIES_OR_ID',
            clientSecretEnv: 'AERIES_OR_SECRET',
            tokenUrl: or.tokenUrl,
            oneRosterUrl: or.baseUrl,
          },
          retries: 2,
          timeoutMs: 5000,
        },
      },
      secrets: { AERIES_OR_ID: or.clientId, AERIES_OR_SECRET: or.clientSecret },
    });
    try {
      const { run } = await h.sync();
      expect(run.error).toBeUndefined();
      expect(run.status).toBe('succeeded');
      const students = (await h.store.getStudents(h.districtId)).filter(s => s.status === 'active');
      expect(students.length).toBe(sis.students.filter(s => s.enroll_status === 'A').length);
      const parents = await h.store.getParents(h.districtId);
      expect(parents.length).toBeGreaterThan(0);
      expect(parents.every(p => p.sources.every(s => s.connector === 'aeries'))).toBe(true);
      expect(or.stats.byRoute['POST token'] ?? 0).toBeGreaterThan(0);
      expect(
        h.ctx.connectorFor(h.ctx.district(h.districtId)).capabilities.guardianLinksComplete,
      ).toBe(false);
    } finally {
      await h.close();
      await or.close();
    }
  });
});
