/**
 * Reading admin import files: CSV/TSV text in the encodings spreadsheet programs write, and
 * XLSX workbooks (streamed, never loaded whole). Produces numbered rows of `SheetCell`s; what
 * the cells mean is decided by `columns.ts` and `cells.ts`.
 *
 * Formats, decided from the bytes (the file name only adds to the messages):
 * - XLSX: a ZIP container (`PK\x03\x04`), read with exceljs' streaming `WorkbookReader`
 *   (shared strings and styles cached; rows streamed). The first sheet in workbook order, or
 *   the sheet the admin names.
 * - Legacy `.xls` (an OLE2 compound file, `D0 CF 11 E0`; password-protected workbooks are
 *   OLE2 too), SpreadsheetML/HTML "Excel" files and OpenDocument sheets are refused with a
 *   message to save the file as .xlsx or .csv: no maintained, safe .xls reader is installed
 *   (see docs/imports.md).
 * - Anything else is text. Encoding: UTF-8 with or without BOM; UTF-16 LE/BE with BOM (Excel
 *   "Unicode text"), or without BOM when NUL bytes give it away; otherwise Windows-1252 when
 *   the bytes are not valid UTF-8 (Excel "CSV" on Western Windows). Delimiter: Excel's
 *   `sep=` first line when present, else the most frequent of comma, semicolon and tab in the
 *   first record (outside quotes). Parsed with csv-parse (quoted newlines, doubled quotes).
 *
 * Row numbers are the spreadsheet's: the first record (usually the header) is row 1, a
 * quoted value spanning lines is one row, blank rows keep their number.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import ExcelJS from 'exceljs';
import iconv from 'iconv-lite';
import { fromExcelValue, type SheetCell } from './cells.js';
import { ImportFileError } from './errors.js';

/** An uploaded file: its name (for messages and the report) and its bytes. */
export interface ImportFile {
  name: string;
  data: Uint8Array;
}

export type ImportFormat = 'csv' | 'xlsx';

/** What was detected about a file (shown in previews and stored with them). */
export interface FileInfo {
  name: string;
  bytes: number;
  /** sha256 of the bytes, hex. */
  sha256: string;
  format: ImportFormat;
  /** Text files: `utf-8`, `utf-8-bom`, `utf-16le`, `utf-16be`, `windows-1252`. */
  encoding?: string | undefined;
  /** Text files: `,`, `;` or `\t`. */
  delimiter?: string | undefined;
  /** XLSX: the sheet that was read. */
  sheet?: string | undefined;
  /** 1-based row of the header (files with headers; set by the import's reader). */
  headerRow?: number | undefined;
  /** Non-blank rows above the header row (a category or title row), not read. */
  rowsAboveHeader?: number | undefined;
}

/** One spreadsheet row: its 1-based number and its cells (index 0 = first column). */
export interface SheetRow {
  row: number;
  cells: SheetCell[];
}

export interface OpenedFile {
  info: FileInfo;
  /** Rows in file order; iterate once. Throws `ImportFileError` for a bad file. */
  rows: AsyncIterable<SheetRow>;
}

export interface ReadOptions {
  /** XLSX sheet to read (by name, case-insensitive); default the first sheet. */
  sheet?: string | undefined;
  /** Largest accepted file in bytes (default 50 MiB). */
  maxBytes?: number | undefined;
}

/** Default largest import file (bytes). */
export const DEFAULT_MAX_IMPORT_BYTES = 50 * 1024 * 1024;

const SAVE_AS = 'open it in Excel and save it as "Excel Workbook (.xlsx)" or "CSV UTF-8 (.csv)"';

/**
 * Open an import file: detect the format (and for text the encoding and delimiter) and
 * return its rows. Throws `ImportFileError` (naming the file) for an empty, oversized,
 * legacy .xls or otherwise unreadable file.
 */
export function openImportFile(file: ImportFile, opts: ReadOptions = {}): OpenedFile {
  const max = opts.maxBytes ?? DEFAULT_MAX_IMPORT_BYTES;
  const data = Buffer.from(file.data.buffer, file.data.byteOffset, file.data.byteLength);
  if (data.length === 0) throw new ImportFileError(file.name, 'the file is empty');
  if (data.length > max) {
    throw new ImportFileError(
      file.name,
      `the file is ${data.length} bytes; the limit is ${max} bytes (split it into several files)`,
    );
  }
  const sha256 = createHash('sha256').update(data).digest('hex');
  const base = { name: file.name, bytes: data.length, sha256 };
  const lower = file.name.toLowerCase();

  if (startsWith(data, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) {
    throw new ImportFileError(
      file.name,
      `this is a legacy Excel 97-2003 workbook (.xls) or a password-protected workbook, which imports cannot read; remove any password, ${SAVE_AS}`,
    );
  }
  if (startsWith(data, [0x50, 0x4b, 0x03, 0x04])) {
    if (lower.endsWith('.ods')) {
      throw new ImportFileError(
        file.name,
        `OpenDocument spreadsheets are not supported; ${SAVE_AS}`,
      );
    }
    const info: FileInfo = { ...base, format: 'xlsx' };
    return { info, rows: xlsxRows(file.name, data, info, opts.sheet) };
  }
  const { text, encoding } = decodeText(data);
  const head = text.slice(0, 512).trimStart().toLowerCase();
  if (head.startsWith('<')) {
    throw new ImportFileError(
      file.name,
      `this is an HTML or XML file (some systems export these with an .xls name), not a spreadsheet imports can read; ${SAVE_AS}`,
    );
  }
  const { delimiter, body } = detectDelimiter(text);
  const info: FileInfo = { ...base, format: 'csv', encoding, delimiter };
  return { info, rows: csvRows(file.name, body, delimiter) };
}

function startsWith(data: Buffer, bytes: number[]): boolean {
  return data.length >= bytes.length && bytes.every((b, i) => data[i] === b);
}

/**
 * Decode text bytes. Order: BOM (UTF-8, UTF-16 LE/BE) → UTF-16 without BOM (NUL bytes in
 * every other position) → strict UTF-8 → Windows-1252. Exported for tests.
 */
export function decodeText(data: Buffer): { text: string; encoding: string } {
  if (startsWith(data, [0xef, 0xbb, 0xbf])) {
    return { text: utf8OrCp1252(data.subarray(3)).text, encoding: 'utf-8-bom' };
  }
  if (startsWith(data, [0xff, 0xfe])) {
    return { text: iconv.decode(data.subarray(2), 'utf-16le'), encoding: 'utf-16le' };
  }
  if (startsWith(data, [0xfe, 0xff])) {
    return { text: iconv.decode(data.subarray(2), 'utf-16be'), encoding: 'utf-16be' };
  }
  const sample = data.subarray(0, 2048);
  let evenNul = 0;
  let oddNul = 0;
  for (let i = 0; i < sample.length; i++) {
    if (sample[i] === 0) {
      if (i % 2 === 0) evenNul++;
      else oddNul++;
    }
  }
  const half = sample.length / 2;
  if (oddNul > half * 0.3 && evenNul === 0) {
    return { text: iconv.decode(data, 'utf-16le'), encoding: 'utf-16le' };
  }
  if (evenNul > half * 0.3 && oddNul === 0) {
    return { text: iconv.decode(data, 'utf-16be'), encoding: 'utf-16be' };
  }
  return utf8OrCp1252(data);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function utf8OrCp1252(data: Buffer): { text: string; encoding: string } {
  try {
    return { text: strictUtf8.decode(data), encoding: 'utf-8' };
  } catch {
    return { text: iconv.decode(data, 'windows-1252'), encoding: 'windows-1252' };
  }
}

const DELIMITERS = [',', ';', '\t'] as const;

/**
 * The delimiter of a CSV text: Excel's `sep=X` first line (which is then dropped), else the
 * most frequent of `,`, `;`, tab in the first record outside quotes (ties: comma first).
 * Exported for tests.
 */
export function detectDelimiter(text: string): { delimiter: string; body: string } {
  const sep = /^sep=(.)\r?\n/i.exec(text);
  if (sep?.[1]) return { delimiter: sep[1], body: text.slice(sep[0].length) };
  const counts = new Map<string, number>(DELIMITERS.map(d => [d, 0]));
  let inQuotes = false;
  let started = false;
  for (let i = 0; i < text.length && i < 65536; i++) {
    const ch = text.charAt(i);
    if (ch === '"') inQuotes = !inQuotes;
    else if (!inQuotes && (ch === '\n' || ch === '\r')) {
      if (started) break;
    } else if (!inQuotes) {
      started = true;
      const c = counts.get(ch);
      if (c !== undefined) counts.set(ch, c + 1);
    }
  }
  let best: string = ',';
  for (const d of DELIMITERS) if ((counts.get(d) ?? 0) > (counts.get(best) ?? 0)) best = d;
  return { delimiter: best, body: text };
}

/**
 * CSV rows with spreadsheet row numbers (the n-th record is row n). Any csv-parse error
 * refuses the whole file, naming the line: with quotes and column counts relaxed, what is
 * left (a quote never closed) would swallow or shift every later row.
 */
async function* csvRows(
  fileName: string,
  text: string,
  delimiter: string,
): AsyncGenerator<SheetRow> {
  const parser = parseCsv({
    delimiter,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: false,
  });
  Readable.from([text]).pipe(parser);
  let row = 0;
  try {
    for await (const record of parser as AsyncIterable<string[]>) {
      row++;
      const cells: SheetCell[] = new Array<SheetCell>(record.length);
      for (let i = 0; i < record.length; i++) {
        const v = record[i] ?? '';
        cells[i] = v === '' ? EMPTY_CELL : { t: 'text', text: v };
      }
      yield { row, cells };
    }
  } catch (err) {
    const e = err as Error & { code?: unknown; lines?: unknown };
    if (e.code === 'CSV_QUOTE_NOT_CLOSED')
      throw new ImportFileError(
        fileName,
        `line ${String(e.lines)}: a quoted value is never closed, so every row after it would be lost; check the quotes around line ${String(e.lines)}`,
      );
    throw new ImportFileError(fileName, `not a readable CSV file: ${e.message}`);
  }
}

const EMPTY_CELL: SheetCell = { t: 'empty' };

interface WorkbookModel {
  sheets?: { name?: string; id?: number; state?: string }[];
}

interface StreamRow {
  number: number;
  eachCell(
    opts: { includeEmpty: boolean },
    cb: (cell: { value: unknown; numFmt?: string }, col: number) => void,
  ): void;
}

async function* xlsxRows(
  fileName: string,
  data: Buffer,
  info: FileInfo,
  wanted: string | undefined,
): AsyncGenerator<SheetRow> {
  const reader = new ExcelJS.stream.xlsx.WorkbookReader(Readable.from([data]), {
    worksheets: 'emit',
    sharedStrings: 'cache',
    styles: 'cache',
    hyperlinks: 'ignore',
    entries: 'ignore',
  });
  const seen: string[] = [];
  let found = false;
  try {
    for await (const sheet of reader as AsyncIterable<unknown>) {
      const ws = sheet as AsyncIterable<unknown> & { name?: string };
      const model = (reader as unknown as { model?: WorkbookModel }).model;
      const name = ws.name ?? '';
      seen.push(name);
      const first = model?.sheets?.[0]?.name;
      const match =
        wanted !== undefined
          ? name.trim().toLowerCase() === wanted.trim().toLowerCase()
          : first === undefined || first === name;
      if (found || !match) {
        // Read other sheets to their end: exceljs spills sheets that come before the shared
        // strings to temp files and deletes each file once the generator moves on, so a sheet
        // left unread races with the deletion of its file (ENOENT).
        for await (const _row of ws) void _row;
        continue;
      }
      found = true;
      info.sheet = name;
      for await (const r of ws) {
        const row = r as StreamRow;
        const cells: SheetCell[] = [];
        row.eachCell({ includeEmpty: false }, (cell, col) => {
          cells[col - 1] = fromExcelValue(cell.value, cell.numFmt);
        });
        for (let i = 0; i < cells.length; i++) cells[i] ??= { t: 'empty' };
        yield { row: row.number, cells };
      }
    }
  } catch (err) {
    if (err instanceof ImportFileError) throw err;
    throw new ImportFileError(
      fileName,
      `not a readable .xlsx workbook (${(err as Error).message}); ${SAVE_AS}`,
    );
  }
  if (!found) {
    const model = (reader as unknown as { model?: WorkbookModel }).model;
    const names = model?.sheets?.map(s => s.name ?? '') ?? seen;
    throw new ImportFileError(
      fileName,
      wanted !== undefined
        ? `the workbook has no sheet named "${wanted}" (sheets: ${names.map(n => `"${n}"`).join(', ') || 'none'})`
        : 'the workbook has no worksheet',
    );
  }
}
