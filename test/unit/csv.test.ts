/**
 * Issue 14.5: one formula neutraliser for every CSV the product writes, with the variants
 * csv-stringify's `escape_formulas` and the old report neutraliser each missed.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { neutralizeCell } from '../../src/csv.js';
import { issuesCsv } from '../../src/imports/report.js';
import { neutralizeCell as rejectsNeutralizer } from '../../src/api/routes/runs.js';

const DANGEROUS = [
  '=1+1',
  '+49 30 1234',
  '-5',
  '@SUM(A1)',
  '\tx',
  '\rx',
  '\uff1d1+1', // full-width =
  '\uff0bcmd', // full-width +
  '\uff0d5', // full-width -
  '\uff20SUM(A1)', // full-width @
  ' =1+1', // leading space
  '   +1',
  '\u00a0=1', // no-break space
  '\u3000=1', // ideographic space
  ' \uff1dHYPERLINK("http://x")',
  '\n=1',
];
const HARMLESS = ['00123', 'a=b', "O'Brien", ' plain', 'Ana-Maria', '', 'x@example.org'];

describe('neutralizeCell', () => {
  it.each(DANGEROUS.map(v => [JSON.stringify(v), v]))('prefixes %s with a quote', (_, v) => {
    expect(neutralizeCell(v)).toBe(`'${v}`);
  });
  it.each(HARMLESS.map(v => [JSON.stringify(v), v]))('leaves %s alone', (_, v) => {
    expect(neutralizeCell(v)).toBe(v);
  });
  it('is the one the rejects CSV uses', () => {
    expect(rejectsNeutralizer).toBe(neutralizeCell);
  });
});

describe('import report CSV', () => {
  it('neutralises every variant in the cells it echoes', () => {
    const csv = issuesCsv(
      DANGEROUS.map((value, i) => ({
        file: 'f.csv',
        row: i + 2,
        column: 'Email',
        value,
        severity: 'error' as const,
        reason: 'bad',
      })),
    );
    const rows: string[][] = parse(csv.slice(1), { relax_column_count: true });
    expect(rows.slice(1).map(r => r[3])).toEqual(DANGEROUS.map(v => `'${v}`));
  });
});

describe('every CSV writer', () => {
  it('uses the shared options of src/csv.ts (no writer of its own)', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const p = join(dir, name);
        if (statSync(p).isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    walk('src');
    // Dev tools write fake SIS files, not product downloads. A writer uses csv-stringify
    // itself or streams through `csvStream` of src/csv.ts.
    const writers = files.filter(
      f =>
        !f.startsWith(join('src', 'dev')) &&
        f !== join('src', 'csv.ts') &&
        /from 'csv-stringify|csvStream\(/.test(readFileSync(f, 'utf8')),
    );
    expect(writers.length).toBeGreaterThanOrEqual(3);
    for (const f of writers) {
      const text = readFileSync(f, 'utf8');
      expect([f, /SAFE_CSV_OPTIONS|csvStream\(/.test(text)]).toEqual([f, true]);
      expect([f, /escape_formulas|cast: \{ string: (?!neutralizeCell)/.test(text)]).toEqual([
        f,
        false,
      ]);
    }
  });
});
