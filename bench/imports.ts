/**
 * Benchmark child process: the 100,000-row association import preview (issue 6,
 * `src/imports/`). It works on copies of the store our initial sync left.
 *
 * - `setup` (not timed): copies the store twice (ours, baseline), gives up to `parents` accounts a
 *   district Unique ID (`IMP-000001`…, as a parent import would), and writes the CSV file
 *   (`Parent Unique ID,Student Unique ID`, `rows` rows; 0.5 % unknown parents, 0.5 % unknown
 *   students, 1 % repeated rows) beside them.
 * - `preview` (ours): `previewAssociationImport` on the file, exactly as the API/CLI call it.
 * - `baseline`: what a quick script does: read the CSV, then per row one read of the parent,
 *   one of the student and one of the link, and one autocommit write of a preview row.
 * - `limit`: the rows the preview plans to add, written by one raw insert in one transaction.
 */
import { copyFileSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { parse } from 'csv-parse/sync';
import { previewAssociationImport } from '../src/imports/service.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import { mulberry32 } from '../src/dev/prng.js';
import { BENCH_DISTRICT_ID, benchDistrict, type PartResult, type SisAccess } from './common.js';
import { emit, memoryOf, serve } from './ipc.js';

/** Files of the scenario (all under the run's work folder). */
export interface ImportFiles {
  /** Store after our initial sync (left untouched). */
  source: string;
  ours: string;
  baseline: string;
  limit: string;
  csv: string;
}

const CSV_NAME = 'associations.csv';

function setup(params: unknown): Promise<{ rows: number; parents: number; bytes: number }> {
  const p = params as { files: ImportFiles; rows: number; parents: number; seed: number };
  for (const target of [p.files.ours, p.files.baseline]) {
    for (const suffix of ['', '-wal', '-shm']) rmSync(target + suffix, { force: true });
    copyFileSync(p.files.source, target);
  }
  const rng = mulberry32(p.seed);
  const students: string[] = [];
  let parents = p.parents;
  for (const target of [p.files.ours, p.files.baseline]) {
    const db = new Database(target);
    db.transaction(() => {
      // Accounts picked by id order get IMP-… Unique IDs: the ids an earlier parent import gave.
      const ids = db
        .prepare(
          `SELECT id FROM parent_accounts WHERE district_id = ? AND status = 'active' ORDER BY id LIMIT ?`,
        )
        .pluck()
        .all(BENCH_DISTRICT_ID, p.parents) as string[];
      const set = db.prepare(
        `UPDATE parent_accounts SET unique_id = ? WHERE district_id = ? AND id = ?`,
      );
      ids.forEach((id, i) => set.run(uniqueIdOf(i), BENCH_DISTRICT_ID, id));
      parents = ids.length;
    })();
    if (students.length === 0) {
      const ids = db
        .prepare(`SELECT unique_id FROM students WHERE district_id = ? AND status = 'active'`)
        .pluck()
        .iterate(BENCH_DISTRICT_ID) as Iterable<string>;
      for (const id of ids) students.push(id);
    }
    db.close();
  }
  const lines = ['Parent Unique ID,Student Unique ID'];
  let last = '';
  for (let i = 0; i < p.rows; i++) {
    const r = rng.next();
    let line: string;
    if (r < 0.01 && last) line = last;
    else {
      const parent = r < 0.015 ? `NOPE-${i}` : uniqueIdOf(rng.int(0, parents - 1));
      const student =
        r > 0.995 ? `9${i}999` : (students[rng.int(0, students.length - 1)] ?? `9${i}999`);
      line = `${parent},${student}`;
    }
    lines.push(line);
    last = line;
  }
  const text = lines.join('\r\n') + '\r\n';
  writeFileSync(p.files.csv, text);
  return Promise.resolve({ rows: p.rows, parents, bytes: Buffer.byteLength(text) });
}

/** Data rows of the CSV (header skipped), as a quick script reads them. */
function csvRows(file: string): string[][] {
  const rows: unknown = parse(readFileSync(file), { from_line: 2 });
  return rows as string[][];
}

function uniqueIdOf(i: number): string {
  return `IMP-${String(i + 1).padStart(6, '0')}`;
}

async function preview(params: unknown): Promise<PartResult> {
  const p = params as { files: ImportFiles; sis: SisAccess; phase: string; rows: number };
  const store = new SqliteRosterStore(p.files.ours);
  await store.init();
  const district = benchDistrict(p.sis, 1000);
  const data = readFileSync(p.files.csv);
  try {
    const writes0 = store.writeCount();
    const t0 = performance.now();
    const result = await previewAssociationImport(
      { store, district: () => district },
      {
        districtId: district.id,
        file: { name: CSV_NAME, data },
        options: { hasHeaders: true, clearExisting: false },
      },
      {
        onProgress: rows => emit('progress', { phase: p.phase, done: rows, total: p.rows }),
      },
    );
    const wallMs = performance.now() - t0;
    return {
      wallMs,
      writes: store.writeCount() - writes0,
      peakRss: memoryOf('self')?.peakRss ?? process.memoryUsage().rss,
      details: {
        rows: result.rows,
        counts: result.counts,
        issueCount: result.issueCount,
        timings: result.timings,
      },
    };
  } finally {
    await store.close();
  }
}

/**
 * The naive per-row preview. Its cost per row is constant (the store has no index on a
 * student's Unique ID, so each row scans the students table), and at 500,000 students it
 * runs for over 45 minutes: with `sampleRows` it times the first `sampleRows` rows only and
 * reports the wall time projected to every row (`details.projected`).
 */
async function baseline(params: unknown): Promise<PartResult> {
  const p = params as { files: ImportFiles; sampleRows?: number };
  const store = new SqliteRosterStore(p.files.baseline);
  await store.init();
  const h = store.handle();
  if (h.kind !== 'sqlite') throw new Error('baseline store must be SQLite');
  const db = h.db;
  try {
    const t0 = performance.now();
    const all = csvRows(p.files.csv);
    const rows = p.sampleRows && p.sampleRows < all.length ? all.slice(0, p.sampleRows) : all;
    const parsedAt = performance.now(); // reading the file is done once, whatever the sample
    db.exec(`CREATE TABLE IF NOT EXISTS bench_preview_rows (row INTEGER, parent_id TEXT,
      student_sourced_id TEXT, action TEXT)`);
    const parent = db.prepare(
      `SELECT id FROM parent_accounts WHERE district_id = ? AND unique_id = ?`,
    );
    const student = db.prepare(
      `SELECT sourced_id FROM students WHERE district_id = ? AND unique_id = ?`,
    );
    const link = db.prepare(`SELECT status FROM guardian_links WHERE district_id = ?
      AND parent_id = ? AND student_sourced_id = ? AND origin = 'import'`);
    const write = db.prepare(`INSERT INTO bench_preview_rows VALUES (?, ?, ?, ?)`);
    let writes = 0;
    let reads = 0;
    rows.forEach(([parentUid = '', studentUid = ''], i) => {
      const pid = parent.pluck().get(BENCH_DISTRICT_ID, parentUid) as string | undefined;
      const sid = student.pluck().get(BENCH_DISTRICT_ID, studentUid) as string | undefined;
      const existing =
        pid && sid ? (link.pluck().get(BENCH_DISTRICT_ID, pid, sid) as string | undefined) : '';
      reads += 3;
      const action = !pid || !sid ? 'error' : existing === 'active' ? 'unchanged' : 'add';
      writes += write.run(i + 2, pid ?? null, sid ?? null, action).changes;
    });
    const measuredMs = performance.now() - t0;
    const scale = all.length / rows.length;
    return {
      wallMs: parsedAt - t0 + (performance.now() - parsedAt) * scale,
      writes: Math.round(writes * scale),
      peakRss: memoryOf('self')?.peakRss ?? process.memoryUsage().rss,
      details: {
        rows: all.length,
        reads: Math.round(reads * scale),
        ...(scale > 1 ? { projected: true, sampledRows: rows.length, measuredMs } : {}),
      },
    };
  } finally {
    await store.close();
  }
}

async function limit(params: unknown): Promise<PartResult> {
  const p = params as { files: ImportFiles };
  // The rows the preview plans to add (resolved here, not timed): import links.
  const src = new Database(p.files.ours, { readonly: true });
  const parentOf = new Map(
    (
      src
        .prepare(
          `SELECT unique_id, id FROM parent_accounts WHERE district_id = ? AND unique_id IS NOT NULL`,
        )
        .raw()
        .all(BENCH_DISTRICT_ID) as [string, string][]
    ).map(([u, id]) => [u, id]),
  );
  const studentOf = new Map(
    src
      .prepare(`SELECT unique_id, sourced_id FROM students WHERE district_id = ?`)
      .raw()
      .all(BENCH_DISTRICT_ID) as [string, string][],
  );
  src.close();
  const pairs = new Map<string, [string, string]>();
  for (const [pu = '', su = ''] of csvRows(p.files.csv)) {
    const pid = parentOf.get(pu);
    const sid = studentOf.get(su);
    if (pid && sid) pairs.set(`${pid}\u0000${sid}`, [pid, sid]);
  }
  for (const suffix of ['', '-wal', '-shm']) rmSync(p.files.limit + suffix, { force: true });
  const store = new SqliteRosterStore(p.files.limit);
  await store.init();
  const h = store.handle();
  if (h.kind !== 'sqlite') throw new Error('limit store must be SQLite');
  try {
    const insert = h.db.prepare(
      `INSERT INTO guardian_links VALUES (?, ?, ?, 'import', NULL, 'active')`,
    );
    const t0 = performance.now();
    h.db
      .transaction(() => {
        for (const [pid, sid] of pairs.values()) insert.run(BENCH_DISTRICT_ID, pid, sid);
      })
      .immediate();
    return {
      wallMs: performance.now() - t0,
      writes: pairs.size,
      peakRss: memoryOf('self')?.peakRss ?? process.memoryUsage().rss,
      details: { links: pairs.size },
    };
  } finally {
    await store.close();
  }
}

serve({ setup, preview, baseline, limit });
