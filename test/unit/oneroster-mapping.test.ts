/**
 * OneRoster payload schemas (liberal in what they accept, sis-reference §1.4/§7.3) and the
 * pure mapping / chunk builder (agents union, relatives by policy, tobedeleted, incomplete
 * links, IC legacy ids).
 */
import {
  collectionRecords,
  imsxStatusOf,
  legacyIdFromMetadata,
  OrClass,
  OrEnrollment,
  OrUser,
  parseRecords,
  type OrUserRecord,
} from '../../src/connectors/oneroster/payloads.js';
import {
  buildOneRosterChunk,
  canonicalUserId,
  guardianIndexEntry,
  guardianRoleOf,
  mapOneRosterSchool,
  mapOneRosterStudent,
  type GuardianIndexEntry,
  type OneRosterMappingOptions,
} from '../../src/mapping/oneroster.js';

const OPTS: OneRosterMappingOptions = {
  studentUniqueId: 'identifier',
  sourcedIds: 'native',
  version: '1.1',
  includeRelatives: false,
};

const ref = (id: string, type = 'user') => ({ href: `https://x/${id}`, sourcedId: id, type });

function user(over: Record<string, unknown>): OrUserRecord {
  return OrUser.parse({
    sourcedId: 'u',
    status: 'active',
    givenName: 'Ana',
    familyName: 'Lee',
    role: 'student',
    identifier: '1001',
    ...over,
  });
}

describe('OneRoster payloads', () => {
  it.each([
    [true, true],
    ['true', true],
    ['TRUE', true],
    ['false', false],
    ['FALSE', false],
    ['1', true],
    ['N', false],
  ])('enabledUser %j parses as %j', (raw, want) => {
    expect(user({ enabledUser: raw }).enabledUser).toBe(want);
  });

  it('refuses an enabledUser it does not understand (never silently false)', () => {
    expect(OrUser.safeParse({ sourcedId: 'x', enabledUser: 'maybe' }).success).toBe(false);
  });

  it('accepts a single object where an array is expected, and bare ids as GUIDRefs', () => {
    const u = user({
      agents: ref('g1'),
      orgs: 'o1',
      grades: '05',
      userIds: { type: 'FED', identifier: 7 },
    });
    expect(u.agentSourcedIds).toEqual(['g1']);
    expect(u.orgSourcedIds).toEqual(['o1']);
    expect(u.grades).toEqual(['05']);
    expect(u.userIds).toEqual([{ type: 'FED', identifier: '7' }]);
  });

  it('reads 1.2 roles[] and primaryOrg like 1.1 role and orgs', () => {
    const u = OrUser.parse({
      sourcedId: 'a-guid',
      status: 'active',
      roles: [
        { roleType: 'primary', role: 'teacher', org: ref('s1', 'org') },
        { roleType: 'secondary', role: 'Parent', org: ref('s2', 'org') },
      ],
      primaryOrg: ref('s1', 'org'),
    });
    expect(u.roles).toEqual(['teacher', 'parent']);
    expect(u.orgSourcedIds).toEqual(['s1', 's2']);
  });

  it('maps status: blank is active (bulk CSV), inactive/tobedeleted are removals, anything else is an error', () => {
    expect(user({ status: '' }).status).toBe('active');
    expect(user({ status: null }).status).toBe('active');
    expect(user({ status: 'inactive' }).status).toBe('tobedeleted');
    expect(user({ status: 'ToBeDeleted' }).status).toBe('tobedeleted');
    expect(OrUser.safeParse({ sourcedId: 'x', status: 'archived' }).success).toBe(false);
  });

  it.each([
    [{ 'ic.legacysourceId': '77120' }, '77120'],
    [{ ic: { legacysourceId: 77120 } }, '77120'],
    [{ legacySourcedId: 's77120' }, 's77120'],
    [{ other: 'x' }, undefined],
    ['not an object', undefined],
  ])('finds the IC legacy id in metadata %j', (metadata, want) => {
    expect(legacyIdFromMetadata(metadata)).toBe(want);
  });

  it('reads IMSX error bodies, plain or in statusInfoSet', () => {
    const body = {
      imsx_codeMajor: 'failure',
      imsx_severity: 'error',
      imsx_description: 'bad filter',
      imsx_CodeMinor: {
        imsx_codeMinorField: [
          { imsx_codeMinorFieldName: 'x', imsx_codeMinorFieldValue: 'invalid_filter_field' },
        ],
      },
    };
    expect(imsxStatusOf(body)).toEqual({
      codeMajor: 'failure',
      severity: 'error',
      description: 'bad filter',
      codeMinor: ['invalid_filter_field'],
    });
    expect(imsxStatusOf({ statusInfoSet: [body] })?.codeMinor).toEqual(['invalid_filter_field']);
    expect(imsxStatusOf({ users: [] })).toBeUndefined();
  });

  it('collections: missing key or null is an empty page, an object is one record, a non-object is refused', () => {
    expect(collectionRecords({ users: null }, 'users')).toEqual([]);
    expect(collectionRecords({}, 'users')).toEqual([]);
    expect(collectionRecords({ users: { sourcedId: 'a' } }, 'users')).toEqual([{ sourcedId: 'a' }]);
    expect(() => collectionRecords([1, 2], 'users')).toThrow(/users/);
  });

  it('parseRecords keeps the raw record and id of each failure', () => {
    const { ok, failures } = parseRecords(OrUser, [
      { sourcedId: 'a' },
      { sourcedId: 'b', enabledUser: 'zz' },
      42,
    ]);
    expect(ok.map(u => u.sourcedId)).toEqual(['a']);
    expect(failures.map(f => f.recordId)).toEqual(['b', '#2']);
    expect(failures[0]?.reason).toMatch(/enabledUser/);
    expect(failures[1]?.raw).toBe(42);
  });

  it('classes and enrollments take their GUIDRefs', () => {
    expect(
      OrClass.parse({ sourcedId: 'c1', title: 'Math', school: ref('s1', 'org') }).schoolSourcedId,
    ).toBe('s1');
    expect(
      OrEnrollment.parse({
        sourcedId: 'e1',
        user: ref('u1'),
        class: ref('c1', 'class'),
        role: 'Student',
      }),
    ).toMatchObject({
      userSourcedId: 'u1',
      classSourcedId: 'c1',
      role: 'student',
    });
  });
});

describe('OneRoster mapping', () => {
  it('guardian roles: parent before guardian before relative; ext: roles naming a guardian count', () => {
    expect(guardianRoleOf(['guardian', 'parent'])).toBe('parent');
    expect(guardianRoleOf(['teacher', 'guardian'])).toBe('guardian');
    expect(guardianRoleOf(['ext:primaryguardian'])).toBe('guardian');
    expect(guardianRoleOf(['relative'])).toBe('relative');
    expect(guardianRoleOf(['student'])).toBeUndefined();
  });

  it('legacy ids: 1.1 without the role letter, 1.2 from metadata; missing is a reason', () => {
    expect(
      canonicalUserId({ sourcedId: 's40117' }, { sourcedIds: 'legacy', version: '1.1' }),
    ).toEqual({ ok: true, value: '40117' });
    expect(
      canonicalUserId(
        { sourcedId: 'guid', legacyId: '40117' },
        { sourcedIds: 'legacy', version: '1.2' },
      ),
    ).toEqual({
      ok: true,
      value: '40117',
    });
    const r = canonicalUserId({ sourcedId: 'guid' }, { sourcedIds: 'legacy', version: '1.2' });
    expect(r.ok).toBe(false);
  });

  it('a student without the uniqueId field or a name is a reject naming the OneRoster field', () => {
    const r1 = mapOneRosterStudent(user({ identifier: '' }), OPTS);
    expect(r1.ok).toBe(false);
    if (!r1.ok) expect(r1.reject.reason).toMatch(/identifier/);
    const r2 = mapOneRosterStudent(user({ familyName: '  ' }), OPTS);
    expect(r2.ok).toBe(false);
    if (!r2.ok) expect(r2.reject.reason).toMatch(/familyName/);
    const r3 = mapOneRosterStudent(user({ email: 'not-an-email' }), OPTS);
    expect(r3.ok && r3.record.email === undefined && r3.emailReject?.reason).toMatch(/email/);
  });

  it('keeps only school orgs when the schools are known; grade from grades[0]', () => {
    const r = mapOneRosterStudent(
      user({ orgs: ['district', 's1'], grades: ['KG'] }),
      OPTS,
      new Set(['s1']),
    );
    expect(r.ok && r.record).toMatchObject({ schoolSourcedIds: ['s1'], grade: 'KG' });
  });

  it('schools: type school only, tobedeleted left out', () => {
    expect(
      mapOneRosterSchool({ sourcedId: 'd', status: 'active', name: 'D', type: 'district' }),
    ).toBeUndefined();
    expect(
      mapOneRosterSchool({ sourcedId: 's', status: 'tobedeleted', name: 'S', type: 'school' }),
    ).toBeUndefined();
    expect(
      mapOneRosterSchool({ sourcedId: 's', status: 'active', name: 'S', type: 'school' }),
    ).toEqual({
      ok: true,
      school: { sourcedId: 's', name: 'S' },
    });
  });

  describe('buildOneRosterChunk', () => {
    const guardians: OrUserRecord[] = [
      user({ sourcedId: 'gBoth', role: 'parent', agents: ['s1'] }),
      user({ sourcedId: 'gGuardianSide', role: 'guardian', agents: ['s1', 's2'] }),
      user({ sourcedId: 'gStudentSide', role: 'guardian', agents: [] }),
      user({ sourcedId: 'gRelative', role: 'relative', agents: ['s2'] }),
      user({ sourcedId: 'gDeleted', role: 'guardian', status: 'tobedeleted', agents: ['s2'] }),
    ];
    const index = (opts: OneRosterMappingOptions) => {
      const m = new Map<string, GuardianIndexEntry>();
      const listing = new Map<string, string[]>();
      for (const g of guardians) {
        const e = guardianIndexEntry(g, opts);
        if (!e) continue;
        m.set(g.sourcedId, e.entry);
        for (const s of e.entry.agentSourcedIds)
          listing.set(s, [...(listing.get(s) ?? []), g.sourcedId]);
      }
      return {
        guardian: (id: string) => m.get(id),
        guardiansListing: (id: string) => listing.get(id) ?? [],
      };
    };
    const students = [
      user({ sourcedId: 's1', agents: ['gBoth', 'gStudentSide'] }),
      user({ sourcedId: 's2', identifier: '1002', agents: [] }),
      user({ sourcedId: 's3', identifier: '1003', status: 'tobedeleted', agents: ['gBoth'] }),
      user({ sourcedId: 's4', identifier: '1004', agents: [] }),
    ];

    it('unions both sides, leaves out relatives (policy) and tobedeleted records', () => {
      const r = buildOneRosterChunk({
        students,
        ...index(OPTS),
        options: OPTS,
        linksComplete: true,
      });
      expect(r.chunk.students.map(s => s.sourcedId)).toEqual(['s1', 's2', 's4']);
      expect(r.deletedStudents).toEqual(['s3']);
      expect(
        r.chunk.relationships.map(x => `${x.guardianSourcedId}>${x.studentSourcedId}`).sort(),
      ).toEqual(['gBoth>s1', 'gGuardianSide>s1', 'gGuardianSide>s2', 'gStudentSide>s1']);
      expect(r.chunk.guardians.map(g => [g.sourcedId, g.role])).toEqual([
        ['gBoth', 'parent'],
        ['gGuardianSide', 'guardian'],
        ['gStudentSide', 'guardian'],
      ]);
      expect(r.chunk.relationshipsSupplied).toBe(true);
      expect(r.studentsWithoutGuardians).toEqual(['s4']);
      expect(r.rejects).toEqual([]);
    });

    it('relatives become guardians when the policy includes them', () => {
      const opts = { ...OPTS, includeRelatives: true };
      const r = buildOneRosterChunk({
        students,
        ...index(opts),
        options: opts,
        linksComplete: true,
      });
      expect(r.chunk.guardians.find(g => g.sourcedId === 'gRelative')?.role).toBe('relative');
      expect(
        r.chunk.relationships.some(
          x => x.guardianSourcedId === 'gRelative' && x.studentSourcedId === 's2',
        ),
      ).toBe(true);
    });

    it('an agent the feed does not have, or a feed that does not vouch for completeness, supplies no removals', () => {
      const idx = index(OPTS);
      const withUnknown = [user({ sourcedId: 's9', identifier: '9', agents: ['ghost'] })];
      const r = buildOneRosterChunk({
        students: withUnknown,
        ...idx,
        options: OPTS,
        linksComplete: true,
      });
      expect(r.chunk.relationshipsSupplied).toBe(false);
      expect(r.rejects.map(x => x.recordId)).toEqual(['ghost->s9']);
      const r2 = buildOneRosterChunk({ students, ...idx, options: OPTS, linksComplete: false });
      expect(r2.chunk.relationshipsSupplied).toBe(false);
      expect(r2.chunk.relationships.length).toBe(4);
    });

    it('a disabled guardian (enabledUser false/0) and a relative are exclusions, listed once', () => {
      for (const enabledUser of [false, 'false', '0', 0]) {
        const e = guardianIndexEntry(
          user({ sourcedId: 'gOff', role: 'parent', enabledUser, agents: ['s1'] }),
          OPTS,
        );
        expect(e?.entry).toEqual({ excluded: 'disabled', agentSourcedIds: ['s1'] });
        expect(e?.rejects).toEqual([
          { entity: 'guardian', recordId: 'gOff', reason: 'disabled in SIS', kind: 'excluded' },
        ]);
      }
      const rel = guardianIndexEntry(user({ sourcedId: 'gRel', role: 'relative' }), OPTS);
      expect(rel?.entry.excluded).toBe('relative');
      expect(rel?.rejects).toEqual([
        { entity: 'guardian', recordId: 'gRel', reason: 'relative', kind: 'excluded' },
      ]);
      const on = guardianIndexEntry(
        user({ sourcedId: 'gOn', role: 'parent', enabledUser: 'true' }),
        OPTS,
      );
      expect(on?.entry.guardian?.sourcedId).toBe('gOn');
    });

    it('a guardian that does not map is a reject once and makes the links incomplete', () => {
      const bad = user({ sourcedId: 'gBad', role: 'parent', familyName: '', agents: ['s1'] });
      const e = guardianIndexEntry(bad, OPTS);
      expect(e?.entry.excluded).toBe('rejected');
      expect(e?.rejects[0]?.reason).toMatch(/familyName/);
      const r = buildOneRosterChunk({
        students: [students[0]!],
        guardian: id => (id === 'gBad' ? e?.entry : index(OPTS).guardian(id)),
        guardiansListing: () => ['gBad'],
        options: OPTS,
        linksComplete: true,
      });
      expect(r.chunk.relationshipsSupplied).toBe(false);
      expect(r.chunk.guardians.map(g => g.sourcedId)).not.toContain('gBad');
    });

    it('adds sections and enrollments of active classes when enrollments are read', () => {
      const classes = new Map([
        [
          'c1',
          { sourcedId: 'c1', status: 'active' as const, title: 'Math 1', schoolSourcedId: 'sch' },
        ],
        [
          'c2',
          { sourcedId: 'c2', status: 'tobedeleted' as const, title: 'Old', schoolSourcedId: 'sch' },
        ],
        ['c3', { sourcedId: 'c3', status: 'active' as const, schoolSourcedId: 'sch' }],
      ]);
      const r = buildOneRosterChunk({
        students: [students[0]!, students[1]!],
        ...index(OPTS),
        options: OPTS,
        linksComplete: true,
        enrollments: {
          classesOf: id => (id === 's1' ? ['c1', 'c2', 'c3'] : ['c1']),
          classOf: id => classes.get(id),
        },
      });
      expect(r.chunk.sections).toEqual([
        { sourcedId: 'c1', title: 'Math 1', schoolSourcedId: 'sch' },
      ]);
      expect(r.chunk.enrollments).toEqual([
        { sectionSourcedId: 'c1', studentSourcedId: 's1' },
        { sectionSourcedId: 'c1', studentSourcedId: 's2' },
      ]);
      expect(r.rejects.map(x => x.recordId)).toEqual(['class c3']);
    });
  });
});
