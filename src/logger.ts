/**
 * One pino root logger; callers bind scope with `logger.child({...})`, never by string.
 *
 * Logs go to **stderr** (stdout is for command output). Format (`LOG_FORMAT`): `json` — one
 * JSON object per line, for log collectors; `pretty` — one human-readable line per entry
 * (`16:40:02.113 WARN  [workers] job failed queue=pull jobId=7 err="…"`); `auto` (default) —
 * pretty when stderr is a terminal, JSON otherwise. The pretty formatter is a small pino
 * destination below (pino-pretty is not a dependency); it formats after redaction, so it
 * never shows what JSON would hide.
 */
import { pino, type Logger } from 'pino';

/** Paths redacted from every log line: secrets and personal data never reach logs. */
export const REDACT_PATHS = [
  'password',
  'clientSecret',
  'token',
  'access_token',
  'authorization',
  'headers.authorization',
  '*.password',
  '*.clientSecret',
  '*.email',
];

/** `LOG_FORMAT` values (src/config/env.ts). */
export type LogFormat = 'auto' | 'json' | 'pretty';

export interface LoggerOptions {
  /** Where lines go; default stderr (fd 2, synchronous writes). */
  destination?: pino.DestinationStream;
  /** Default `LOG_FORMAT` from the process environment, else `auto`. */
  format?: LogFormat;
  /** For `auto`: is the output a terminal? Default `process.stderr.isTTY`. */
  isTTY?: boolean;
}

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** Keys pino writes itself; the pretty line shows them in its own way or not at all. */
const OWN_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'component']);

function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  return JSON.stringify(v);
}

/**
 * Format one pino JSON line as `HH:MM:SS.mmm LEVEL [component] msg key=value…` (local
 * time). A line that is not a JSON object is returned unchanged.
 */
export function prettyLine(json: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(json);
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
    return json.endsWith('\n') ? json : `${json}\n`;
  const e = entry as Record<string, unknown>;
  const time = typeof e.time === 'number' ? new Date(e.time) : new Date();
  const hh = (n: number, w = 2) => String(n).padStart(w, '0');
  const clock = `${hh(time.getHours())}:${hh(time.getMinutes())}:${hh(time.getSeconds())}.${hh(time.getMilliseconds(), 3)}`;
  const level = (typeof e.level === 'number' ? LEVEL_NAMES[e.level] : undefined) ?? 'LOG';
  const component = typeof e.component === 'string' ? ` [${e.component}]` : '';
  const msg = typeof e.msg === 'string' ? ` ${e.msg}` : '';
  const rest = Object.entries(e)
    .filter(([k]) => !OWN_KEYS.has(k))
    .map(([k, v]) => `${k}=${prettyValue(v)}`)
    .join(' ');
  return `${clock} ${level.padEnd(5)}${component}${msg}${rest ? ` ${rest}` : ''}\n`;
}

/** A pino destination that writes `prettyLine(line)` to `target`. */
export function prettyDestination(target: pino.DestinationStream): pino.DestinationStream {
  return { write: (line: string) => target.write(prettyLine(line)) };
}

/** Resolve `auto` against the terminal test. */
export function resolveLogFormat(format: LogFormat, isTTY: boolean): 'json' | 'pretty' {
  return format === 'auto' ? (isTTY ? 'pretty' : 'json') : format;
}

function formatFromEnv(): LogFormat {
  const v = process.env.LOG_FORMAT;
  return v === 'json' || v === 'pretty' ? v : 'auto';
}

/**
 * The root logger at `level` (a pino level name). The second argument is a destination
 * (kept for existing callers: JSON lines written there as they are) or `LoggerOptions`.
 */
export function createLogger(
  level: string,
  destinationOrOptions?: pino.DestinationStream | LoggerOptions,
): Logger {
  const opts: LoggerOptions =
    destinationOrOptions && 'write' in destinationOrOptions
      ? { destination: destinationOrOptions, format: 'json' }
      : (destinationOrOptions ?? {});
  const target = opts.destination ?? pino.destination({ fd: 2, sync: true });
  const format = resolveLogFormat(
    opts.format ?? formatFromEnv(),
    opts.isTTY ?? process.stderr.isTTY === true,
  );
  return pino(
    { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    format === 'pretty' ? prettyDestination(target) : target,
  );
}
