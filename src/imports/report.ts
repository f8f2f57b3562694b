/** The downloadable row report of an import: every row issue as CSV. */
import { stringify } from 'csv-stringify/sync';
import { neutralizeCell, SAFE_CSV_OPTIONS } from '../csv.js';
import type { RowIssue } from '../reconcile/import-plan.js';

/** Columns of the report, in order. */
export const REPORT_COLUMNS = ['file', 'row', 'column', 'value', 'severity', 'reason'] as const;

/**
 * File values are echoed in the report, so formula injection matters here: cells go through
 * the product's one neutraliser (src/csv.ts).
 */
export { neutralizeCell };

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
      ...SAFE_CSV_OPTIONS,
      record_delimiter: 'windows',
    })
  );
}
