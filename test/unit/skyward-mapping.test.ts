/**
 * Skyward LMS API payloads and mapping (sis-reference §5.4): ids as numbers, per-student
 * relationship text, role from it, phone fallbacks, error bodies refused.
 */
import { SkyGuardian, SkyStudent, skywardRecords } from '../../src/connectors/skyward/payloads.js';
import { buildSkywardChunk, mapSkywardStudent } from '../../src/mapping/skyward.js';

const student = (over: Record<string, unknown> = {}) =>
  SkyStudent.parse({
    NameId: 70811,
    DisplayId: '40117',
    StateId: 'ST1',
    FirstName: 'Mira',
    LastName: 'Okafor',
    DefaultSchoolId: 12,
    ...over,
  });

const guardian = (over: Record<string, unknown> = {}) =>
  SkyGuardian.parse({
    GuardianNameId: 71220,
    FirstName: 'Priya',
    LastName: 'Vandermeer',
    Email: ' priya.v@example.com ',
    PhoneNumber: '',
    PhoneNumber2: '555-010-3344',
    Students: [
      { StudentNameId: 70811, RelationshipDesc: 'Mother' },
      { StudentNameId: 70812, RelationshipDesc: 'Step-Parent' },
    ],
    ...over,
  });

describe('Skyward mapping', () => {
  it('maps a student: NameId, DisplayId as uniqueId (or StateId / NameId), schoolIds else DefaultSchoolId', () => {
    const m = mapSkywardStudent(student(), 'identifier');
    expect(m.ok && m.student).toEqual({
      sourcedId: '70811',
      uniqueId: '40117',
      givenName: 'Mira',
      familyName: 'Okafor',
      schoolSourcedIds: ['12'],
      status: 'active',
    });
    const s2 = mapSkywardStudent(student({ schoolIds: [3, 4] }), 'userMasterIdentifier');
    expect(s2.ok && [s2.student.uniqueId, s2.student.schoolSourcedIds]).toEqual([
      'ST1',
      ['3', '4'],
    ]);
    const bad = mapSkywardStudent(student({ DisplayId: '' }), 'identifier');
    expect(!bad.ok && bad.reject.reason).toMatch(/DisplayId/);
  });

  it('links each guardian with the relationship text of the matching Students[] entry', () => {
    const s1 = student();
    const s2 = student({ NameId: 70812, DisplayId: '40118' });
    const g = guardian();
    const { chunk, rejects } = buildSkywardChunk({
      students: [s1, s2],
      guardiansOf: () => [g],
      uniqueIdField: 'identifier',
      complete: true,
    });
    expect(rejects).toEqual([]);
    expect(chunk.guardians).toEqual([
      {
        sourcedId: '71220',
        givenName: 'Priya',
        familyName: 'Vandermeer',
        email: 'priya.v@example.com',
        phone: '555-010-3344',
        role: 'parent',
        status: 'active',
      },
    ]);
    expect(chunk.relationships).toEqual([
      { guardianSourcedId: '71220', studentSourcedId: '70811', relationship: 'Mother' },
      { guardianSourcedId: '71220', studentSourcedId: '70812', relationship: 'Step-Parent' },
    ]);
    expect(chunk.relationshipsSupplied).toBe(true);
  });

  it('a guardian that does not map is a reject and its links make the chunk incomplete', () => {
    const { chunk, rejects } = buildSkywardChunk({
      students: [student()],
      guardiansOf: () => [guardian({ LastName: '' })],
      uniqueIdField: 'identifier',
      complete: true,
    });
    expect(chunk.relationships).toEqual([]);
    expect(chunk.relationshipsSupplied).toBe(false);
    expect(rejects[0]?.reason).toMatch(/LastName.*1 link/);
  });

  it('lists: bare arrays, single objects, empty bodies; an error object is refused', () => {
    expect(skywardRecords([1, 2])).toEqual([1, 2]);
    expect(
      skywardRecords({ NameId: 1, FirstName: 'A', LastName: 'B', SchoolEmail: '' }),
    ).toHaveLength(1);
    expect(skywardRecords(undefined)).toEqual([]);
    expect(() => skywardRecords({ Message: 'An error has occurred.' })).toThrow(/error body/);
  });
});
