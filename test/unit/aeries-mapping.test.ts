/**
 * Aeries payload parsing (mixed flags), derived guardian identity, the contact policy and the
 * StudentDataChanges time path.
 */
import { AeriesContactPolicy, AeriesConnectorConfig } from '../../src/config/aeries.js';
import { aeriesChangesPath } from '../../src/connectors/aeries/index.js';
import { AeContact, AeFlag, AeStudent } from '../../src/connectors/aeries/payloads.js';
import {
  buildAeriesChunk,
  contactExclusion,
  contactPassesPolicy,
  deriveAeriesGuardians,
  mapAeriesStudent,
  resolveAeriesIdentities,
} from '../../src/mapping/aeries.js';

const contact = (o: Record<string, unknown>) =>
  AeContact.parse({
    StudentID: 1,
    SequenceNumber: 1,
    FirstName: 'Ilse',
    LastName: 'Marchetti',
    AccessToPortal: 'Y',
    PortalAccountID: 0,
    ...o,
  });

describe('AeFlag', () => {
  it.each([
    [true, true],
    [false, false],
    ['Y', true],
    ['y', true],
    ['N', false],
    ['true', true],
    ['FALSE', false],
    [1, true],
    [0, false],
    ['', undefined],
    ['  ', undefined],
    [null, undefined],
    [undefined, undefined],
  ])('%j → %j', (input, want) => {
    expect(AeFlag.parse(input)).toBe(want);
  });
  it('refuses values it does not know (never silently "no")', () => {
    expect(AeFlag.safeParse('maybe').success).toBe(false);
    expect(AeFlag.safeParse(2).success).toBe(false);
  });
});

describe('resolveAeriesIdentities', () => {
  it('siblings’ rows of one parent (email in another case/spacing) resolve to one id, matched by email', () => {
    const rows = [
      contact({ StudentID: 10, SequenceNumber: 1, EmailAddress: 'Ilse.M@Example.org' }),
      contact({ StudentID: 11, SequenceNumber: 2, EmailAddress: '  ilse.m@example.org ' }),
    ];
    const ids = resolveAeriesIdentities(rows.map(row => ({ row })));
    const a = ids.get('10:1');
    const b = ids.get('11:2');
    expect(a?.sourcedId).toBe(b?.sourcedId);
    expect(a?.sourcedId).toMatch(/^email:[0-9a-f]{20}$/);
    expect(a?.match).toBe('email');
  });

  it('prefers the portal account id, and joins transitively (portal ↔ email ↔ name+phone)', () => {
    const rows = [
      contact({ StudentID: 10, SequenceNumber: 1, PortalAccountID: 5120, EmailAddress: 'a@x.org' }),
      contact({
        StudentID: 11,
        SequenceNumber: 1,
        EmailAddress: 'A@x.org',
        CellPhone: '5550147721',
      }),
      contact({ StudentID: 12, SequenceNumber: 3, HomePhone: '(555) 014-7721' }),
    ];
    const ids = resolveAeriesIdentities(rows.map(row => ({ row })));
    expect([...ids.values()].map(i => i.sourcedId)).toEqual([
      'portal-account:5120',
      'portal-account:5120',
      'portal-account:5120',
    ]);
    expect([...ids.values()].map(i => i.match)).toEqual([
      'portal-account',
      'name-phone',
      'name-phone',
    ]);
  });

  it('keeps different people apart (same phone, other name; same name, other phone)', () => {
    const rows = [
      contact({ StudentID: 10, SequenceNumber: 1, CellPhone: '5550000001' }),
      contact({ StudentID: 10, SequenceNumber: 2, FirstName: 'Marco', CellPhone: '5550000001' }),
      contact({ StudentID: 11, SequenceNumber: 1, CellPhone: '5550000002' }),
    ];
    const ids = resolveAeriesIdentities(rows.map(row => ({ row })));
    expect(new Set([...ids.values()].map(i => i.sourcedId)).size).toBe(3);
  });

  it('uses name + family only for rows without email and phone; otherwise a row id', () => {
    const bare = { FirstName: 'Seán', LastName: "O'Brien" };
    const rows = [
      { row: contact({ StudentID: 10, SequenceNumber: 1, ...bare }), familyKey: 77 },
      {
        row: contact({ StudentID: 11, SequenceNumber: 1, FirstName: 'SEAN', LastName: 'obrien' }),
        familyKey: 77,
      },
      { row: contact({ StudentID: 12, SequenceNumber: 1, ...bare }), familyKey: 78 },
      { row: contact({ StudentID: 13, SequenceNumber: 4, ...bare }) },
    ];
    const ids = resolveAeriesIdentities(rows);
    expect(ids.get('10:1')?.sourcedId).toBe(ids.get('11:1')?.sourcedId);
    expect(ids.get('10:1')?.match).toBe('name-family');
    expect(ids.get('12:1')?.sourcedId).not.toBe(ids.get('10:1')?.sourcedId);
    expect(ids.get('13:4')).toEqual({ sourcedId: 'row:13-4', match: 'row' });
  });

  it('never puts an email, name or phone in an id', () => {
    const ids = resolveAeriesIdentities([
      { row: contact({ EmailAddress: 'secret.person@example.org', CellPhone: '5551234567' }) },
    ]);
    const id = ids.get('1:1')?.sourcedId ?? '';
    expect(id).not.toMatch(/secret|5551234567|ilse/i);
  });
});

describe('contact policy: explicit flags, never position', () => {
  const policy = AeriesContactPolicy.parse({});
  it('requires AccessToPortal = yes by default; "" (unset) does not count', () => {
    expect(contactPassesPolicy(contact({ AccessToPortal: true }), policy)).toBe(true);
    expect(contactPassesPolicy(contact({ AccessToPortal: '' }), policy)).toBe(false);
    expect(contactPassesPolicy(contact({ AccessToPortal: 'N' }), policy)).toBe(false);
  });
  it('a blank AccessToPortal with a PortalAccountID is not portal access: its own exclusion code', () => {
    expect(contactExclusion(contact({ AccessToPortal: '', PortalAccountID: 5120 }), policy)).toBe(
      'portal account without AccessToPortal',
    );
    expect(contactExclusion(contact({ AccessToPortal: '', PortalAccountID: 0 }), policy)).toBe(
      'no portal access',
    );
    expect(contactExclusion(contact({ AccessToPortal: 'N', PortalAccountID: 5120 }), policy)).toBe(
      'no portal access',
    );
    expect(contactExclusion(contact({ AccessToPortal: 'Y' }), policy)).toBeUndefined();
  });
  it('ignores ContactOrder and PrimaryContact', () => {
    const first = contact({ AccessToPortal: 'N', ContactOrder: 1, PrimaryContact: 'Y' });
    const last = contact({ AccessToPortal: 'Y', ContactOrder: 9, PrimaryContact: '' });
    expect(contactPassesPolicy(first, policy)).toBe(false);
    expect(contactPassesPolicy(last, policy)).toBe(true);
  });
  it('applies educational rights, lives-with and excluded relationship codes', () => {
    const strict = AeriesContactPolicy.parse({
      requireEducationalRights: true,
      requireLivesWith: true,
      excludeRelationshipCodes: ['30'],
    });
    const row = { EducationalRightsHolder: 'Y', LivesWithStudentIndicator: true };
    expect(contactPassesPolicy(contact(row), strict)).toBe(true);
    expect(contactPassesPolicy(contact({ ...row, RelationshipToStudentCode: '30' }), strict)).toBe(
      false,
    );
    expect(contactPassesPolicy(contact({ ...row, LivesWithStudentIndicator: '' }), strict)).toBe(
      false,
    );
  });
});

describe('deriveAeriesGuardians / buildAeriesChunk', () => {
  it('one guardian for a parent of two siblings, two links; role from the decoded code', () => {
    const rows = [
      contact({
        StudentID: 10,
        SequenceNumber: 1,
        EmailAddress: 'p@x.org',
        RelationshipToStudentCode: '10',
      }),
      contact({
        StudentID: 11,
        SequenceNumber: 2,
        EmailAddress: 'P@x.org',
        RelationshipToStudentCode: '10',
      }),
      contact({
        StudentID: 11,
        SequenceNumber: 3,
        FirstName: 'Aunt',
        CellPhone: '5551112222',
        AccessToPortal: 'N',
      }),
    ];
    const set = deriveAeriesGuardians({
      rows: rows.map(row => ({ row })),
      studentIds: new Set(['10', '11']),
      policy: AeriesContactPolicy.parse({}),
      codes: new Map([['10', 'Mother']]),
    });
    expect(set.guardians.size).toBe(1);
    const g = [...set.guardians.values()][0];
    expect(g?.role).toBe('parent');
    expect(g?.email).toBe('p@x.org');
    expect(set.matches.email).toBe(2);
    const student = (id: string) => ({
      sourcedId: id,
      uniqueId: id,
      givenName: 'K',
      familyName: 'M',
      schoolSourcedIds: ['1'],
      status: 'active' as const,
    });
    const chunk = buildAeriesChunk([student('10'), student('11')], set);
    expect(chunk.guardians).toHaveLength(1);
    expect(chunk.relationships.map(r => [r.studentSourcedId, r.relationship])).toEqual([
      ['10', 'Mother'],
      ['11', 'Mother'],
    ]);
    expect(chunk.relationshipsSupplied).toBe(true);
  });
});

describe('mapAeriesStudent', () => {
  const rec = (o: Record<string, unknown>) =>
    AeStudent.parse({
      StudentID: 99410233,
      SchoolCode: 994,
      FirstName: 'Kai',
      LastName: 'Ito',
      Grade: 3,
      InactiveStatusCode: '',
      ...o,
    });
  it('merges per-school records: active schools only, dedupes on StudentID', () => {
    const m = mapAeriesStudent([
      rec({ SchoolCode: 995, InactiveStatusCode: 'T' }),
      rec({ FamilyKey: 41 }),
    ]);
    expect(m?.ok).toBe(true);
    if (m?.ok) {
      expect(m.result.student.schoolSourcedIds).toEqual(['994']);
      expect(m.result.student.uniqueId).toBe('99410233');
      expect(m.result.student.grade).toBe('3');
      expect(m.result.familyKey).toBe(41);
    }
  });
  it('is undefined when no record is active, a reject naming the field when a name is missing', () => {
    expect(mapAeriesStudent([rec({ InactiveStatusCode: 'I' })])).toBeUndefined();
    const bad = mapAeriesStudent([rec({ LastName: '' })]);
    expect(bad?.ok).toBe(false);
    if (bad && !bad.ok) expect(bad.reject.reason).toMatch(/LastName/);
  });
});

describe('aeriesChangesPath', () => {
  it('converts the watermark to the server’s local time (offset from CurrentDateTime)', () => {
    const now = new Date('2026-03-10T18:00:30Z');
    // Server is at UTC-7: its clock reads 11:00.
    expect(aeriesChangesPath(new Date('2026-03-10T16:05:00Z'), '2026-03-10T11:00:31', now)).toBe(
      '2026/3/10/9/5',
    );
    expect(aeriesChangesPath(new Date('2026-03-10T06:30:00Z'), '2026-03-10T11:00:31', now)).toBe(
      '2026/3/9/23/30',
    );
  });
  it('throws on a CurrentDateTime that is not a date-time', () => {
    expect(() => aeriesChangesPath(new Date(), 'yesterday', new Date())).toThrow(RangeError);
  });
});

describe('AeriesConnectorConfig', () => {
  it('requires the certificate variable for the REST API and the OneRoster settings for api oneroster', () => {
    const base = { kind: 'aeries', baseUrl: 'https://d.aeries.net/aeries' };
    expect(AeriesConnectorConfig.safeParse(base).success).toBe(false);
    expect(AeriesConnectorConfig.safeParse({ ...base, certEnv: 'X_CERT' }).success).toBe(true);
    expect(AeriesConnectorConfig.safeParse({ ...base, api: 'oneroster' }).success).toBe(false);
    expect(AeriesConnectorConfig.safeParse({ ...base, certEnv: 'X', typo: 1 }).success).toBe(false);
  });
});
