/**
 * Association import end to end: real store, real files. Links created here have origin
 * `import`; "clear" replaces the named students' links (never deleting, never touching
 * `sis` links or other students); bad rows are named precisely and remove nothing.
 */
import ExcelJS from 'exceljs';
import {
  confirmImport,
  importReportCsv,
  previewAssociationImport,
} from '../../src/imports/service.js';
import { changeLogRepository, linkRef } from '../../src/models/changes/index.js';
import type { GuardianLink } from '../../src/models/types.js';
import {
  csv,
  importDistrict,
  seed,
  sisParent,
  snapshot,
  startImportBench,
  student,
  type ImportBench,
} from '../helpers/imports.js';

const IDS = ['a-1', 'a-2', 'a-3', 'a-4', 'a-5', 'a-6'];
let bench: ImportBench;

beforeAll(async () => {
  bench = await startImportBench(IDS.map(id => importDistrict(id)));
});
afterAll(() => bench.close());

const file = (name: string, text: string | Buffer) => ({
  name,
  data: typeof text === 'string' ? Buffer.from(text, 'utf8') : text,
});

const link = (d: string, p: number, s: number, over: Partial<GuardianLink> = {}): GuardianLink => ({
  districtId: d,
  parentId: `pa_sis_${p}`,
  studentSourcedId: `stu-${s}`,
  origin: 'sis',
  status: 'active',
  ...over,
});

/** Students 1–4 (4 inactive), parents 1–4 (4 inactive), and some links of every origin. */
async function seedDistrict(d: string) {
  await seed(bench.store, d, {
    students: [student(d, 1), student(d, 2), student(d, 3), student(d, 4, { status: 'inactive' })],
    parents: [
      sisParent(d, 1),
      sisParent(d, 2),
      sisParent(d, 3),
      sisParent(d, 4, { status: 'inactive' }),
    ],
    links: [
      link(d, 1, 1), // sis
      link(d, 2, 1, { origin: 'manual' }),
      link(d, 3, 1, { origin: 'access-code' }),
      link(d, 2, 2, { origin: 'import' }),
      link(d, 3, 3, { origin: 'import' }),
    ],
  });
}

const linkSet = (links: GuardianLink[]) =>
  links.map(l => `${l.parentId}>${l.studentSourcedId}:${l.origin}:${l.status}`).sort();

describe('association import', () => {
  it('adds import links only (no clear); existing links of any origin stay', async () => {
    const d = 'a-1';
    await seedDistrict(d);
    const before = await bench.store.getLinks(d);
    const f = file(
      'links.csv',
      csv([
        ['Parent ID', 'Student ID'],
        ['P00001', 'S00001'],
        ['P00002', 'S00002'],
        ['P00003', 'S00002'],
      ]),
    );
    const p = await previewAssociationImport(bench.ctx, { districtId: d, file: f });
    expect(p.columns).toEqual({ parentUniqueId: 'Parent ID', studentUniqueId: 'Student ID' });
    expect(p.counts).toMatchObject({ add: 2, unchanged: 1, remove: 0, errorRows: 0 });
    expect(await bench.store.getLinks(d)).toEqual(before);
    const r = await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(r).toMatchObject({ status: 'applied', writes: 2 });
    expect(linkSet(await bench.store.getLinks(d))).toEqual(
      [
        ...linkSet(before),
        'pa_sis_1>stu-1:import:active', // beside the sis link: survives the SIS dropping it
        'pa_sis_3>stu-2:import:active',
      ].sort(),
    );
    // A sync's deactivation of the sis link (what finalize does) leaves the import link alone.
    await bench.store.applyDeactivations(d, {
      studentSourcedIds: [],
      parentIds: [],
      links: [{ parentId: 'pa_sis_1', studentSourcedId: 'stu-1' }],
    });
    expect(linkSet(await bench.store.getLinks(d))).toEqual(
      expect.arrayContaining(['pa_sis_1>stu-1:sis:inactive', 'pa_sis_1>stu-1:import:active']),
    );
  });

  it('"clear" replaces the named students\' links with the file\'s: deactivated, never deleted; sis links and other students untouched', async () => {
    const d = 'a-2';
    await seedDistrict(d);
    const f = file(
      'links.csv',
      csv([
        ['Parent Unique ID', 'Student Unique ID'],
        ['P00003', 'S00001'],
      ]),
    );
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { clearExisting: true },
    });
    expect(p.counts).toMatchObject({ add: 1, remove: 1, keptSis: 1 });
    expect(p.samples.remove).toEqual([
      {
        parentUniqueId: 'P00002',
        parentId: 'pa_sis_2',
        studentUniqueId: 'S00001',
        origin: 'manual',
      },
    ]);
    expect(p.samples.keptSis).toEqual([
      expect.objectContaining({ parentUniqueId: 'P00001', origin: 'sis' }),
    ]);
    await confirmImport(
      bench.ctx,
      { districtId: d, previewId: p.previewId },
      { actor: 'api:district-admin' },
    );
    // The change log: the added link and the deactivated ("cleared") one with its origin.
    const entries = await (
      await changeLogRepository(bench.store)
    ).list(d, { causeIds: [p.previewId], limit: 1000 });
    expect(entries.map(e => [e.entity, e.action, e.entityId, e.origin])).toEqual([
      ['link', 'create', linkRef('import', 'pa_sis_3', 'stu-1'), 'import'],
      ['link', 'deactivate', linkRef('manual', 'pa_sis_2', 'stu-1'), 'manual'],
    ]);
    for (const e of entries)
      expect(e).toMatchObject({
        cause: { kind: 'import', id: p.previewId, trigger: 'associations' },
        actor: 'api:district-admin',
        studentSourcedId: 'stu-1',
      });
    expect(entries[1]).toMatchObject({
      parentId: 'pa_sis_2',
      before: { status: 'active' },
      after: { status: 'inactive' },
    });
    expect(linkSet(await bench.store.getLinks(d))).toEqual(
      [
        'pa_sis_1>stu-1:sis:active', // owned by the SIS sync: kept (reported)
        'pa_sis_2>stu-1:manual:inactive', // replaced: deactivated, not deleted
        'pa_sis_3>stu-1:access-code:active', // the file lists P3–S1: kept
        'pa_sis_3>stu-1:import:active', // added
        'pa_sis_2>stu-2:import:active', // student not in the file: untouched
        'pa_sis_3>stu-3:import:active',
      ].sort(),
    );
  });

  it('bad rows are named precisely; a student with a bad row keeps all its links under "clear"', async () => {
    const d = 'a-3';
    await seedDistrict(d);
    const before = await snapshot(bench, d);
    const f = file(
      'links.csv',
      csv([
        ['parent', 'student'],
        ['P00009', 'S00001'], // unknown parent → student 1 is not cleared
        ['P00001', 'S00009'], // unknown student
        ['', 'S00002'], // blank cell
        ['P00004', 'S00003'], // inactive parent
        ['P00001', 'S00004'], // inactive student
        ['P00002', 'S00002'],
        ['P00002', 'S00002'], // duplicate pair
        ['1.2E+5', 'S00002'], // scientific notation
      ]),
    );
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { clearExisting: true },
    });
    expect(p.issues.map(i => [i.row, i.column, i.value, i.reason.split(';')[0]])).toEqual([
      [2, 'parent', 'P00009', 'no parent account has this Unique ID'],
      [3, 'student', 'S00009', 'no student has this Unique ID'],
      [4, 'parent', '', 'Parent Unique ID is blank'],
      [5, 'parent', 'P00004', 'the parent account is inactive'],
      [6, 'student', 'S00004', 'the student is inactive'],
      [8, '', 'P00002 / S00002', 'duplicate pair: same as row 7'],
      [
        9,
        'parent',
        '1.2E+5',
        'identifier is in scientific notation: Excel converted it to a number and its digits are lost',
      ],
    ]);
    expect(p.counts).toMatchObject({ add: 0, unchanged: 1, remove: 0, notCleared: 4 });
    expect(p.samples.notCleared).toEqual([
      { studentUniqueId: 'S00001', rows: [2] },
      { studentUniqueId: 'S00002', rows: [4, 9] }, // rows the reader refused count too
      { studentUniqueId: 'S00003', rows: [5] },
      { studentUniqueId: 'S00004', rows: [6] },
    ]);
    await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(await snapshot(bench, d)).toEqual(before);
    const report = await importReportCsv(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(report.split('\r\n').filter(Boolean)).toHaveLength(8);
  });

  it('no header row: columns by position or by number; extra columns ignored', async () => {
    const d = 'a-4';
    await seedDistrict(d);
    const plain = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file('l.csv', 'P00001;S00002\nP00002;S00003\n'),
      options: { hasHeaders: false },
    });
    expect(plain.counts).toMatchObject({ add: 2 });
    expect(plain.columns).toEqual({ parentUniqueId: 'column A', studentUniqueId: 'column B' });
    const mapped = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file('l.csv', 'x,S00002,y,P00001\n'),
      options: { hasHeaders: false, columns: { parentUniqueId: 4, studentUniqueId: '2' } },
    });
    expect(mapped.samples.add).toEqual([
      { row: 1, parentUniqueId: 'P00001', studentUniqueId: 'S00002' },
    ]);
  });

  it('the data changing between preview and confirm makes confirm refuse and re-plan', async () => {
    const d = 'a-5';
    await seedDistrict(d);
    const f = file(
      'links.csv',
      csv([
        ['Parent ID', 'Student ID'],
        ['P00002', 'S00002'],
      ]),
    );
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { clearExisting: true },
    });
    expect(p.counts).toMatchObject({ unchanged: 1, remove: 0 });
    // Meanwhile a parent registers for student 2 with an access code.
    await bench.store.addLink({ ...link(d, 3, 2), origin: 'access-code' });
    const before = await bench.store.getLinks(d);
    const r = await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(r.status).toBe('changed');
    expect(await bench.store.getLinks(d)).toEqual(before);
    if (r.status !== 'changed') return;
    expect(r.preview.counts).toMatchObject({ unchanged: 1, remove: 1 }); // the new link would be cleared
    const ok = await confirmImport(bench.ctx, { districtId: d, previewId: r.preview.previewId });
    expect(ok).toMatchObject({ status: 'applied', counts: { remove: 1 } });
    expect(linkSet(await bench.store.getLinks(d))).toContain('pa_sis_3>stu-2:access-code:inactive');
  });

  it('reads the association sheet of an XLSX workbook with numeric ids kept as text', async () => {
    const d = 'a-6';
    await seedDistrict(d);
    await seed(bench.store, d, {
      students: [student(d, 5, { uniqueId: '000123' })],
      parents: [sisParent(d, 5, { uniqueId: '4567' })],
    });
    const wb = new ExcelJS.Workbook();
    wb.addWorksheet('Readme').addRow(['instructions']);
    const ws = wb.addWorksheet('Links');
    ws.addRow(['Guardian ID', 'Student Number']);
    const r = ws.addRow([4567, 123]);
    r.getCell(2).numFmt = '000000';
    const p = await previewAssociationImport(bench.ctx, {
      districtId: d,
      file: file('links.xlsx', Buffer.from(await wb.xlsx.writeBuffer())),
      options: { sheet: 'Links' },
    });
    expect(p.issues).toEqual([]);
    expect(p.samples.add).toEqual([{ row: 2, parentUniqueId: '4567', studentUniqueId: '000123' }]);
  });
});
