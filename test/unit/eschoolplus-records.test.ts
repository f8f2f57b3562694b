/**
 * Row repair of eSchoolPLUS files (`RecordAssembler`) and their decoding (`fileLines`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import {
  fileLines,
  readHeader,
  RecordAssembler,
  type FileRecord,
  type LineReject,
} from '../../src/connectors/eschoolplus/records.js';

/** `expect.stringMatching`, typed (the matcher is `any` in Jest's types). */
const matching = (re: RegExp): unknown => expect.stringMatching(re) as unknown;

function run(a: RecordAssembler, text: string) {
  const records: FileRecord[] = [];
  const rejects: LineReject[] = [];
  text.split(/\r\n|\r|\n/).forEach((line, i) => {
    const out = a.push(line, i + 2); // line 1 is the header
    records.push(...out.records);
    rejects.push(...out.rejects);
  });
  const end = a.end();
  records.push(...end.records);
  rejects.push(...end.rejects);
  return { records, rejects };
}

describe('RecordAssembler with an end-of-record marker', () => {
  const make = (freeTextIndex?: number) =>
    new RecordAssembler({ columns: 3, delimiter: '|', marker: '#!#', freeTextIndex });

  it('passes whole rows through and rejoins rows broken by CRLF, LF and lone CR', () => {
    const { records, rejects } = run(
      make(),
      'a|b|c|#!#\r\nd|e\r\nx|f|#!#\ng|h\ry|i|#!#\nj|k|l|#!#',
    );
    expect(rejects).toEqual([]);
    expect(records.map(r => r.values)).toEqual([
      ['a', 'b', 'c'],
      ['d', 'e\nx', 'f'],
      ['g', 'h\ny', 'i'],
      ['j', 'k', 'l'],
    ]);
    expect(records.map(r => [r.firstLine, r.lastLine])).toEqual([
      [2, 2],
      [3, 4],
      [5, 6],
      [7, 7],
    ]);
  });

  it('folds extra delimiters into the free-text column', () => {
    const { records, rejects } = run(make(1), '1|Aunt | pick up|z|#!#');
    expect(rejects).toEqual([]);
    expect(records[0]?.values).toEqual(['1', 'Aunt | pick up', 'z']);
    expect(records[0]?.foldedDelimiters).toBe(true);
  });

  it('rejects a row with an extra delimiter when there is no free-text column, with its line', () => {
    const { records, rejects } = run(make(), 'a|b|c|#!#\na|b|x|c|#!#\nd|e|f|#!#');
    expect(records.map(r => r.values[0])).toEqual(['a', 'd']);
    expect(rejects).toHaveLength(1);
    expect(rejects[0]).toMatchObject({ firstLine: 3, lastLine: 3 });
    expect(rejects[0]?.reason).toMatch(/4 fields, the definition has 3/);
  });

  it('a row cut short (no marker) is rejected; the next good row is kept', () => {
    const { records, rejects } = run(make(), 'a|b|c\nd|e|f|#!#');
    expect(records.map(r => r.values)).toEqual([['d', 'e', 'f']]);
    expect(rejects).toEqual([
      { firstLine: 2, lastLine: 2, reason: matching(/no end-of-record marker/) },
    ]);
  });

  it('rejects an unfinished row at the end of the file', () => {
    const { records, rejects } = run(make(), 'a|b|c|#!#\nd|e');
    expect(records).toHaveLength(1);
    expect(rejects).toEqual([
      { firstLine: 3, lastLine: 3, reason: matching(/before the end of the file/) },
    ]);
  });
});

describe('RecordAssembler without a marker (field counting)', () => {
  const make = (freeTextIndex?: number) =>
    new RecordAssembler({ columns: 3, delimiter: '|', marker: null, freeTextIndex });

  it('rejoins a row broken by line breaks and skips blank lines between rows', () => {
    const { records, rejects } = run(make(), 'a|b|c\n\nd|e\nx|f\ng|h|i|');
    expect(rejects).toEqual([]);
    expect(records.map(r => r.values)).toEqual([
      ['a', 'b', 'c'],
      ['d', 'e\nx', 'f'],
      ['g', 'h', 'i'], // a trailing delimiter is not a field
    ]);
  });

  it('when joining overshoots, rejects the broken part and keeps the next row', () => {
    const { records, rejects } = run(make(), 'a|b\nc|d|e\nf|g|h');
    expect(records.map(r => r.values)).toEqual([
      ['c', 'd', 'e'],
      ['f', 'g', 'h'],
    ]);
    expect(rejects).toEqual([
      {
        firstLine: 2,
        lastLine: 2,
        reason: matching(/next line does not complete it/),
      },
    ]);
  });

  it('folds a delimiter in the free-text column of a one-line row', () => {
    const { records } = run(make(2), 'a|b|c|d');
    expect(records[0]?.values).toEqual(['a', 'b', 'c|d']);
  });
});

describe('fileLines / readHeader', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gsync-rec-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decodes Windows-1252 (accents survive) and numbers physical lines', async () => {
    const path = join(dir, 'REG.txt');
    writeFileSync(path, iconv.encode('ID|NAME|\r\n1|Müller\r\n2|Lefèvre\rSøren\r\n', 'win1252'));
    const lines: [string, number][] = [];
    for await (const l of fileLines(path, 'windows-1252')) lines.push(l);
    expect(lines).toEqual([
      ['ID|NAME|', 1],
      ['1|Müller', 2],
      ['2|Lefèvre', 3],
      ['Søren', 4],
    ]);
    expect(await readHeader(path, 'windows-1252', '|')).toEqual(['ID', 'NAME']);
    // The same bytes read as UTF-8 would not give the names back.
    const wrong: string[] = [];
    for await (const [l] of fileLines(path, 'utf8')) wrong.push(l);
    expect(wrong[1]).not.toBe('1|Müller');
  });
});
