/**
 * Issue 15: the CPU cost of the store's chunk writes alone, replayed from real chunks.
 *
 * A generated district's roster is read once through the product's own connector
 * (`bench/sis-chunks.ts`: fake SIS of `--kind`, canonical chunks as a pull enqueues them) and
 * dumped to `--dump` (v8 serialization; reused when the file exists, so before/after runs
 * replay the very same chunks). Each chunk is then replayed through
 * `SqliteRosterStore.reconcileChunk` with the real planner (`planChunk`), keys (`chunkKeys`)
 * and unchanged-student check (`unchangedCheck`, digests), as `handleApply` calls it for a
 * sync run (`runChange` context: change-log entries are written), into a fresh SQLite file:
 *
 * - pass `initial`: every chunk into the empty store (a first sync; `deferUnmatched` off);
 * - pass `nochange` (unless `--no-nochange`): the same chunks again (`deferUnmatched` on, as
 *   for a district with students), which must write nothing.
 *
 * Printed per pass: CPU seconds (`process.cpuUsage`, user + system) spent inside the
 * `reconcileChunk` calls only, their wall seconds, roster rows written (`writeCount`), and
 * after the run the row counts of the roster tables and of the change log and a hash of their
 * content (the same for two versions of the store code that write the same rows). A nonzero write
 * count in the no-change pass is an error. `--runs N` repeats the whole replay (a fresh file
 * each time). CPU-s are the comparable figure on a loaded machine.
 *
 * `npx tsx bench/replay-apply.ts [--students 100000] [--kind powerschool] [--seed 42]
 *   [--dump /tmp/replay-<kind>-<students>-<seed>.v8] [--runs 2] [--no-nochange] [--keep]
 *   [--sql 'PRAGMA cache_size = -65536; DROP INDEX …']`
 *
 * `--sql` runs on the store's connection after `init()`, before the replay (experiments: a
 * pragma, an index dropped).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import type { RosterChunk } from '../src/mapping/canonical.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import type { ChangeContext } from '../src/models/changes/types.js';
import { chunkKeys, planChunk, type PlanContext } from '../src/reconcile/plan.js';
import { unchangedCheck } from '../src/reconcile/digest.js';
import { readSisChunks } from './sis-chunks.js';
import { SIS_KINDS, type SisKind } from './sis-kinds.js';

const { values: args } = parseArgs({
  options: {
    students: { type: 'string', default: '100000' },
    kind: { type: 'string', default: 'powerschool' },
    seed: { type: 'string', default: '42' },
    dump: { type: 'string' },
    runs: { type: 'string', default: '1' },
    'no-nochange': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    sql: { type: 'string' },
  },
});
const kind = args.kind as SisKind;
if (!SIS_KINDS.includes(kind)) throw new Error(`--kind: one of ${SIS_KINDS.join(', ')}`);
const students = Number(args.students);
const seed = Number(args.seed);
const dump = args.dump ?? join(tmpdir(), `replay-${kind}-${students}-${seed}.v8`);

/** The chunks of the dump file, read through the connector (and dumped) when it is missing. */
async function chunks(): Promise<RosterChunk[]> {
  if (existsSync(dump)) return deserialize(readFileSync(dump)) as RosterChunk[];
  const read = await readSisChunks(kind, { students, seed });
  writeFileSync(dump, serialize(read));
  return read;
}

const CHANGE: ChangeContext = {
  cause: { kind: 'sync', id: 'rreplay0000000001', trigger: 'manual' },
  actor: 'bench',
};

interface PassResult {
  cpuS: number;
  wallS: number;
  written: number;
}

async function pass(
  store: SqliteRosterStore,
  all: RosterChunk[],
  deferUnmatched: boolean,
): Promise<PassResult> {
  const districtId = 'replay-district';
  const ctx: PlanContext = {
    districtId,
    connector: chunkConnector(),
    parentRole: 'Parent',
    deferUnmatched,
    guardiansWithoutLogin: 'exclude',
  };
  const before = store.writeCount();
  let cpu = 0;
  let wall = 0;
  for (const chunk of all) {
    const keys = chunkKeys(chunk, ctx.connector);
    const unchanged = unchangedCheck(chunk, ctx);
    const t = process.cpuUsage();
    const w = performance.now();
    await store.reconcileChunk(districtId, keys, state => planChunk(chunk, state, ctx), {
      dryRun: false,
      change: CHANGE,
      runId: CHANGE.cause.kind === 'sync' ? CHANGE.cause.id : undefined,
      unchanged,
    });
    wall += performance.now() - w;
    const u = process.cpuUsage(t);
    cpu += u.user + u.system;
  }
  return { cpuS: cpu / 1e6, wallS: wall / 1e3, written: store.writeCount() - before };
}

/** The connector kind of the district config `readSisChunks` uses for `kind`. */
function chunkConnector(): string {
  return kind.startsWith('skyward') ? 'skyward' : kind;
}

/**
 * Row counts of the roster tables and the change log, and a SHA-256 of their content in key
 * order (every column but times and the sources' rowids), to show two versions of the store
 * code wrote the same rows.
 */
function tableCounts(file: string): string {
  // a second connection, after the store is closed
  const db = new SqliteRosterStore(file);
  const h = db.handle();
  if (h.kind !== 'sqlite') throw new Error('not sqlite');
  const hash = createHash('sha256');
  for (const q of [
    'SELECT * FROM students ORDER BY district_id, sourced_id',
    'SELECT * FROM parent_accounts ORDER BY district_id, id',
    'SELECT district_id, connector, sourced_id, parent_id FROM parent_sources ORDER BY 1, 2, 3',
    'SELECT * FROM guardian_links ORDER BY district_id, parent_id, student_sourced_id, origin',
    'SELECT * FROM change_log ORDER BY district_id, seq',
    'SELECT id, district_id, first_seq, last_seq, cause_kind, cause_id, actor, counts FROM change_batches ORDER BY id',
  ])
    for (const row of h.db.prepare(q).raw().iterate()) hash.update(JSON.stringify(row));
  const out = [
    'students',
    'parent_accounts',
    'parent_sources',
    'guardian_links',
    'change_log',
    'change_batches',
  ]
    .map(t => {
      try {
        return `${t} ${String(h.db.prepare(`SELECT count(*) FROM ${t}`).pluck().get())}`;
      } catch {
        return `${t} -`;
      }
    })
    .join(', ');
  void db.close();
  return `${out}; content sha256 ${hash.digest('hex').slice(0, 16)}`;
}

async function main() {
  const all = await chunks();
  const records = all.reduce(
    (n, c) => n + c.students.length + c.guardians.length + c.relationships.length,
    0,
  );
  console.log(
    `${kind}: ${all.length} chunks, ${records.toLocaleString('en-US')} records (dump ${dump})`,
  );
  const cpu: { initial: number[]; nochange: number[] } = { initial: [], nochange: [] };
  for (let r = 0; r < Number(args.runs); r++) {
    const dir = mkdtempSync(join(tmpdir(), 'replay-apply-'));
    const file = join(dir, 'store.db');
    const store = new SqliteRosterStore(file);
    await store.init();
    if (args.sql) {
      const h = store.handle();
      if (h.kind === 'sqlite') h.db.exec(args.sql);
    }
    const initial = await pass(store, all, false);
    const line = (name: string, p: PassResult) =>
      `run ${r + 1} ${name}: ${p.cpuS.toFixed(2)} CPU-s in reconcileChunk (${p.wallS.toFixed(2)} s wall), ${p.written.toLocaleString('en-US')} roster rows written`;
    console.log(line('initial', initial));
    cpu.initial.push(initial.cpuS);
    if (!args['no-nochange']) {
      const again = await pass(store, all, true);
      console.log(line('nochange', again));
      cpu.nochange.push(again.cpuS);
      if (again.written !== 0) throw new Error(`no-change pass wrote ${again.written} rows`);
    }
    await store.close();
    console.log(`  tables: ${tableCounts(file)}`);
    if (args.keep) console.log(`  kept ${file}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  for (const [name, xs] of Object.entries(cpu))
    if (xs.length > 0) {
      const s = [...xs].sort((a, b) => a - b);
      console.log(
        `${name}: CPU-s min ${s[0]!.toFixed(2)}, median ${s[s.length >> 1]!.toFixed(2)} over ${s.length} runs`,
      );
    }
}

await main();
