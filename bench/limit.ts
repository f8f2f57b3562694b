/**
 * Benchmark child process: the store's limit. It takes the final roster rows our run left
 * in its store (students, parent accounts, parent sources, guardian links), holds them in
 * memory (not timed), then writes them into an empty store of the same schema and
 * connection settings with one prepared INSERT per row inside ONE transaction: no reads,
 * no logic, no queue. Nothing that writes these rows through SQLite can be faster by much.
 */
import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { accessCodeRepository } from '../src/models/access-codes/index.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import { BENCH_DISTRICT_ID, type PartResult, type Progress } from './common.js';
import { emit, memoryOf, serve } from './ipc.js';

/** Parameters of `insert`. */
export interface LimitParams {
  /** Store whose rows are copied (our run's store after the scenario). */
  sourceFile: string;
  /** Fresh store file to write (replaced). */
  targetFile: string;
  phase: string;
}

/** Roster tables (and access codes, when the run issued some), in foreign-key order. */
const TABLES = [
  'students',
  'parent_accounts',
  'parent_sources',
  'guardian_links',
  'access_codes',
] as const;

async function insert(params: unknown): Promise<PartResult> {
  const p = params as LimitParams;
  const src = new Database(p.sourceFile, { readonly: true });
  const rows = new Map<string, unknown[][]>();
  let total = 0;
  const present = new Set(
    src.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).pluck().all() as string[],
  );
  for (const t of TABLES) {
    if (!present.has(t)) continue;
    const r = src
      .prepare(`SELECT * FROM ${t} WHERE district_id = ?`)
      .raw()
      .all(BENCH_DISTRICT_ID) as unknown[][];
    rows.set(t, r);
    total += r.length;
  }
  src.close();

  for (const suffix of ['', '-wal', '-shm']) rmSync(p.targetFile + suffix, { force: true });
  const store = new SqliteRosterStore(p.targetFile);
  await store.init();
  if (rows.get('access_codes')?.length) await accessCodeRepository(store); // its tables
  const h = store.handle();
  if (h.kind !== 'sqlite') throw new Error('limit store must be SQLite');
  const db = h.db;
  let done = 0;
  const progress = setInterval(
    () => emit('progress', { phase: p.phase, done, total } satisfies Progress),
    250,
  );
  try {
    const statements = TABLES.map(t => {
      const first = rows.get(t)?.[0];
      const width = first?.length ?? 0;
      return {
        table: t,
        stmt:
          width === 0
            ? undefined
            : db.prepare(`INSERT INTO ${t} VALUES (${Array(width).fill('?').join(', ')})`),
      };
    });
    const t0 = performance.now();
    db.transaction(() => {
      for (const { table, stmt } of statements) {
        if (!stmt) continue;
        for (const row of rows.get(table) ?? []) {
          stmt.run(...row);
          done++;
        }
      }
    }).immediate();
    const wallMs = performance.now() - t0;
    const peakRss = memoryOf('self')?.peakRss ?? process.memoryUsage().rss;
    return {
      wallMs,
      writes: total,
      peakRss,
      details: Object.fromEntries(TABLES.map(t => [t, rows.get(t)?.length ?? 0])),
    };
  } finally {
    clearInterval(progress);
    await store.close();
  }
}

serve({ insert });
