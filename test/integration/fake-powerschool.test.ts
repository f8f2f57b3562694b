import {
  EMERGENCY_RELATIONSHIPS,
  addGuardian,
  addStudent,
  changeEmail,
  generateDistrict,
  removeRelationship,
  restoreStudent,
  withdrawStudent,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import {
  POWERQUERY_NAME,
  startFakePowerSchool,
  type FakePowerSchool,
} from '../../src/dev/powerschool-server.js';

type Obj = Record<string, unknown>;
const PAGE = 100;
const ACTIVE_Q = 'q=school_enrollment.enroll_status==A';
const EXP = 'expansions=school_enrollment,contact_info';

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

async function tokenFor(ps: FakePowerSchool): Promise<string> {
  const res = await fetch(`${ps.url}/oauth/access_token`, {
    method: 'POST',
    headers: {
      authorization: basic(ps.clientId, ps.clientSecret),
      'content-type': 'application/x-www-form-urlencoded;charset=UTF-8',
    },
    body: 'grant_type=client_credentials',
  });
  expect(res.status).toBe(200);
  const body = (await res.json()) as { access_token: string };
  return body.access_token;
}

async function call(
  ps: FakePowerSchool,
  token: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown; headers: Headers; text: string }> {
  const res = await fetch(`${ps.url}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return {
    status: res.status,
    headers: res.headers,
    text,
    json: text === '' ? undefined : (JSON.parse(text) as unknown),
  };
}

function asArray(x: unknown): Obj[] {
  if (x === undefined) return [];
  return (Array.isArray(x) ? x : [x]) as Obj[];
}

function studentsOf(json: unknown): Obj[] {
  const students = (json as { students: Obj }).students;
  return asArray(students.student);
}

async function allActiveStudents(ps: FakePowerSchool, token: string): Promise<Obj[]> {
  const out: Obj[] = [];
  for (let page = 1; ; page++) {
    const r = await call(
      ps,
      token,
      `/ws/v1/district/student?${ACTIVE_Q}&${EXP}&page=${page}&pagesize=${PAGE}`,
    );
    expect(r.status).toBe(200);
    const rows = studentsOf(r.json);
    if (rows.length === 0) return out;
    out.push(...rows);
  }
}

async function countActive(ps: FakePowerSchool, token: string): Promise<number> {
  const r = await call(ps, token, `/ws/v1/district/student/count?${ACTIVE_Q}`);
  expect(r.status).toBe(200);
  return (r.json as { resource: { count: number } }).resource.count;
}

async function queryRows(
  ps: FakePowerSchool,
  token: string,
  min: number,
  max: number,
  pagesize = PAGE,
): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (let page = 1; ; page++) {
    const r = await call(
      ps,
      token,
      `/ws/schema/query/${POWERQUERY_NAME}?page=${page}&pagesize=${pagesize}`,
      { dcid_min: String(min), dcid_max: String(max) },
    );
    expect(r.status).toBe(200);
    const body = r.json as { name: string; record: Record<string, unknown>[] };
    expect(body.name).toBe(POWERQUERY_NAME);
    if (body.record.length === 0) return out;
    out.push(...body.record);
  }
}

/** Expected PowerQuery row keys (`assocId|phone`) for the students with dcid in [min, max]. */
function expectedRowKeys(d: SyntheticDistrict, min: number, max: number): string[] {
  const keys: string[] = [];
  for (const c of d.contacts) {
    const phones = [c.phone, c.phone2].filter(p => p !== null);
    for (const l of c.links) {
      if (l.studentDcid < min || l.studentDcid > max) continue;
      if (phones.length === 0) keys.push(`${l.studentContactId}|`);
      for (const p of phones) keys.push(`${l.studentContactId}|${p}`);
    }
  }
  return keys.sort();
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');

const rowKeys = (rows: Record<string, unknown>[]): string[] =>
  rows.map(r => `${str(r.studentcontactassocid)}|${str(r.phonenumber)}`).sort();

describe('fake PowerSchool server', () => {
  let d: SyntheticDistrict;
  let ps: FakePowerSchool;
  let token: string;

  beforeAll(async () => {
    d = generateDistrict({ seed: 2024, students: 1000 });
    ps = await startFakePowerSchool(d, { maxPageSize: PAGE });
    token = await tokenFor(ps);
  });
  afterAll(async () => {
    await ps.close();
  });
  afterEach(() => {
    ps.faults.reset();
  });

  describe('auth', () => {
    it('issues a bearer token for the right client credentials only', async () => {
      expect(ps.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const bad = await fetch(`${ps.url}/oauth/access_token`, {
        method: 'POST',
        headers: {
          authorization: basic(ps.clientId, 'wrong'),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'grant_type=client_credentials',
      });
      expect(bad.status).toBe(401);
      expect(await bad.json()).toEqual({ error: 'invalid_client' });

      const res = await fetch(`${ps.url}/oauth/access_token`, {
        method: 'POST',
        headers: {
          authorization: basic('demo-client', 'demo-secret'),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'grant_type=client_credentials',
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as Obj;
      expect(body).toEqual({
        access_token: expect.stringMatching(/^\S{16,}$/) as unknown,
        token_type: 'Bearer',
        expires_in: '3600',
      });
      expect((await call(ps, String(body.access_token), '/ws/v1/metadata')).status).toBe(200);
    });

    it('rejects a missing or unknown bearer token with 401', async () => {
      const none = await fetch(`${ps.url}/ws/v1/metadata`);
      expect(none.status).toBe(401);
      expect(await none.json()).toEqual({ message: 'Invalid access token' });
      const bad = await call(ps, 'not-a-token', '/ws/v1/district/student/count');
      expect(bad.status).toBe(401);
      expect(bad.json).toEqual({ message: 'Invalid access token' });
    });

    it('expireTokens() invalidates issued tokens; a new one works', async () => {
      const old = await tokenFor(ps);
      expect((await call(ps, old, '/ws/v1/metadata')).status).toBe(200);
      ps.faults.expireTokens();
      expect((await call(ps, old, '/ws/v1/metadata')).status).toBe(401);
      const fresh = await tokenFor(ps);
      expect((await call(ps, fresh, '/ws/v1/metadata')).status).toBe(200);
      token = fresh;
    });

    it('honours tokenTtlSeconds', async () => {
      const short = await startFakePowerSchool(d, {
        tokenTtlSeconds: 0,
        clientId: 'x',
        clientSecret: 'y',
      });
      try {
        const t = await tokenFor(short);
        expect((await call(short, t, '/ws/v1/metadata')).status).toBe(401);
      } finally {
        await short.close();
      }
    });
  });

  it('serves metadata with the plugin page size', async () => {
    const r = await call(ps, token, '/ws/v1/metadata');
    expect(r.json).toEqual({
      metadata: {
        plugin_id: 1,
        powerschool_version: '23.4',
        student_max_page_size: PAGE,
        school_max_page_size: PAGE,
        schema_table_query_max_page_size: PAGE,
      },
    });
  });

  describe('paging', () => {
    it('pages schools consistently with the count', async () => {
      const count = await call(ps, token, '/ws/v1/district/school/count');
      expect(count.json).toEqual({ resource: { count: d.schools.length } });
      const seen: Obj[] = [];
      for (let page = 1; page <= 10; page++) {
        const r = await call(ps, token, `/ws/v1/district/school?page=${page}&pagesize=7`);
        const schools = (r.json as { schools: Obj }).schools;
        if (schools.school === undefined) break;
        seen.push(...asArray(schools.school));
      }
      expect(seen.map(s => s.id)).toEqual(d.schools.map(s => s.id));
      expect(seen[0]).toEqual({
        id: d.schools[0]?.id,
        name: d.schools[0]?.name,
        school_number: d.schools[0]?.school_number,
      });
    });

    it('pages students: concatenated pages = count, sorted, no duplicates, raw fields', async () => {
      const count = await countActive(ps, token);
      expect(count).toBe(d.students.filter(s => s.enroll_status === 'A').length);
      const all = await allActiveStudents(ps, token);
      expect(all).toHaveLength(count);
      const ids = all.map(s => s.id as number);
      expect(new Set(ids).size).toBe(ids.length);
      expect([...ids].sort((a, b) => a - b)).toEqual(ids);

      const first = d.students[0];
      expect(all[0]).toEqual({
        id: first?.id,
        local_id: first?.local_id,
        student_username: expect.any(String) as unknown,
        name: {
          first_name: first?.first_name,
          ...(first?.middle_name ? { middle_name: first.middle_name } : {}),
          last_name: first?.last_name,
        },
        school_enrollment: {
          enroll_status: 'A',
          enroll_status_code: 0,
          grade_level: first?.grade_level,
          school_id: first?.school_id,
          school_number: first?.school_number,
          entry_date: '2025-08-20',
          exit_date: '2026-06-05',
        },
        contact_info: first?.email ? { email: first.email } : '',
      });
      // No middle name → key omitted; no email → "" (default quirk).
      const noMiddle = d.students.find(s => s.middle_name === null);
      const noEmail = d.students.find(s => s.email === null);
      const byId = new Map(all.map(s => [s.id, s]));
      expect(byId.get(noMiddle?.id)?.name).not.toHaveProperty('middle_name');
      expect(byId.get(noEmail?.id)?.contact_info).toBe('');
    });

    it('returns the wrapper without "student" past the end', async () => {
      const r = await call(
        ps,
        token,
        `/ws/v1/district/student?${ACTIVE_Q}&page=999&pagesize=${PAGE}`,
      );
      expect(r.status).toBe(200);
      expect(r.json).toEqual({
        students: {
          '@expansions': expect.stringContaining('contact_info') as unknown,
          '@extensions': '',
        },
      });
    });

    it('rejects a pagesize above the plugin maximum with 400', async () => {
      for (const path of [
        `/ws/v1/district/student?page=1&pagesize=${PAGE + 1}`,
        `/ws/v1/district/school?page=1&pagesize=${PAGE + 1}`,
      ]) {
        const r = await call(ps, token, path);
        expect(r.status).toBe(400);
        expect(r.json).toEqual({ message: 'pagesize exceeds the plugin maximum' });
      }
      const q = await call(ps, token, `/ws/schema/query/${POWERQUERY_NAME}?pagesize=${PAGE + 1}`, {
        dcid_min: '0',
        dcid_max: '1',
      });
      expect(q.status).toBe(400);
    });

    it('rejects an unsupported q with 400', async () => {
      const r = await call(ps, token, '/ws/v1/district/student/count?q=name.last_name==Smith');
      expect(r.status).toBe(400);
    });
  });

  describe('faults', () => {
    it('rateLimit(n) answers 429 with Retry-After (seconds or HTTP date), then recovers', async () => {
      ps.faults.rateLimit(2, 7);
      for (let i = 0; i < 2; i++) {
        const r = await call(ps, token, '/ws/v1/metadata');
        expect(r.status).toBe(429);
        expect(r.headers.get('retry-after')).toBe('7');
      }
      expect((await call(ps, token, '/ws/v1/metadata')).status).toBe(200);

      const date = new Date(Date.UTC(2030, 0, 1)).toUTCString();
      ps.faults.rateLimit(1, date);
      const r = await call(ps, token, '/ws/v1/district/school/count');
      expect(r.status).toBe(429);
      expect(r.headers.get('retry-after')).toBe(date);
      expect((await call(ps, token, '/ws/v1/district/school/count')).status).toBe(200);
    });

    it('serverError(n) answers 500 n times', async () => {
      ps.faults.serverError(1);
      expect((await call(ps, token, '/ws/v1/metadata')).status).toBe(500);
      expect((await call(ps, token, '/ws/v1/metadata')).status).toBe(200);
    });

    it('failStudentsAfterPage(p) fails later student pages until cleared', async () => {
      ps.faults.failStudentsAfterPage(2);
      const page = (p: number) =>
        call(ps, token, `/ws/v1/district/student?${ACTIVE_Q}&page=${p}&pagesize=${PAGE}`);
      expect((await page(1)).status).toBe(200);
      expect((await page(2)).status).toBe(200);
      expect((await page(3)).status).toBe(500);
      expect((await page(3)).status).toBe(500);
      expect(await countActive(ps, token)).toBeGreaterThan(0);
      ps.faults.failStudentsAfterPage(null);
      expect((await page(3)).status).toBe(200);
    });

    it('slowMs delays /ws responses', async () => {
      ps.faults.slowMs(150);
      const t0 = performance.now();
      expect((await call(ps, token, '/ws/v1/metadata')).status).toBe(200);
      expect(performance.now() - t0).toBeGreaterThanOrEqual(140);
    });
  });

  describe('contacts API', () => {
    it('lists a student’s contacts with all their students and link details', async () => {
      const shared = d.contacts.find(c => new Set(c.links.map(l => l.studentDcid)).size >= 2);
      const dcid = shared?.links[0]?.studentDcid ?? 0;
      const r = await call(ps, token, `/ws/contacts/student/${dcid}`);
      expect(r.status).toBe(200);
      const contacts = r.json as Obj[];
      const expectedIds = d.contacts
        .filter(c => c.links.some(l => l.studentDcid === dcid))
        .map(c => c.contactId);
      expect(contacts.map(c => c.contactId)).toEqual(expectedIds);
      const mine = contacts.find(c => c.contactId === shared?.contactId) as Obj;
      const links = mine.contactStudents as Obj[];
      expect(links.map(l => l.dcid)).toEqual(shared?.links.map(l => l.studentDcid));
      const l0 = shared?.links[0];
      const student = d.students.find(s => s.id === l0?.studentDcid);
      expect(links[0]).toEqual({
        studentContactId: l0?.studentContactId,
        sequence: l0?.sequence,
        dcid: l0?.studentDcid,
        studentNumber: String(student?.local_id),
        canAccessData: l0?.canAccessData,
        guardianId: l0?.guardianId,
        studentDetails: [
          {
            studentContactDetailId: expect.any(Number) as unknown,
            relationship: l0?.relationship,
            custodial: l0?.custodial,
            emergency: l0?.emergency,
            livesWith: l0?.livesWith,
            schoolPickup: false,
            receivesMail: true,
            startDate: null,
            endDate: null,
            active: l0?.detailActive,
          },
        ],
      });
      expect(mine).toMatchObject({
        firstName: shared?.firstName,
        lastName: shared?.lastName,
        middleName: shared?.middleName,
        active: true,
        '@extensions': 'personcorefields',
      });
      expect(mine.emails).toEqual(
        shared?.email
          ? [expect.objectContaining({ primary: true, type: 'Current', address: shared.email })]
          : [],
      );
    });

    it('includes emergency-only contacts with canAccessData false', async () => {
      const em = d.contacts.find(c =>
        c.links.every(l => EMERGENCY_RELATIONSHIPS.includes(l.relationship)),
      );
      const dcid = em?.links[0]?.studentDcid ?? 0;
      const contacts = (await call(ps, token, `/ws/contacts/student/${dcid}`)).json as Obj[];
      const mine = contacts.find(c => c.contactId === em?.contactId);
      expect((mine?.contactStudents as Obj[])[0]).toMatchObject({ canAccessData: false });
    });

    it('answers 204 with an empty body for a student without contacts, 404 for unknown', async () => {
      const s = addStudent(d, d.schools[0]?.id ?? 0);
      const r = await call(ps, token, `/ws/contacts/student/${s.id}`);
      expect(r.status).toBe(204);
      expect(r.text).toBe('');
      expect((await call(ps, token, '/ws/contacts/student/123456789')).status).toBe(404);
    });
  });

  describe('PowerQuery', () => {
    it('returns flattened string rows with phone multiplicity, ordered, over a dcid range', async () => {
      const min = d.students[0]?.id ?? 0;
      const max = d.students[199]?.id ?? 0;
      const rows = await queryRows(ps, token, min, max, 37);
      // Exactly the expected (link × phone) rows: none missing, none repeated across pages.
      expect(rowKeys(rows)).toEqual(expectedRowKeys(d, min, max));
      for (const row of rows) {
        for (const v of Object.values(row)) expect(typeof v).toBe('string');
        expect(Number(row.studentdcid)).toBeGreaterThanOrEqual(min);
        expect(Number(row.studentdcid)).toBeLessThanOrEqual(max);
        expect(row.canaccessdata).toMatch(/^[01]$/);
        expect(row.iscustodial).toMatch(/^[01]$/);
        expect(row.isactive).toMatch(/^[01]$/);
      }
      const order = rows.map(r => [Number(r.studentdcid), Number(r.personid)] as const);
      const sorted = [...order].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      expect(order).toEqual(sorted);

      const inRange = (dcid: number) => dcid >= min && dcid <= max;
      const two = d.contacts.find(c => c.phone2 && c.links.some(l => inRange(l.studentDcid)));
      const twoRows = rows.filter(r => r.personid === String(two?.contactId));
      const perLink = two?.links.filter(l => inRange(l.studentDcid)).length ?? 0;
      expect(twoRows).toHaveLength(2 * perLink);
      expect(new Set(twoRows.map(r => r.phonenumber))).toEqual(new Set([two?.phone, two?.phone2]));

      const none = d.contacts.find(
        c => c.phone === null && c.middleName === null && c.links.some(l => inRange(l.studentDcid)),
      );
      const noneRow = rows.find(r => r.personid === String(none?.contactId));
      expect(noneRow).toBeDefined();
      expect(noneRow).not.toHaveProperty('phonenumber');
      expect(noneRow).not.toHaveProperty('middlename');

      expect(rows.some(r => r.canaccessdata === '0')).toBe(true);
      const link = d.contacts[0]?.links[0];
      const row = rows.find(r => r.studentcontactassocid === String(link?.studentContactId));
      expect(row).toMatchObject({
        personid: String(d.contacts[0]?.contactId),
        relationship: link?.relationship,
        contactpriorityorder: String(link?.sequence),
      });
    });

    it('returns an empty record list past the end', async () => {
      const r = await call(
        ps,
        token,
        `/ws/schema/query/${POWERQUERY_NAME}?page=500&pagesize=${PAGE}`,
        {
          dcid_min: '0',
          dcid_max: '99999999',
        },
      );
      expect(r.json).toEqual({ name: POWERQUERY_NAME, record: [], '@extensions': '' });
    });

    it('answers 403 when bulk access is not granted', async () => {
      const denied = await startFakePowerSchool(d, { bulkAccess: false });
      try {
        const t = await tokenFor(denied);
        const r = await call(denied, t, `/ws/schema/query/${POWERQUERY_NAME}`, {
          dcid_min: '0',
          dcid_max: '5',
        });
        expect(r.status).toBe(403);
        expect(r.json).toEqual({ message: 'Access to PowerQuery denied' });
        denied.faults.setBulkAccess(true);
        const ok = await call(denied, t, `/ws/schema/query/${POWERQUERY_NAME}`, {
          dcid_min: '0',
          dcid_max: '5',
        });
        expect(ok.status).toBe(200);
      } finally {
        await denied.close();
      }
    });
  });

  describe('quirks', () => {
    it('singleObjectPages returns a one-record page as an object', async () => {
      ps.faults.quirks.singleObjectPages = true;
      const school = await call(ps, token, '/ws/v1/district/school?page=2&pagesize=1');
      const wrapped = (school.json as { schools: Obj }).schools.school;
      expect(Array.isArray(wrapped)).toBe(false);
      expect(wrapped).toMatchObject({ id: d.schools[1]?.id });
      const count = await countActive(ps, token);
      const last = await call(
        ps,
        token,
        `/ws/v1/district/student?${ACTIVE_Q}&page=${count}&pagesize=1`,
      );
      const student = (last.json as { students: Obj }).students.student;
      expect(Array.isArray(student)).toBe(false);
      ps.faults.reset();
      const again = await call(ps, token, '/ws/v1/district/school?page=2&pagesize=1');
      expect(Array.isArray((again.json as { schools: Obj }).schools.school)).toBe(true);
    });

    it('stringNumbers sends ids as strings', async () => {
      ps.faults.quirks.stringNumbers = true;
      const r = await call(ps, token, `/ws/v1/district/student?page=1&pagesize=2&${EXP}`);
      const s = studentsOf(r.json)[0] as Obj;
      expect(s.id).toBe(String(d.students[0]?.id));
      expect(s.local_id).toBe(String(d.students[0]?.local_id));
      expect((s.school_enrollment as Obj).grade_level).toBe(String(d.students[0]?.grade_level));
      const contacts = (await call(ps, token, `/ws/contacts/student/${d.students[0]?.id}`))
        .json as Obj[];
      expect(typeof contacts[0]?.contactId).toBe('string');
      expect(typeof (contacts[0]?.contactStudents as Obj[])[0]?.dcid).toBe('string');
    });

    it('emptyExpansionsAsString off gives {} for a student without email', async () => {
      ps.faults.quirks.emptyExpansionsAsString = false;
      const idx = d.students.findIndex(s => s.email === null);
      const r = await call(ps, token, `/ws/v1/district/student?page=${idx + 1}&pagesize=1&${EXP}`);
      expect(studentsOf(r.json)[0]?.contact_info).toEqual({});
    });

    it('contactAccountVariants alternates null and [] for contacts without an account', async () => {
      ps.faults.quirks.contactAccountVariants = true;
      const c = d.contacts.find(x => x.account === null && x.links.length > 0);
      const dcid = c?.links[0]?.studentDcid ?? 0;
      const seen: unknown[] = [];
      for (let i = 0; i < 4; i++) {
        const list = (await call(ps, token, `/ws/contacts/student/${dcid}`)).json as Obj[];
        seen.push(list.find(x => x.contactId === c?.contactId)?.contactAccount);
      }
      expect(seen).toContainEqual([]);
      expect(seen).toContainEqual(null);
      const withAccount = d.contacts.find(x => x.account !== null);
      const list = (
        await call(ps, token, `/ws/contacts/student/${withAccount?.links[0]?.studentDcid}`)
      ).json as Obj[];
      expect(list.find(x => x.contactId === withAccount?.contactId)?.contactAccount).toEqual({
        enabled: withAccount?.account?.enabled,
        userName: withAccount?.account?.userName,
        password: null,
      });
    });
  });

  describe('live mutations', () => {
    it('reflects withdraw/restore/addStudent in counts and pages', async () => {
      const before = await countActive(ps, token);
      const victim = d.students[5];
      withdrawStudent(d, victim?.id ?? 0);
      expect(await countActive(ps, token)).toBe(before - 1);
      const tCount = await call(
        ps,
        token,
        '/ws/v1/district/student/count?q=school_enrollment.enroll_status==T',
      );
      expect(
        (tCount.json as { resource: { count: number } }).resource.count,
      ).toBeGreaterThanOrEqual(1);
      const ids = (await allActiveStudents(ps, token)).map(s => s.id);
      expect(ids).not.toContain(victim?.id);
      expect(ids).toHaveLength(before - 1);
      restoreStudent(d, victim?.id ?? 0);
      const added = addStudent(d, d.schools[1]?.id ?? 0);
      expect(await countActive(ps, token)).toBe(before + 1);
      const all = await allActiveStudents(ps, token);
      expect(all.at(-1)?.id).toBe(added.id);
    });

    it('reflects addGuardian, changeEmail and removeRelationship in the contacts API and PowerQuery', async () => {
      const s = d.students[20];
      const dcid = s?.id ?? 0;
      const g = addGuardian(d, dcid);
      let contacts = (await call(ps, token, `/ws/contacts/student/${dcid}`)).json as Obj[];
      expect(contacts.map(c => c.contactId)).toContain(g.contactId);

      changeEmail(d, g.contactId, 'Changed.Person@Example.org');
      contacts = (await call(ps, token, `/ws/contacts/student/${dcid}`)).json as Obj[];
      const mine = contacts.find(c => c.contactId === g.contactId);
      expect((mine?.emails as Obj[])[0]?.address).toBe('Changed.Person@Example.org');
      const rows = await queryRows(ps, token, dcid, dcid);
      expect(rows.filter(r => r.personid === String(g.contactId)).map(r => r.email)).toEqual(
        Array((g.phone ? 1 : 0) + (g.phone2 ? 1 : 0) || 1).fill('Changed.Person@Example.org'),
      );

      removeRelationship(d, g.contactId, dcid);
      contacts = asArray((await call(ps, token, `/ws/contacts/student/${dcid}`)).json);
      expect(contacts.map(c => c.contactId)).not.toContain(g.contactId);
      const after = await queryRows(ps, token, dcid, dcid);
      expect(after.some(r => r.personid === String(g.contactId))).toBe(false);
      expect(rowKeys(after)).toEqual(expectedRowKeys(d, dcid, dcid));
    });
  });

  it('answers 404 for unknown routes and keeps request stats', async () => {
    const before = { ...ps.stats.byStatus };
    const requests = ps.stats.requests;
    const r = await call(ps, token, '/ws/v1/district/section');
    expect(r.status).toBe(404);
    expect(r.json).toEqual({ message: 'not found' });
    const unknownQuery = await call(ps, token, '/ws/schema/query/com.other.query', {});
    expect(unknownQuery.status).toBe(404);
    expect(ps.stats.requests).toBe(requests + 2);
    expect(ps.stats.byStatus['404']).toBe((before['404'] ?? 0) + 2);
    expect(ps.stats.byRoute['GET /ws/v1/district/student']).toBeGreaterThan(0);
    expect(ps.stats.byRoute['POST /oauth/access_token']).toBeGreaterThan(0);
  });
});
