/**
 * Issue 19 "Admin imports": the file layouts districts really upload, end to end (real files,
 * real SQLite store, real Redis; the multi-row and header-row cases through the HTTP API):
 * PowerSchool's multi-row contacts layout, a category row above the header, XLSX ids stored
 * as General numbers, students in a parent file, the `only` role filter, duplicate rows, and
 * preview texts that say exactly what confirm does.
 */
import ExcelJS from 'exceljs';
import { z } from 'zod';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { ImportFileError } from '../../src/imports/errors.js';
import {
  confirmImport,
  importReportCsv,
  previewAssociationImport,
  previewParentImport,
} from '../../src/imports/service.js';
import {
  csv,
  importDistrict,
  seed,
  sisParent,
  startImportBench,
  student,
  type ImportBench,
} from '../helpers/imports.js';

const ADMIN = 'gst_layouts-admin-token-0123456789abcdefghijklmnopqrs';
const TOKENS: ApiTokenEntry[] = [{ name: 'admin', sha256: hashToken(ADMIN), role: 'admin' }];
const IDS = Array.from({ length: 10 }, (_, i) => `l-${i + 1}`);

const Preview = z.looseObject({
  previewId: z.string(),
  file: z.looseObject({ headerRow: z.number().optional(), rowsAboveHeader: z.number().optional() }),
  counts: z.record(z.string(), z.number()),
  samples: z.record(z.string(), z.array(z.record(z.string(), z.unknown()))),
  issueCount: z.object({ errors: z.number(), warnings: z.number() }),
  issues: z.array(
    z.looseObject({
      row: z.number(),
      column: z.string(),
      reason: z.string(),
      severity: z.string(),
    }),
  ),
});
const Err = z.looseObject({ code: z.string(), message: z.string() });

let bench: ImportBench;
let app: ApiServer;
let base: string;

beforeAll(async () => {
  bench = await startImportBench(IDS.map(id => importDistrict(id)));
  app = await buildApiServer(bench.ctx, { tokens: TOKENS, dashboard: false });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await bench?.close();
});

/** Upload a file to a preview route; returns the HTTP status and the JSON body. */
async function upload(path: string, body: Buffer | string, type = 'text/csv') {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': type },
    body: typeof body === 'string' ? Buffer.from(body, 'utf8') : body,
  });
  return { status: res.status, body: await res.json() };
}

async function confirm(d: string, previewId: string) {
  const res = await fetch(`${base}/districts/${d}/imports/${previewId}/confirm`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  return (await res.json()) as Record<string, unknown>;
}

const file = (name: string, data: string | Buffer) => ({
  name,
  data: typeof data === 'string' ? Buffer.from(data, 'utf8') : data,
});

const kids = (d: string, ...uniqueIds: string[]) =>
  uniqueIds.map((uniqueId, i) => student(d, 100 + i, { uniqueId, sourcedId: `stu-${uniqueId}` }));

describe('PowerSchool / Finalsite multi-row contacts', () => {
  // The issue's reproduction, plus a contact with an extra phone row and a third student.
  const CONTACTS = csv([
    ['Unique ID', 'First Name', 'Last Name', 'Email', 'studentNumber', 'Phone'],
    ['7', 'Ann', 'Lee', 'ann@example.test', '1001', ''],
    ['7', '', '', '', '1002', ''],
    ['8', 'Bob', 'Ray', 'bob@example.test', '1001', '555-0100'],
    ['8', '', '', '', '', '555-0101'], // extra phone, no student
    ['8', '', '', '', '1003', ''],
    ['9', '', '', 'nobody@example.test', '1003', ''], // no named row of 9: a real error
  ]);

  it('parent import over the API: continuation rows merge into their contact, no false errors', async () => {
    const d = 'l-1';
    const r = await upload(
      `/districts/${d}/imports/parents/preview?fileName=contacts.csv`,
      CONTACTS,
    );
    expect(r.status).toBe(200);
    const p = Preview.parse(r.body);
    expect(p.issues.map(i => [i.row, i.column, i.severity, i.reason])).toEqual([
      [7, 'First Name', 'error', 'First Name is blank'],
      [7, 'Last Name', 'error', 'Last Name is blank'],
    ]);
    expect(p.counts).toMatchObject({ create: 2, merged: 3, errorRows: 1 });
    expect(p.samples.merged).toEqual([
      { row: 3, into: 2, uniqueId: '7' },
      { row: 5, into: 4, uniqueId: '8' },
      { row: 6, into: 4, uniqueId: '8' },
    ]);
    expect(p.samples.create?.map(c => [c.uniqueId, c.givenName, c.email, c.rows])).toEqual([
      ['7', 'Ann', 'ann@example.test', [2, 3]],
      ['8', 'Bob', 'bob@example.test', [4, 5, 6]],
    ]);
    expect(await confirm(d, p.previewId)).toMatchObject({
      status: 'applied',
      counts: { create: 2, merged: 3 },
    });
    const parents = await bench.store.getParents(d);
    expect(parents.map(a => [a.uniqueId, a.givenName, a.familyName, a.email]).sort()).toEqual([
      ['7', 'Ann', 'Lee', 'ann@example.test'],
      ['8', 'Bob', 'Ray', 'bob@example.test'],
    ]);
  });

  it("association import over the API takes each row's student; phone rows are merged", async () => {
    const d = 'l-2';
    await seed(bench.store, d, {
      students: kids(d, '1001', '1002', '1003'),
      parents: [
        sisParent(d, 1, { uniqueId: '7', id: 'pa_7' }),
        sisParent(d, 2, { uniqueId: '8', id: 'pa_8' }),
      ],
    });
    const r = await upload(
      `/districts/${d}/imports/associations/preview?fileName=contacts.csv`,
      CONTACTS,
    );
    expect(r.status).toBe(200);
    const p = Preview.parse(r.body);
    expect(p.issues.map(i => [i.row, i.column, i.reason])).toEqual([
      [7, 'Unique ID', 'no parent account has this Unique ID'], // 9 is not a parent
    ]);
    expect(p.counts).toMatchObject({ add: 4, merged: 1 });
    expect(p.samples.merged).toEqual([{ row: 5, into: 4, parentUniqueId: '8' }]);
    expect(await confirm(d, p.previewId)).toMatchObject({ status: 'applied' });
    const links = await bench.store.getLinks(d);
    expect(links.map(l => `${l.parentId}→${l.studentSourcedId}`).sort()).toEqual([
      'pa_7→stu-1001',
      'pa_7→stu-1002',
      'pa_8→stu-1001',
      'pa_8→stu-1003',
    ]);
  });

  it('a contact with no student on any row is still a row error', async () => {
    const d = 'l-2';
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file(
        'c.csv',
        csv([
          ['Unique ID', 'studentNumber'],
          ['7', ''],
          ['8', '1003'],
        ]),
      ),
    });
    expect(p.issues.map(i => [i.row, i.column, i.reason])).toEqual([
      [2, 'studentNumber', 'Student Unique ID is blank'],
    ]);
    expect(p.counts).toMatchObject({ merged: 0, unchanged: 1 });
  });
});

describe('a category row above the header', () => {
  const TEMPLATE = csv([
    ['Contact Information', '', '', '', 'Student'],
    ['Unique ID', 'First Name', 'Last Name', 'Email', 'Student Number'],
    ['7', 'Ann', 'Lee', 'ann@example.test', '1001'],
  ]);

  it('the header row is found (API), and headerRow names it explicitly', async () => {
    const d = 'l-3';
    const found = await upload(`/districts/${d}/imports/parents/preview?fileName=t.csv`, TEMPLATE);
    expect(found.status).toBe(200);
    const p = Preview.parse(found.body);
    expect(p.file).toMatchObject({ headerRow: 2, rowsAboveHeader: 1 });
    expect(p.counts).toMatchObject({ create: 1 });
    expect(p.issues).toEqual([]);
    const given = await upload(
      `/districts/${d}/imports/parents/preview?fileName=t.csv&headerRow=2`,
      TEMPLATE,
    );
    expect(Preview.parse(given.body).counts).toMatchObject({ create: 1 });
    // a wrong header row is refused, naming the file
    const wrong = await upload(
      `/districts/${d}/imports/parents/preview?fileName=t.csv&headerRow=1`,
      TEMPLATE,
    );
    expect(wrong.status).toBe(422);
    expect(Err.parse(wrong.body).message).toMatch(/^t\.csv: missing required columns/);
  });

  it('when the header row cannot be used, the message says which row looks like the header', async () => {
    const d = 'l-3';
    const noEmail = csv([
      ['Contact Information', '', ''],
      ['Unique ID', 'First Name', 'Last Name'],
      ['7', 'Ann', 'Lee'],
    ]);
    const r = await upload(`/districts/${d}/imports/parents/preview?fileName=t.csv`, noEmail);
    expect(r.status).toBe(422);
    expect(Err.parse(r.body)).toMatchObject({
      code: 'invalid_file',
      message:
        't.csv: row 2 looks like the header (it names First Name, Last Name, Unique ID), but the file needs an Email or a Username column (or both); rename the column or map it explicitly',
    });
  });

  it('association import: the header is found below a title row too', async () => {
    const d = 'l-4';
    await seed(bench.store, d, {
      students: kids(d, '1001'),
      parents: [sisParent(d, 1, { uniqueId: '7' })],
    });
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file('a.csv', TEMPLATE),
    });
    expect(p.file).toMatchObject({ headerRow: 2, rowsAboveHeader: 1 });
    expect(p.counts).toMatchObject({ add: 1 });
  });
});

describe('spreadsheet ids stored as numbers', () => {
  async function xlsx(rows: unknown[][]): Promise<Buffer> {
    const wb = new ExcelJS.Workbook();
    const ws = wb.addWorksheet('Links');
    for (const r of rows) ws.addRow(r);
    return Buffer.from(await wb.xlsx.writeBuffer());
  }

  it('a General number 123 never links student 123 when the district has 00123', async () => {
    const d = 'l-5';
    await seed(bench.store, d, {
      // 00123 is the child meant; 123 is another child
      students: kids(d, '00123', '123', '00456', '00789'),
      parents: [sisParent(d, 1), sisParent(d, 2)],
    });
    const data = await xlsx([
      ['Parent Unique ID', 'Student Unique ID'],
      ['P00001', 123], // numeric cell (General format)
      ['P00002', '00456'], // text cell: fine
      ['P00002', 789], // no 789 stored, but 00789 is
    ]);
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file('links.xlsx', data),
    });
    expect(p.issues.map(i => [i.row, i.value, i.severity, i.reason])).toEqual([
      [
        2,
        '123',
        'error',
        'Excel stored this Student Unique ID as the number 123, which loses leading zeros; did you mean 00123 (student stu-00123)? Not matched; format the column as Text in Excel and enter the ids with their zeros',
      ],
      [
        4,
        '789',
        'error',
        'Excel stored this Student Unique ID as the number 789, which loses leading zeros; did you mean 00789 (student stu-00789)? Not matched; format the column as Text in Excel and enter the ids with their zeros',
      ],
    ]);
    expect(p.samples.add).toEqual([{ row: 3, parentUniqueId: 'P00002', studentUniqueId: '00456' }]);
    await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect((await bench.store.getLinks(d)).map(l => l.studentSourcedId)).toEqual(['stu-00456']);
  });

  it('a number in a column whose other ids have leading zeros is an error naming the likely id', async () => {
    const d = 'l-5';
    const data = await xlsx([
      ['Parent Unique ID', 'Student Unique ID'],
      ['P00001', '00456'],
      ['P00001', 555], // nothing stored like it; the column says 00555
    ]);
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file('links.xlsx', data),
    });
    expect(p.issues.map(i => [i.row, i.reason])).toEqual([
      [
        3,
        'Excel stored this Student Unique ID as the number 555, but the other ids of the column have leading zeros (e.g. 00456); probably 00555? Not matched; format the column as Text in Excel and enter the ids with their zeros',
      ],
    ]);
  });

  it('a zero-padding number format keeps the zeros (no error)', async () => {
    const d = 'l-5';
    const wb = new ExcelJS.Workbook();
    const ws = wb.addWorksheet('Links');
    ws.addRow(['Parent Unique ID', 'Student Unique ID']);
    ws.addRow(['P00001', 123]);
    ws.getCell('B2').numFmt = '00000';
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file('links.xlsx', Buffer.from(await wb.xlsx.writeBuffer())),
    });
    expect(p.issues).toEqual([]);
    expect(p.samples.add).toEqual([{ row: 2, parentUniqueId: 'P00001', studentUniqueId: '00123' }]);
  });
});

describe('students in a parent file (Microsoft SDS users.csv mixes roles)', () => {
  it('a row whose Unique ID or email is a student is a row error naming the student', async () => {
    const d = 'l-6';
    await seed(bench.store, d, {
      students: [
        student(d, 1, { givenName: 'Kim', familyName: 'Lee' }),
        student(d, 2, { givenName: 'Max', familyName: 'Ray', email: 'Max.Ray@Students.example' }),
      ],
    });
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file(
        'users.csv',
        csv([
          ['sourcedId', 'givenName', 'familyName', 'email', 'role'],
          ['S00001', 'Kim', 'Lee', 'kim@x.example', 'student'],
          ['G-1', 'Max', 'Ray', 'max.ray@students.example', 'student'],
          ['G-2', 'Ann', 'Lee', 'ann@example.test', 'guardian'],
        ]),
      ),
      options: { columns: { uniqueId: 'sourcedId' } },
    });
    expect(p.issues.map(i => [i.row, i.column, i.reason])).toEqual([
      [
        2,
        'sourcedId',
        'Unique ID S00001 belongs to the student Kim Lee (Unique ID S00001, active); a student is not imported as a parent (leave student rows out of the file, e.g. only role=parent)',
      ],
      [
        3,
        'email',
        'email belongs to the student Max Ray (Unique ID S00002, active); a student is not imported as a parent (leave student rows out of the file, e.g. only role=parent)',
      ],
    ]);
    expect(p.counts).toMatchObject({ create: 1, errorRows: 2 });
  });

  it('the only filter keeps chosen roles; the rows left out are counted and listed', async () => {
    const d = 'l-7';
    await seed(bench.store, d, {
      students: [student(d, 1), student(d, 2)],
      parents: [sisParent(d, 1), sisParent(d, 2)],
    });
    const rel = csv([
      ['Parent ID', 'Student ID', 'relationshipRole'],
      ['P00001', 'S00001', 'parent'],
      ['S00002', 'S00001', 'student'],
      ['P00002', 'S00002', 'Guardian'],
      ['P00002', 'S00001', 'aide'],
    ]);
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file('relationships.csv', rel),
      options: { only: { relationshipRole: ['parent', 'guardian'] } },
    });
    expect(p.counts).toMatchObject({ add: 2, excluded: 2, errorRows: 0 });
    expect(p.rows).toMatchObject({ data: 2 });
    expect(p.samples.excluded).toEqual([
      { row: 3, column: 'relationshipRole', value: 'student' },
      { row: 5, column: 'relationshipRole', value: 'aide' },
    ]);
    const report = await importReportCsv(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(
      report
        .replace(/^\ufeff/, '')
        .split('\r\n')
        .slice(1, 3),
    ).toEqual([
      'relationships.csv,3,relationshipRole,student,warning,"left out: relationshipRole is ""student"", not one of parent, guardian (only)"',
      'relationships.csv,5,relationshipRole,aide,warning,"left out: relationshipRole is ""aide"", not one of parent, guardian (only)"',
    ]);
    // the same over the API (only as a JSON query parameter)
    const api = await upload(
      `/districts/${d}/imports/associations/preview?fileName=relationships.csv&only=${encodeURIComponent(JSON.stringify({ relationshipRole: ['parent', 'guardian'] }))}`,
      rel,
    );
    expect(api.status).toBe(200);
    expect(Preview.parse(api.body).counts).toMatchObject({ add: 2, excluded: 2 });
    // an unknown column is refused, naming it
    await expect(
      previewAssociationImport(bench.ctx, {
        districtId: d,
        file: file('relationships.csv', rel),
        options: { only: { role: ['parent'] } },
      }),
    ).rejects.toThrow(
      new ImportFileError(
        'relationships.csv',
        'only: no column is headed "role" (headers: "Parent ID", "Student ID", "relationshipRole")',
      ),
    );
  });
});

describe('preview texts say what confirm does', () => {
  it("two rows sharing an email in different case: the second keeps the first row's name", async () => {
    const d = 'l-8';
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file(
        'p.csv',
        csv([
          ['First Name', 'Last Name', 'Unique ID', 'Email'],
          ['Tom', 'Lee', 'A-1', 'tom@example.test'],
          ['Thomas', 'Lee', 'A-2', 'TOM@Example.test'],
        ]),
      ),
    });
    const texts = p.issues.map(i => i.reason);
    expect(texts).toContain(
      "matched by email to the new account of Tom Lee (row 2 of this file); its name stays Tom Lee (the account's first row sets its fields)",
    );
    expect(texts.some(t => /will change|rename/.test(t))).toBe(false);
    expect(p.counts).toMatchObject({ create: 1 });
    await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect((await bench.store.getParents(d)).map(a => [a.givenName, a.familyName])).toEqual([
      ['Tom', 'Lee'],
    ]);
  });

  it("an existing account matched by two rows keeps the first row's name, as the preview says", async () => {
    const d = 'l-9';
    await seed(bench.store, d, { parents: [sisParent(d, 1)] });
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file(
        'p.csv',
        csv([
          ['First Name', 'Last Name', 'Unique ID', 'Email'],
          ['Parent1', 'Family', 'P00001', 'parent1@example.org'],
          ['Tom', 'Lee', 'T-9', 'Parent1@example.org'],
        ]),
      ),
    });
    expect(p.issues.map(i => i.reason)).toContain(
      "matched by email to the existing account of Parent1 Family; its name stays Parent1 Family (the account's first row sets its fields)",
    );
    await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect((await bench.store.getParents(d)).map(a => [a.givenName, a.familyName])).toEqual([
      ['Parent1', 'Family'],
    ]);
  });
});
