import { decideFinalize } from '../../src/reconcile/finalize.js';

const ids = (n: number, p = 's') => Array.from({ length: n }, (_, i) => `${p}${i}`);

describe('decideFinalize', () => {
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
