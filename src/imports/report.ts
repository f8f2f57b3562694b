/** The downloadable row report of an import: every row issue as CSV. */
import { stringify } from 'csv-stringify/sync';
import type { RowIssue } from '../reconcile/import-plan.js';

/** Columns of the report, in order. */
export const REPORT_COLUMNS = ['file', 'row', 'column', 'value', 'severity', 'reason'] as const;

/**
 * Spreadsheet formula injection: a cell starting with `=`, `+`, `-`, `@`, tab or CR is
 * prefixed with `'` so Excel and Sheets show it as text (OWASP "CSV Injection"). File values
 * are echoed in the report, so this matters here.
 */
export function neutralizeCell(value: string): string {
  return /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}

/**
 * The issues as CSV text (UTF-8 with BOM so Excel opens accented names correctly; CRLF line
 * ends), header row first, sorted by row.
 */
export function issuesCsv(issues: readonly RowIssue[]): string {
  const rows = [...issues]
    .sort((a, b) => a.row - b.row)
    .map(i => [i.file, String(i.row), i.column, i.value, i.severity, i.reason]);
  return (
    '\ufeff' +
    stringify([[...REPORT_COLUMNS], ...rows], {
      record_delimiter: 'windows',
      cast: { string: neutralizeCell },
    })
  );
}
