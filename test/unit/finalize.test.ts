import type { StoredStudent } from '../../src/models/types.js';
import {
  decideFinalize,
  proposeRemap,
  scanActive,
  scanIds,
  type FinalizeInput,
} from '../../src/reconcile/finalize.js';

const ids = (n: number, p = 's') => Array.from({ length: n }, (_, i) => `${p}${i}`);

/** The finalize input from whole active-id lists and seen sets (what finalize scans). */
function fromLists(
  x: Omit<FinalizeInput, 'activeStudents' | 'activeSisParents' | 'seenStudents'> & {
    activeStudentIds: string[];
    activeSisParentIds: string[];
    seenStudents: ReadonlySet<string>;
    seenParents: ReadonlySet<string>;
  },
): FinalizeInput {
  const { activeStudentIds, activeSisParentIds, seenStudents, seenParents, ...rest } = x;
  return {
    ...rest,
    activeStudents: scanIds(activeStudentIds, seenStudents),
    activeSisParents: scanIds(activeSisParentIds, seenParents),
    seenStudents: seenStudents.size,
  };
}

describe('scanActive', () => {
  it('counts every streamed id and keeps the unseen ones, in order; undefined seen only counts', async () => {
    async function* pages() {
      for (const page of [['a', 'b', 'c'], [], ['d', 'e']]) yield await Promise.resolve(page);
    }
    expect(await scanActive(pages(), new Set(['b', 'd']))).toEqual({
      count: 5,
      absent: ['a', 'c', 'e'],
    });
    expect(await scanActive(pages())).toEqual({ count: 5, absent: [] });
    expect(scanIds(['a', 'b'], new Set(['a']))).toEqual(
      await scanActive([['a', 'b']], new Set(['a'])),
    );
  });

  it('lets the event loop turn between pages a synchronous store resolves at once', async () => {
    // Pages resolved in microtasks only (like SQLite's): an immediate queued before the scan
    // runs between two pages, not after the whole district (a lock renewal is such a callback).
    const immediatesBeforePage: number[] = [];
    let immediates = 0;
    const tick = () => {
      immediates++;
      if (immediates < 10) setImmediate(tick);
    };
    function* pages() {
      for (let p = 0; p < 3; p++) {
        immediatesBeforePage.push(immediates);
        yield [`s${p}`];
      }
    }
    setImmediate(tick);
    const scan = await scanActive(pages(), new Set(['s1']));
    expect(scan).toEqual({ count: 3, absent: ['s0', 's2'] });
    expect(immediatesBeforePage).toEqual([0, 1, 2]);
  });
});

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
    const few = decideFinalize(
      fromLists({
        ...base,
        orphanedParentIds: ['p1', 'p2'],
        activeSisParentTotal: 50,
      }),
    );
    expect(few.hold).toBe(false);
    expect(few.deactivations.parentIds).toEqual(['p1', 'p2']);
    const many = decideFinalize(
      fromLists({
        ...base,
        orphanedParentIds: ids(6, 'p'),
        activeSisParentTotal: 50,
      }),
    );
    expect(many.hold).toBe(true);
    expect(many.holdReason).toContain('6 of 50 active parent accounts');
    // an orphan also unseen is listed once
    const both = decideFinalize(
      fromLists({
        ...base,
        activeSisParentIds: ['p1', 'p2'],
        seenParents: new Set(['p2']),
        orphanedParentIds: ['p1'],
        thresholdPercent: 100,
      }),
    );
    expect(both.deactivations.parentIds).toEqual(['p1']);
  });

  it('deactivates unseen students and parents below the threshold', () => {
    const d = decideFinalize(
      fromLists({
        activeStudentIds: ids(100),
        activeSisParentIds: ids(50, 'p'),
        seenStudents: new Set(ids(100).slice(5)),
        seenParents: new Set(ids(50, 'p').slice(1)),
        linkRemovals: [{ parentId: 'p3', studentSourcedId: 's3' }],
        thresholdPercent: 10,
      }),
    );
    expect(d.hold).toBe(false);
    expect(d.deactivations.studentSourcedIds).toEqual(['s0', 's1', 's2', 's3', 's4']);
    expect(d.deactivations.parentIds).toEqual(['p0']);
    expect(d.deactivations.links).toHaveLength(1);
  });

  it('holds when more than the threshold of students would go', () => {
    const d = decideFinalize(
      fromLists({
        activeStudentIds: ids(100),
        activeSisParentIds: [],
        seenStudents: new Set(ids(100).slice(11)),
        seenParents: new Set(),
        linkRemovals: [],
        thresholdPercent: 10,
      }),
    );
    expect(d.hold).toBe(true);
    expect(d.holdReason).toContain('11 of 100 active students');
  });

  it('holds an empty snapshot against a populated store, even with a 100 % threshold', () => {
    const d = decideFinalize(
      fromLists({
        activeStudentIds: ids(3),
        activeSisParentIds: [],
        seenStudents: new Set(),
        seenParents: new Set(),
        linkRemovals: [],
        thresholdPercent: 100,
      }),
    );
    expect(d.hold).toBe(true);
    expect(d.holdReason).toContain('no students');
  });

  it('does not hold exactly at the threshold', () => {
    const d = decideFinalize(
      fromLists({
        activeStudentIds: ids(100),
        activeSisParentIds: [],
        seenStudents: new Set(ids(100).slice(10)),
        seenParents: new Set(),
        linkRemovals: [],
        thresholdPercent: 10,
      }),
    );
    expect(d.hold).toBe(false);
    expect(d.deactivations.studentSourcedIds).toHaveLength(10);
  });

  it('measures SIS links removed against the active links before the run (issue 18)', () => {
    const links = ids(4, 'p').map((p, i) => ({ parentId: p, studentSourcedId: `s${i}` }));
    const d = decideFinalize(
      fromLists({
        activeStudentIds: ids(3),
        activeSisParentIds: ids(3, 'p'),
        seenStudents: new Set(ids(3)),
        seenParents: new Set(ids(3, 'p')),
        linkRemovals: links,
        thresholdPercent: 10,
        baseline: { students: 3, parents: 3, links: 4 },
      }),
    );
    expect(d.hold).toBe(true);
    expect(d.holdReason).toBe('4 of 4 active SIS links would be removed (threshold 10 %)');
    const few = decideFinalize(
      fromLists({
        activeStudentIds: ids(3),
        activeSisParentIds: [],
        seenStudents: new Set(ids(3)),
        seenParents: new Set(),
        linkRemovals: links.slice(0, 1),
        thresholdPercent: 10,
        baseline: { students: 3, parents: 0, links: 40 },
      }),
    );
    expect(few.hold).toBe(false);
  });

  it('measures students against the state before the run, and recognises a probable re-key', () => {
    // 4 old students gone, 4 new ones created: "4 of 8" would pass 50 %; it is 4 of 4
    const d = decideFinalize(
      fromLists({
        activeStudentIds: ids(4),
        activeSisParentIds: [],
        seenStudents: new Set(['n0', 'n1', 'n2', 'n3']),
        seenParents: new Set(),
        linkRemovals: [],
        thresholdPercent: 50,
        baseline: { students: 4, parents: 0, links: 0 },
        unmatchedStudents: 4,
      }),
    );
    expect(d.hold).toBe(true);
    expect(d.rekey).toBe(true);
    expect(d.holdReason).toContain('probable re-key: 4 new students');
    expect(d.holdReason).toContain('4 of 4 active students');
    // many new students but nothing leaving: growth, not a re-key
    const growth = decideFinalize(
      fromLists({
        activeStudentIds: ids(4),
        activeSisParentIds: [],
        seenStudents: new Set(ids(4)),
        seenParents: new Set(),
        linkRemovals: [],
        thresholdPercent: 10,
        baseline: { students: 4, parents: 0, links: 0 },
        unmatchedStudents: 40,
      }),
    );
    expect(growth).toMatchObject({ hold: false, rekey: false });
  });
});

describe('proposeRemap', () => {
  const st = (sourcedId: string, givenName: string, over: Partial<StoredStudent> = {}) => ({
    districtId: 'd1',
    sourcedId,
    uniqueId: `u-${sourcedId}`,
    givenName,
    familyName: 'Rivera',
    schoolSourcedIds: ['10'],
    grade: '5',
    status: 'active' as const,
    ...over,
  });

  it('pairs by name + school + grade and leaves ambiguous pairs out', () => {
    const r = proposeRemap(
      [st('1', 'Ana'), st('2', 'Ben'), st('3', 'Cruz'), st('4', 'Cruz'), st('5', 'Dee')],
      [
        st('n1', ' ana '),
        st('n2', 'Ben', { grade: '6' }),
        st('n3', 'Cruz'),
        st('n5', 'Dee', { schoolSourcedIds: ['11'] }),
      ],
    );
    expect(r.pairs).toEqual([{ sourcedId: 'n1', remapFrom: '1' }]);
    expect(r.ambiguous).toEqual(['n3']);
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
