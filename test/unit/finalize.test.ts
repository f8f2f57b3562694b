import { decideFinalize } from '../../src/reconcile/finalize.js';

const ids = (n: number, p = 's') => Array.from({ length: n }, (_, i) => `${p}${i}`);

describe('decideFinalize', () => {
  it('deactivates orphaned parents even when absence is not counted, against all active parents', () => {
    const base = {
      activeStudentIds: ids(100),
      activeSisParentIds: [], // guardian lists not complete: absence deactivates nobody
      seenStudents: new Set(ids(100)),
      seenParents: new Set<string>(),
      linkRemovals: [],
      thresholdPercent: 10,
    };
    const few = decideFinalize({
      ...base,
      orphanedParentIds: ['p1', 'p2'],
      activeSisParentTotal: 50,
    });
    expect(few.hold).toBe(false);
    expect(few.deactivations.parentIds).toEqual(['p1', 'p2']);
    const many = decideFinalize({
      ...base,
      orphanedParentIds: ids(6, 'p'),
      activeSisParentTotal: 50,
    });
    expect(many.hold).toBe(true);
    expect(many.holdReason).toContain('6 of 50 active parent accounts');
    // an orphan also unseen is listed once
    const both = decideFinalize({
      ...base,
      activeSisParentIds: ['p1', 'p2'],
      seenParents: new Set(['p2']),
      orphanedParentIds: ['p1'],
      thresholdPercent: 100,
    });
    expect(both.deactivations.parentIds).toEqual(['p1']);
  });

  it('deactivates unseen students and parents below the threshold', () => {
    const d = decideFinalize({
      activeStudentIds: ids(100),
      activeSisParentIds: ids(50, 'p'),
      seenStudents: new Set(ids(100).slice(5)),
      seenParents: new Set(ids(50, 'p').slice(1)),
      linkRemovals: [{ parentId: 'p3', studentSourcedId: 's3' }],
      thresholdPercent: 10,
    });
    expect(d.hold).toBe(false);
    expect(d.deactivations.studentSourcedIds).toEqual(['s0', 's1', 's2', 's3', 's4']);
    expect(d.deactivations.parentIds).toEqual(['p0']);
    expect(d.deactivations.links).toHaveLength(1);
  });

  it('holds when more than the threshold of students would go', () => {
    const d = decideFinalize({
      activeStudentIds: ids(100),
      activeSisParentIds: [],
      seenStudents: new Set(ids(100).slice(11)),
      seenParents: new Set(),
      linkRemovals: [],
      thresholdPercent: 10,
    });
    expect(d.hold).toBe(true);
    expect(d.holdReason).toContain('11 of 100 active students');
  });

  it('holds an empty snapshot against a populated store, even with a 100 % threshold', () => {
    const d = decideFinalize({
      activeStudentIds: ids(3),
      activeSisParentIds: [],
      seenStudents: new Set(),
      seenParents: new Set(),
      linkRemovals: [],
      thresholdPercent: 100,
    });
    expect(d.hold).toBe(true);
    expect(d.holdReason).toContain('no students');
  });

  it('does not hold exactly at the threshold', () => {
    const d = decideFinalize({
      activeStudentIds: ids(100),
      activeSisParentIds: [],
      seenStudents: new Set(ids(100).slice(10)),
      seenParents: new Set(),
      linkRemovals: [],
      thresholdPercent: 10,
    });
    expect(d.hold).toBe(false);
    expect(d.deactivations.studentSourcedIds).toHaveLength(10);
  });
});

describe('dryRunParentCounts (dry-run counts across chunks, invariant 12)', () => {
  it('one create per person across chunks; another id of the same person is a match; repeats count once', async () => {
    const { dryRunParentCounts } = await import('../../src/reconcile/dry-run.js');
    expect(
      dryRunParentCounts([
        {
          creates: [
            { id: 'pa1', keys: ['s:ps:g1', 'e:m@x'] },
            { id: 'pa2', keys: ['s:ps:g2'] },
          ],
          updates: [{ id: 'old', action: 'update', addSources: [] }],
        },
        {
          creates: [
            { id: 'pa1', keys: ['s:ps:g1', 'e:m@x'] }, // the same guardian, sibling's chunk
            { id: 'pa3', keys: ['s:ps:g3', 'e:m@x'] }, // a duplicate entry of that person
          ],
          updates: [
            { id: 'old', action: 'update', addSources: [] },
            { id: 'old2', action: 'match', addSources: ['ps:g9'] },
          ],
        },
      ]),
    ).toEqual({ create: 2, match: 2, update: 1 });
    expect(dryRunParentCounts([])).toEqual({});
  });
});
