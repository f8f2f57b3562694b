/**
 * Import test bench: a real SQLite store in a temp folder, a real AppContext (real Redis with
 * a unique queue prefix), districts `d-1` … `d-n` (each test seeds and uses its own), and
 * seeding through the roster store itself.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, type AppContext } from '../../src/app.js';
import { DistrictConfig } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import { createLogger } from '../../src/logger.js';
import { importRepository } from '../../src/models/imports/index.js';
import type { ImportRepository } from '../../src/models/imports/types.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import type {
  GuardianLink,
  ParentAccount,
  RosterStore,
  StoredStudent,
} from '../../src/models/types.js';

export interface ImportBench {
  dir: string;
  store: SqliteRosterStore;
  ctx: AppContext;
  repo: ImportRepository;
  close(): Promise<void>;
}

/** District config used by the import tests (PowerSchool kind; no sync runs). */
export function importDistrict(id: string, over: Record<string, unknown> = {}): DistrictConfig {
  return DistrictConfig.parse({
    id,
    name: `District ${id}`,
    connector: {
      kind: 'powerschool',
      baseUrl: 'https://ps.example.org',
      clientIdEnv: 'PS_ID',
      clientSecretEnv: 'PS_SECRET',
    },
    roles: ['Guardian', 'Grandparent'],
    notifications: {
      activationEmails: false,
      portalBaseUrl: 'https://portal.example.org/activate?token={token}',
      from: 'no-reply@example.org',
    },
    ...over,
  });
}

export async function startImportBench(
  districts: DistrictConfig[],
  storeFile?: string,
): Promise<ImportBench> {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-imports-'));
  const file = storeFile ?? join(dir, 'store.db');
  const store = new SqliteRosterStore(file);
  await store.init();
  const env = parseEnv({
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    STORE_URL: `sqlite:${file}`,
    QUEUE_PREFIX: `gsync-imp-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  });
  const ctx = await createApp({ env, logger: createLogger(env.LOG_LEVEL), districts, store });
  const repo = await importRepository(store);
  return {
    dir,
    store,
    ctx,
    repo,
    async close() {
      for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
      await ctx.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Seed students, parent accounts and links of a district in one atomic chunk write. */
export async function seed(
  store: RosterStore,
  districtId: string,
  data: { students?: StoredStudent[]; parents?: ParentAccount[]; links?: GuardianLink[] },
): Promise<void> {
  await store.reconcileChunk(
    districtId,
    {
      connector: 'powerschool',
      studentSourcedIds: [],
      guardianSourcedIds: [],
      guardianUniqueIds: [],
      emailsNormalized: [],
    },
    () => ({
      students: (data.students ?? []).map(record => ({ action: 'create' as const, record })),
      parentCreates: data.parents ?? [],
      parentUpdates: [],
      links: (data.links ?? []).map(link => ({ action: 'add' as const, link })),
      linkRemovals: [],
      rejects: [],
      guardianAccounts: {},
    }),
    { dryRun: false },
  );
}

export function student(
  districtId: string,
  n: number,
  over: Partial<StoredStudent> = {},
): StoredStudent {
  return {
    districtId,
    sourcedId: `stu-${n}`,
    uniqueId: `S${String(n).padStart(5, '0')}`,
    givenName: `Kid${n}`,
    familyName: 'Family',
    schoolSourcedIds: ['sch-1'],
    status: 'active',
    ...over,
  };
}

export function sisParent(
  districtId: string,
  n: number,
  over: Partial<ParentAccount> = {},
): ParentAccount {
  const email = `parent${n}@example.org`;
  return {
    districtId,
    id: `pa_sis_${n}`,
    uniqueId: `P${String(n).padStart(5, '0')}`,
    givenName: `Parent${n}`,
    familyName: 'Family',
    email,
    emailNormalized: email,
    role: 'Parent',
    sisRole: 'parent',
    status: 'active',
    origin: 'sis',
    sources: [{ connector: 'powerschool', sourcedId: `g-${n}` }],
    lockedFields: [],
    ...over,
  };
}

/** Parent accounts, links and profiles of a district, for before/after comparisons. */
export async function snapshot(bench: ImportBench, districtId: string) {
  return {
    parents: await bench.store.getParents(districtId),
    links: await bench.store.getLinks(districtId),
    profiles: await bench.repo.getProfiles(districtId),
  };
}

/** CSV text from rows (cells quoted when needed), CRLF line ends like Excel. */
export function csv(rows: string[][], delimiter = ','): string {
  const cell = (c: string) =>
    /["\r\n]/.test(c) || c.includes(delimiter) ? `"${c.replace(/"/g, '""')}"` : c;
  return rows.map(r => r.map(cell).join(delimiter)).join('\r\n') + '\r\n';
}
