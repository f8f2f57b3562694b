/**
 * Shared pieces of the benchmark parts: the district configuration every part syncs with,
 * the SIS connection they are given, and the shape of each part's measurement.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { DistrictConfig } from '../src/config/district.js';
import { ESCHOOL_RELATION_CODES } from '../src/dev/eschoolplus-adapter.js';

/** District id used in every benchmark store. */
export const BENCH_DISTRICT_ID = 'bench-district';

/** How a part reaches the fake SIS (from `bench/sis-server.ts` `start`). */
export interface SisAccess {
  url: string;
  clientId: string;
  clientSecret: string;
}

/** Environment-variable names the district file points at (values passed as secrets). */
export const SECRET_NAMES = { id: 'BENCH_PS_CLIENT_ID', secret: 'BENCH_PS_CLIENT_SECRET' };

/**
 * The benchmark district: PowerSchool at `sis.url`, bulk contact reads, students page size
 * `pageSize` (capped by the plugin maximum the fake server reports), default policies.
 */
export function benchDistrict(sis: SisAccess, pageSize: number): DistrictConfig {
  return DistrictConfig.parse({
    id: BENCH_DISTRICT_ID,
    name: 'Benchmark Unified School District',
    connector: {
      kind: 'powerschool',
      baseUrl: sis.url,
      clientIdEnv: SECRET_NAMES.id,
      clientSecretEnv: SECRET_NAMES.secret,
      pageSize,
      guardianReads: 'bulk',
      retries: 2,
      timeoutMs: 120000,
    },
  });
}

/**
 * The link-less benchmark district: eSchoolPLUS files in `dir` (written by the fake SIS
 * without REG_STU_CONTACT, so no links), access codes enabled: every active student gets a
 * code at finalize (issue 5).
 */
export function eschoolDistrict(dir: string, pageSize: number): DistrictConfig {
  return DistrictConfig.parse({
    id: BENCH_DISTRICT_ID,
    name: 'Benchmark Unified School District (eSchoolPLUS)',
    connector: {
      kind: 'eschoolplus',
      source: { type: 'folder', path: dir },
      format: { endOfRecordMarker: '#!#' },
      relationCodes: ESCHOOL_RELATION_CODES,
      pageSize,
    },
    accessCodes: { enabled: true },
  });
}

/** Which district a part syncs: the PowerSchool one, or the eSchoolPLUS file set in a folder. */
export type BenchSource = { kind: 'powerschool' } | { kind: 'eschoolplus'; dir: string };

/** The district config for `source`. */
export function districtFor(source: BenchSource, sis: SisAccess, pageSize: number): DistrictConfig {
  return source.kind === 'eschoolplus'
    ? eschoolDistrict(source.dir, pageSize)
    : benchDistrict(sis, pageSize);
}

/** Secrets map for `benchDistrict`. */
export function benchSecrets(sis: SisAccess): NodeJS.ProcessEnv {
  return { [SECRET_NAMES.id]: sis.clientId, [SECRET_NAMES.secret]: sis.clientSecret };
}

/** One part's measurement (our pipeline, the naive baseline or the raw-insert limit). */
export interface PartResult {
  /** Wall time of the measured work, ms. */
  wallMs: number;
  /** Roster rows/documents written (`writeCount()` or the part's own count). */
  writes: number;
  /** Peak resident set of the part's process while it worked, bytes (VmHWM). */
  peakRss: number;
  /** Anything else worth keeping in the JSON (run status, counts, timings…). */
  details: Record<string, unknown>;
}

/** Progress event payload: `done` of `total` units (students, rows) in `phase`. */
export interface Progress {
  phase: string;
  done: number;
  total: number;
}

/**
 * The bench district's last change-log sequence number in a SQLite store file (0 when the
 * file, the table or the district's counter does not exist yet): the raw-insert limit copies
 * only the log entries a scenario's run appended after it (bench/limit.ts).
 */
export function lastChangeSeq(file: string): number {
  if (!existsSync(file)) return 0;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const has = db
      .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'change_seq'`)
      .get();
    if (!has) return 0;
    const row = db
      .prepare(`SELECT last FROM change_seq WHERE district_id = ?`)
      .get(BENCH_DISTRICT_ID) as { last: number } | undefined;
    return row?.last ?? 0;
  } finally {
    db.close();
  }
}
