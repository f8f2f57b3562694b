/**
 * Spreadsheet cell values → text, the one place that decides what an import cell means.
 *
 * Identifiers (Unique IDs) are strings, always (design.md "Spreadsheet values"): a value that
 * Excel has already turned into something else — a number of 16+ digits (Excel keeps only
 * 15 significant digits), scientific notation ("1.23457E+19"), a date, a boolean, an error —
 * cannot be turned back into the id the admin meant, so it is a row error naming the cell,
 * never a silently mangled id. Leading zeros survive when the id is text, or when the cell
 * is a number with a zero-padding format such as `000000` (Excel's own way to show them).
 *
 * XLSX cell shapes are those of exceljs 4 (`CellValue`): plain values, `{ richText: [...] }`,
 * `{ text, hyperlink }`, `{ formula, result }`, `{ sharedFormula, result }`, `{ error }`, and
 * `Date` for numbers with a date format.
 */

/** One cell as read from a file, before interpretation. CSV cells are always `text`. */
export type SheetCell =
  | { t: 'empty' }
  | { t: 'text'; text: string }
  | { t: 'number'; value: number; numFmt?: string | undefined }
  | { t: 'date'; value: Date }
  | { t: 'bool'; value: boolean }
  | { t: 'error'; error: string }
  | { t: 'formula-no-result'; formula: string };

/** How a cell is read: identifiers are strict, other text is lenient. */
export type CellKind = 'identifier' | 'text';

export type CellText = { ok: true; text: string } | { ok: false; reason: string };

const EMPTY: SheetCell = { t: 'empty' };

/** "1.23457E+19", "1,2E+15", "-4e3": how Excel writes large numbers in text exports. */
const SCIENTIFIC = /^[+-]?\d+(?:[.,]\d+)?[eE][+-]?\d+$/;
/** `="00123"`: the Excel trick to keep a value as text in a CSV file. */
const EXCEL_TEXT_FORMULA = /^="(.*)"$/s;
/** Excel keeps 15 significant digits; integers at or above this may have lost digits. */
const MAX_EXACT_EXCEL_INTEGER = 1e15;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !(v instanceof Date) && !Array.isArray(v);
}

/** Text of an exceljs rich-text value `{ richText: [{ text }] }`. */
function richTextOf(v: Record<string, unknown>): string | undefined {
  const parts = v.richText;
  if (!Array.isArray(parts)) return undefined;
  return parts.map(p => (isRecord(p) && typeof p.text === 'string' ? p.text : '')).join('');
}

/**
 * Normalise an exceljs cell value (and the cell's number format) to a `SheetCell`.
 * Unknown object shapes become `text` of their `text` property or an `error` cell.
 */
export function fromExcelValue(value: unknown, numFmt?: string): SheetCell {
  if (value === null || value === undefined) return EMPTY;
  if (typeof value === 'string') return value === '' ? EMPTY : { t: 'text', text: value };
  if (typeof value === 'number')
    return Number.isFinite(value)
      ? { t: 'number', value, numFmt }
      : { t: 'error', error: 'formula result is not a number' };
  if (typeof value === 'boolean') return { t: 'bool', value };
  if (value instanceof Date) return { t: 'date', value };
  if (!isRecord(value)) return { t: 'error', error: 'unsupported cell value' };
  if (typeof value.error === 'string') return { t: 'error', error: value.error };
  const rich = richTextOf(value);
  if (rich !== undefined) return rich === '' ? EMPTY : { t: 'text', text: rich };
  if ('formula' in value || 'sharedFormula' in value) {
    if (!('result' in value) || value.result === undefined || value.result === null) {
      const f = value.formula ?? value.sharedFormula;
      return { t: 'formula-no-result', formula: typeof f === 'string' ? f : '' };
    }
    return fromExcelValue(value.result, numFmt);
  }
  if ('hyperlink' in value || 'text' in value) {
    const text = value.text;
    if (typeof text === 'string') return text === '' ? EMPTY : { t: 'text', text };
    if (isRecord(text)) return fromExcelValue(text, numFmt);
    const link = value.hyperlink;
    if (typeof link === 'string') {
      const t = link.replace(/^mailto:/i, '');
      return t === '' ? EMPTY : { t: 'text', text: t };
    }
    return EMPTY;
  }
  return { t: 'error', error: 'unsupported cell value' };
}

/** The cell as the admin sees it, for reports (`value` column). */
export function cellDisplay(cell: SheetCell): string {
  switch (cell.t) {
    case 'empty':
      return '';
    case 'text':
      return cell.text;
    case 'number':
      return String(cell.value);
    case 'date':
      return isoDate(cell.value);
    case 'bool':
      return cell.value ? 'TRUE' : 'FALSE';
    case 'error':
      return cell.error;
    case 'formula-no-result':
      return `=${cell.formula}`;
  }
}

function isoDate(d: Date): string {
  const iso = d.toISOString();
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
}

/** Zero-padding number formats (`000000`): Excel's way of showing leading zeros. */
function zeroPadWidth(numFmt: string | undefined): number | undefined {
  if (!numFmt) return undefined;
  const m = /^"?(0+)"?$/.exec(numFmt.trim());
  return m?.[1]?.length;
}

/**
 * True for a cell Excel stores as a plain integer without a zero-padding format (a "General"
 * number): read as an identifier it gives `123` even when the district's id is `00123`, so
 * the planners check such ids against the store (docs/imports.md "Spreadsheet ids").
 */
export function isBareNumber(cell: SheetCell): boolean {
  return cell.t === 'number' && Number.isInteger(cell.value) && !zeroPadWidth(cell.numFmt);
}

/**
 * Interpret a cell as text of `kind`. Text is trimmed (non-breaking spaces included).
 * An empty cell is `{ ok: true, text: '' }`; the caller decides whether blank is allowed.
 */
export function cellText(cell: SheetCell, kind: CellKind): CellText {
  switch (cell.t) {
    case 'empty':
      return { ok: true, text: '' };
    case 'text': {
      let text = cell.text.replace(/^[\s\u00a0\ufeff]+|[\s\u00a0]+$/g, '');
      if (kind === 'identifier') {
        const m = EXCEL_TEXT_FORMULA.exec(text);
        if (m) text = (m[1] ?? '').trim();
        if (SCIENTIFIC.test(text)) {
          return {
            ok: false,
            reason:
              'identifier is in scientific notation: Excel converted it to a number and its ' +
              'digits are lost; format the column as Text in Excel and enter the ids again',
          };
        }
      }
      return { ok: true, text };
    }
    case 'number': {
      if (kind === 'text') return { ok: true, text: String(cell.value) };
      if (!Number.isInteger(cell.value)) {
        return {
          ok: false,
          reason: `identifier is the decimal number ${cell.value}; format the column as Text in Excel`,
        };
      }
      if (Math.abs(cell.value) >= MAX_EXACT_EXCEL_INTEGER) {
        return {
          ok: false,
          reason:
            'identifier is stored as a number of 16 or more digits; Excel keeps only 15 ' +
            'significant digits, so it may have changed; format the column as Text in Excel ' +
            'and enter the ids again',
        };
      }
      const digits = String(cell.value);
      const width = zeroPadWidth(cell.numFmt);
      return { ok: true, text: width ? digits.padStart(width, '0') : digits };
    }
    case 'date':
      if (kind === 'text') return { ok: true, text: isoDate(cell.value) };
      return {
        ok: false,
        reason: `Excel turned this identifier into the date ${isoDate(cell.value)}; format the column as Text in Excel`,
      };
    case 'bool':
      if (kind === 'text') return { ok: true, text: cell.value ? 'TRUE' : 'FALSE' };
      return { ok: false, reason: 'identifier is a TRUE/FALSE value' };
    case 'error':
      return { ok: false, reason: `cell contains the Excel error ${cell.error}` };
    case 'formula-no-result':
      return {
        ok: false,
        reason:
          'cell is a formula without a usable value (an Excel error such as #DIV/0! or #N/A, or never calculated); fix it in Excel and save the file again',
      };
  }
}
