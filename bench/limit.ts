/**
 * Benchmark child process: the store's limit. It takes the final rows our run left in its
 * store — the roster (students, parent accounts, parent sources, guardian links, access
 * codes) and the change-log rows this run appended (`change_batches`, `change_log` after
 * `logSinceSeq`: since issue 13 every change is also a log entry written in the change's own
 * transaction, so they are rows the run must write) — holds them in memory (not timed), then
 * writes them into an empty store of the same schema, triggers and connection settings with
 * one prepared INSERT per row inside ONE transaction: no reads, no logic, no queue. Nothing
 * that writes these rows through SQLite can be faster by much. `details.logMs` is the part of
 * the time spent on the log rows (before the commit), so the roster-only limit can be shown
 * beside it.
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
  /** Change-log sequence number of the district before our run (its entries come after). */
  logSinceSeq?: number;
}

/** Roster tables (and access codes, when the run issued some), in foreign-key order. */
const TABLES = [
  'students',
  'parent_accounts',
  'parent_sources',
  'guardian_links',
  'access_codes',
] as const;

/** The change-log tables, written after the roster (entries reference their batch). */
const LOG_TABLES = ['change_batches', 'change_log'] as const;

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
  const since = p.logSinceSeq ?? 0;
  let logTotal = 0;
  if (present.has('change_log')) {
    const logRows = {
      change_batches: src
        .prepare(`SELECT * FROM change_batches WHERE district_id = ? AND last_seq > ? ORDER BY id`)
        .raw()
        .all(BENCH_DISTRICT_ID, since) as unknown[][],
      change_log: src
        .prepare(`SELECT * FROM change_log WHERE district_id = ? AND seq > ? ORDER BY seq`)
        .raw()
        .all(BENCH_DISTRICT_ID, since) as unknown[][],
    };
    for (const t of LOG_TABLES) {
      rows.set(t, logRows[t]);
      logTotal += logRows[t].length;
    }
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
    () => emit('progress', { phase: p.phase, done, total: total + logTotal } satisfies Progress),
    250,
  );
  try {
    const statements = [...TABLES, ...LOG_TABLES].map(t => {
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
    let logStart = t0;
    let logEnd = t0;
    db.transaction(() => {
      for (const { table, stmt } of statements) {
        if (table === LOG_TABLES[0]) logStart = performance.now();
        if (!stmt) continue;
        for (const row of rows.get(table) ?? []) {
          stmt.run(...row);
          done++;
        }
      }
      logEnd = performance.now();
    }).immediate();
    const wallMs = performance.now() - t0;
    const peakRss = memoryOf('self')?.peakRss ?? process.memoryUsage().rss;
    return {
      wallMs,
      writes: total,
      peakRss,
      details: {
        ...Object.fromEntries([...TABLES, ...LOG_TABLES].map(t => [t, rows.get(t)?.length ?? 0])),
        logRows: logTotal,
        logMs: Math.round(logEnd - logStart),
      },
    };
  } finally {
    clearInterval(progress);
    await store.close();
  }
}

serve({ insert });
