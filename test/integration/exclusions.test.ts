/**
 * Issue 18 §2, §3, §4 (first bullet) through the real connectors and fake SIS servers:
 * guardian identity without email, who gets an account or a code, and what was left out
 * (exclusions counted per reason and listed, API JSON and CSV).
 */
import { parse } from 'csv-parse/sync';
import { z } from 'zod';
import { hashToken } from '../../src/config/api-tokens.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import {
  addGuardian,
  addStudent,
  changeEmail,
  expectedRoster,
  generateDistrict,
  touchDistrict,
  withdrawStudent,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import { startFakeAeries, type FakeAeries } from '../../src/dev/aeries-server.js';
import { startFakeOneRoster, type FakeOneRoster } from '../../src/dev/oneroster-server.js';
import { accessCodeRepository } from '../../src/models/access-codes/index.js';
import type { ParentAccount, SyncRun } from '../../src/models/types.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { startSisHarness, type SisHarness } from '../helpers/sis-harness.js';

const POLICY = { requireDataAccess: true, requireCustodial: false };
const TOKEN = 'gst_test-viewer-token-0123456789abcdefghijklmnopqrstu';
const NO_LOGIN = 'excluded:no email or username';

const hasSource = (p: ParentAccount, sourcedId: string) =>
  p.sources.some(s => s.sourcedId === sourcedId);

/** The run's exclusion labels (`excluded:<reason>`) per entity. */
function exclusionCounts(run: SyncRun): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [entity, actions] of Object.entries(run.counts))
    for (const [action, n] of Object.entries(actions))
      if (action.startsWith('excluded:')) out[`${entity} ${action}`] = n;
  return out;
}

describe('PowerSchool: guardians without a login, exclusions listed (issue 18 §3, §4)', () => {
  let h: Harness;
  let app: ApiServer;
  let base: string;
  let run: SyncRun;
  let onlyGuardianless: number;
  let noEmailGuardian: number;

  beforeAll(async () => {
    h = await startHarness({
      students: 150,
      seed: 41,
      district: { accessCodes: { enabled: true } },
    });
    // A student whose only guardian has no email (and no username).
    const s = addStudent(h.sis, h.sis.schools[0]?.id ?? 0);
    const g = addGuardian(h.sis, s.id);
    changeEmail(h.sis, g.contactId, null);
    onlyGuardianless = s.id;
    noEmailGuardian = g.contactId;
    app = await buildApiServer(h.ctx, {
      tokens: [{ name: 'viewer', sha256: hashToken(TOKEN), role: 'viewer' }],
      bodyLimit: 4096,
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    run = (await h.sync()).run;
    expect(run.status).toBe('succeeded');
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  const get = (path: string) =>
    fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });

  it('a guardian with no email gets no account; its student is unlinked and gets a code', async () => {
    const parents = await h.store.getParents(h.districtId);
    expect(parents.filter(p => hasSource(p, String(noEmailGuardian)))).toEqual([]);
    expect(parents.filter(p => p.email === undefined)).toEqual([]); // no account that can never sign in
    const links = await h.store.getLinks(h.districtId);
    expect(links.filter(l => l.studentSourcedId === String(onlyGuardianless))).toEqual([]);
    const codes = await (
      await accessCodeRepository(h.store)
    ).codesOfStudent(h.districtId, String(onlyGuardianless));
    expect(codes.filter(c => c.status === 'active')).toHaveLength(1);
  });

  it('counts the exclusions per reason, and the counts match the ground truth and the listing', async () => {
    const all = expectedRoster(h.sis, { ...POLICY, requireLogin: false });
    const withoutEmail = all.accounts.filter(a => a.email === null).length;
    expect(withoutEmail).toBeGreaterThan(1); // the added guardian and the generator's ~5 %
    expect(run.counts.guardian?.[NO_LOGIN]).toBe(withoutEmail);
    // emergency-only contacts (no data access) are listed too, not silently dropped
    expect(run.counts.relationship?.['excluded:no data access']).toBeGreaterThan(0);

    const res = await get(`/runs/${run.id}/rejects?kind=excluded&limit=1000`);
    expect(res.status).toBe(200);
    const body = z
      .object({
        total: z.number(),
        items: z.array(
          z.object({
            entity: z.string(),
            recordId: z.string(),
            reason: z.string(),
            kind: z.string(),
          }),
        ),
      })
      .parse(await res.json());
    expect(body.items.every(i => i.kind === 'excluded')).toBe(true);
    expect(body.total).toBe(body.items.length);
    const listed: Record<string, number> = {};
    for (const i of body.items) {
      const k = `${i.entity} excluded:${i.reason}`;
      listed[k] = (listed[k] ?? 0) + 1;
    }
    expect(listed).toEqual(exclusionCounts(run));
    expect(body.items).toContainEqual({
      entity: 'guardian',
      recordId: String(noEmailGuardian),
      reason: 'no email or username',
      kind: 'excluded',
    });
    const rejectsOnly = z
      .object({ items: z.array(z.object({ kind: z.string() })) })
      .parse(await (await get(`/runs/${run.id}/rejects?kind=rejected&limit=1000`)).json());
    expect(rejectsOnly.items.every(i => i.kind === 'rejected')).toBe(true);
  });

  it('downloads the exclusions as CSV with the record and the rule', async () => {
    const res = await get(`/runs/${run.id}/rejects.csv?kind=excluded`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-disposition')).toContain(`exclusions-${run.id}.csv`);
    const rows: string[][] = parse(await res.text());
    expect(rows[0]).toEqual(['entity', 'recordId', 'reason', 'kind']);
    expect(rows).toContainEqual([
      'guardian',
      String(noEmailGuardian),
      'no email or username',
      'excluded',
    ]);
    const total = Object.values(exclusionCounts(run)).reduce((a, b) => a + b, 0);
    expect(rows).toHaveLength(total + 1);
  });

  it('a resync writes nothing and reports the same exclusions', async () => {
    const again = await h.sync();
    expect(again.run.status).toBe('succeeded');
    expect(again.writes).toBe(0);
    expect(exclusionCounts(again.run)).toEqual(exclusionCounts(run));
  });
});

describe('PowerSchool: student status comes from the record (issue 18 §3)', () => {
  let h: Harness;
  afterEach(async () => {
    await h?.close();
  });

  async function preRegisteredRun(policy?: 'include') {
    h = await startHarness({
      students: 60,
      seed: 43,
      fake: { quirks: { ignoreStatusFilter: true } },
      district: policy ? { policies: { preRegisteredStudents: policy } } : {},
    });
    const s = addStudent(h.sis, h.sis.schools[0]?.id ?? 0);
    addGuardian(h.sis, s.id);
    s.enroll_status = 'P';
    const gone = h.sis.students[0];
    if (gone) withdrawStudent(h.sis, gone.id);
    touchDistrict(h.sis);
    const withdrawn = h.sis.students.filter(
      x => x.enroll_status !== 'A' && x.enroll_status !== 'P',
    );
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const stored = await h.store.getStudents(h.districtId);
    return { run, s, stored, withdrawn };
  }

  it('a pre-registered student the server returns is not stored active; its guardian gets no access yet', async () => {
    const { run, s, stored, withdrawn } = await preRegisteredRun();
    expect(stored.filter(x => x.sourcedId === String(s.id))).toEqual([]);
    expect(
      (await h.store.getLinks(h.districtId)).filter(l => l.studentSourcedId === String(s.id)),
    ).toEqual([]);
    expect(run.counts.student?.['excluded:pre-registered student']).toBe(1);
    // transferred/graduated students the server returned anyway are not active either
    const active = new Set(stored.filter(x => x.status === 'active').map(x => x.sourcedId));
    expect(withdrawn.length).toBeGreaterThan(0);
    expect(withdrawn.filter(w => active.has(String(w.id)))).toEqual([]);
    expect(run.counts.student?.['excluded:not enrolled']).toBe(withdrawn.length);
  });

  it('policy preRegisteredStudents "include" syncs them as active students with their guardian', async () => {
    const { run, s, stored } = await preRegisteredRun('include');
    expect(stored.find(x => x.sourcedId === String(s.id))?.status).toBe('active');
    expect(
      (await h.store.getLinks(h.districtId)).filter(l => l.studentSourcedId === String(s.id)),
    ).toHaveLength(1);
    expect(run.counts.student?.['excluded:pre-registered student']).toBeUndefined();
  });
});

describe('PowerSchool: a contact re-keyed without an email (issue 18 §2)', () => {
  let h: Harness;
  afterAll(async () => {
    await h?.close();
  });

  it('is the same account (same name, same student), not a second one', async () => {
    h = await startHarness({
      students: 60,
      seed: 47,
      district: { policies: { guardiansWithoutLogin: 'create' } },
    });
    const s = addStudent(h.sis, h.sis.schools[0]?.id ?? 0);
    const g = addGuardian(h.sis, s.id);
    changeEmail(h.sis, g.contactId, null);
    const first = await h.sync();
    expect(first.run.status).toBe('succeeded');
    const before = (await h.store.getParents(h.districtId)).filter(p =>
      hasSource(p, String(g.contactId)),
    );
    expect(before).toHaveLength(1);
    const account = before[0]?.id;

    // The SIS re-keys the contact: same person, same student, new contactId.
    const oldId = g.contactId;
    g.contactId = h.sis.nextId();
    touchDistrict(h.sis);
    const second = await h.sync();
    expect(second.run.status).toBe('succeeded');
    const parents = await h.store.getParents(h.districtId);
    const mine = parents.filter(
      p => hasSource(p, String(g.contactId)) || hasSource(p, String(oldId)),
    );
    expect(mine.map(p => [p.id, p.status])).toEqual([[account, 'active']]);
    expect(second.run.counts.parent?.create).toBeUndefined();
    expect(second.run.counts.parent?.deactivate).toBeUndefined();
    const links = (await h.store.getLinks(h.districtId)).filter(
      l => l.studentSourcedId === String(s.id) && l.origin === 'sis',
    );
    expect(links.map(l => [l.parentId, l.status])).toEqual([[account, 'active']]);
  });
});

describe('PowerSchool: a contact re-keyed with the same email (issue 18 §2)', () => {
  let h: Harness;
  afterAll(async () => {
    await h?.close();
  });

  it('is matched, and the live contact takes over the fields (the new phone is applied)', async () => {
    h = await startHarness({ students: 60, seed: 61 });
    const s = addStudent(h.sis, h.sis.schools[0]?.id ?? 0);
    const g = addGuardian(h.sis, s.id);
    g.phone = '(555) 010-0001';
    const first = await h.sync();
    expect(first.run.status).toBe('succeeded');
    const [account] = (await h.store.getParents(h.districtId)).filter(p =>
      hasSource(p, String(g.contactId)),
    );
    expect(account?.phone).toBe('(555) 010-0001');

    const oldId = g.contactId;
    g.contactId = h.sis.nextId();
    g.phone = '(555) 010-0002';
    touchDistrict(h.sis);
    const second = await h.sync();
    expect(second.run.status).toBe('succeeded');
    const mine = (await h.store.getParents(h.districtId)).filter(
      p => hasSource(p, String(g.contactId)) || hasSource(p, String(oldId)),
    );
    expect(mine.map(p => [p.id, p.status, p.phone])).toEqual([
      [account?.id, 'active', '(555) 010-0002'],
    ]);
    // and it stays so: a resync changes nothing
    const third = await h.sync();
    expect(third.writes).toBe(0);
  });
});

describe('Infinite Campus (OneRoster): disabled guardians (issue 18 §3)', () => {
  let sis: SyntheticDistrict;
  let fake: FakeOneRoster;
  let h: SisHarness;
  const disabled = new Set<number>();
  beforeAll(async () => {
    sis = generateDistrict({ seed: 53, students: 80 });
    fake = await startFakeOneRoster(sis, { version: '1.1', disabledContacts: disabled });
    h = await startSisHarness({
      district: {
        connector: {
          kind: 'infinite-campus',
          version: '1.1',
          baseUrl: fake.baseUrl,
          clientIdEnv: 'IC_CLIENT_ID',
          clientSecretEnv: 'IC_CLIENT_SECRET',
          // the district asserts its feed lists every guardian (docs/decisions/0005: with a
          // portal-only feed a disabled guardian is listed as excluded but not deactivated)
          guardianLinksComplete: true,
          pageSize: 50,
          retries: 2,
          timeoutMs: 5000,
        },
      },
      secrets: { IC_CLIENT_ID: fake.clientId, IC_CLIENT_SECRET: fake.clientSecret },
      overrides: { oneroster: { client: { minBackoffMs: 5, maxBackoffMs: 20 } } },
    });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('a guardian with enabledUser false is excluded and its account deactivated; relatives are listed', async () => {
    const first = await h.sync();
    expect(first.run.status).toBe('succeeded');
    expect(first.run.counts.guardian?.['excluded:relative']).toBeGreaterThan(0);
    const truth = expectedRoster(sis, POLICY).accounts.find(
      a => a.contactIds.length === 1 && a.email !== null,
    );
    const email = truth?.email ?? '';
    const byEmail = async () =>
      (await h.store.getParents(h.districtId)).filter(p => p.emailNormalized === email);
    expect((await byEmail()).map(p => p.status)).toEqual(['active']);

    disabled.add(truth?.contactIds[0] ?? -1);
    touchDistrict(sis);
    const second = await h.sync();
    expect(second.run.status).toBe('succeeded');
    expect((await byEmail()).map(p => p.status)).toEqual(['inactive']);
    expect(second.run.counts.guardian?.['excluded:disabled in SIS']).toBe(1);
    const listed = await h.store.listRejects(second.run.id, 0, 1000, { kind: 'excluded' });
    expect(listed.filter(r => r.reason === 'disabled in SIS')).toHaveLength(1);
  });
});

describe('Aeries: a blank AccessToPortal with a PortalAccountID (issue 18 §4)', () => {
  let sis: SyntheticDistrict;
  let fake: FakeAeries;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 59, students: 120 });
    fake = await startFakeAeries(sis);
    h = await startSisHarness({
      district: {
        connector: {
          kind: 'aeries',
          baseUrl: fake.url,
          certEnv: 'AERIES_CERT',
          pageSize: 50,
          retries: 2,
          timeoutMs: 5000,
        },
      },
      secrets: { AERIES_CERT: fake.cert },
      overrides: { aeries: { client: { minBackoffMs: 5, maxBackoffMs: 20 } } },
    });
  });
  afterAll(async () => {
    await h?.close();
    await fake?.close();
  });

  it('is not portal access: the contact is listed as an exclusion with its own reason', async () => {
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const active = new Set(
      (await h.store.getStudents(h.districtId))
        .filter(s => s.status === 'active')
        .map(s => s.sourcedId),
    );
    const blankWithAccount = new Set(
      fake
        .view()
        .contacts.filter(
          c =>
            c.AccessToPortal === '' && c.PortalAccountID !== 0 && active.has(String(c.StudentID)),
        )
        .map(c => String(c.StudentID)),
    );
    expect(blankWithAccount.size).toBeGreaterThan(0);
    const listed = (await h.store.listRejects(run.id, 0, 100000, { kind: 'excluded' })).filter(
      r => r.reason === 'portal account without AccessToPortal',
    );
    expect(new Set(listed.map(r => r.recordId.split('->')[1]))).toEqual(blankWithAccount);
    expect(run.counts.relationship?.['excluded:portal account without AccessToPortal']).toBe(
      listed.length,
    );
  });
});
