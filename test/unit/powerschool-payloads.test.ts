/**
 * Raw PowerSchool payload schemas: the variants of sis-reference §2.6 / §7.3 parse to one
 * shape, and bad records are reported one by one.
 */
import {
  parseEach,
  PsBool,
  PsContact,
  PsContactsList,
  PsMetadata,
  PsPowerQueryPage,
  PsResourceCount,
  PsRosterContactRow,
  PsSchoolsPage,
  PsStudent,
  PsStudentsPage,
  PsTokenResponse,
} from '../../src/connectors/powerschool/payloads.js';
import { parseRetryAfter } from '../../src/connectors/powerschool/client.js';

const student = {
  id: 4410,
  local_id: 208813,
  student_username: 'jdoe',
  name: { first_name: 'Zoë', middle_name: null, last_name: "O'Brien" },
  school_enrollment: {
    enroll_status: 'A',
    enroll_status_code: 0,
    grade_level: 3,
    school_id: 7,
    school_number: 100,
    entry_date: '2024-08-20',
    exit_date: '2025-06-10',
  },
  contact_info: { email: 'zoe.obrien@students.example.org' },
};

describe('PowerSchool scalar variants', () => {
  it('accepts boolean spellings and refuses unknown ones', () => {
    for (const v of [true, 'true', 'TRUE', '1', 'Y', 'yes', 1]) expect(PsBool.parse(v)).toBe(true);
    for (const v of [false, 'false', 'FALSE', '0', 'N', 'no', 0])
      expect(PsBool.parse(v)).toBe(false);
    expect(PsBool.safeParse('maybe').success).toBe(false);
    expect(PsBool.safeParse(2).success).toBe(false);
  });

  it('token expires_in may be a string or a number', () => {
    expect(PsTokenResponse.parse({ access_token: 't', expires_in: '3599' }).expires_in).toBe(3599);
    expect(PsTokenResponse.parse({ access_token: 't', expires_in: 3599 }).expires_in).toBe(3599);
    expect(PsTokenResponse.safeParse({ access_token: '', expires_in: 1 }).success).toBe(false);
  });

  it('metadata page sizes and counts may be strings', () => {
    const m = PsMetadata.parse({
      metadata: { student_max_page_size: '7', school_max_page_size: 50, other: 'x' },
    });
    expect(m.metadata).toEqual({ student_max_page_size: 7, school_max_page_size: 50 });
    expect(PsResourceCount.parse({ resource: { count: '293' } }).resource.count).toBe(293);
    expect(PsResourceCount.safeParse({ count: 293 }).success).toBe(false);
    expect(PsResourceCount.safeParse({ resource: { count: -1 } }).success).toBe(false);
  });
});

describe('PowerSchool v1 student', () => {
  it('parses the documented shape with ids as strings', () => {
    const s = PsStudent.parse(student);
    expect(s.id).toBe('4410');
    expect(s.local_id).toBe('208813');
    expect(s.school_enrollment?.school_id).toBe('7');
    expect(s.name?.middle_name).toBeUndefined();
  });

  it('numbers as strings give the same record', () => {
    const asStrings = {
      ...student,
      id: '4410',
      local_id: '208813',
      school_enrollment: {
        ...student.school_enrollment,
        enroll_status_code: '0',
        grade_level: '3',
        school_id: '7',
        school_number: '100',
      },
    };
    const a = PsStudent.parse(student);
    const b = PsStudent.parse(asStrings);
    expect(b.id).toBe(a.id);
    expect(b.local_id).toBe(a.local_id);
    expect(b.school_enrollment?.school_id).toBe(a.school_enrollment?.school_id);
    expect(String(b.school_enrollment?.grade_level)).toBe(String(a.school_enrollment?.grade_level));
  });

  it('an empty expansion "" is absent', () => {
    const s = PsStudent.parse({ ...student, contact_info: '', school_enrollment: '' });
    expect(s.contact_info).toBeUndefined();
    expect(s.school_enrollment).toBeUndefined();
  });

  it('a page of one student may be an object; a page past the end has no student key', () => {
    const one = PsStudentsPage.parse({
      students: { '@expansions': 'school_enrollment, contact_info', '@extensions': '', student },
    });
    expect(one.students?.student).toHaveLength(1);
    const many = PsStudentsPage.parse({ students: { student: [student, student] } });
    expect(many.students?.student).toHaveLength(2);
    const past = PsStudentsPage.parse({ students: { '@expansions': '', '@extensions': '' } });
    expect(past.students?.student).toEqual([]);
    expect(PsStudentsPage.safeParse({ student: [student] }).success).toBe(false);
  });

  it('parseEach keeps good records and names bad ones by id', () => {
    const { ok, failures } = parseEach(
      PsStudent,
      [student, { ...student, id: 4411, name: 42 }, { local_id: 1 }],
      ['id'],
    );
    expect(ok.map(s => s.id)).toEqual(['4410']);
    expect(failures).toHaveLength(2);
    expect(failures[0]?.recordId).toBe('4411');
    expect(failures[0]?.reason).toMatch(/^name: /);
    expect(failures[1]?.recordId).toBe('#2');
    expect(failures[1]?.reason).toMatch(/^id: /);
  });

  it('schools page: object or array, missing key past the end', () => {
    const school = { id: 7, name: 'Lincoln Elementary School', school_number: 100 };
    expect(PsSchoolsPage.parse({ schools: { school } }).schools?.school).toHaveLength(1);
    expect(PsSchoolsPage.parse({ schools: {} }).schools?.school).toEqual([]);
    expect(PsSchoolsPage.parse({ schools: '' }).schools).toBeUndefined();
  });
});

describe('PowerSchool contacts API', () => {
  const contact = {
    contactId: 5521,
    firstName: 'Renata',
    middleName: null,
    lastName: 'Solberg',
    active: true,
    emails: [
      {
        contactEmailId: 881,
        primary: true,
        emailId: 902,
        type: 'Current',
        address: 'renata.solberg@example.net',
      },
    ],
    phones: [
      {
        contactsPhoneId: 77,
        sequence: 1,
        preferred: true,
        phoneType: 'Mobile',
        phoneNumber: '(555) 014-2288',
        extension: null,
        sms: true,
      },
    ],
    contactAccount: null,
    contactStudents: [
      {
        studentContactId: 9911,
        sequence: 1,
        dcid: 4410,
        studentNumber: '208813',
        canAccessData: true,
        guardianId: 3301,
        studentDetails: [
          {
            studentContactDetailId: 12001,
            relationship: 'Mother',
            custodial: true,
            emergency: true,
            livesWith: true,
            schoolPickup: true,
            receivesMail: true,
            startDate: null,
            endDate: null,
            active: true,
          },
        ],
      },
    ],
    '@extensions': 'personcorefields',
  };

  it('parses the sis-reference §2.6 example', () => {
    const c = PsContact.parse(contact);
    expect(c.contactId).toBe('5521');
    expect(c.contactStudents[0]?.dcid).toBe('4410');
    expect(c.contactStudents[0]?.studentDetails[0]?.endDate).toBeUndefined();
    expect(c.contactAccount).toBeUndefined();
  });

  it.each([
    ['object', { enabled: true, userName: 'rsolberg', password: null }, 'object'],
    ['empty array', [], 'none'],
    ['null', null, 'none'],
    ['missing', undefined, 'none'],
  ])('contactAccount as %s', (_label, account, want) => {
    const c = PsContact.parse({ ...contact, contactAccount: account });
    if (want === 'object')
      expect(c.contactAccount).toEqual({ enabled: true, userName: 'rsolberg' });
    else expect(c.contactAccount).toBeUndefined();
  });

  it('single objects where arrays are documented are lists of one', () => {
    const c = PsContact.parse({
      ...contact,
      emails: contact.emails[0],
      contactStudents: {
        ...contact.contactStudents[0],
        studentDetails: contact.contactStudents[0]?.studentDetails[0],
      },
    });
    expect(c.emails).toHaveLength(1);
    expect(c.contactStudents).toHaveLength(1);
    expect(c.contactStudents[0]?.studentDetails).toHaveLength(1);
  });

  it('the list body: bare array, 204 (undefined) or one object', () => {
    expect(PsContactsList.parse([contact, contact])).toHaveLength(2);
    expect(PsContactsList.parse(undefined)).toEqual([]);
    expect(PsContactsList.parse(contact)).toHaveLength(1);
  });
});

describe('PowerSchool roster PowerQuery', () => {
  it('rows are strings with null keys omitted', () => {
    const row = PsRosterContactRow.parse({
      studentdcid: '4410',
      personid: '5521',
      firstname: 'Renata',
      lastname: 'Solberg',
      canaccessdata: '1',
      iscustodial: '0',
      isactive: '1',
      contactpriorityorder: '2',
    });
    expect(row).toMatchObject({
      studentdcid: '4410',
      personid: '5521',
      canaccessdata: true,
      iscustodial: false,
      isactive: true,
      contactpriorityorder: 2,
    });
    expect(row.email).toBeUndefined();
    expect(row.liveswithflg).toBeUndefined();
  });

  it('a page without record is empty', () => {
    expect(PsPowerQueryPage.parse({ name: 'q', '@extensions': '' }).record).toEqual([]);
    expect(PsPowerQueryPage.parse({ name: 'q', record: [{ a: 1 }] }).record).toHaveLength(1);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-03-01T12:00:00Z');
  it('reads delta-seconds and HTTP dates, capped', () => {
    expect(parseRetryAfter('2', now, 60000)).toBe(2000);
    expect(parseRetryAfter('Sat, 01 Mar 2025 12:00:05 GMT', now, 60000)).toBe(5000);
    expect(parseRetryAfter('3600', now, 60000)).toBe(60000);
    expect(parseRetryAfter('Sat, 01 Mar 2025 11:00:00 GMT', now, 60000)).toBe(0);
  });
  it('ignores absent or garbage values', () => {
    expect(parseRetryAfter(undefined, now, 60000)).toBeUndefined();
    expect(parseRetryAfter('', now, 60000)).toBeUndefined();
    expect(parseRetryAfter('soon', now, 60000)).toBeUndefined();
  });
});
