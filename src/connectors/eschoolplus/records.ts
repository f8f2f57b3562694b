/**
 * Reading eSchoolPLUS download-definition files (sis-reference §6.3): delimited text with
 * no quoting or escaping, so a value holding a raw line break or the delimiter breaks its
 * row. `RecordAssembler` turns physical lines back into records:
 *
 * - with an end-of-record marker (a last column the district appends with SQL, e.g. `#!#`),
 *   lines are joined until one ends with `<delimiter><marker>`;
 * - without one, lines are joined while the joined text has fewer fields than the
 *   definition's columns;
 * - a record with too many fields is repaired only when the file has one free-text column
 *   (e.g. `COMMENTS`) to take the extra delimiters; otherwise it is rejected.
 *
 * Records that cannot be repaired are returned as rejects with their physical line numbers
 * (1-based, header included), never dropped silently. When a join fails, the last line is
 * tried on its own so that one broken row does not take the next good row with it.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { pipeline } from 'node:stream';
import iconv from 'iconv-lite';

/** One repaired record: the values (marker column removed) and its physical lines. */
export interface FileRecord {
  values: string[];
  firstLine: number;
  lastLine: number;
  /** Extra delimiters were folded into the free-text column. */
  foldedDelimiters: boolean;
}

/** Physical lines that do not form a record. */
export interface LineReject {
  firstLine: number;
  lastLine: number;
  reason: string;
}

export interface AssemblerOptions {
  /** Data columns of the definition (the end-of-record column not counted). */
  columns: number;
  /** One character. */
  delimiter: string;
  /** The end-of-record column's literal value, or null. */
  marker: string | null;
  /** Index of the column that takes extra delimiters, if the file has one. */
  freeTextIndex?: number | undefined;
  /** Lines one record may span before its lines are rejected. Default 50. */
  maxLinesPerRecord?: number;
}

interface Line {
  text: string;
  no: number;
}

/** Reassembles records from physical lines (see the module header). Not reentrant. */
export class RecordAssembler {
  private buffer: Line[] = [];
  private readonly maxLines: number;
  private readonly tail: string | null;

  constructor(private readonly opts: AssemblerOptions) {
    this.maxLines = opts.maxLinesPerRecord ?? 50;
    this.tail = opts.marker === null ? null : `${opts.delimiter}${opts.marker}`;
  }

  /** Feed one physical line (without its line break). Returns what it completed. */
  push(text: string, no: number): { records: FileRecord[]; rejects: LineReject[] } {
    const out = { records: [] as FileRecord[], rejects: [] as LineReject[] };
    if (this.buffer.length === 0 && text.trim() === '') return out; // blank line between records
    this.buffer.push({ text, no });
    if (this.tail !== null) this.pushMarked(out);
    else this.pushUnmarked(out);
    return out;
  }

  /** End of file: an unfinished record is rejected. */
  end(): { records: FileRecord[]; rejects: LineReject[] } {
    const out = { records: [] as FileRecord[], rejects: [] as LineReject[] };
    if (this.buffer.length > 0) {
      this.rejectLines(
        out,
        this.buffer,
        this.tail !== null
          ? `no end-of-record marker "${this.opts.marker}" before the end of the file`
          : `row is incomplete at the end of the file (${this.fieldCount(this.joined(this.buffer))} of ${this.opts.columns} fields)`,
      );
      this.buffer = [];
    }
    return out;
  }

  private joined(lines: readonly Line[]): string {
    return lines.map(l => l.text).join('\n');
  }

  private fieldCount(text: string): number {
    return text.split(this.opts.delimiter).length;
  }

  private rejectLines(
    out: { rejects: LineReject[] },
    lines: readonly Line[],
    reason: string,
  ): void {
    const first = lines[0];
    const last = lines[lines.length - 1];
    if (first && last) out.rejects.push({ firstLine: first.no, lastLine: last.no, reason });
  }

  /**
   * Split `text` into exactly `columns` values: a trailing empty field (a delimiter at the end
   * of the row) is dropped; extra fields are folded into the free-text column when there is
   * one. Returns the values or why not.
   */
  private split(text: string): { values: string[]; folded: boolean } | { reason: string } {
    const { columns, delimiter, freeTextIndex } = this.opts;
    let fields = text.split(delimiter);
    if (fields.length === columns + 1 && fields[fields.length - 1] === '')
      fields = fields.slice(0, -1);
    if (fields.length === columns) return { values: fields, folded: false };
    if (fields.length > columns && freeTextIndex !== undefined && freeTextIndex < columns) {
      const extra = fields.length - columns;
      const merged = fields.slice(freeTextIndex, freeTextIndex + extra + 1).join(delimiter);
      return {
        values: [
          ...fields.slice(0, freeTextIndex),
          merged,
          ...fields.slice(freeTextIndex + extra + 1),
        ],
        folded: true,
      };
    }
    const why =
      fields.length > columns
        ? `a value holds the delimiter "${delimiter}" and the file has no free-text column to take it`
        : 'a value holds a line break that could not be rejoined';
    return { reason: `row has ${fields.length} fields, the definition has ${columns}: ${why}` };
  }

  private emit(
    out: { records: FileRecord[] },
    lines: readonly Line[],
    r: { values: string[]; folded: boolean },
  ): void {
    const first = lines[0];
    const last = lines[lines.length - 1];
    if (first && last)
      out.records.push({
        values: r.values,
        firstLine: first.no,
        lastLine: last.no,
        foldedDelimiters: r.folded,
      });
  }

  private pushMarked(out: { records: FileRecord[]; rejects: LineReject[] }): void {
    const tail = this.tail ?? '';
    const last = this.buffer[this.buffer.length - 1];
    if (!last) return;
    const ended = last.text.trimEnd().endsWith(tail);
    if (!ended) {
      if (this.buffer.length >= this.maxLines) {
        this.rejectLines(
          out,
          this.buffer,
          `no end-of-record marker "${this.opts.marker}" within ${this.maxLines} lines`,
        );
        this.buffer = [];
      }
      return;
    }
    const lines = this.buffer;
    this.buffer = [];
    const strip = (s: string) => {
      const t = s.trimEnd();
      return t.slice(0, t.length - tail.length);
    };
    const whole = this.split(strip(this.joined(lines)));
    if ('values' in whole) {
      this.emit(out, lines, whole);
      return;
    }
    if (lines.length > 1) {
      // The earlier lines may be a row that lost its marker: keep the last line if it is a row.
      const alone = this.split(strip(last.text));
      if ('values' in alone) {
        this.rejectLines(
          out,
          lines.slice(0, -1),
          `no end-of-record marker "${this.opts.marker}" (the row is cut short or broken)`,
        );
        this.emit(out, [last], alone);
        return;
      }
    }
    this.rejectLines(out, lines, whole.reason);
  }

  private pushUnmarked(out: { records: FileRecord[]; rejects: LineReject[] }): void {
    const { columns } = this.opts;
    for (;;) {
      const lines = this.buffer;
      const text = this.joined(lines);
      const n = this.fieldCount(text);
      if (n < columns) {
        if (lines.length >= this.maxLines) {
          this.rejectLines(
            out,
            lines,
            `row has ${n} fields after joining ${lines.length} lines, the definition has ${columns}`,
          );
          this.buffer = [];
        }
        return;
      }
      const r = this.split(text);
      if ('values' in r) {
        this.emit(out, lines, r);
        this.buffer = [];
        return;
      }
      if (lines.length === 1) {
        this.rejectLines(out, lines, r.reason);
        this.buffer = [];
        return;
      }
      // Joining overshot: the earlier lines are a broken row; start again from the last line.
      this.rejectLines(
        out,
        lines.slice(0, -1),
        `row has ${this.fieldCount(this.joined(lines.slice(0, -1)))} fields, the definition has ${columns}, and the next line does not complete it`,
      );
      this.buffer = lines.slice(-1);
    }
  }
}

/**
 * Physical lines of a file decoded with `encoding` (iconv-lite; a UTF-8/UTF-16 BOM is
 * dropped). Line breaks are `\r\n`, `\n` or a lone `\r`. Yields `[text, lineNumber]`; throws
 * the file system's error (e.g. `ENOENT`) when the file cannot be read.
 */
export async function* fileLines(path: string, encoding: string): AsyncGenerator<[string, number]> {
  const raw = createReadStream(path);
  const input = iconv.decodeStream(encoding);
  // pipeline(), not pipe(): a read error (a file that vanished, an I/O error) destroys the
  // decoder with it, so the line reader throws instead of waiting forever.
  pipeline(raw, input, () => undefined);
  const rl = createInterface({ input, crlfDelay: Infinity });
  let no = 0;
  try {
    for await (const line of rl) yield [line, ++no];
  } finally {
    rl.close();
    raw.destroy();
  }
}

/** The first line of a file split by `delimiter` and trimmed (trailing empty names dropped); [] when empty. */
export async function readHeader(
  path: string,
  encoding: string,
  delimiter: string,
): Promise<string[]> {
  for await (const [line] of fileLines(path, encoding)) {
    const names = line.split(delimiter).map(n => n.trim());
    while (names.length > 0 && names[names.length - 1] === '') names.pop();
    return names;
  }
  return [];
}

/**
 * Does the file carry the end-of-record marker column? Looks at up to `maxLines` physical
 * lines after the first `skip` (the header): true when one of them ends with
 * `<delimiter><marker>` (trailing spaces ignored), or when there are no data lines to judge by.
 */
export async function hasMarkerColumn(
  path: string,
  opts: { encoding: string; delimiter: string; marker: string; skip: number; maxLines?: number },
): Promise<boolean> {
  const tail = `${opts.delimiter}${opts.marker}`;
  const max = opts.maxLines ?? 50;
  let looked = 0;
  for await (const [line, no] of fileLines(path, opts.encoding)) {
    if (no <= opts.skip || line.trim() === '') continue;
    if (line.trimEnd().endsWith(tail)) return true;
    if (++looked >= max) break;
  }
  return looked === 0;
}
