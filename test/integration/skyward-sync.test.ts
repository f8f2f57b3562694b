/**
 * End to end: fake Skyward (the SMS 2.0 LMS API, and Skyward's OneRoster API) → connector →
 * BullMQ (real Redis) → reconcile → SQLite, checked against the generator's ground truth.
 */
import {
  addGuardian,
  changeEmail,
  generateDistrict,
  removeRelationship,
  withdrawStudent,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import { startFakeOneRoster, type FakeOneRoster } from '../../src/dev/oneroster-server.js';
import { startFakeSkyward, type FakeSkyward } from '../../src/dev/skyward-server.js';
import { numericIds, storeRoster, truthRoster } from '../helpers/roster-truth.js';
import { startSisHarness, type SisHarness } from '../helpers/sis-harness.js';
import { withoutExclusions } from '../../src/jobs/rejects.js';

const FAST = { oneroster: { client: { minBackoffMs: 5, maxBackoffMs: 20 } } };

/** A person entered once, with an email and a counted link (fields owned by one SIS entry). */
function singleEntryGuardian(sis: SyntheticDistrict, minLinks: number, not: number[] = []) {
  const entries = new Map<string, number>();
  for (const c of sis.contacts) entries.set(c.personKey, (entries.get(c.personKey) ?? 0) + 1);
  const c = sis.contacts.find(
    x =>
      x.email &&
      entries.get(x.personKey) === 1 &&
      !not.includes(x.contactId) &&
      x.links.filter(l => l.canAccessData && l.detailActive).length >= minLinks,
  );
  if (!c) throw new Error('fixture lacks a single-entry guardian');
  return c;
}

describe('Skyward SMS 2.0 LMS API', () => {
  let sis: SyntheticDistrict;
  let fake: FakeSkyward;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 51, students: 250 });
    fake = await startFakeSkyward(sis);
    h = await startSisHarness({
      district: {
        connector: {
          kind: 'skyward',
          baseUrl: fake.baseUrl,
          clientIdEnv: 'SKY_CLIENT_ID',
          clientSecretEnv: 'SKY_CLIENT_SECRET',
          usernameEnv: 'SKY_API_KEY',
          passwordEnv: 'SKY_API_SECRET',
          pageSize: 100,
          guardianConcurrency: 8,
          maxRequestsPerSecond: 1000,
          retries: 2,
          timeoutMs: 5000,
        },
      },
      secrets: {
        SKY_CLIENT_ID: fake.clientId,
        SKY_CLIENT_SECRET: fake.clientSecret,
        SKY_API_KEY: fake.username,
        SKY_API_SECRET: fake.password,
      },
      overrides: FAST,
    });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('syncs the ground truth with relationship texts, then a no-change resync writes nothing', async () => {
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    const truth = truthRoster(sis);
    expect(await storeRoster(h.store, h.districtId, sis, numericIds)).toEqual(truth);
    // one guardians request per student, cursor paging for the students
    expect(fake.stats.byRoute['GET /v1/guardians']).toBe(250);
    expect(fake.stats.byRoute['GET /v1/students']).toBe(3);
    // relationship text is per student entry (the Students[] entry of that student)
    const c = singleEntryGuardian(sis, 2);
    const parent = (await h.store.getParents(h.districtId)).find(p =>
      p.sources.some(x => x.sourcedId === String(c.contactId)),
    );
    const stored = (await h.store.getLinks(h.districtId)).filter(x => x.parentId === parent?.id);
    const counted = c.links.filter(l => l.canAccessData && l.detailActive);
    expect(stored).toHaveLength(counted.length);
    for (const l of counted)
      expect(stored.find(x => x.studentSourcedId === String(l.studentDcid))?.relationship).toBe(
        l.relationship,
      );
    process.stdout.write(
      `Skyward LMS full sync: ${truth.students.length} students, ${truth.persons.length} parent accounts, ${truth.links.length} links, ${writes} writes\n`,
    );
    const again = await h.sync();
    expect(again.writes).toBe(0);
    // no changes (what the snapshot leaves out by rule is reported on every run)
    expect(withoutExclusions(again.run.counts)).toEqual({});
  });

  it('reflects SIS changes, and only those', async () => {
    const student = sis.students[7]!;
    addGuardian(sis, student.id);
    const emailed = singleEntryGuardian(sis, 1);
    changeEmail(sis, emailed.contactId, `moved.${emailed.contactId}@example.org`);
    const twoKids = singleEntryGuardian(sis, 2, [emailed.contactId]);
    const dropped = twoKids.links.find(l => l.canAccessData && l.detailActive)!.studentDcid;
    removeRelationship(sis, twoKids.contactId, dropped);
    const withdrawn = sis.students.find(
      s =>
        s.id !== dropped && s.id !== student.id && !emailed.links.some(l => l.studentDcid === s.id),
    )!;
    withdrawStudent(sis, withdrawn.id);

    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(await storeRoster(h.store, h.districtId, sis, numericIds)).toEqual(truthRoster(sis));
    expect(run.counts.student).toEqual({ deactivate: 1 });
    expect(run.counts.parent?.create).toBe(1);
    expect(run.counts.parent?.update).toBe(1);
    expect(writes).toBeLessThan(25);
  });
});

describe('Skyward OneRoster API (1.1, OAuth 1.0a key/secret)', () => {
  let sis: SyntheticDistrict;
  let fake: FakeOneRoster;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 52, students: 220 });
    fake = await startFakeOneRoster(sis, {
      version: '1.1',
      style: 'plain',
      auth: 'oauth1',
      agents: 'student',
    });
    h = await startSisHarness({
      district: {
        connector: {
          kind: 'skyward',
          api: 'oneroster',
          baseUrl: fake.baseUrl,
          clientIdEnv: 'SKY_OR_KEY',
          clientSecretEnv: 'SKY_OR_SECRET',
          pageSize: 100,
          retries: 2,
          timeoutMs: 5000,
        },
      },
      secrets: { SKY_OR_KEY: fake.clientId, SKY_OR_SECRET: fake.clientSecret },
      overrides: FAST,
    });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('syncs the ground truth; a withdrawn student takes its links and only-child parents with it', async () => {
    const first = await h.sync();
    expect(first.run.status).toBe('succeeded');
    const truth = truthRoster(sis);
    expect(await storeRoster(h.store, h.districtId, sis, fake.roster.ids)).toEqual(truth);
    process.stdout.write(
      `Skyward OneRoster full sync: ${truth.students.length} students, ${truth.persons.length} parent accounts, ${truth.links.length} links, ${first.writes} writes\n`,
    );
    const only = sis.students.find(s => {
      const guardians = sis.contacts.filter(c =>
        c.links.some(l => l.studentDcid === s.id && l.canAccessData),
      );
      return guardians.length > 0 && guardians.every(c => c.links.length === 1);
    })!;
    withdrawStudent(sis, only.id);
    const second = await h.sync();
    expect(second.run.status).toBe('succeeded');
    expect(await storeRoster(h.store, h.districtId, sis, fake.roster.ids)).toEqual(
      truthRoster(sis),
    );
    expect(second.run.counts.student).toEqual({ deactivate: 1 });
    expect(second.run.counts.parent?.deactivate).toBeGreaterThanOrEqual(1);
  });
});
