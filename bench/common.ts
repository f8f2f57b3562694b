/**
 * Shared pieces of the benchmark parts: the district configuration every part syncs with,
 * the SIS connection they are given, and the shape of each part's measurement.
 */
import { DistrictConfig } from '../src/config/district.js';

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
