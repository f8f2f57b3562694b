/**
 * The SIS kinds of the delta and slow-SIS scenarios (issue 15): for each, its fake server (in
 * this process, with optional standing latency and request-rate cap, `SisLimits`) and the
 * district config that points the product's connector at it. Used by `bench/deltas.ts` and
 * `bench/slow-sis.ts`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeAeries } from '../src/dev/aeries-server.js';
import type { SyntheticDistrict } from '../src/dev/district-generator.js';
import { ESCHOOL_RELATION_CODES } from '../src/dev/eschoolplus-adapter.js';
import { writeESchoolFiles } from '../src/dev/eschoolplus-files.js';
import type { SisLimits } from '../src/dev/faults.js';
import { startFakeOneRoster } from '../src/dev/oneroster-server.js';
import { startFakePowerSchool } from '../src/dev/powerschool-server.js';
import { startFakeSkyward } from '../src/dev/skyward-server.js';

/** The connectors the slow-SIS scenario compares (issue 15 §"A slow, rate-limited SIS"). */
export const SIS_KINDS = [
  'powerschool',
  'infinite-campus',
  'aeries',
  'skyward-oneroster',
  'skyward-lms',
  'eschoolplus',
] as const;
export type SisKind = (typeof SIS_KINDS)[number];

/** Human name of each kind, for the printed tables. */
export const SIS_TITLES: Record<SisKind, string> = {
  powerschool: 'PowerSchool (bulk reads)',
  'infinite-campus': 'Infinite Campus (OneRoster 1.2)',
  aeries: 'Aeries (REST v5)',
  'skyward-oneroster': 'Skyward OneRoster (1.1)',
  'skyward-lms': 'Skyward LMS API',
  eschoolplus: 'eSchoolPLUS files',
};

/** A started fake SIS with the district (raw, unvalidated) that syncs from it. */
export interface StartedSis {
  kind: SisKind;
  /** `connector` object of a district file (without id/name). */
  connector: Record<string, unknown>;
  /** Values of the environment variables the connector names. */
  secrets: Record<string, string>;
  /** HTTP requests the server received so far (token requests included); 0 for files. */
  requests(): number;
  /** Requests the server refused with 429 (its rate cap or injected faults). */
  refused(): number;
  /** Records the server delivered so far, when it counts them (OneRoster, Aeries). */
  recordsServed(): number | undefined;
  close(): Promise<void>;
}

/** Options of `startSis`. */
export interface StartSisOptions {
  /** Standing latency / rate cap of the server. */
  limits?: SisLimits | undefined;
  /** `deltas.enabled` of the district (Aeries, Infinite Campus). */
  deltas?: boolean | undefined;
  /** Client-side request rate the district is configured with (REST clients that have one). */
  maxRequestsPerSecond?: number | undefined;
  /** Students per chunk / page. Default 1000. */
  pageSize?: number | undefined;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

/**
 * Start the fake SIS of `kind` over `d` on 127.0.0.1 and return the district config for it.
 * Rejects when the server cannot listen or (eSchoolPLUS) the files cannot be written.
 */
export async function startSis(
  kind: SisKind,
  d: SyntheticDistrict,
  o: StartSisOptions = {},
): Promise<StartedSis> {
  const pageSize = o.pageSize ?? 1000;
  const common = { retries: 5, timeoutMs: 120000 };
  switch (kind) {
    case 'powerschool': {
      const f = await startFakePowerSchool(d, { maxPageSize: pageSize, limits: o.limits });
      return {
        kind,
        connector: {
          kind: 'powerschool',
          baseUrl: f.url,
          clientIdEnv: 'BENCH_PS_ID',
          clientSecretEnv: 'BENCH_PS_SECRET',
          pageSize,
          guardianReads: 'bulk',
          ...common,
        },
        secrets: { BENCH_PS_ID: f.clientId, BENCH_PS_SECRET: f.clientSecret },
        requests: () => f.stats.requests,
        refused: () => f.stats.byStatus['429'] ?? 0,
        recordsServed: () => undefined,
        close: () => f.close(),
      };
    }
    case 'infinite-campus':
    case 'skyward-oneroster': {
      const ic = kind === 'infinite-campus';
      const f = await startFakeOneRoster(d, {
        version: ic ? '1.2' : '1.1',
        style: ic ? 'infinite-campus' : 'plain',
        auth: 'oauth2',
        maxPageSize: pageSize,
        limits: o.limits,
      });
      const rate =
        o.maxRequestsPerSecond === undefined
          ? {}
          : { maxRequestsPerSecond: o.maxRequestsPerSecond };
      return {
        kind,
        connector: ic
          ? {
              kind: 'infinite-campus',
              version: '1.2',
              baseUrl: f.baseUrl,
              tokenUrl: f.tokenUrl,
              clientIdEnv: 'BENCH_OR_ID',
              clientSecretEnv: 'BENCH_OR_SECRET',
              pageSize,
              deltas: { enabled: o.deltas ?? false },
              ...rate,
              ...common,
            }
          : {
              kind: 'skyward',
              api: 'oneroster',
              baseUrl: f.baseUrl,
              tokenUrl: f.tokenUrl,
              clientIdEnv: 'BENCH_OR_ID',
              clientSecretEnv: 'BENCH_OR_SECRET',
              pageSize,
              ...rate,
              ...common,
            },
        secrets: { BENCH_OR_ID: f.clientId, BENCH_OR_SECRET: f.clientSecret },
        requests: () => f.stats.requests,
        refused: () => f.stats.byStatus['429'] ?? 0,
        recordsServed: () => sum(f.stats.recordsServed),
        close: () => f.close(),
      };
    }
    case 'aeries': {
      const f = await startFakeAeries(d, { limits: o.limits });
      return {
        kind,
        connector: {
          kind: 'aeries',
          baseUrl: f.url,
          certEnv: 'BENCH_AERIES_CERT',
          studentsPerRequest: 5000,
          pageSize,
          deltas: { enabled: o.deltas ?? false },
          ...common,
        },
        secrets: { BENCH_AERIES_CERT: f.cert },
        requests: () => f.stats.requests,
        refused: () => f.stats.byStatus['429'] ?? 0,
        recordsServed: () => f.stats.recordsServed,
        close: () => f.close(),
      };
    }
    case 'skyward-lms': {
      const f = await startFakeSkyward(d, { limits: o.limits });
      return {
        kind,
        connector: {
          kind: 'skyward',
          api: 'lms',
          baseUrl: f.baseUrl,
          clientIdEnv: 'BENCH_SKY_ID',
          clientSecretEnv: 'BENCH_SKY_SECRET',
          usernameEnv: 'BENCH_SKY_KEY',
          passwordEnv: 'BENCH_SKY_KEY_SECRET',
          pageSize,
          ...(o.maxRequestsPerSecond === undefined
            ? {}
            : { maxRequestsPerSecond: o.maxRequestsPerSecond }),
          ...common,
        },
        secrets: {
          BENCH_SKY_ID: f.clientId,
          BENCH_SKY_SECRET: f.clientSecret,
          BENCH_SKY_KEY: f.username,
          BENCH_SKY_KEY_SECRET: f.password,
        },
        requests: () => f.stats.requests,
        refused: () => f.stats.byStatus['429'] ?? 0,
        recordsServed: () => undefined,
        close: () => f.close(),
      };
    }
    case 'eschoolplus': {
      const dir = mkdtempSync(join(tmpdir(), 'gsync-bench-esp-'));
      await writeESchoolFiles(d, { dir });
      return {
        kind,
        connector: {
          kind: 'eschoolplus',
          source: { type: 'folder', path: dir },
          files: { studentContacts: { name: 'REG_STU_CONTACT.txt' } },
          links: 'student-contact',
          format: { endOfRecordMarker: '#!#' },
          relationCodes: ESCHOOL_RELATION_CODES,
          pageSize,
        },
        secrets: {},
        requests: () => 0,
        refused: () => 0,
        recordsServed: () => undefined,
        close: () => {
          rmSync(dir, { recursive: true, force: true });
          return Promise.resolve();
        },
      };
    }
  }
}
