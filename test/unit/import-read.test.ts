/**
 * Reading import files: every encoding spreadsheet programs write (bytes written here), the
 * delimiters, CSV quirks, refused formats, and XLSX cells of every odd type (workbooks built
 * with exceljs here). Plus header matching and the identifier rules.
 */
import ExcelJS from 'exceljs';
import iconv from 'iconv-lite';
import { cellText, fromExcelValue } from '../../src/imports/cells.js';
import {
  ASSOCIATION_FIELDS,
  PARENT_FIELDS,
  headerTexts,
  normalizeHeader,
  resolveColumns,
  toRecord,
} from '../../src/imports/columns.js';
import { ImportFileError } from '../../src/imports/errors.js';
import {
  decodeText,
  detectDelimiter,
  openImportFile,
  type SheetRow,
} from '../../src/imports/read.js';
import type { RowIssue } from '../../src/reconcile/import-plan.js';

async function rowsOf(name: string, data: Uint8Array, sheet?: string) {
  const f = openImportFile({ name, data }, { sheet });
  const rows: SheetRow[] = [];
  for await (const r of f.rows) rows.push(r);
  return { info: f.info, rows };
}

const texts = (r: SheetRow) =>
  r.cells.map(c => (c.t === 'text' ? c.text : c.t === 'empty' ? '' : `<${c.t}>`));

const SAMPLE = 'First Name;Last Name;Unique ID\nZoë;Müller-Lüdenscheidt;00123\nRenée;Ørsted;P-9\n';

describe('text encodings', () => {
  const cases: [string, Buffer, string][] = [
    ['UTF-8 without BOM', Buffer.from(SAMPLE, 'utf8'), 'utf-8'],
    [
      'UTF-8 with BOM',
      Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(SAMPLE, 'utf8')]),
      'utf-8-bom',
    ],
    [
      'UTF-16 LE with BOM (Excel "Unicode text")',
      Buffer.concat([Buffer.from([0xff, 0xfe]), iconv.encode(SAMPLE, 'utf-16le')]),
      'utf-16le',
    ],
    [
      'UTF-16 BE with BOM',
      Buffer.concat([Buffer.from([0xfe, 0xff]), iconv.encode(SAMPLE, 'utf-16be')]),
      'utf-16be',
    ],
    ['UTF-16 LE without BOM', iconv.encode(SAMPLE, 'utf-16le'), 'utf-16le'],
    ['Windows-1252 (not valid UTF-8)', iconv.encode(SAMPLE, 'windows-1252'), 'windows-1252'],
  ];
  it.each(cases)('%s decodes to the same rows', async (_label, bytes, encoding) => {
    const { info, rows } = await rowsOf('p.csv', bytes);
    expect(info.encoding).toBe(encoding);
    expect(info.delimiter).toBe(';');
    expect(rows.map(texts)).toEqual([
      ['First Name', 'Last Name', 'Unique ID'],
      ['Zoë', 'Müller-Lüdenscheidt', '00123'],
      ['Renée', 'Ørsted', 'P-9'],
    ]);
  });

  it('a UTF-8 BOM does not glue itself to the first header', async () => {
    const bytes = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      Buffer.from('Unique ID,Email\n1,a@b.org\n'),
    ]);
    const { rows } = await rowsOf('p.csv', bytes);
    const first = rows[0];
    expect(first && texts(first)[0]).toBe('Unique ID');
  });

  it('decodeText prefers UTF-8 when the bytes are valid UTF-8', () => {
    expect(decodeText(Buffer.from('é', 'utf8'))).toEqual({ text: 'é', encoding: 'utf-8' });
    expect(decodeText(Buffer.from([0xe9]))).toEqual({ text: 'é', encoding: 'windows-1252' });
  });
});

describe('delimiters and CSV quirks', () => {
  it.each([
    ['comma', 'a,b,c\n1,2,3\n', ','],
    ['semicolon', 'a;b;c\n1;2;3\n', ';'],
    ['tab', 'a\tb\tc\n1\t2\t3\n', '\t'],
    ['commas inside quotes do not count', '"Last, First";b;c\n1;2;3\n', ';'],
  ])('%s', (_l, text, d) => {
    expect(detectDelimiter(text).delimiter).toBe(d);
  });

  it("honours Excel's sep= line and drops it", async () => {
    const { info, rows } = await rowsOf('p.csv', Buffer.from('sep=|\na|b\n1|2\n'));
    expect(info.delimiter).toBe('|');
    expect(rows.map(texts)).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
  });

  it('keeps Excel-style quoted newlines in one row and numbers rows as the spreadsheet does', async () => {
    const text = 'First Name,Last Name\r\n"Anne\r\nMarie","O""Neil"\r\nBo,Li\r\n\r\n,\r\n\r\n';
    const { rows } = await rowsOf('p.csv', Buffer.from(text));
    expect(rows.map(r => r.row)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows[1] && texts(rows[1])).toEqual(['Anne\r\nMarie', 'O"Neil']);
    expect(rows[2] && texts(rows[2])).toEqual(['Bo', 'Li']);
  });

  it('refuses a file whose quote is never closed (rows after it would be lost)', async () => {
    await expect(rowsOf('p.csv', Buffer.from('a,b\n1,"2\n3,4\n5,6\n'))).rejects.toThrow(
      /p\.csv: line \d+: a quoted value is never closed/,
    );
  });
});

describe('refused files', () => {
  it('legacy .xls (OLE2) is refused with a save-as message', () => {
    const ole = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0, 0, 0]);
    expect(() => openImportFile({ name: 'parents.xls', data: ole })).toThrow(ImportFileError);
    expect(() => openImportFile({ name: 'parents.xls', data: ole })).toThrow(
      /parents\.xls: this is a legacy Excel 97-2003 workbook.*save it as "Excel Workbook \(\.xlsx\)" or "CSV UTF-8 \(\.csv\)"/,
    );
  });

  it('HTML saved as .xls is refused', () => {
    const html = Buffer.from('<html><table><tr><td>a</td></tr></table></html>');
    expect(() => openImportFile({ name: 'export.xls', data: html })).toThrow(/HTML or XML file/);
  });

  it('an empty file and an oversized file are refused', () => {
    expect(() => openImportFile({ name: 'e.csv', data: Buffer.alloc(0) })).toThrow(
      /e\.csv: the file is empty/,
    );
    expect(() =>
      openImportFile({ name: 'big.csv', data: Buffer.alloc(20, 65) }, { maxBytes: 10 }),
    ).toThrow(/big\.csv: the file is 20 bytes; the limit is 10 bytes/);
  });

  it('a ZIP that is not a workbook is refused naming the file', async () => {
    const zip = Buffer.from([0x50, 0x4b, 0x03, 0x04, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    await expect(rowsOf('broken.xlsx', zip)).rejects.toThrow(/broken\.xlsx: /);
  });
});

describe('XLSX', () => {
  async function workbook(): Promise<Buffer> {
    const wb = new ExcelJS.Workbook();
    wb.addWorksheet('Notes').addRow(['not this sheet']);
    const ws = wb.addWorksheet('Parents');
    ws.addRow(['First Name', 'Last Name', 'Unique ID', 'E-Mail']);
    ws.addRow([
      { richText: [{ text: 'Zo' }, { text: 'ë', font: { bold: true } }] },
      'Müller',
      'U-1',
      { text: 'zoe@example.org', hyperlink: 'mailto:zoe@example.org' },
    ]);
    const r3 = ws.addRow([
      'Al',
      'Bo',
      42,
      { formula: 'LOWER("AL@EXAMPLE.ORG")', result: 'al@example.org' },
    ]);
    r3.getCell(3).numFmt = '000000';
    ws.addRow(['Cy', 'Do', new Date(Date.UTC(2024, 0, 5)), 'cy@example.org']);
    ws.addRow(['Ed', 'Fu', 12345678901234567000, 'ed@example.org']); // Excel: 1.23456789012346E+19
    ws.addRow(['Gi', 'Ha', { formula: 'A1/0', result: { error: '#DIV/0!' } }, 'gi@example.org']);
    ws.addRow(['Ib', 'Jo', { error: '#N/A' }, 'ib@example.org']);
    ws.addRow([]);
    ws.addRow([]);
    return Buffer.from(await wb.xlsx.writeBuffer());
  }

  it('reads the first sheet by default and a named sheet on request', async () => {
    const data = await workbook();
    const first = await rowsOf('p.xlsx', data);
    expect(first.info).toMatchObject({ format: 'xlsx', sheet: 'Notes' });
    const named = await rowsOf('p.xlsx', data, 'parents');
    expect(named.info.sheet).toBe('Parents');
    await expect(rowsOf('p.xlsx', data, 'Kids')).rejects.toThrow(
      'p.xlsx: the workbook has no sheet named "Kids" (sheets: "Notes", "Parents")',
    );
  });

  it('turns rich text, hyperlinks, formulas, padded numbers and dates into text or precise row errors', async () => {
    const { rows } = await rowsOf('p.xlsx', await workbook(), 'Parents');
    const header = rows[0];
    if (!header) throw new Error('no header');
    const layout = resolveColumns('p.xlsx', PARENT_FIELDS, headerTexts(header), undefined, [
      'uniqueId',
    ]);
    const issues: RowIssue[] = [];
    const recs = rows
      .slice(1)
      .map(r => toRecord('p.xlsx', PARENT_FIELDS, layout, r, ['uniqueId'], {}, issues))
      .filter(r => r?.ok)
      .map(r => r?.record);
    expect(recs).toEqual([
      { row: 2, firstName: 'Zoë', lastName: 'Müller', uniqueId: 'U-1', email: 'zoe@example.org' },
      { row: 3, firstName: 'Al', lastName: 'Bo', uniqueId: '000042', email: 'al@example.org' },
    ]);
    expect(issues.map(i => [i.row, i.column, i.reason.split(';')[0]])).toEqual([
      [4, 'Unique ID', 'Excel turned this identifier into the date 2024-01-05'],
      [5, 'Unique ID', 'identifier is stored as a number of 16 or more digits'],
      [
        6,
        'Unique ID',
        'cell is a formula without a usable value (an Excel error such as #DIV/0! or #N/A, or never calculated)',
      ],
      [7, 'Unique ID', 'cell contains the Excel error #N/A'],
    ]);
  });
});

describe('cells', () => {
  it('identifiers stay strings; Excel scientific notation is a row error', () => {
    expect(cellText({ t: 'text', text: ' 00123 ' }, 'identifier')).toEqual({
      ok: true,
      text: '00123',
    });
    expect(cellText({ t: 'text', text: '="00123"' }, 'identifier')).toEqual({
      ok: true,
      text: '00123',
    });
    expect(cellText({ t: 'text', text: '12345678901234567890' }, 'identifier')).toEqual({
      ok: true,
      text: '12345678901234567890',
    });
    const sci = cellText({ t: 'text', text: '1.23457E+19' }, 'identifier');
    expect(sci.ok).toBe(false);
    expect(!sci.ok && sci.reason).toMatch(/scientific notation/);
    expect(cellText({ t: 'text', text: '1.23457E+19' }, 'text')).toEqual({
      ok: true,
      text: '1.23457E+19',
    });
    expect(cellText({ t: 'number', value: 12.5 }, 'identifier').ok).toBe(false);
    expect(cellText({ t: 'bool', value: true }, 'identifier').ok).toBe(false);
    expect(cellText({ t: 'formula-no-result', formula: 'A1' }, 'identifier').ok).toBe(false);
  });

  it('fromExcelValue handles every exceljs value shape', () => {
    expect(fromExcelValue({ sharedFormula: 'A1', result: 'x' })).toEqual({ t: 'text', text: 'x' });
    expect(fromExcelValue({ formula: 'A1' })).toEqual({ t: 'formula-no-result', formula: 'A1' });
    expect(fromExcelValue({ hyperlink: 'mailto:a@b.org' })).toEqual({ t: 'text', text: 'a@b.org' });
    expect(fromExcelValue({ richText: [] })).toEqual({ t: 'empty' });
    expect(fromExcelValue('')).toEqual({ t: 'empty' });
  });
});

describe('columns', () => {
  it('header matching ignores case, spaces, punctuation and accents', () => {
    expect(normalizeHeader(' E-Mail Address ')).toBe('emailaddress');
    expect(normalizeHeader('Prénom')).toBe('prenom');
    const layout = resolveColumns(
      'f.csv',
      PARENT_FIELDS,
      ['FIRST_NAME', 'last name', 'Unique-ID', 'e-mail', 'User Name', 'Notes'],
      undefined,
      ['firstName', 'lastName', 'uniqueId'],
    );
    expect(layout).toEqual({
      firstName: { index: 0, header: 'FIRST_NAME' },
      lastName: { index: 1, header: 'last name' },
      uniqueId: { index: 2, header: 'Unique-ID' },
      email: { index: 3, header: 'e-mail' },
      username: { index: 4, header: 'User Name' },
    });
  });

  it('explicit mapping by header text or column number wins over aliases', () => {
    const layout = resolveColumns(
      'f.csv',
      ASSOCIATION_FIELDS,
      ['Parent ID', 'Kid', 'Student ID'],
      { studentUniqueId: 'kid', parentUniqueId: '1' },
      ['parentUniqueId', 'studentUniqueId'],
    );
    expect(layout.studentUniqueId).toEqual({ index: 1, header: 'Kid' });
    expect(layout.parentUniqueId).toEqual({ index: 0, header: 'Parent ID' });
  });

  it('names the missing columns, the headers found and ambiguous columns', () => {
    expect(() =>
      resolveColumns('f.csv', PARENT_FIELDS, ['Vorname', 'Email'], undefined, [
        'firstName',
        'lastName',
        'uniqueId',
      ]),
    ).toThrow(
      'f.csv: missing required columns "First Name", "Last Name", "Unique ID" (headers found: "Vorname", "Email")',
    );
    expect(() =>
      resolveColumns('f.csv', PARENT_FIELDS, ['Email', 'E-mail', 'Unique ID'], undefined, [
        'uniqueId',
      ]),
    ).toThrow(/2 columns could be Email: A \("Email"\), B \("E-mail"\)/);
    expect(() => resolveColumns('f.csv', PARENT_FIELDS, ['a'], { nickname: 'a' }, [])).toThrow(
      /unknown field "nickname"/,
    );
  });

  it('without a header row, columns are by position or by number', () => {
    expect(
      resolveColumns(
        'f.csv',
        ASSOCIATION_FIELDS,
        undefined,
        undefined,
        ['parentUniqueId', 'studentUniqueId'],
        ['parentUniqueId', 'studentUniqueId'],
      ),
    ).toEqual({
      parentUniqueId: { index: 0, header: 'column A' },
      studentUniqueId: { index: 1, header: 'column B' },
    });
    expect(
      resolveColumns(
        'f.csv',
        ASSOCIATION_FIELDS,
        undefined,
        { parentUniqueId: 3, studentUniqueId: 1 },
        ['parentUniqueId', 'studentUniqueId'],
      ),
    ).toEqual({
      parentUniqueId: { index: 2, header: 'column C' },
      studentUniqueId: { index: 0, header: 'column A' },
    });
  });
});
