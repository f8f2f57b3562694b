/**
 * Pure PowerSchool → canonical mapping and the contact policy (invariant 11), on fixtures in
 * the shapes of sis-reference §2.5/§2.6.
 */
import {
  PsContact,
  PsRosterContactRow,
  PsStudent,
} from '../../src/connectors/powerschool/payloads.js';
import {
  buildPowerSchoolChunk,
  contactFromApi,
  contactsFromRosterRows,
  currentDetail,
  mapPowerSchoolGuardian,
  enrollmentOf,
  mapPowerSchoolStudent,
  roleFromRelationships,
  toIsoDate,
  type PsContactRecord,
  type PsLinkDetail,
} from '../../src/mapping/powerschool.js';

const ASOF = '2025-03-01';
const DEFAULT_POLICY = { requireDataAccess: true, requireCustodial: false };

function rawStudent(id: number, over: Record<string, unknown> = {}): unknown {
  return {
    id,
    local_id: 200000 + id,
    student_username: `s${id}`,
    name: { first_name: 'Zoë', middle_name: null, last_name: "O'Brien" },
    school_enrollment: {
      enroll_status: 'A',
      enroll_status_code: 0,
      grade_level: 4,
      school_id: 7,
      school_number: 100,
      entry_date: '2024-08-20',
      exit_date: '2025-06-10',
    },
    contact_info: { email: `s${id}@students.example.org` },
    ...over,
  };
}
const student = (id: number, over: Record<string, unknown> = {}) =>
  PsStudent.parse(rawStudent(id, over));

interface LinkSpec {
  dcid: number;
  canAccessData?: boolean | null;
  sequence?: number;
  details?: Record<string, unknown>[];
}
function detail(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    relationship: 'Mother',
    custodial: true,
    emergency: true,
    livesWith: true,
    startDate: null,
    endDate: null,
    active: true,
    ...over,
  };
}
function rawContact(id: number, links: LinkSpec[], over: Record<string, unknown> = {}): unknown {
  return {
    contactId: id,
    firstName: 'Renée',
    middleName: null,
    lastName: "D'Angelo",
    active: true,
    emails: [{ primary: true, address: `c${id}@example.net` }],
    phones: [{ preferred: true, phoneNumber: '(555) 014-2288' }],
    contactAccount: null,
    contactStudents: links.map((l, i) => ({
      studentContactId: id * 100 + i,
      sequence: l.sequence ?? i + 1,
      dcid: l.dcid,
      studentNumber: String(200000 + l.dcid),
      canAccessData: l.canAccessData === undefined ? true : l.canAccessData,
      guardianId: null,
      studentDetails: l.details ?? [detail()],
    })),
    ...over,
  };
}
const contact = (id: number, links: LinkSpec[], over: Record<string, unknown> = {}) =>
  contactFromApi(PsContact.parse(rawContact(id, links, over)));

describe('mapPowerSchoolStudent', () => {
  it('maps the documented fields; ids are strings; names pass through unchanged', () => {
    const m = mapPowerSchoolStudent(student(4410));
    expect(m).toEqual({
      ok: true,
      student: {
        sourcedId: '4410',
        uniqueId: '204410',
        givenName: 'Zoë',
        familyName: "O'Brien",
        email: 's4410@students.example.org',
        schoolSourcedIds: ['7'],
        grade: '4',
        status: 'active',
      },
    });
  });

  it('kindergarten grade 0 is "0", not missing', () => {
    const m = mapPowerSchoolStudent(
      student(1, { school_enrollment: { grade_level: 0, school_id: 7 } }),
    );
    expect(m.ok && m.student.grade).toBe('0');
  });

  it('a student with no last name is a reject naming the PowerSchool field', () => {
    const m = mapPowerSchoolStudent(
      student(4411, { name: { first_name: 'Ana', middle_name: null, last_name: null } }),
    );
    expect(m.ok).toBe(false);
    if (!m.ok) {
      expect(m.reject.entity).toBe('student');
      expect(m.reject.recordId).toBe('4411');
      expect(m.reject.reason).toContain('name.last_name');
    }
  });

  it('a blank student_number is a reject naming local_id', () => {
    const m = mapPowerSchoolStudent(student(9, { local_id: null }));
    expect(!m.ok && m.reject.reason).toContain('local_id');
  });

  it('an invalid email keeps the student without email and says so', () => {
    const m = mapPowerSchoolStudent(student(5, { contact_info: { email: 'not-an-email' } }));
    expect(m.ok).toBe(true);
    if (m.ok) {
      expect(m.student.email).toBeUndefined();
      expect(m.emailReject?.reason).toContain('contact_info.email');
    }
  });

  it('empty expansions give no school, grade or email', () => {
    const m = mapPowerSchoolStudent(student(6, { school_enrollment: '', contact_info: '' }));
    expect(m.ok).toBe(true);
    if (m.ok) {
      expect(m.student.schoolSourcedIds).toEqual([]);
      expect(m.student.grade).toBeUndefined();
      expect(m.student.email).toBeUndefined();
    }
  });
});

describe('enrollment status comes from the record (issue 18 §3)', () => {
  const enr = (enroll_status: unknown, enroll_status_code: unknown) => ({
    school_enrollment: { enroll_status, enroll_status_code, school_id: 7, grade_level: 4 },
  });

  it('reads enroll_status, else enroll_status_code', () => {
    expect(enrollmentOf(student(1, enr('A', 0)))).toBe('active');
    expect(enrollmentOf(student(1, enr('P', -1)))).toBe('pre-registered');
    expect(enrollmentOf(student(1, enr(null, -1)))).toBe('pre-registered');
    expect(enrollmentOf(student(1, enr('G', 3)))).toBe('other');
    expect(enrollmentOf(student(1, enr(null, 2)))).toBe('other');
    expect(enrollmentOf(student(1, enr(null, null)))).toBe('active');
  });

  it('a pre-registered student is an exclusion by default, active when the policy includes it', () => {
    expect(mapPowerSchoolStudent(student(1, enr('P', -1)))).toEqual({
      ok: false,
      reject: {
        entity: 'student',
        recordId: '1',
        reason: 'pre-registered student',
        kind: 'excluded',
      },
    });
    const m = mapPowerSchoolStudent(student(1, enr('P', -1)), 'include');
    expect(m.ok && m.student.status).toBe('active');
  });

  it('a transferred student the server returned anyway is never stored active', () => {
    const m = mapPowerSchoolStudent(student(1, enr('T', 2)), 'include');
    expect(m).toEqual({
      ok: false,
      reject: { entity: 'student', recordId: '1', reason: 'not enrolled', kind: 'excluded' },
    });
  });
});

describe('currentDetail', () => {
  const d = (over: Partial<PsLinkDetail>): PsLinkDetail => ({ relationship: 'Mother', ...over });

  it('open rows are current; ended, future and inactive rows are not', () => {
    expect(currentDetail([d({})], ASOF)).toBeDefined();
    expect(currentDetail([d({ endDate: '2025-02-28' })], ASOF)).toBeUndefined();
    expect(currentDetail([d({ endDate: ASOF })], ASOF)).toBeUndefined();
    expect(currentDetail([d({ endDate: '2025-03-02' })], ASOF)).toBeDefined();
    expect(currentDetail([d({ startDate: '2025-03-02' })], ASOF)).toBeUndefined();
    expect(currentDetail([d({ active: false })], ASOF)).toBeUndefined();
    expect(currentDetail([], ASOF)).toBeUndefined();
  });

  it('picks the current row with the latest startDate, whatever the order', () => {
    const rows = [
      d({ relationship: 'Guardian', startDate: '2023-01-01' }),
      d({ relationship: 'Mother', startDate: '2024-09-01' }),
      d({ relationship: 'Ended', startDate: '2024-12-01', endDate: '2025-01-01' }),
      d({ relationship: 'Inactive', startDate: '2025-01-15', active: false }),
    ];
    expect(currentDetail(rows, ASOF)?.relationship).toBe('Mother');
    expect(currentDetail([...rows].reverse(), ASOF)?.relationship).toBe('Mother');
  });

  it('reads ISO date-times and MM/DD/YYYY; an unparseable date is never current', () => {
    expect(toIsoDate('2025-03-02T00:00:00.000Z')).toBe('2025-03-02');
    expect(toIsoDate('3/2/2025')).toBe('2025-03-02');
    expect(toIsoDate('soon')).toBeUndefined();
    expect(currentDetail([d({ endDate: '12/31/2030' })], ASOF)).toBeDefined();
    expect(currentDetail([d({ endDate: 'soon' })], ASOF)).toBeUndefined();
  });
});

describe('mapPowerSchoolGuardian', () => {
  const base = (over: Partial<PsContactRecord>): PsContactRecord => ({
    contactId: '77',
    firstName: 'Łukasz',
    lastName: 'Østergaard',
    emails: [],
    phones: [],
    links: [],
    ...over,
  });

  it('uses the primary email (trimmed) over the first, the preferred phone over the first', () => {
    const m = mapPowerSchoolGuardian(
      base({
        emails: [
          { address: 'first@example.org', primary: false },
          { address: '  Primary@Example.org ', primary: true },
        ],
        phones: [
          { number: '(555) 000-0001', preferred: false },
          { number: '(555) 000-0002', preferred: true },
        ],
      }),
      ['Father'],
    );
    expect(m).toEqual({
      ok: true,
      guardian: {
        sourcedId: '77',
        givenName: 'Łukasz',
        familyName: 'Østergaard',
        email: 'Primary@Example.org',
        phone: '(555) 000-0002',
        role: 'parent',
        status: 'active',
      },
    });
  });

  it('falls back to the first email and phone when none is flagged', () => {
    const m = mapPowerSchoolGuardian(
      base({
        emails: [
          { address: 'a@example.org', primary: false },
          { address: 'b@example.org', primary: false },
        ],
        phones: [
          { number: '1', preferred: false },
          { number: '2', preferred: false },
        ],
      }),
      ['Grandmother'],
    );
    expect(m.ok && [m.guardian.email, m.guardian.phone, m.guardian.role]).toEqual([
      'a@example.org',
      '1',
      'guardian',
    ]);
  });

  it('an invalid email: guardian kept without email, reject names the field', () => {
    const m = mapPowerSchoolGuardian(
      base({ emails: [{ address: 'nobody at example', primary: true }] }),
      ['Mother'],
    );
    expect(m.ok).toBe(true);
    if (m.ok) {
      expect(m.guardian.email).toBeUndefined();
      expect(m.emailReject).toEqual({
        entity: 'guardian',
        recordId: '77',
        reason: expect.stringContaining('emails[].address') as string,
      });
      expect(m.emailReject?.reason).not.toContain('nobody');
    }
  });

  it('a contact with no last name is a reject naming lastName', () => {
    const m = mapPowerSchoolGuardian(base({ lastName: '  ' }), ['Mother']);
    expect(m.ok).toBe(false);
    expect(!m.ok && m.reject.reason).toContain('lastName');
  });

  it('roles: parent-type relationships in any case, else guardian', () => {
    for (const r of ['Mother', 'FATHER', 'parent', 'Stepmother', 'stepfather'])
      expect(roleFromRelationships([r])).toBe('parent');
    for (const r of ['Grandmother', 'Guardian', 'Aunt', 'Foster Parent'])
      expect(roleFromRelationships([r])).toBe('guardian');
    expect(roleFromRelationships([undefined, 'Guardian', 'Mother'])).toBe('parent');
    expect(roleFromRelationships([])).toBe('guardian');
  });
});

describe('buildPowerSchoolChunk', () => {
  const students = [student(1001), student(1002), student(1003)];

  it('links only by explicit flags; list order (sequence) plays no part', () => {
    const contacts = [
      // sequence 1 but no data access: no link
      contact(5001, [{ dcid: 1001, sequence: 1, canAccessData: false }]),
      // sequence 3 with data access: linked
      contact(5002, [{ dcid: 1001, sequence: 3 }]),
      // data access not stated: not linked under requireDataAccess
      contact(5003, [{ dcid: 1001, canAccessData: null }]),
    ];
    const { chunk } = buildPowerSchoolChunk({
      students,
      contacts,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(chunk.relationships.map(r => r.guardianSourcedId)).toEqual(['5002']);
    expect(chunk.guardians.map(g => g.sourcedId)).toEqual(['5002']);

    const lax = buildPowerSchoolChunk({
      students,
      contacts,
      policy: { requireDataAccess: false, requireCustodial: false },
      asOf: ASOF,
    });
    expect(lax.chunk.guardians.map(g => g.sourcedId)).toEqual(['5001', '5002', '5003']);
  });

  it('requireCustodial drops non-custodial links', () => {
    const contacts = [
      contact(5001, [{ dcid: 1001 }]),
      contact(5002, [
        { dcid: 1001, details: [detail({ relationship: 'Stepfather', custodial: false })] },
      ]),
    ];
    const run = (requireCustodial: boolean) =>
      buildPowerSchoolChunk({
        students,
        contacts,
        policy: { requireDataAccess: true, requireCustodial },
        asOf: ASOF,
      }).chunk.guardians.map(g => g.sourcedId);
    expect(run(false)).toEqual(['5001', '5002']);
    expect(run(true)).toEqual(['5001']);
  });

  it('emergency-only contacts (no data access, not custodial) are absent', () => {
    const contacts = [
      contact(5001, [{ dcid: 1002 }]),
      contact(5009, [
        {
          dcid: 1002,
          canAccessData: false,
          details: [detail({ relationship: 'Neighbor', custodial: false, livesWith: false })],
        },
      ]),
    ];
    const { chunk } = buildPowerSchoolChunk({
      students,
      contacts,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(chunk.guardians.map(g => g.sourcedId)).toEqual(['5001']);
    expect(chunk.relationships.some(r => r.guardianSourcedId === '5009')).toBe(false);
  });

  it('an ended or inactive detail row gives no link; the current row of several decides', () => {
    const contacts = [
      contact(5001, [{ dcid: 1001, details: [detail({ endDate: '2024-12-31' })] }]),
      contact(5002, [{ dcid: 1001, details: [detail({ active: false })] }]),
      contact(5003, [
        {
          dcid: 1001,
          details: [
            detail({ relationship: 'Guardian', custodial: false, startDate: '2020-01-01' }),
            detail({ relationship: 'Father', custodial: true, startDate: '2024-01-01' }),
          ],
        },
      ]),
    ];
    const { chunk } = buildPowerSchoolChunk({
      students,
      contacts,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(chunk.relationships).toEqual([
      {
        guardianSourcedId: '5003',
        studentSourcedId: '1001',
        relationship: 'Father',
        portalAccess: true,
        livesWith: true,
        custody: true,
      },
    ]);
    expect(chunk.guardians[0]?.role).toBe('parent');
  });

  it('an inactive contact person gets no link', () => {
    const contacts = [contact(5001, [{ dcid: 1001 }], { active: false })];
    const { chunk } = buildPowerSchoolChunk({
      students,
      contacts,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(chunk.guardians).toEqual([]);
  });

  it('siblings: a contact delivered per student is one guardian with both links; other students ignored', () => {
    const shared = [{ dcid: 1001 }, { dcid: 1003 }, { dcid: 9999 }];
    const contacts = [contact(5001, shared), contact(5001, shared)];
    const { chunk, rejects } = buildPowerSchoolChunk({
      students,
      contacts,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(rejects).toEqual([]);
    expect(chunk.guardians).toHaveLength(1);
    expect(chunk.relationships.map(r => r.studentSourcedId)).toEqual(['1001', '1003']);
    expect(chunk.relationshipsSupplied).toBe(true);
  });

  it('a malformed student is a reject; the rest of the page maps and its links are ignored', () => {
    const bad = student(1002, { name: { first_name: 'Ana', last_name: '' } });
    const contacts = [contact(5001, [{ dcid: 1001 }, { dcid: 1002 }])];
    const { chunk, rejects } = buildPowerSchoolChunk({
      students: [students[0]!, bad, students[2]!],
      contacts,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(chunk.students.map(s => s.sourcedId)).toEqual(['1001', '1003']);
    expect(rejects).toEqual([
      {
        entity: 'student',
        recordId: '1002',
        reason: expect.stringContaining('name.last_name') as string,
      },
    ]);
    expect(chunk.relationships.map(r => r.studentSourcedId)).toEqual(['1001']);
  });

  it('a linked contact that fails validation is a reject and the chunk says its links are incomplete', () => {
    const contacts = [
      contact(5001, [{ dcid: 1001 }]),
      contact(5002, [{ dcid: 1001 }], { lastName: null }),
    ];
    const { chunk, rejects } = buildPowerSchoolChunk({
      students,
      contacts,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(chunk.guardians.map(g => g.sourcedId)).toEqual(['5001']);
    expect(rejects.map(r => [r.entity, r.recordId])).toEqual([['guardian', '5002']]);
    expect(chunk.relationshipsSupplied).toBe(false);
  });

  it('an unlinked invalid contact does not matter; contactsComplete=false is passed on', () => {
    const contacts = [contact(5002, [{ dcid: 1001, canAccessData: false }], { lastName: null })];
    const a = buildPowerSchoolChunk({ students, contacts, policy: DEFAULT_POLICY, asOf: ASOF });
    // not a reject (its invalid name never matters), but listed as left out by the policy
    expect(a.rejects).toEqual([
      {
        entity: 'relationship',
        recordId: '5002->1001',
        reason: 'no data access',
        kind: 'excluded',
      },
    ]);
    expect(a.chunk.relationshipsSupplied).toBe(true);
    const b = buildPowerSchoolChunk({
      students,
      contacts: [],
      policy: DEFAULT_POLICY,
      asOf: ASOF,
      contactsComplete: false,
    });
    expect(b.chunk.relationshipsSupplied).toBe(false);
  });

  it('an invalid guardian email is a reject but the guardian and link stay', () => {
    const contacts = [
      contact(5001, [{ dcid: 1001 }], { emails: [{ primary: true, address: 'x@@example' }] }),
    ];
    const { chunk, rejects } = buildPowerSchoolChunk({
      students,
      contacts,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(chunk.guardians).toHaveLength(1);
    expect(chunk.guardians[0]?.email).toBeUndefined();
    expect(chunk.relationships).toHaveLength(1);
    expect(chunk.relationshipsSupplied).toBe(true);
    expect(rejects).toEqual([
      { entity: 'guardian', recordId: '5001', reason: expect.stringContaining('emails') as string },
    ]);
  });
});

describe('contactsFromRosterRows (bulk path)', () => {
  const row = (over: Record<string, string>) =>
    PsRosterContactRow.parse({
      studentdcid: '1001',
      studentnumber: '201001',
      personid: '5001',
      firstname: 'Renée',
      lastname: "D'Angelo",
      email: 'c5001@example.net',
      phonenumber: '(555) 014-2288',
      canaccessdata: '1',
      studentcontactassocid: '1',
      contactpriorityorder: '1',
      relationship: 'Mother',
      iscustodial: '1',
      liveswithflg: '1',
      isemergency: '1',
      isactive: '1',
      ...over,
    });

  it('collapses one row per phone into one contact with both phones and one link', () => {
    const contacts = contactsFromRosterRows([row({}), row({ phonenumber: '(555) 999-0000' })]);
    expect(contacts).toHaveLength(1);
    expect(contacts[0]?.phones.map(p => p.number)).toEqual(['(555) 014-2288', '(555) 999-0000']);
    expect(contacts[0]?.links).toHaveLength(1);
    expect(contacts[0]?.links[0]?.details).toHaveLength(1);
  });

  it('gives the same chunk as the contacts API for the same data', () => {
    const rows = [
      row({}),
      row({ phonenumber: '(555) 999-0000' }),
      row({ studentdcid: '1003', studentcontactassocid: '2' }),
      row({
        personid: '5009',
        studentdcid: '1002',
        canaccessdata: '0',
        relationship: 'Neighbor',
        iscustodial: '0',
      }),
    ];
    const api = [
      contact(5001, [{ dcid: 1001 }, { dcid: 1003 }], {
        phones: [
          { preferred: true, phoneNumber: '(555) 014-2288' },
          { preferred: false, phoneNumber: '(555) 999-0000' },
        ],
      }),
      contact(5009, [
        {
          dcid: 1002,
          canAccessData: false,
          details: [detail({ relationship: 'Neighbor', custodial: false })],
        },
      ]),
    ];
    const students = [student(1001), student(1002), student(1003)];
    const fromRows = buildPowerSchoolChunk({
      students,
      contacts: contactsFromRosterRows(rows),
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    const fromApi = buildPowerSchoolChunk({
      students,
      contacts: api,
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(fromRows).toEqual(fromApi);
    expect(fromRows.chunk.relationships).toHaveLength(2);
  });

  it('an inactive row gives no link', () => {
    const { chunk } = buildPowerSchoolChunk({
      students: [student(1001)],
      contacts: contactsFromRosterRows([row({ isactive: '0' })]),
      policy: DEFAULT_POLICY,
      asOf: ASOF,
    });
    expect(chunk.relationships).toEqual([]);
  });
});
