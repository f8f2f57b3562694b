/**
 * Issue 18 §5: with Infinite Campus' default (guardian lists not complete, so a guardian's
 * absence deactivates nothing), a parent whose only child leaves used to keep an active
 * account with no link, for ever. Now the finalize deactivates a sync-owned account whose
 * every link has ended (and that has no import/manual/code link), under the same safeguard,
 * and the account comes back — the same record — when the child returns.
 */
import {
  generateDistrict,
  restoreStudent,
  withdrawStudent,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import { startFakeOneRoster, type FakeOneRoster } from '../../src/dev/oneroster-server.js';
import { truthRoster } from '../helpers/roster-truth.js';
import { startSisHarness, type SisHarness } from '../helpers/sis-harness.js';

describe('orphaned parent accounts (Infinite Campus, guardian lists not complete)', () => {
  let sis: SyntheticDistrict;
  let fake: FakeOneRoster;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 41, students: 200 });
    fake = await startFakeOneRoster(sis, { version: '1.2' });
    h = await startSisHarness({
      district: {
        connector: {
          kind: 'infinite-campus',
          version: fake.version,
          baseUrl: fake.baseUrl,
          tokenUrl: fake.tokenUrl,
          clientIdEnv: 'IC_CLIENT_ID',
          clientSecretEnv: 'IC_CLIENT_SECRET',
          pageSize: 100,
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

  it('deactivates the account of a parent whose only child leaves, and restores it when the child returns', async () => {
    expect(
      h.ctx.connectorFor(h.ctx.district(h.districtId)).capabilities.guardianLinksComplete,
    ).toBe(false);
    const first = await h.sync();
    expect(first.run.status).toBe('succeeded');
    // A person linked to exactly one student, whose student has no other guardian with one child
    const truth = truthRoster(sis);
    const linksOf = new Map<string, number[]>();
    for (const l of truth.links) {
      const [person = '', dcid = ''] = l.split('>');
      linksOf.set(person, [...(linksOf.get(person) ?? []), Number(dcid)]);
    }
    const [person, [child] = []] = [...linksOf].find(([, kids]) => kids.length === 1)!;
    expect(child).toBeDefined();
    const guardianIds = new Set(
      sis.contacts
        .filter(c => c.personKey === person)
        .map(c => fake.roster.ids.guardian(c.contactId)),
    );
    const accountOf = async () =>
      (await h.store.getParents(h.districtId)).find(p =>
        p.sources.some(s => guardianIds.has(s.sourcedId)),
      )!;
    const account = await accountOf();
    expect(account.status).toBe('active');
    // Everyone whose only linked child is this one is orphaned with them.
    const orphaned = [...linksOf].filter(([, kids]) => kids.length === 1 && kids[0] === child);

    withdrawStudent(sis, child!);
    const left = await h.sync();
    expect(left.run.status).toBe('succeeded');
    expect(left.run.counts.student).toEqual({ deactivate: 1 });
    expect(left.run.counts.parent).toEqual({ deactivate: orphaned.length });
    const gone = await accountOf();
    expect(gone.status).toBe('inactive');
    expect(
      (await h.store.getLinks(h.districtId)).filter(
        l => l.parentId === account.id && l.status === 'active',
      ),
    ).toEqual([]);
    // Nothing else changed: a resync writes nothing (no flip-flop).
    const again = await h.sync();
    expect(again.writes).toBe(0);

    restoreStudent(sis, child!);
    const back = await h.sync();
    expect(back.run.status).toBe('succeeded');
    expect(back.run.counts.student).toEqual({ reactivate: 1 });
    expect(back.run.counts.parent).toEqual({ reactivate: orphaned.length });
    const restored = await accountOf();
    expect(restored.id).toBe(account.id);
    expect(restored.status).toBe('active');
    expect((await h.sync()).writes).toBe(0);
  });
});
