/**
 * Benchmark part: preview (and confirm) of a 100,000-row association import on SQLite.
 *
 *   npx tsx bench/import-associations.ts [--rows 100000] [--confirm]
 *
 * Seeds a temp SQLite store with `rows` students and `rows` parent accounts (and one `sis`
 * link per student, so "clear" has work to do), writes a CSV of `rows` parent↔student pairs,
 * and times `previewAssociationImport` (read + bulk state load + plan + store the preview)
 * and optionally `confirmImport`. Prints one JSON line. `measureAssociationImport` is exported
 * for the benchmark runner.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AppContext } from '../src/app.js';
import { DistrictConfig } from '../src/config/district.js';
import { createLogger } from '../src/logger.js';
import { confirmImport, previewAssociationImport } from '../src/imports/service.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import type { GuardianLink, ParentAccount, StoredStudent } from '../src/models/types.js';

export interface ImportMeasurement {
  rows: number;
  fileBytes: number;
  seedMs: number;
  previewMs: number;
  previewRowsPerSec: number;
  /** CPU time (user + system) of the preview: robust on a loaded machine. */
  previewCpuMs: number;
  confirmMs?: number | undefined;
  writes?: number | undefined;
  peakRssMb: number;
  counts: Record<string, number>;
  /** The preview's own step timings (read, load, plan, save). */
  timings: Record<string, number>;
}

const DISTRICT = 'bench-imports';

/** Seed, write the file, preview (and optionally confirm); returns the figures. */
export async function measureAssociationImport(
  rows: number,
  opts: { confirm?: boolean; clearExisting?: boolean } = {},
): Promise<ImportMeasurement> {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-bench-imports-'));
  const store = new SqliteRosterStore(join(dir, 'store.db'));
  let peak = process.memoryUsage().rss;
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50);
  try {
    await store.init();
    const district = DistrictConfig.parse({
      id: DISTRICT,
      name: 'Bench',
      connector: {
        kind: 'powerschool',
        baseUrl: 'https://ps.example.org',
        clientIdEnv: 'A',
        clientSecretEnv: 'B',
      },
    });
    // Only what the import services use; confirm does not queue emails for associations.
    const ctx = {
      store,
      district: () => district,
      logger: createLogger('silent'),
    } as unknown as AppContext;

    const t0 = performance.now();
    const CHUNK = 5000;
    for (let start = 0; start < rows; start += CHUNK) {
      const students: StoredStudent[] = [];
      const parents: ParentAccount[] = [];
      const links: GuardianLink[] = [];
      for (let i = start; i < Math.min(rows, start + CHUNK); i++) {
        students.push({
          districtId: DISTRICT,
          sourcedId: `stu-${i}`,
          uniqueId: `S${i}`,
          givenName: 'Kid',
          familyName: `F${i}`,
          schoolSourcedIds: ['sch-1'],
          status: 'active',
        });
        parents.push({
          districtId: DISTRICT,
          id: `pa_${i}`,
          uniqueId: `P${i}`,
          givenName: 'Parent',
          familyName: `F${i}`,
          role: 'Parent',
          status: 'active',
          origin: 'sis',
          sources: [],
          lockedFields: [],
        });
        links.push({
          districtId: DISTRICT,
          parentId: `pa_${(i + 1) % rows}`,
          studentSourcedId: `stu-${i}`,
          origin: 'sis',
          status: 'active',
        });
      }
      await store.reconcileChunk(
        DISTRICT,
        {
          connector: 'powerschool',
          studentSourcedIds: [],
          guardianSourcedIds: [],
          guardianUniqueIds: [],
          emailsNormalized: [],
        },
        () => ({
          students: students.map(record => ({ action: 'create' as const, record })),
          parentCreates: parents,
          parentUpdates: [],
          links: links.map(link => ({ action: 'add' as const, link })),
          linkRemovals: [],
          rejects: [],
          guardianAccounts: {},
        }),
        { dryRun: false },
      );
    }
    const seedMs = performance.now() - t0;

    const lines = ['Parent Unique ID,Student Unique ID'];
    for (let i = 0; i < rows; i++) lines.push(`P${i},S${i}`);
    const data = Buffer.from(lines.join('\r\n') + '\r\n');

    const t1 = performance.now();
    const cpu1 = process.cpuUsage();
    const preview = await previewAssociationImport(ctx, {
      districtId: DISTRICT,
      file: { name: 'associations.csv', data },
      options: { clearExisting: opts.clearExisting ?? true },
    });
    const previewMs = performance.now() - t1;
    const cpu = process.cpuUsage(cpu1);
    const previewCpuMs = (cpu.user + cpu.system) / 1000;
    let confirmMs: number | undefined;
    let writes: number | undefined;
    if (opts.confirm) {
      const t2 = performance.now();
      const r = await confirmImport(ctx, { districtId: DISTRICT, previewId: preview.previewId });
      confirmMs = performance.now() - t2;
      if (r.status !== 'applied') throw new Error(`confirm: ${r.status}`);
      writes = r.writes;
    }
    return {
      rows,
      fileBytes: data.length,
      seedMs: Math.round(seedMs),
      previewMs: Math.round(previewMs),
      previewRowsPerSec: Math.round(rows / (previewMs / 1000)),
      previewCpuMs: Math.round(previewCpuMs),
      confirmMs: confirmMs === undefined ? undefined : Math.round(confirmMs),
      writes,
      peakRssMb: Math.round(peak / 1024 / 1024),
      counts: preview.counts,
      timings: preview.timings,
    };
  } finally {
    clearInterval(sample);
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const isMain = process.argv[1]?.endsWith('import-associations.ts') ?? false;
if (isMain) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i === -1 ? undefined : process.argv[i + 1];
  };
  const rows = Number(arg('--rows') ?? 100_000);
  const m = await measureAssociationImport(rows, { confirm: process.argv.includes('--confirm') });
  console.log(JSON.stringify(m));
}
