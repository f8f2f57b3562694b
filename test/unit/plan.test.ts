import type { Guardian, Relationship, RosterChunk, Student } from '../../src/mapping/canonical.js';
import type {
  ChunkState,
  GuardianLink,
  ParentAccount,
  StoredStudent,
} from '../../src/models/types.js';
import { chunkKeys, parentAccountId, planChunk } from '../../src/reconcile/plan.js';

const ctx = { districtId: 'd1', connector: 'powerschool', parentRole: 'Parent' };

const student = (id: string, over: Partial<Student> = {}): Student => ({
  sourcedId: id,
  uniqueId: `U${id}`,
  givenName: `Kid${id}`,
  familyName: 'Doe',
  schoolSourcedIds: ['10'],
  grade: '5',
  status: 'active',
  ...over,
});
const guardian = (id: string, over: Partial<Guardian> = {}): Guardian => ({
  sourcedId: id,
  givenName: `Parent${id}`,
  familyName: 'Doe',
  email: `p${id}@example.org`,
  role: 'parent',
  status: 'active',
  ...over,
});
const rel = (g: string, s: string, over: Partial<Relationship> = {}): Relationship => ({
  guardianSourcedId: g,
  studentSourcedId: s,
  relationship: 'Mother',
  portalAccess: true,
  ...over,
});
const chunk = (over: Partial<RosterChunk>): RosterChunk => ({
  students: [],
  guardians: [],
  relationships: [],
  relationshipsSupplied: true,
  ...over,
});
const empty: ChunkState = { students: [], parents: [], links: [] };
const stored = (s: Student): StoredStudent => ({ districtId: 'd1', ...s });
const account = (id: string, over: Partial<ParentAccount> = {}): ParentAccount => ({
  districtId: 'd1',
  id,
  givenName: 'Ann',
  familyName: 'Lee',
  email: 'ann@example.org',
  emailNormalized: 'ann@example.org',
  role: 'Parent',
  status: 'active',
  origin: 'sis',
  sources: [],
  lockedFields: [],
  ...over,
});

describe('planChunk', () => {
  it('creates students, one account per guardian and sis links on an empty store', () => {
    const c = chunk({
      students: [student('1'), student('2')],
      guardians: [guardian('g1')],
      relationships: [rel('g1', '1'), rel('g1', '2')],
    });
    const plan = planChunk(c, empty, ctx);
    expect(plan.students.map(s => [s.action, s.record.sourcedId])).toEqual([
      ['create', '1'],
      ['create', '2'],
    ]);
    expect(plan.parentCreates).toHaveLength(1);
    expect(plan.parentCreates[0]?.id).toBe(parentAccountId('d1', 'powerschool', 'g1'));
    expect(plan.links.map(l => [l.action, l.link.studentSourcedId, l.link.origin])).toEqual([
      ['add', '1', 'sis'],
      ['add', '2', 'sis'],
    ]);
  });

  it('merges two SIS entries of one person with the same email (case and spaces ignored)', () => {
    const c = chunk({
      students: [student('1'), student('2')],
      guardians: [
        guardian('g1', { email: 'Ana@Example.org' }),
        guardian('g2', { email: ' ana@example.ORG ' }),
      ],
      relationships: [rel('g1', '1'), rel('g2', '2'), rel('g2', '1')],
    });
    const plan = planChunk(c, empty, ctx);
    expect(plan.parentCreates).toHaveLength(1);
    expect(plan.parentCreates[0]?.sources.map(s => s.sourcedId)).toEqual(['g1', 'g2']);
    // g1→1 and g2→1 are one link for one person
    expect(plan.links).toHaveLength(2);
    expect(plan.guardianAccounts.g1).toBe(plan.guardianAccounts.g2);
  });

  it('matches an existing account by source, then uniqueId, then unambiguous email', () => {
    const bySource = account('A', {
      sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
      email: 'a@x.org',
      emailNormalized: 'a@x.org',
    });
    const byUnique = account('B', {
      uniqueId: 'P-9',
      origin: 'import',
      email: 'b@x.org',
      emailNormalized: 'b@x.org',
    });
    const byEmail = account('C', {
      origin: 'import',
      email: 'C@x.org',
      emailNormalized: 'c@x.org',
    });
    const c = chunk({
      students: [student('1')],
      guardians: [
        guardian('g1', { email: 'a@x.org' }),
        guardian('g2', { uniqueId: 'P-9', email: 'other@x.org' }),
        guardian('g3', { email: 'c@X.org' }),
      ],
      relationships: [rel('g1', '1'), rel('g2', '1'), rel('g3', '1')],
    });
    const plan = planChunk(
      c,
      { students: [], parents: [bySource, byUnique, byEmail], links: [] },
      ctx,
    );
    expect(plan.parentCreates).toHaveLength(0);
    expect(plan.guardianAccounts).toEqual({ g1: 'A', g2: 'B', g3: 'C' });
    // import-owned accounts get the source added but their fields are not touched
    const b = plan.parentUpdates.find(u => u.update.id === 'B');
    expect(b?.action).toBe('match');
    expect(b?.update.set).toEqual({});
    expect(b?.update.addSources).toEqual([{ connector: 'powerschool', sourcedId: 'g2' }]);
    // the sis account matched by its own source takes the SIS's field values, no new source
    const a = plan.parentUpdates.find(u => u.update.id === 'A');
    expect(a?.update.addSources).toEqual([]);
    expect(a?.update.set).toEqual({ givenName: 'Parentg1', familyName: 'Doe', sisRole: 'parent' });
  });

  it('rejects a guardian whose email is shared by two accounts instead of guessing', () => {
    const a = account('A', { email: 'same@x.org', emailNormalized: 'same@x.org' });
    const b = account('B', {
      email: 'same@x.org',
      emailNormalized: 'same@x.org',
      origin: 'import',
    });
    const c = chunk({
      students: [student('1')],
      guardians: [guardian('g1', { email: 'same@x.org' })],
      relationships: [rel('g1', '1')],
    });
    const plan = planChunk(c, { students: [], parents: [a, b], links: [] }, ctx);
    expect(plan.parentCreates).toHaveLength(0);
    expect(plan.links).toHaveLength(0);
    expect(plan.rejects).toHaveLength(1);
    expect(plan.rejects[0]?.entity).toBe('guardian');
    expect(plan.rejects[0]?.recordId).toBe('g1');
    expect(plan.rejects[0]?.reason).toContain('ambiguous identity');
  });

  it('produces an empty plan when nothing changed', () => {
    const s = student('1');
    const g = guardian('g1');
    const id = parentAccountId('d1', 'powerschool', 'g1');
    const state: ChunkState = {
      students: [stored(s)],
      parents: [
        account(id, {
          givenName: g.givenName,
          familyName: g.familyName,
          email: g.email,
          emailNormalized: g.email,
          sisRole: 'parent',
          sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
        }),
      ],
      links: [
        {
          districtId: 'd1',
          parentId: id,
          studentSourcedId: '1',
          origin: 'sis',
          relationship: 'Mother',
          status: 'active',
        },
      ],
    };
    const plan = planChunk(
      chunk({ students: [s], guardians: [g], relationships: [rel('g1', '1')] }),
      state,
      ctx,
    );
    expect(plan.students).toEqual([]);
    expect(plan.parentCreates).toEqual([]);
    expect(plan.parentUpdates).toEqual([]);
    expect(plan.links).toEqual([]);
    expect(plan.linkRemovals).toEqual([]);
  });

  it('updates changed fields, treats email case changes as no change, respects locked fields', () => {
    const id = 'A';
    const existing = account(id, {
      givenName: 'Ann',
      familyName: 'Lee',
      phone: '1',
      sisRole: 'parent',
      sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
      lockedFields: ['familyName'],
    });
    const g = guardian('g1', {
      givenName: 'Anne',
      familyName: 'Leigh',
      email: 'ANN@example.org',
      phone: '1',
    });
    const plan = planChunk(
      chunk({ students: [student('1')], guardians: [g], relationships: [] }),
      { students: [], parents: [existing], links: [] },
      ctx,
    );
    expect(plan.parentUpdates).toEqual([
      { action: 'update', update: { id, set: { givenName: 'Anne' }, addSources: [] } },
    ]);
  });

  it('refuses an email change to a mailbox another account owns', () => {
    const a = account('A', {
      sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
      email: 'a@x.org',
      emailNormalized: 'a@x.org',
      sisRole: 'parent',
      givenName: 'Parentg1',
      familyName: 'Doe',
    });
    const b = account('B', { email: 'b@x.org', emailNormalized: 'b@x.org' });
    const plan = planChunk(
      chunk({ guardians: [guardian('g1', { email: 'b@x.org' })] }),
      { students: [], parents: [a, b], links: [] },
      ctx,
    );
    expect(plan.parentUpdates).toEqual([]);
    expect(plan.rejects[0]?.reason).toContain('belongs to parent account B');
  });

  it('reactivates a returning student, account and link instead of creating new ones', () => {
    const s = student('1');
    const id = parentAccountId('d1', 'powerschool', 'g1');
    const g = guardian('g1');
    const state: ChunkState = {
      students: [{ ...stored(s), status: 'inactive' }],
      parents: [
        account(id, {
          status: 'inactive',
          givenName: g.givenName,
          familyName: 'Doe',
          email: g.email,
          emailNormalized: g.email,
          sisRole: 'parent',
          sources: [{ connector: 'powerschool', sourcedId: 'g1' }],
        }),
      ],
      links: [
        {
          districtId: 'd1',
          parentId: id,
          studentSourcedId: '1',
          origin: 'sis',
          relationship: 'Mother',
          status: 'inactive',
        },
      ],
    };
    const plan = planChunk(
      chunk({ students: [s], guardians: [g], relationships: [rel('g1', '1')] }),
      state,
      ctx,
    );
    expect(plan.students.map(x => x.action)).toEqual(['reactivate']);
    expect(plan.parentCreates).toEqual([]);
    expect(plan.parentUpdates).toEqual([
      { action: 'reactivate', update: { id, set: { status: 'active' }, addSources: [] } },
    ]);
    expect(plan.links.map(l => l.action)).toEqual(['reactivate']);
  });

  it('proposes removal only of sis links, and only when relationships were supplied', () => {
    const s = student('1');
    const links: GuardianLink[] = [
      { districtId: 'd1', parentId: 'SIS', studentSourcedId: '1', origin: 'sis', status: 'active' },
      {
        districtId: 'd1',
        parentId: 'IMP',
        studentSourcedId: '1',
        origin: 'import',
        status: 'active',
      },
      {
        districtId: 'd1',
        parentId: 'MAN',
        studentSourcedId: '1',
        origin: 'manual',
        status: 'active',
      },
    ];
    const state: ChunkState = { students: [stored(s)], parents: [], links };
    const supplied = planChunk(chunk({ students: [s] }), state, ctx);
    expect(supplied.linkRemovals).toEqual([{ parentId: 'SIS', studentSourcedId: '1' }]);
    const absent = planChunk(chunk({ students: [s], relationshipsSupplied: false }), state, ctx);
    expect(absent.linkRemovals).toEqual([]);
  });

  it('rejects relationships pointing outside the chunk and duplicate students', () => {
    const plan = planChunk(
      chunk({
        students: [student('1'), student('1')],
        guardians: [guardian('g1')],
        relationships: [rel('g1', '2'), rel('gX', '1')],
      }),
      empty,
      ctx,
    );
    expect(plan.rejects.map(r => [r.entity, r.recordId])).toEqual([
      ['student', '1'],
      ['relationship', 'g1->2'],
      ['relationship', 'gX->1'],
    ]);
  });

  it('chunkKeys lists normalized emails and unique ids once', () => {
    const k = chunkKeys(
      chunk({
        students: [student('1')],
        guardians: [
          guardian('g1', { email: 'A@x.org', uniqueId: 'u1' }),
          guardian('g2', { email: 'a@X.org ' }),
        ],
      }),
      'powerschool',
    );
    expect(k).toEqual({
      connector: 'powerschool',
      studentSourcedIds: ['1'],
      studentUniqueIds: ['U1'],
      guardianSourcedIds: ['g1', 'g2'],
      guardianUniqueIds: ['u1'],
      emailsNormalized: ['a@x.org'],
    });
  });

  describe('student identity: sourcedId, then Unique ID (issue 18)', () => {
    const link = (
      parentId: string,
      sid: string,
      over: Partial<GuardianLink> = {},
    ): GuardianLink => ({
      districtId: 'd1',
      parentId,
      studentSourcedId: sid,
      origin: 'sis',
      relationship: 'Mother',
      status: 'active',
      ...over,
    });

    it('moves a student whose sourcedId is new but whose Unique ID is known; its links stay its own', () => {
      const pa = parentAccountId('d1', 'powerschool', 'g1');
      const state: ChunkState = {
        students: [stored(student('1'))],
        parents: [account(pa, { sources: [{ connector: 'powerschool', sourcedId: 'g1' }] })],
        links: [link(pa, '1'), link('manual-1', '1', { origin: 'manual' })],
      };
      const plan = planChunk(
        chunk({
          students: [student('D1-1', { uniqueId: 'U1' })],
          guardians: [guardian('g1')],
          relationships: [rel('g1', 'D1-1')],
        }),
        state,
        ctx,
      );
      expect(plan.students.map(s => [s.action, s.from, s.record.sourcedId])).toEqual([
        ['move', '1', 'D1-1'],
      ]);
      expect(plan.links).toEqual([]); // the moved link is already there (same relationship)
      expect(plan.linkRemovals).toEqual([]);
      expect(plan.deferredStudents).toBeUndefined();
    });

    it('does not move by a Unique ID two stored students share (excluded, listed), nor one still in the chunk', () => {
      const state: ChunkState = {
        students: [
          stored(student('1', { uniqueId: 'DUP' })),
          stored(student('2', { uniqueId: 'DUP' })),
          stored(student('3')),
        ],
        parents: [],
        links: [],
      };
      const plan = planChunk(
        chunk({
          students: [
            student('9', { uniqueId: 'DUP' }),
            student('3'),
            student('8', { uniqueId: 'U3' }),
          ],
        }),
        state,
        ctx,
      );
      expect(plan.students.map(s => [s.action, s.record.sourcedId])).toEqual([
        ['create', '9'],
        ['create', '8'],
      ]);
      expect(plan.rejects).toEqual([
        expect.objectContaining({ entity: 'student', recordId: '9', kind: 'excluded' }),
      ]);
      expect(plan.rejects[0]?.reason).toContain('shared by 2 stored students (1, 2)');
    });

    it('defers new students that match nothing, with their links, when asked', () => {
      const plan = planChunk(
        chunk({
          students: [student('1'), student('2')],
          guardians: [guardian('g1')],
          relationships: [rel('g1', '1'), rel('g1', '2')],
        }),
        { students: [stored(student('1'))], parents: [], links: [] },
        { ...ctx, deferUnmatched: true },
      );
      const pa = parentAccountId('d1', 'powerschool', 'g1');
      expect(plan.students).toEqual([]);
      expect(plan.deferredStudents).toEqual([
        { record: stored(student('2')), links: [{ parentId: pa, relationship: 'Mother' }] },
      ]);
      // the known student's link is written with the chunk; the account is created as usual
      expect(plan.links.map(l => l.link.studentSourcedId)).toEqual(['1']);
      expect(plan.parentCreates.map(p => p.id)).toEqual([pa]);
    });
  });
});

describe('planChunk: guardian identity without email, login identifiers (issue 18 §2, §3)', () => {
  const S = student('S-500');
  const link = (parentId: string, over: Partial<GuardianLink> = {}): GuardianLink => ({
    districtId: 'd1',
    parentId,
    studentSourcedId: 'S-500',
    origin: 'sis',
    relationship: 'Mother',
    status: 'active',
    ...over,
  });
  const old = account('A', {
    givenName: 'Mira',
    familyName: 'Okafor',
    email: undefined,
    emailNormalized: undefined,
    sources: [{ connector: 'powerschool', sourcedId: 'c-aaa' }],
  });
  const rekeyed = (over: Partial<Guardian> = {}) =>
    guardian('c-bbb', { givenName: ' mira ', familyName: 'OKAFOR', email: undefined, ...over });
  const state = (over: Partial<ChunkState> = {}): ChunkState => ({
    students: [stored(S)],
    parents: [old],
    links: [link('A')],
    ...over,
  });

  it('a contact re-keyed without an email is the account of the same name linked to the same student', () => {
    const plan = planChunk(
      chunk({ students: [S], guardians: [rekeyed()], relationships: [rel('c-bbb', 'S-500')] }),
      state(),
      { ...ctx, guardiansWithoutLogin: 'create' },
    );
    expect(plan.parentCreates).toEqual([]);
    expect(plan.guardianAccounts).toEqual({ 'c-bbb': 'A' });
    // the old contact is gone from this complete chunk: the live one owns the fields now
    expect(plan.parentUpdates).toEqual([
      {
        action: 'update',
        update: {
          id: 'A',
          set: { givenName: ' mira ', familyName: 'OKAFOR', sisRole: 'parent' },
          addSources: [{ connector: 'powerschool', sourcedId: 'c-bbb' }],
        },
      },
    ]);
    expect(plan.links).toEqual([]); // the existing link is the same link
    expect(plan.rejects).toEqual([]);
  });

  it('under the default policy the re-keyed contact still keeps its account (it is not new)', () => {
    const plan = planChunk(
      chunk({ students: [S], guardians: [rekeyed()], relationships: [rel('c-bbb', 'S-500')] }),
      state(),
      ctx,
    );
    expect(plan.guardianAccounts).toEqual({ 'c-bbb': 'A' });
    expect(plan.rejects).toEqual([]);
  });

  it('no name match while the old contact is still in the snapshot (two people), nor for another student', () => {
    const both = planChunk(
      chunk({
        students: [S],
        guardians: [guardian('c-aaa', { givenName: 'Mira', familyName: 'Okafor' }), rekeyed()],
        relationships: [rel('c-aaa', 'S-500'), rel('c-bbb', 'S-500')],
      }),
      state(),
      { ...ctx, guardiansWithoutLogin: 'create' },
    );
    expect(both.guardianAccounts['c-bbb']).not.toBe('A');
    expect(both.parentCreates.map(p => p.sources[0]?.sourcedId)).toEqual(['c-bbb']);

    const other = planChunk(
      chunk({
        students: [student('S-501')],
        guardians: [rekeyed()],
        relationships: [rel('c-bbb', 'S-501')],
      }),
      state({ students: [] }),
      { ...ctx, guardiansWithoutLogin: 'create' },
    );
    expect(other.parentCreates).toHaveLength(1);
  });

  it('an email that contradicts the account’s is a different person; two same-name accounts are ambiguous', () => {
    const withEmail = planChunk(
      chunk({
        students: [S],
        guardians: [rekeyed({ email: 'mira@example.org' })],
        relationships: [rel('c-bbb', 'S-500')],
      }),
      state({
        parents: [{ ...old, email: 'other@example.org', emailNormalized: 'other@example.org' }],
      }),
      ctx,
    );
    expect(withEmail.parentCreates).toHaveLength(1);

    const twin = account('B', {
      ...old,
      id: 'B',
      sources: [{ connector: 'powerschool', sourcedId: 'c-ccc' }],
    });
    const ambiguous = planChunk(
      chunk({ students: [S], guardians: [rekeyed()], relationships: [rel('c-bbb', 'S-500')] }),
      state({ parents: [old, twin], links: [link('A'), link('B')] }),
      { ...ctx, guardiansWithoutLogin: 'create' },
    );
    expect(ambiguous.parentCreates).toEqual([]);
    expect(ambiguous.rejects.map(r => [r.entity, r.recordId, r.kind])).toEqual([
      ['guardian', 'c-bbb', undefined],
    ]);
    expect(ambiguous.rejects[0]?.reason).toMatch(/^ambiguous identity/);
  });

  it('a new guardian with no email and no username gets no account: an exclusion, and no link', () => {
    const c = chunk({
      students: [S],
      guardians: [guardian('g9', { email: undefined })],
      relationships: [rel('g9', 'S-500')],
    });
    const plan = planChunk(c, { students: [], parents: [], links: [] }, ctx);
    expect(plan.parentCreates).toEqual([]);
    expect(plan.links).toEqual([]);
    expect(plan.guardianAccounts).toEqual({});
    expect(plan.rejects).toEqual([
      { entity: 'guardian', recordId: 'g9', reason: 'no email or username', kind: 'excluded' },
    ]);
    // a uniqueId is a login identifier; policy `create` creates the account anyway
    const withId = planChunk(
      { ...c, guardians: [guardian('g9', { email: undefined, uniqueId: 'P-9' })] },
      empty,
      ctx,
    );
    expect(withId.parentCreates).toHaveLength(1);
    const created = planChunk(c, empty, { ...ctx, guardiansWithoutLogin: 'create' });
    expect(created.parentCreates).toHaveLength(1);
    expect(created.rejects).toEqual([]);
  });

  it('a re-keyed contact with the same email takes over the fields once the old one is gone', () => {
    const withEmail = {
      ...old,
      email: 'mira@example.org',
      emailNormalized: 'mira@example.org',
      phone: '555-0100',
    };
    const g = guardian('c-bbb', {
      givenName: 'Mira',
      familyName: 'Okafor',
      email: 'Mira@example.org',
      phone: '555-0199',
    });
    const c = chunk({ students: [S], guardians: [g], relationships: [rel('c-bbb', 'S-500')] });
    const plan = planChunk(c, state({ parents: [withEmail] }), ctx);
    expect(plan.parentUpdates).toEqual([
      {
        action: 'update',
        update: {
          id: 'A',
          set: { phone: '555-0199', sisRole: 'parent' },
          addSources: [{ connector: 'powerschool', sourcedId: 'c-bbb' }],
        },
      },
    ]);
    // not while the account has a student outside this chunk (the old contact may be alive
    // there: one person entered once per sibling), nor when the chunk's links are partial
    const elsewhere = planChunk(
      c,
      state({ parents: [withEmail], accountLinks: [link('A', { studentSourcedId: 'S-777' })] }),
      ctx,
    );
    expect(elsewhere.parentUpdates.map(u => u.update.set)).toEqual([{}]);
    const partial = planChunk(
      { ...c, relationshipsSupplied: false },
      state({ parents: [withEmail] }),
      ctx,
    );
    expect(partial.parentUpdates.map(u => u.update.set)).toEqual([{}]);
    // the old contact still in the chunk keeps the fields
    const both = planChunk(
      chunk({
        students: [S],
        guardians: [
          guardian('c-aaa', {
            givenName: 'Mira',
            familyName: 'Okafor',
            email: 'mira@example.org',
            phone: '555-0100',
          }),
          g,
        ],
        relationships: [rel('c-aaa', 'S-500'), rel('c-bbb', 'S-500')],
      }),
      state({ parents: [withEmail] }),
      ctx,
    );
    expect(both.parentUpdates.map(u => u.update.set)).toEqual([{ sisRole: 'parent' }]);
  });
});
