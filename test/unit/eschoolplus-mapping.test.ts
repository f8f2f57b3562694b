/**
 * eSchoolPLUS contact types, parked duplicates, policy flags and config validation.
 */
import { ESchoolContactPolicy, ESchoolPlusConnectorConfig } from '../../src/config/eschoolplus.js';
import { pickFile } from '../../src/connectors/eschoolplus/files.js';
import {
  EsContactPhoneRow,
  EsContactRow,
  EsStudentContactRow,
} from '../../src/connectors/eschoolplus/definitions.js';
import {
  judgeJoinedContact,
  judgeStudentContact,
  mapESchoolGuardian,
  mapESchoolRelationship,
  preferredPhones,
} from '../../src/mapping/eschoolplus.js';

const link = (o: Record<string, string>) =>
  EsStudentContactRow.parse({
    STUDENT_ID: '403118822',
    CONTACT_ID: '1440921',
    CONTACT_TYPE: 'G',
    CONTACT_PRIORITY: '1',
    RELATION_CODE: 'M',
    WEB_ACCESS: 'Y',
    LEGAL_GUARD: 'Y',
    CUST_GUARD: 'Y',
    ...o,
  });
const policy = ESchoolContactPolicy.parse({});

describe('judgeStudentContact', () => {
  it('uses G rows only: P/M are the student’s address, C/O other contacts', () => {
    expect(judgeStudentContact(link({}), policy)).toEqual({ use: true });
    expect(judgeStudentContact(link({ CONTACT_TYPE: 'P' }), policy)).toMatchObject({
      kind: 'address',
    });
    expect(judgeStudentContact(link({ CONTACT_TYPE: 'm' }), policy)).toMatchObject({
      kind: 'address',
    });
    expect(judgeStudentContact(link({ CONTACT_TYPE: 'C' }), policy)).toMatchObject({
      kind: 'not-guardian',
    });
    expect(judgeStudentContact(link({ CONTACT_TYPE: 'X' }), policy)).toMatchObject({
      kind: 'unknown-type',
    });
  });
  it('reports priority-99 duplicates (configurable) and applies the flags', () => {
    expect(judgeStudentContact(link({ CONTACT_PRIORITY: '99' }), policy)).toMatchObject({
      kind: 'parked',
      reason: expect.stringMatching(/CONTACT_PRIORITY 99/) as unknown,
    });
    expect(
      judgeStudentContact(link({ CONTACT_PRIORITY: '99' }), { ...policy, parkedPriority: null }),
    ).toEqual({ use: true });
    expect(judgeStudentContact(link({ WEB_ACCESS: 'N' }), policy)).toMatchObject({
      kind: 'policy',
    });
    expect(judgeStudentContact(link({ WEB_ACCESS: '' }), policy)).toMatchObject({ kind: 'policy' });
    const custodial = ESchoolContactPolicy.parse({ requireCustodialGuardian: true });
    expect(judgeStudentContact(link({ CUST_GUARD: 'N' }), custodial)).toMatchObject({
      kind: 'policy',
    });
  });
  it('a priority of 1 is no better than 5: order never decides', () => {
    expect(judgeStudentContact(link({ CONTACT_PRIORITY: '5' }), policy)).toEqual({ use: true });
  });
});

describe('judgeJoinedContact (REG_CONTACT with CONTACT_TYPE, no REG_STU_CONTACT)', () => {
  const c = (types: { type: string; priority?: number }[]) => ({
    row: EsContactRow.parse({ CONTACT_ID: '7', FIRST_NAME: 'A', LAST_NAME: 'B' }),
    types,
    where: 'REG_CONTACT.txt line 9',
  });
  it('a G type makes a guardian; a person whose every G type is parked is reported', () => {
    expect(judgeJoinedContact(c([{ type: 'C' }, { type: 'G', priority: 2 }]), 99)).toEqual({
      guardian: true,
    });
    expect(judgeJoinedContact(c([{ type: 'P' }]), 99)).toEqual({ guardian: false });
    const parked = judgeJoinedContact(c([{ type: 'G', priority: 99 }]), 99);
    expect(parked.guardian).toBe(false);
    expect(parked.reject?.recordId).toBe('7 (REG_CONTACT.txt line 9)');
  });
});

describe('guardian and relationship mapping', () => {
  it('maps names, a valid email, the preferred phone and the decoded relationship', () => {
    const contact = {
      row: EsContactRow.parse({
        CONTACT_ID: '1440921',
        FIRST_NAME: 'Renée',
        LAST_NAME: 'Peña',
        EMAIL: 'r@x.org',
      }),
      types: [],
      where: 'REG_CONTACT.txt line 2',
    };
    const phones = preferredPhones([
      EsContactPhoneRow.parse({ CONTACT_ID: '1440921', PHONE: '5550002', PHONE_PRIORITY: '2' }),
      EsContactPhoneRow.parse({ CONTACT_ID: '1440921', PHONE: '5550001', PHONE_PRIORITY: '1' }),
    ]);
    const rel = mapESchoolRelationship(link({}), { M: 'Mother' });
    expect(rel).toEqual({
      guardianSourcedId: '1440921',
      studentSourcedId: '403118822',
      relationship: 'Mother',
      portalAccess: true,
      custody: true,
    });
    const g = mapESchoolGuardian(contact, phones.get('1440921'), [rel.relationship]);
    expect(g).toMatchObject({
      ok: true,
      guardian: {
        sourcedId: '1440921',
        givenName: 'Renée',
        familyName: 'Peña',
        email: 'r@x.org',
        phone: '5550001',
        role: 'parent',
      },
    });
  });
  it('keeps a guardian without an invalid email (reported)', () => {
    const g = mapESchoolGuardian(
      {
        row: EsContactRow.parse({
          CONTACT_ID: '1',
          FIRST_NAME: 'A',
          LAST_NAME: 'B',
          EMAIL: 'not-an-email',
        }),
        types: [],
        where: 'x',
      },
      undefined,
      [],
    );
    expect(g.ok && g.guardian.email).toBe(undefined);
    expect(g.ok && g.emailReject?.reason).toMatch(/EMAIL/);
  });
});

describe('pickFile', () => {
  it('exact names, or the newest match of a * pattern', () => {
    const entries = [
      { name: 'REG_20250101.txt', mtimeMs: 1 },
      { name: 'REG_20250102.txt', mtimeMs: 2 },
      { name: 'REG_BUILDING.txt', mtimeMs: 3 },
    ];
    expect(pickFile('REG_*.txt', entries.slice(0, 2))).toBe('REG_20250102.txt');
    expect(pickFile('REG_BUILDING.txt', entries)).toBe('REG_BUILDING.txt');
    expect(pickFile('REG.txt', entries)).toBeUndefined();
  });

  it('a name several patterns match belongs to the most specific one (the example district file)', () => {
    const patterns = [
      'REG_*.txt',
      'REG_BUILDING_*.txt',
      'REG_CONTACT_*.txt',
      'REG_CONTACT_PHONE_*.txt',
      'REG_STU_CONTACT_*.txt',
    ];
    const entries = [
      'REG_20250115.txt',
      'REG_BUILDING_20250115.txt',
      'REG_CONTACT_20250115.txt',
      'REG_CONTACT_PHONE_20250115.txt',
      'REG_STU_CONTACT_20250115.txt',
    ].map(name => ({ name, mtimeMs: 1000 }));
    expect(patterns.map(p => pickFile(p, entries, patterns))).toEqual(entries.map(e => e.name));
    // without the other patterns, the old behaviour: the newest-by-name match of REG_*.txt
    expect(pickFile('REG_*.txt', entries)).toBe('REG_STU_CONTACT_20250115.txt');
  });

  it('refuses a name two patterns match equally specifically', () => {
    const entries = [{ name: 'REG_A_A.txt', mtimeMs: 1 }];
    expect(() => pickFile('REG_A_*.txt', entries, ['REG_A_*.txt', 'REG_*_A.txt'])).toThrow(
      /REG_A_A\.txt matches both "REG_A_\*\.txt" and "REG_\*_A\.txt" equally/,
    );
  });
});

describe('ESchoolPlusConnectorConfig', () => {
  const base = { kind: 'eschoolplus', source: { type: 'folder', path: '/drop' } };
  it('defaults: link-less, Windows-1252, pipe, header row, priority 99 parked', () => {
    const c = ESchoolPlusConnectorConfig.parse(base);
    expect(c.links).toBe('none');
    expect(c.format).toEqual({
      delimiter: '|',
      headerRow: true,
      encoding: 'windows-1252',
      endOfRecordMarker: null,
    });
    expect(c.contacts.parkedPriority).toBe(99);
    expect(c.files.studentContacts).toBeUndefined();
  });
  it('refuses settings that cannot work, naming the key', () => {
    const issues = (raw: unknown) => {
      const r = ESchoolPlusConnectorConfig.safeParse(raw);
      return r.success ? [] : r.error.issues.map(i => i.path.join('.'));
    };
    expect(issues({ ...base, links: 'student-contact' })).toEqual(['files.studentContacts']);
    expect(issues({ ...base, format: { headerRow: false } })).toContain('files.students.columns');
    expect(issues({ ...base, format: { encoding: 'klingon-8' } })).toEqual(['format.encoding']);
    expect(issues({ ...base, source: { type: 'sftp', host: 'h', usernameEnv: 'U' } })).toEqual([
      'source.passwordEnv',
    ]);
    expect(issues({ ...base, files: { students: { name: '../REG.txt' } } })).toEqual([
      'files.students.name',
    ]);
  });
});
