/**
 * Fairness across districts (issue 15; docs/decisions/0011, docs/performance.md):
 * one large district syncing while `--districts` small districts are triggered, on the same
 * workers. Prints, per small district, its run time alone ("solo") and while the large one
 * syncs ("contended"), and their ratio (target ≤ 2).
 *
 * `npx tsx bench/fairness.ts --large 500000 --small 10000 --districts 20`
 * (or `npm run bench -- --scenario fairness --students 500000`: small = students / 50).
 *
 * Setup, all in this process: one fake PowerSchool per district (seeded synthetic
 * districts, `src/dev/`), the real pipeline (BullMQ workers on Redis `--redis-url` under a
 * fresh queue prefix, SQLite in a temp folder). Each phase starts from an empty store:
 * 1. solo: each small district synced alone, one after the other (and the large one alone);
 * 2. contended: the large district is triggered; once it has written its first records (it
 *    is in the middle of its run) every small district is triggered at once.
 * Run time is the run's own `startedAt → finishedAt` (pull start to end, what the product
 * reports); `createdAt → finishedAt` (queueing for a pull slot included) is printed too.
 * The fake SIS servers share the process's CPU with the worker; ratios come from one run.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { Command } from 'commander';
import { createApp, type AppContext } from '../src/app.js';
import { parseEnv } from '../src/config/env.js';
import { startPowerSchoolSite, type PowerSchoolSite } from '../src/dev/powerschool-site.js';
import { triggerSync, waitForRun } from '../src/jobs/sync.js';
import { createLogger } from '../src/logger.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import type { SyncRun } from '../src/models/types.js';
import { startWorkers } from '../src/workers/index.js';

/** Options of the fairness bench. */
export interface FairnessOptions {
  large: number;
  small: number;
  districts: number;
  seed: number;
  pageSize: number;
  concurrency: number;
  /** Pull-worker concurrency (`PULL_CONCURRENCY`). */
  pullConcurrency: number;
  redisUrl: string;
}

/** One small district's figures (seconds). */
export interface FairnessRow {
  districtId: string;
  soloS: number;
  contendedS: number;
  ratio: number;
  /** createdAt → finishedAt while contended (waiting for a pull slot included). */
  contendedFromTriggerS: number;
  /** The large district's run was still active when this one finished. */
  largeStillRunning: boolean;
}

/** Result of `runFairness`. */
export interface FairnessResult {
  /** 1-, 5- and 15-minute load averages at the start and at the end of the bench. */
  loadStart: number[];
  loadEnd: number[];
  largeSoloS: number;
  largeContendedS: number;
  rows: FairnessRow[];
  worstRatio: number;
}

type Site = PowerSchoolSite;

const seconds = (run: SyncRun, from: 'startedAt' | 'createdAt'): number => {
  const start = run[from];
  if (!start || !run.finishedAt) throw new Error(`run ${run.id} has no ${from}/finishedAt`);
  return (Date.parse(run.finishedAt) - Date.parse(start)) / 1000;
};

/** Start the district sites (fake PowerSchool servers and configs). */
async function startSites(o: FairnessOptions): Promise<{ large: Site; smalls: Site[] }> {
  const site = (id: string, students: number, seed: number): Promise<Site> =>
    startPowerSchoolSite(id, { students, seed, pageSize: o.pageSize });
  const large = await site('large', o.large, o.seed);
  const smalls: Site[] = [];
  for (let i = 0; i < o.districts; i++)
    smalls.push(await site(`small-${String(i + 1).padStart(2, '0')}`, o.small, o.seed + 1 + i));
  return { large, smalls };
}

/** A fresh app (empty SQLite store, fresh queue prefix) with workers over every site. */
async function phase(
  o: FairnessOptions,
  sites: Site[],
): Promise<{ ctx: AppContext; close: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'gs-fairness-'));
  const store = new SqliteRosterStore(join(dir, 'store.db'));
  await store.init();
  const env = parseEnv({
    REDIS_URL: o.redisUrl,
    STORE_URL: `sqlite:${join(dir, 'store.db')}`,
    QUEUE_PREFIX: `gs-fairness-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: 'silent',
  });
  const secrets: NodeJS.ProcessEnv = Object.fromEntries(
    sites.flatMap(s => Object.entries(s.secrets)),
  );
  const ctx = await createApp({
    env,
    logger: createLogger('silent'),
    districts: sites.map(s => s.config),
    secrets,
    store,
  });
  const workers = startWorkers(ctx, {
    concurrency: o.concurrency,
    pullConcurrency: o.pullConcurrency,
  });
  return {
    ctx,
    close: async () => {
      await workers.close(30000);
      for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
      await ctx.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function syncAlone(ctx: AppContext, districtId: string): Promise<SyncRun> {
  const { run } = await triggerSync(ctx, { districtId, dryRun: false, trigger: 'test' });
  const done = await waitForRun(ctx, run.id, { timeoutMs: 6 * 3600_000, intervalMs: 50 });
  if (done.status !== 'succeeded') throw new Error(`${districtId}: run ${done.status}`);
  return done;
}

/** Run both phases and return the figures. Throws when a run does not succeed. */
export async function runFairness(
  o: FairnessOptions,
  log: (line: string) => void = () => undefined,
): Promise<FairnessResult> {
  const loadStart = loadavg();
  const { large, smalls } = await startSites(o);
  const all = [large, ...smalls];
  try {
    // 1. solo
    const solo = new Map<string, number>();
    let largeSoloS: number;
    {
      const p = await phase(o, all);
      try {
        for (const s of smalls) {
          solo.set(s.config.id, seconds(await syncAlone(p.ctx, s.config.id), 'startedAt'));
          log(`solo ${s.config.id}: ${solo.get(s.config.id)?.toFixed(2)} s`);
        }
        largeSoloS = seconds(await syncAlone(p.ctx, large.config.id), 'startedAt');
        log(`solo large: ${largeSoloS.toFixed(2)} s`);
      } finally {
        await p.close();
      }
    }
    // 2. contended
    const p = await phase(o, all);
    try {
      const { ctx } = p;
      const { run: big } = await triggerSync(ctx, {
        districtId: large.config.id,
        dryRun: false,
        trigger: 'test',
      });
      // in the middle of its run: its first chunks are written
      for (;;) {
        const active = await ctx.store.countActive(large.config.id);
        if (active.students > 0) break;
        const r = await ctx.store.getRun(big.id);
        if (r && r.status !== 'queued' && r.status !== 'running')
          throw new Error(`large run ended early: ${r.status}`);
        await new Promise(r2 => setTimeout(r2, 50));
      }
      log('large district under way; triggering the small districts');
      const started = await Promise.all(
        smalls.map(s =>
          triggerSync(ctx, { districtId: s.config.id, dryRun: false, trigger: 'test' }),
        ),
      );
      const rows = await Promise.all(
        started.map(async ({ run }, i) => {
          const done = await waitForRun(ctx, run.id, { timeoutMs: 6 * 3600_000, intervalMs: 50 });
          const bigNow = await ctx.store.getRun(big.id);
          const districtId = smalls[i]?.config.id ?? '?';
          if (done.status !== 'succeeded') throw new Error(`${districtId}: run ${done.status}`);
          const contendedS = seconds(done, 'startedAt');
          const soloS = solo.get(districtId) ?? NaN;
          log(`contended ${districtId}: ${contendedS.toFixed(2)} s`);
          return {
            districtId,
            soloS,
            contendedS,
            ratio: contendedS / soloS,
            contendedFromTriggerS: seconds(done, 'createdAt'),
            largeStillRunning: bigNow?.status === 'running',
          } satisfies FairnessRow;
        }),
      );
      const bigDone = await waitForRun(ctx, big.id, { timeoutMs: 6 * 3600_000, intervalMs: 50 });
      if (bigDone.status !== 'succeeded') throw new Error(`large: run ${bigDone.status}`);
      return {
        loadStart,
        loadEnd: loadavg(),
        largeSoloS,
        largeContendedS: seconds(bigDone, 'startedAt'),
        rows,
        worstRatio: Math.max(...rows.map(r => r.ratio)),
      };
    } finally {
      await p.close();
    }
  } finally {
    for (const s of all) await s.fake.close();
  }
}

/** Median of `xs` (NaN when empty). */
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0
    ? NaN
    : s.length % 2
      ? (s[m] ?? NaN)
      : ((s[m - 1] ?? NaN) + (s[m] ?? NaN)) / 2;
};

/** Fairness target (issue 15): a small district's contended run time ≤ this × its solo time. */
export const FAIRNESS_TARGET = 2;

/**
 * The result as a Markdown table: per small district its solo and contended run time (s),
 * their ratio and whether it meets `FAIRNESS_TARGET`; then the large district's slowdown,
 * the worst ratio, whether the target is met, and the load averages (start → end).
 */
export function renderFairness(o: FairnessOptions, r: FairnessResult): string {
  const f = (n: number) => n.toFixed(2);
  const load = (l: number[]) => l.map(x => x.toFixed(1)).join(' ');
  const met = (ratio: number) => (ratio <= FAIRNESS_TARGET ? 'yes' : 'no');
  const lines = [
    `### Fairness: 1 × ${o.large.toLocaleString('en-US')} + ${o.districts} × ${o.small.toLocaleString('en-US')} students ` +
      `(apply concurrency ${o.concurrency}, pull concurrency ${o.pullConcurrency})`,
    '',
    `load average (1, 5, 15 min): ${load(r.loadStart)} at start → ${load(r.loadEnd)} at end`,
    '',
    `| district | solo s | contended s | ratio | ≤ ${FAIRNESS_TARGET} | trigger → end s | large still running |`,
    '| --- | ---: | ---: | ---: | :---: | ---: | :---: |',
    ...r.rows.map(
      x =>
        `| ${x.districtId} | ${f(x.soloS)} | ${f(x.contendedS)} | ${f(x.ratio)} | ${met(x.ratio)} | ${f(x.contendedFromTriggerS)} | ${x.largeStillRunning ? 'yes' : 'no'} |`,
    ),
    `| large | ${f(r.largeSoloS)} | ${f(r.largeContendedS)} | ${f(r.largeContendedS / r.largeSoloS)} | | | |`,
    '',
    `worst small-district ratio: ${f(r.worstRatio)} (target ≤ ${FAIRNESS_TARGET}): ${r.worstRatio <= FAIRNESS_TARGET ? 'met' : 'NOT met'}; ` +
      `${r.rows.filter(x => x.ratio <= FAIRNESS_TARGET).length} of ${r.rows.length} small districts within target; ` +
      `${r.rows.filter(x => x.largeStillRunning).length} of ${r.rows.length} finished before the large one`,
    `median small-district ratio: ${f(median(r.rows.map(x => x.ratio)))} (less sensitive to other load on the machine than the worst)`,
    `large district slowdown: ${f(r.largeContendedS / r.largeSoloS)} × its solo time`,
  ];
  return lines.join('\n');
}

/**
 * `npm run bench -- --scenario fairness --students N`: large = N, small = N / 50 (at least
 * 1,000), 20 small districts; `--seed`, `--page-size`, `--concurrency`, `--redis-url` as
 * for the other scenarios. Prints the table.
 */
export async function runFairnessCli(argv: string[]): Promise<void> {
  const flag = (name: string): string | undefined => {
    const i = argv.findIndex(a => a === name || a.startsWith(`${name}=`));
    if (i < 0) return undefined;
    const a = argv[i] ?? '';
    return a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[i + 1];
  };
  const large = Number(flag('--students') ?? 50000);
  const args = [
    '--large',
    String(large),
    '--small',
    String(Math.max(1000, Math.round(large / 50))),
  ];
  for (const f of ['--seed', '--page-size', '--concurrency', '--pull-concurrency', '--redis-url']) {
    const v = flag(f);
    if (v !== undefined) args.push(f, v);
  }
  await main(['node', 'fairness', ...args]);
}

async function main(argv: string[]): Promise<void> {
  const int = (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`not a positive integer: ${v}`);
    return n;
  };
  const o = new Command('fairness')
    .option('--large <n>', 'students of the large district', int, 500000)
    .option('--small <n>', 'students of each small district', int, 10000)
    .option('--districts <n>', 'small districts', int, 20)
    .option('--seed <n>', 'generator seed', int, 42)
    .option('--page-size <n>', 'students per page', int, 1000)
    .option('--concurrency <n>', 'apply-worker concurrency', int, 2)
    .option('--pull-concurrency <n>', 'pull-worker concurrency', int, 2)
    .option('--redis-url <url>', 'Redis', process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')
    .parse(argv)
    .opts<FairnessOptions>();
  const r = await runFairness(o, line => process.stderr.write(`${line}\n`));
  process.stdout.write(`${renderFairness(o, r)}\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(
        `fairness bench failed: ${err instanceof Error ? err.stack : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
