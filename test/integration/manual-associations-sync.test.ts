/**
 * Manual associations survive SIS syncs (design invariant 6): a real fake PowerSchool, real
 * SQLite, real Redis and workers. A manual link on a pair the SIS also links, and one on a pair
 * the SIS does not know, both stay active when the SIS drops the relationship and syncs run.
 */
import { removeRelationship } from '../../src/dev/district-generator.js';
import { associate, removeAssociation } from '../../src/imports/manual.js';
import { startHarness, type Harness } from '../helpers/harness.js';

let h: Harness;

beforeAll(async () => {
  h = await startHarness({ students: 40, seed: 23 });
  const { run } = await h.sync();
  expect(run.status).toBe('succeeded');
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const state = async (parentId: string, studentSourcedId: string) =>
  (await h.store.getLinks(h.districtId))
    .filter(l => l.parentId === parentId && l.studentSourcedId === studentSourcedId)
    .map(l => `${l.origin}:${l.status}`)
    .sort();

describe('manual associations and the SIS sync', () => {
  it('sync keeps manual links, even when the SIS drops the same pair; removal then leaves only inactive links', async () => {
    const links = await h.store.getLinks(h.districtId);
    const parents = await h.store.getParents(h.districtId);
    const students = await h.store.getStudents(h.districtId);
    const sisLink = links.find(l => l.origin === 'sis' && l.status === 'active');
    if (!sisLink) throw new Error('fixture has no sis link');
    const parent = parents.find(p => p.id === sisLink.parentId)!;
    const linked = students.find(s => s.sourcedId === sisLink.studentSourcedId)!;
    const unrelated = students.find(
      s =>
        s.status === 'active' &&
        !links.some(l => l.parentId === parent.id && l.studentSourcedId === s.sourcedId),
    )!;

    const actor = 'test';
    const base = { districtId: h.districtId, parentId: parent.id, actor };
    expect((await associate(h.ctx, { ...base, studentUniqueId: linked.uniqueId })).status).toBe(
      'created',
    );
    expect((await associate(h.ctx, { ...base, studentUniqueId: unrelated.uniqueId })).status).toBe(
      'created',
    );

    // an unchanged SIS: the sync writes nothing and keeps both manual links
    const quiet = await h.sync();
    expect(quiet.run.status).toBe('succeeded');
    expect(quiet.writes).toBe(0);
    expect(await state(parent.id, unrelated.sourcedId)).toEqual(['manual:active']);

    // the SIS drops the relationship: only the sis link goes
    for (const source of parent.sources)
      removeRelationship(h.sis, Number(source.sourcedId), Number(linked.sourcedId));
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(await state(parent.id, linked.sourcedId)).toEqual(['manual:active', 'sis:inactive']);
    expect(await state(parent.id, unrelated.sourcedId)).toEqual(['manual:active']);

    const removed = await removeAssociation(h.ctx, { ...base, studentUniqueId: linked.uniqueId });
    expect(removed).toMatchObject({ status: 'deactivated', otherActiveOrigins: [] });
    expect(await state(parent.id, linked.sourcedId)).toEqual(['manual:inactive', 'sis:inactive']);
    expect((await h.sync()).run.status).toBe('succeeded');
    expect(await state(parent.id, linked.sourcedId)).toEqual(['manual:inactive', 'sis:inactive']);
    expect(await state(parent.id, unrelated.sourcedId)).toEqual(['manual:active']);
  }, 60_000);
});
