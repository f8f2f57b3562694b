/**
 * Unchanged students are skipped by their digest (docs/decisions/0014), and whatever changes
 * a student, its links or its accounts outside the sync sends it back to a full diff: a real
 * fake PowerSchool, real SQLite, real Redis and workers. Out-of-band writes are made with
 * plain SQL on the store's own connection, so any write path (imports, manual associations,
 * admin edits, approvals) is covered by the same triggers.
 */
import { changeEmail, findStudent, removeRelationship } from '../../src/dev/district-generator.js';
import { associate } from '../../src/imports/manual.js';
import type { RosterStore } from '../../src/models/types.js';
import { numericIds, storeRoster, truthRoster } from '../helpers/roster-truth.js';
import { startHarness, type Harness } from '../helpers/harness.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ students: 60, seed: 31 });
  expect((await h.sync()).run.status).toBe('succeeded');
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const db = () => {
  const handle = h.store.handle();
  if (handle.kind !== 'sqlite') throw new Error('sqlite store expected');
  return handle.db;
};
const withDigest = () =>
  db()
    .prepare(`SELECT count(*) FROM students WHERE sync_digest IS NOT NULL`)
    .pluck()
    .get() as number;
const digestOf = (sourcedId: string) =>
  db()
    .prepare(`SELECT sync_digest FROM students WHERE district_id = ? AND sourced_id = ?`)
    .pluck()
    .get(h.districtId, sourcedId) as string | null;

/** Everything the roster holds, in a comparable form. */
async function everything(store: RosterStore) {
  const by = (a: { k: string }, b: { k: string }) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0);
  return {
    students: (await store.getStudents(h.districtId)).map(s => ({ k: s.sourcedId, ...s })).sort(by),
    parents: (await store.getParents(h.districtId))
      .map(p => ({
        k: p.id,
        ...p,
        sources: [...p.sources].sort((a, b) => (a.sourcedId < b.sourcedId ? -1 : 1)),
      }))
      .sort(by),
    links: (await store.getLinks(h.districtId))
      .map(l => ({ k: `${l.parentId}>${l.studentSourcedId}>${l.origin}`, ...l }))
      .sort(by),
  };
}

async function expectTruth() {
  expect(await storeRoster(h.store, h.districtId, h.sis, numericIds)).toEqual(truthRoster(h.sis));
}

describe('per-student digests', () => {
  it('a resync stores a digest for every clean student and then writes nothing', async () => {
    const first = await h.sync();
    expect(first.run.status).toBe('succeeded');
    expect(first.writes).toBe(0);
    const active = (await h.store.getStudents(h.districtId)).filter(s => s.status === 'active');
    expect(withDigest()).toBeGreaterThan(active.length / 2);
    const again = await h.sync();
    expect(again.writes).toBe(0);
    expect(again.run.rejectCount).toBe(first.run.rejectCount);
    await expectTruth();
  }, 60_000);

  it('out-of-band edits of a student, an account or a link are undone by the next sync', async () => {
    await h.sync(); // digests in place
    const before = await everything(h.store);
    const link = before.links.find(l => l.origin === 'sis' && l.status === 'active');
    if (!link) throw new Error('fixture has no sis link');
    const student = before.students.find(
      s => s.status === 'active' && s.k !== link.studentSourcedId,
    );
    if (!student) throw new Error('fixture has too few students');
    expect(digestOf(student.sourcedId)).not.toBeNull();
    expect(digestOf(link.studentSourcedId)).not.toBeNull();

    db()
      .prepare(
        `UPDATE students SET given_name = 'Changed' WHERE district_id = ? AND sourced_id = ?`,
      )
      .run(h.districtId, student.sourcedId);
    db()
      .prepare(
        `UPDATE parent_accounts SET family_name = 'Changed' WHERE district_id = ? AND id = ?`,
      )
      .run(h.districtId, link.parentId);
    expect(digestOf(student.sourcedId)).toBeNull();
    expect(digestOf(link.studentSourcedId)).toBeNull();
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(await everything(h.store)).toEqual(before);

    await h.sync(); // digests back
    db()
      .prepare(
        `UPDATE guardian_links SET status = 'inactive' WHERE district_id = ? AND parent_id = ?
          AND student_sourced_id = ? AND origin = 'sis'`,
      )
      .run(h.districtId, link.parentId, link.studentSourcedId);
    expect(digestOf(link.studentSourcedId)).toBeNull();
    await h.sync();
    expect(await everything(h.store)).toEqual(before);
    await expectTruth();
  }, 90_000);

  it('a manual association clears the digests of the account’s students; SIS changes are applied', async () => {
    await h.sync();
    const links = await h.store.getLinks(h.districtId);
    const students = await h.store.getStudents(h.districtId);
    const sisLink = links.find(l => l.origin === 'sis' && l.status === 'active')!;
    const unrelated = students.find(
      s =>
        s.status === 'active' &&
        !links.some(l => l.parentId === sisLink.parentId && l.studentSourcedId === s.sourcedId),
    )!;
    expect(digestOf(sisLink.studentSourcedId)).not.toBeNull();
    const made = await associate(h.ctx, {
      districtId: h.districtId,
      parentId: sisLink.parentId,
      studentUniqueId: unrelated.uniqueId,
      actor: 'test',
    });
    expect(made.status).toBe('created');
    expect(digestOf(sisLink.studentSourcedId)).toBeNull();
    expect(digestOf(unrelated.sourcedId)).toBeNull();

    // SIS changes of skipped-looking families still land: an email and a removed relationship
    const parents = await h.store.getParents(h.districtId);
    const parent = parents.find(p => p.id === sisLink.parentId)!;
    const contactId = Number(parent.sources[0]!.sourcedId);
    changeEmail(h.sis, contactId, `digest-${contactId}@example.org`);
    const other = links.find(
      l => l.origin === 'sis' && l.status === 'active' && l.parentId !== sisLink.parentId,
    )!;
    const otherParent = parents.find(p => p.id === other.parentId)!;
    for (const s of otherParent.sources)
      removeRelationship(h.sis, Number(s.sourcedId), Number(other.studentSourcedId));
    expect(findStudent(h.sis, Number(other.studentSourcedId))).toBeDefined();
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const after = await h.store.getParents(h.districtId);
    expect(after.find(p => p.id === parent.id)?.email).toBe(`digest-${contactId}@example.org`);
    await expectTruth();
    // and once more with nothing changed: no writes, still the truth
    expect((await h.sync()).writes).toBe(0);
    await expectTruth();
  }, 90_000);
});
