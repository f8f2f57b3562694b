/**
 * Design invariant 12 (preview equals apply), issue 18 §5: a dry run's counts equal what the
 * real run then does, also when siblings — who share one guardian account — fall in different
 * chunks. The district's chunk size is the connector's `pageSize` (students per page, one
 * chunk per page): 7 here, so most families are split across chunks.
 */
import { changeEmail } from '../../src/dev/district-generator.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const roster = (counts: Record<string, Record<string, number>>) => ({
  student: counts.student,
  parent: counts.parent,
  link: counts.link,
});

describe('dry-run counts across chunks', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ students: 150, seed: 19, connector: { pageSize: 7 } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a dry run of the initial sync counts each shared guardian once, as the real run does', async () => {
    // The fixture has siblings in different chunks (pages of 7 in the fake's student order).
    const page = new Map(h.sis.students.map((s, i) => [s.id, Math.floor(i / 7)]));
    const split = h.sis.contacts.filter(c => {
      const pages = new Set(
        c.links.filter(l => l.canAccessData && l.detailActive).map(l => page.get(l.studentDcid)),
      );
      return pages.size > 1;
    });
    expect(split.length).toBeGreaterThan(0);

    const dry = await h.sync({ dryRun: true });
    expect(dry.writes).toBe(0);
    const real = await h.sync();
    expect(real.run.status).toBe('succeeded');
    expect(roster(dry.run.counts)).toEqual(roster(real.run.counts));
    expect(real.run.counts.parent?.create).toBeGreaterThan(0);
  });

  it('a dry run of a change to a guardian of split siblings counts it once', async () => {
    const page = new Map(h.sis.students.map((s, i) => [s.id, Math.floor(i / 7)]));
    const persons = new Map<string, number>();
    for (const c of h.sis.contacts) persons.set(c.personKey, (persons.get(c.personKey) ?? 0) + 1);
    const guardian = h.sis.contacts.find(
      c =>
        persons.get(c.personKey) === 1 &&
        new Set(
          c.links.filter(l => l.canAccessData && l.detailActive).map(l => page.get(l.studentDcid)),
        ).size > 1,
    );
    if (!guardian) throw new Error('fixture lacks a guardian of siblings in two chunks');
    changeEmail(h.sis, guardian.contactId, `changed.${guardian.contactId}@example.org`);
    const dry = await h.sync({ dryRun: true });
    const real = await h.sync();
    expect(real.run.counts.parent).toEqual({ update: 1 });
    expect(roster(dry.run.counts)).toEqual(roster(real.run.counts));
  });
});
