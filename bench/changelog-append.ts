/**
 * Micro-benchmark of the change log's write cost on SQLite (docs/performance.md, "The audit
 * index leaves the write transaction (issue 15)"): 450,000 entries appended with
 * `appendChanges` in 1,500-entry `BEGIN IMMEDIATE` transactions (the size of a chunk's
 * entries), into a fresh store file (WAL), in two layouts:
 *
 * - `inline`: the two audit indexes of `change_log` (by parent, by student) maintained in the
 *   write transaction, as before migration 12 (recreated on the new schema);
 * - `consumer`: the log without them (migration 12); the audit index is built afterwards by
 *   `indexAudit` in 5,000-entry transactions, as the change-log consumer does, and timed apart
 *   (it runs in the consumer's process, not in the apply worker's transaction).
 *
 * The entries look like an initial sync's: per 100 entries about 23 student, 29 parent and
 * 48 link creates, with ids spread like the generator's (hashed, so index inserts land at
 * random places), and `after` objects of the usual size.
 *
 * Usage: `npx tsx bench/changelog-append.ts [--entries 450000] [--txn 1500] [--rounds 3]`.
 * Prints, per layout and round, wall ms, process CPU ms (user + system) and µs per entry, then
 * the medians; for `consumer` also how long one parent's history (`list` by parent) takes with
 * nothing indexed yet (a scan of the whole log: the worst case of a trailing index) and once
 * indexed. Throws when a layout did not log every entry or the index stayed empty. Writes only into a temp directory (removed at the end).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { appendChanges, SqliteChangeLogRepository } from '../src/models/changes/sqlite.js';
import type { ChangeContext, NewChange } from '../src/models/changes/types.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';

const DISTRICT = 'bench-district';
const CONTEXT: ChangeContext = {
  cause: { kind: 'sync', id: 'run-bench', trigger: 'bench' },
  actor: 'schedule',
};

const hex = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);

/** The `i`-th entry of an initial sync's log (deterministic). */
function change(i: number): NewChange {
  const r = i % 100;
  const family = Math.floor(i / 4);
  const student = String(100000 + Math.floor(i / 4.4));
  const parentId = `pa_${hex(`p${family}`)}_${family}`;
  if (r < 23)
    return {
      entity: 'student',
      entityId: student,
      action: 'create',
      studentSourcedId: student,
      after: {
        uniqueId: `U-${student}`,
        givenName: 'Given',
        familyName: `Family${i % 977}`,
        schoolSourcedIds: [String(i % 20)],
        grade: '05',
        status: 'active',
      },
    };
  if (r < 52)
    return {
      entity: 'parent',
      entityId: parentId,
      action: 'create',
      parentId,
      after: {
        uniqueId: `G-${family}`,
        givenName: 'Parent',
        familyName: `Family${i % 977}`,
        email: `p${family}@example.org`,
        role: 'Parent',
        sisRole: 'parent',
        status: 'active',
        origin: 'sis',
        sources: [`powerschool:${family}`],
      },
    };
  return {
    entity: 'link',
    entityId: `sis:${parentId}:${student}`,
    action: 'create',
    parentId,
    studentSourcedId: student,
    origin: 'sis',
    after: { relationship: 'Mother', status: 'active' },
  };
}

const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

interface Round {
  layout: 'inline' | 'consumer';
  appendWallMs: number;
  appendCpuMs: number;
  indexWallMs: number;
  indexCpuMs: number;
  /** One parent's history (`list` by parent) with nothing indexed (a scan of the whole log). */
  readTailMs: number;
  /** The same once the index holds every entry. */
  readIndexedMs: number;
}

async function round(
  layout: Round['layout'],
  entries: number,
  batches: NewChange[][],
): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'gs-clbench-'));
  const store = new SqliteRosterStore(join(dir, 'store.db'));
  try {
    await store.init();
    const h = store.handle();
    if (h.kind !== 'sqlite') throw new Error('expected a SQLite store');
    const db = h.db;
    if (layout === 'inline')
      db.exec(`
        CREATE INDEX change_log_parent ON change_log (district_id, parent_id, seq)
          WHERE parent_id IS NOT NULL;
        CREATE INDEX change_log_student ON change_log (district_id, student_sourced_id, seq)
          WHERE student_sourced_id IS NOT NULL;`);
    const at = new Date().toISOString();
    let w0 = performance.now();
    let c0 = cpuMs();
    for (const batch of batches)
      db.transaction(() => appendChanges(db, DISTRICT, CONTEXT, batch, at)).immediate();
    const appendWallMs = performance.now() - w0;
    const appendCpuMs = cpuMs() - c0;
    let indexWallMs = 0;
    let indexCpuMs = 0;
    let readTailMs = 0;
    let readIndexedMs = 0;
    const parentId = batches[0]?.find(c => c.parentId !== undefined)?.parentId ?? '';
    const readParent = async (repo: SqliteChangeLogRepository): Promise<number> => {
      const t = performance.now();
      const found = await repo.list(DISTRICT, { parentId, limit: 1000 });
      if (found.length === 0) throw new Error('the parent has no entries');
      return performance.now() - t;
    };
    if (layout === 'consumer') {
      const repo = new SqliteChangeLogRepository(db);
      readTailMs = await readParent(repo);
      w0 = performance.now();
      c0 = cpuMs();
      for (;;) {
        const r = await repo.indexAudit(DISTRICT, { maxEntries: 5000 });
        if (r.to === r.from) break;
      }
      indexWallMs = performance.now() - w0;
      indexCpuMs = cpuMs() - c0;
      const n = db.prepare('SELECT count(*) FROM change_audit').pluck().get() as number;
      if (n === 0) throw new Error('the audit index is empty');
      readIndexedMs = await readParent(repo);
    }
    const logged = db.prepare('SELECT count(*) FROM change_log').pluck().get() as number;
    if (logged !== entries) throw new Error(`expected ${entries} entries, found ${logged}`);
    return {
      layout,
      appendWallMs,
      appendCpuMs,
      indexWallMs,
      indexCpuMs,
      readTailMs,
      readIndexedMs,
    };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

async function main(): Promise<void> {
  const opts = new Command()
    .option('--entries <n>', 'entries appended per round', '450000')
    .option('--txn <n>', 'entries per write transaction', '1500')
    .option('--rounds <n>', 'rounds per layout (alternating)', '3')
    .parse()
    .opts<{ entries: string; txn: string; rounds: string }>();
  const entries = Number(opts.entries);
  const txn = Number(opts.txn);
  const rounds = Number(opts.rounds);
  const all = Array.from({ length: entries }, (_, i) => change(i));
  const batches: NewChange[][] = [];
  for (let i = 0; i < entries; i += txn) batches.push(all.slice(i, i + txn));
  const results: Round[] = [];
  for (let r = 0; r < rounds; r++)
    for (const layout of ['inline', 'consumer'] as const) {
      const x = await round(layout, entries, batches);
      results.push(x);
      console.log(
        `${layout.padEnd(8)} round ${r + 1}: append wall ${x.appendWallMs.toFixed(0)} ms, ` +
          `CPU ${x.appendCpuMs.toFixed(0)} ms (${((x.appendCpuMs * 1000) / entries).toFixed(2)} µs/entry)` +
          (layout === 'consumer'
            ? `; audit index by the consumer: wall ${x.indexWallMs.toFixed(0)} ms, CPU ${x.indexCpuMs.toFixed(0)} ms (${((x.indexCpuMs * 1000) / entries).toFixed(2)} µs/entry); ` +
              `one parent's history: ${x.readTailMs.toFixed(1)} ms unindexed, ${x.readIndexedMs.toFixed(1)} ms indexed`
            : ''),
      );
    }
  console.log(`\nmedians over ${rounds} rounds, ${entries} entries in ${txn}-entry transactions:`);
  for (const layout of ['inline', 'consumer'] as const) {
    const xs = results.filter(x => x.layout === layout);
    const cpu = median(xs.map(x => x.appendCpuMs));
    const icpu = median(xs.map(x => x.indexCpuMs));
    console.log(
      `  ${layout.padEnd(8)} append CPU ${cpu.toFixed(0)} ms = ${((cpu * 1000) / entries).toFixed(2)} µs/entry` +
        (layout === 'consumer'
          ? `; consumer's audit index CPU ${icpu.toFixed(0)} ms = ${((icpu * 1000) / entries).toFixed(2)} µs/entry; ` +
            `one parent's history ${median(xs.map(x => x.readTailMs)).toFixed(1)} ms unindexed (scan of ${entries} entries), ` +
            `${median(xs.map(x => x.readIndexedMs)).toFixed(1)} ms indexed`
          : ''),
    );
  }
}

await main();
