/**
 * Index contract on SQLite, and the EXPLAIN QUERY PLAN of every hot query (`HOT_QUERIES`):
 * each query's adapter call runs with the statement trace on (`onStatement`), and every
 * SELECT/UPDATE/DELETE it issued is explained — no full SCAN of a big table, at least one
 * SEARCH through an index, and no temp B-tree for the sorted ones.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import type { RosterStore } from '../../src/models/types.js';
import { HOT_QUERIES, runStoreIndexContract, seedHotData } from './store-indexes.contract.js';

const BIG_TABLES =
  'students|parent_accounts|parent_sources|guardian_links|sync_runs|held_pages|change_log|access_codes|activation_emails|student_name_keys';

function traced(file: string): { store: SqliteRosterStore; ops(): number; log: string[] } {
  const log: string[] = [];
  const store = new SqliteRosterStore(file, { onStatement: sql => log.push(sql) });
  return { store, ops: () => log.length, log };
}

const dirs = new Map<RosterStore, string>();
runStoreIndexContract(
  'sqlite (temp file)',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gs-idx-'));
    const t = traced(join(dir, 'store.db'));
    await t.store.init();
    dirs.set(t.store, dir);
    return t;
  },
  async store => {
    await store.close();
    const dir = dirs.get(store);
    if (dir) rmSync(dir, { recursive: true, force: true });
  },
);

describe('hot queries on SQLite: EXPLAIN QUERY PLAN', () => {
  let t: ReturnType<typeof traced>;
  beforeAll(async () => {
    t = traced(':memory:');
    await t.store.init();
    await seedHotData(t.store);
    // open every repository once, so the traced statements below are the queries only
    for (const q of HOT_QUERIES) await q.run(t.store);
  });
  afterAll(() => t.store.close());

  it.each(HOT_QUERIES.map(q => [q.name, q] as const))('%s', async (_name, q) => {
    t.log.length = 0;
    await q.run(t.store);
    const statements = t.log.filter(s => /^\s*(SELECT|UPDATE|DELETE|WITH)\b/i.test(s));
    expect(statements.length).toBeGreaterThan(0);
    const h = t.store.handle();
    if (h.kind !== 'sqlite') throw new Error('expected sqlite');
    const details = statements.flatMap(sql =>
      (h.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map(r => r.detail),
    );
    const fullScans = details.filter(d => new RegExp(`^SCAN (${BIG_TABLES})\\b`).test(d));
    expect(fullScans).toEqual([]);
    expect(details.some(d => /^SEARCH \S+ USING (COVERING )?(INDEX|PRIMARY KEY)/.test(d))).toBe(
      true,
    );
    if (q.sorted) expect(details.filter(d => /TEMP B-TREE/.test(d))).toEqual([]);
  });
});
