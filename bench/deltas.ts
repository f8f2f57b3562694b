/**
 * Issue 15, "Deltas": Aeries (`StudentDataChanges`) and Infinite Campus OneRoster 1.2
 * (`filter=dateLastModified>'…'`) at 1 % churn. For each SIS, two districts with their own
 * SQLite store and queue prefix sync the same fake SIS end to end (connector → BullMQ →
 * apply → SQLite): one with `deltas.enabled`, one without. Both make a full initial sync
 * (not measured), then the district is churned (`applyChurn`, the generator's mutations),
 * then each syncs once more: the delta district reads only what changed, the other pulls in
 * full. Printed per SIS: requests, records the SIS delivered, wall time (trigger to the run's
 * end) and store writes of the delta run against the full run, in the same process run.
 *
 * The fake SIS runs in this process (its CPU counts in both runs alike); workers are one
 * process serving every queue.
 *
 * `npx tsx bench/deltas.ts [--students 20000] [--churn-percent 1] [--kinds aeries,infinite-campus]`
 * or `npm run bench -- --scenario deltas --students N` (docs/performance.md, "Deltas").
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { createApp } from '../src/app.js';
import { DistrictConfig } from '../src/config/district.js';
import { parseEnv } from '../src/config/env.js';
import { generateDistrict } from '../src/dev/district-generator.js';
import { triggerSync, waitForRun } from '../src/jobs/sync.js';
import { createLogger } from '../src/logger.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import type { SyncRun } from '../src/models/types.js';
import { startWorkers } from '../src/workers/index.js';
import { applyChurn, type ChurnSummary } from './churn.js';
import { SIS_TITLES, startSis, type SisKind, type StartedSis } from './sis-kinds.js';

/** SIS kinds with a delta read. */
export const DELTA_KINDS = ['aeries', 'infinite-campus'] as const satisfies readonly SisKind[];
export type DeltaKind = (typeof DELTA_KINDS)[number];

/** Options of `runDeltaBench`. */
export interface DeltaOptions {
  students: number;
  seed: number;
  churnPercent: number;
  pageSize: number;
  redisUrl: string;
  kinds: readonly DeltaKind[];
  log: (line: string) => void;
}

/** One measured resync. */
export interface ResyncFigures {
  requests: number;
  recordsRead: number | undefined;
  wallS: number;
  writes: number;
  status: string;
  active: { students: number; accounts: number; links: number };
}

/** A SIS's delta run against its full run. */
export interface DeltaRow {
  kind: DeltaKind;
  churn: ChurnSummary;
  delta: ResyncFigures;
  full: ResyncFigures;
}

/** Active students, SIS parent accounts and SIS links of `districtId` in `store`. */
function activeFigures(store: SqliteRosterStore, districtId: string) {
  const h = store.handle();
  if (h.kind !== 'sqlite') throw new Error('benchmark store must be SQLite');
  const n = (sql: string) => h.db.prepare(sql).pluck().get(districtId) as number;
  return {
    students: n(`SELECT count(*) FROM students WHERE district_id = ? AND status = 'active'`),
    accounts: n(
      `SELECT count(*) FROM parent_accounts WHERE district_id = ? AND status = 'active' AND origin = 'sis'`,
    ),
    links: n(
      `SELECT count(*) FROM guardian_links WHERE district_id = ? AND status = 'active' AND origin = 'sis'`,
    ),
  };
}

/** A district syncing from `sis` into its own store (real Redis, own queue prefix). */
async function district(sis: StartedSis, id: string, deltas: boolean, redisUrl: string) {
  const dir = mkdtempSync(join(tmpdir(), `gsync-bench-${id}-`));
  const file = join(dir, 'store.db');
  const store = new SqliteRosterStore(file);
  await store.init();
  const env = parseEnv({
    REDIS_URL: redisUrl,
    STORE_URL: `sqlite:${file}`,
    QUEUE_PREFIX: `gsync-bench-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'error',
  });
  const connector = { ...sis.connector, deltas: { enabled: deltas } };
  const config = DistrictConfig.parse({ id, name: id, connector });
  const ctx = await createApp({
    env,
    logger: createLogger(env.LOG_LEVEL),
    districts: [config],
    secrets: sis.secrets,
    store,
  });
  const workers = startWorkers(ctx, { concurrency: 2 });
  return {
    async sync(): Promise<ResyncFigures> {
      const r0 = sis.requests();
      const rec0 = sis.recordsServed();
      const w0 = store.writeCount();
      const t0 = performance.now();
      const { run } = await triggerSync(ctx, { districtId: id, dryRun: false, trigger: 'bench' });
      const done: SyncRun = await waitForRun(ctx, run.id, {
        timeoutMs: 60 * 60 * 1000,
        intervalMs: 20,
      });
      const wallS = (performance.now() - t0) / 1000;
      const rec1 = sis.recordsServed();
      const a = activeFigures(store, id);
      return {
        requests: sis.requests() - r0,
        recordsRead: rec0 === undefined || rec1 === undefined ? undefined : rec1 - rec0,
        wallS,
        writes: store.writeCount() - w0,
        status: done.status + (done.error ? ` (${done.error.split('\n')[0]})` : ''),
        active: { students: a.students, accounts: a.accounts, links: a.links },
      };
    },
    async close() {
      await workers.close(10000);
      for (const q of Object.values(ctx.queues))
        await q.obliterate({ force: true }).catch(() => undefined);
      await ctx.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Run the scenario for each kind; returns the rows (also printed through `log`). */
export async function runDeltaBench(o: DeltaOptions): Promise<DeltaRow[]> {
  const rows: DeltaRow[] = [];
  o.log(
    `deltas: ${o.students.toLocaleString('en-US')} students, ${o.churnPercent} % churn; load average ${loadavg()
      .map(x => x.toFixed(2))
      .join(' ')}`,
  );
  for (const kind of o.kinds) {
    const d = generateDistrict({ seed: o.seed, students: o.students });
    const sis = await startSis(kind, d, { pageSize: o.pageSize });
    const withDeltas = await district(sis, `delta-${kind}`, true, o.redisUrl);
    const full = await district(sis, `full-${kind}`, false, o.redisUrl);
    try {
      const i1 = await withDeltas.sync();
      const i2 = await full.sync();
      o.log(
        `  ${SIS_TITLES[kind]}: initial syncs ${i1.wallS.toFixed(1)} s / ${i2.wallS.toFixed(1)} s (${i1.status}, ${i2.status})`,
      );
      const churn = applyChurn(d, o.churnPercent, o.seed + 1);
      const delta = await withDeltas.sync();
      const fullRun = await full.sync();
      rows.push({ kind, churn, delta, full: fullRun });
      o.log(
        `  ${SIS_TITLES[kind]}: delta ${delta.requests} requests, ${delta.wallS.toFixed(1)} s, ${delta.writes} writes; full ${fullRun.requests} requests, ${fullRun.wallS.toFixed(1)} s, ${fullRun.writes} writes`,
      );
    } finally {
      await withDeltas.close();
      await full.close();
      await sis.close();
    }
  }
  o.log(renderDeltas(o, rows));
  return rows;
}

/** The Markdown table of the scenario. */
export function renderDeltas(o: DeltaOptions, rows: readonly DeltaRow[]): string {
  const f = (n: number | undefined, dg = 1) =>
    n === undefined ? '—' : n.toLocaleString('en-US', { maximumFractionDigits: dg });
  const ratio = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined || b === 0 ? '—' : (a / b).toFixed(3);
  const lines = [
    '',
    `Deltas (${f(o.students, 0)} students, ${o.churnPercent} % churn; delta run against a full run of the same district after the same changes)`,
    '',
    '| SIS | run | requests | records read | wall (s) | writes | status | active students / accounts / links after |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | --- |',
  ];
  for (const r of rows) {
    for (const [name, x] of [
      ['delta', r.delta],
      ['full', r.full],
    ] as const)
      lines.push(
        `| ${SIS_TITLES[r.kind]} | ${name} | ${f(x.requests, 0)} | ${f(x.recordsRead, 0)} | ${f(x.wallS, 2)} | ${f(x.writes, 0)} | ${x.status} | ${x.active.students} / ${x.active.accounts} / ${x.active.links} |`,
      );
    lines.push(
      `| ${SIS_TITLES[r.kind]} | delta / full | ${ratio(r.delta.requests, r.full.requests)} | ${ratio(r.delta.recordsRead, r.full.recordsRead)} | ${ratio(r.delta.wallS, r.full.wallS)} | ${ratio(r.delta.writes, r.full.writes)} | ${r.churn.units} changes | |`,
    );
  }
  return lines.join('\n');
}

function parseKinds(v: string): DeltaKind[] {
  const out = v.split(',').map(s => s.trim());
  for (const k of out)
    if (!(DELTA_KINDS as readonly string[]).includes(k))
      throw new Error(`unknown kind ${k} (known: ${DELTA_KINDS.join(', ')})`);
  return out as DeltaKind[];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const p = new Command('deltas')
    .option('--students <n>', 'students', v => Number(v), 20000)
    .option('--seed <n>', 'generator seed', v => Number(v), 42)
    .option('--churn-percent <p>', 'percent of students changed', v => Number(v), 1)
    .option('--page-size <n>', 'students per chunk', v => Number(v), 1000)
    .option('--redis-url <url>', 'Redis', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .option('--kinds <list>', `SIS kinds (${DELTA_KINDS.join(', ')})`, parseKinds, [
      ...DELTA_KINDS,
    ]);
  p.parse(process.argv);
  const a = p.opts<{
    students: number;
    seed: number;
    churnPercent: number;
    pageSize: number;
    redisUrl: string;
    kinds: DeltaKind[];
  }>();
  runDeltaBench({ ...a, log: line => process.stdout.write(`${line}\n`) }).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`deltas failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
