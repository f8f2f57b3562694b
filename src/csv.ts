/**
 * The one formula neutraliser for every CSV the product writes (import reports, run rejects,
 * Parent Access Code exports, and any later download): spreadsheet formula injection (OWASP
 * "CSV Injection") is refused in one place.
 *
 * Use `SAFE_CSV_OPTIONS` (spread into csv-stringify's options) or `neutralizeCell` directly.
 */
import { Readable } from 'node:stream';
import { stringify, type Options, type Stringifier } from 'csv-stringify';

export type { Stringifier };

/**
 * A cell a spreadsheet could run as a formula: one starting — after any run of spaces, tabs,
 * line breaks, no-break or ideographic spaces (Excel and Sheets skip them) — with `=`, `+`,
 * `-`, `@` or their full-width forms `＝` `＋` `－` `＠`; or starting with a tab, CR or LF.
 * Sources: OWASP "CSV Injection"; csv-stringify's `escape_formulas` list (which misses the
 * leading-space forms).
 */
const FORMULA_START = /^(?:[\s\u00a0\u3000]*[=+\-@\uff1d\uff0b\uff0d\uff20]|[\t\r\n])/u;

/**
 * `value` prefixed with `'` when a spreadsheet could read it as a formula (see
 * `FORMULA_START`), so Excel and Sheets show it as text; other values unchanged.
 */
export function neutralizeCell(value: string): string {
  return FORMULA_START.test(value) ? `'${value}` : value;
}

/** csv-stringify options every CSV writer spreads into its own: string cells neutralised. */
export const SAFE_CSV_OPTIONS = {
  cast: { string: neutralizeCell },
} as const satisfies Options;

/**
 * `records` (read lazily, e.g. page by page from the store) as a CSV stream with a header of
 * `columns`, cells neutralised (`SAFE_CSV_OPTIONS`). An error while reading `records` calls
 * `onError` and destroys the returned stream with that error.
 */
export function csvStream(
  records: AsyncIterable<object>,
  columns: readonly string[],
  onError: (err: unknown) => void = () => undefined,
): Stringifier {
  const csv = stringify({ header: true, columns: [...columns], ...SAFE_CSV_OPTIONS });
  const source = Readable.from(records);
  source.on('error', err => {
    onError(err);
    csv.destroy(err);
  });
  source.pipe(csv);
  return csv;
}
