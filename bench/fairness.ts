/**
 * Fairness across districts (issue 15; docs/decisions/0011, 0016, docs/performance.md):
 * one large district syncing while `--districts` small districts are triggered, on the same
 * workers. Prints, per small district, its run time alone ("solo") and while the large one
 * syncs ("contended"), and their ratio (target ≤ 2).
 *
 * `npx tsx bench/fairness.ts --large 500000 --small 10000 --districts 20`
 * (or `npm run bench -- --scenario fairness --students 500000`: small = students / 50).
 *
 * Layout (`--layout`):
 * - `procs` (default), the deployment's: the fake SIS servers in two child processes (the
 *   large district's, and the small districts' together: `bench/sis-server.ts` `sites`), a
 *   pull worker process (trigger, pull, finalize, change log) and an apply worker process
 *   (roster-apply), as two `guardian-sync worker` processes with queue roles
 *   (`bench/ours.ts`, as the main bench's `--worker-procs 2`). This process only triggers
 *   runs and reads their times from the store (like the admin API process).
 * - `single`: everything in this process (fake SIS servers, every worker), as before.
 *
 * Each phase starts from an empty store (SQLite in a temp folder) and a fresh queue prefix
 * on Redis `--redis-url`:
 * 1. solo: each small district synced alone, one after the other (and the large one alone);
 * 2. contended: the large district is triggered; once it has written its first records (it
 *    is in the middle of its run) every small district is triggered at once.
 * Run time is the run's own `startedAt → finishedAt` (pull start to end, what the product
 * reports); `createdAt → finishedAt` (queueing for a pull slot included) is printed too, and
 * the CPU seconds each process used during the contended phase.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { createApp, type AppContext } from '../src/app.js';
import { parseEnv } from '../src/config/env.js';
import type { DistrictConfig } from '../src/config/district.js';
import {
  powerSchoolSiteConfig,
  startPowerSchoolSite,
  type PowerSchoolSite,
} from '../src/dev/powerschool-site.js';
import { triggerSync, waitForRun } from '../src/jobs/sync.js';
import { createLogger } from '../src/logger.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import type { SyncRun } from '../src/models/types.js';
import { startWorkers } from '../src/workers/index.js';
import { BenchChild, cpuSecondsOf } from './ipc.js';
import type { OursStart, WorkerRole } from './ours.js';
import type { SiteSpec, SiteStarted } from './sis-server.js';

/** Where the parts run: the deployment's processes, or all in one (see the module comment). */
export type FairnessLayout = 'procs' | 'single';

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
  layout: FairnessLayout;
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
  /** Where the run's time went, alone and contended (see `RunParts`). */
  soloParts: RunParts;
  contendedParts: RunParts;
}

/**
 * A run's time in parts (seconds, from its `timings`): `pull` (pull start → last chunk
 * queued), `finalize` (the finalize job), and `rest` (run time − pull − finalize: the last
 * chunks' apply after the pull ended, and finalize waiting for its worker).
 */
export interface RunParts {
  pull: number;
  rest: number;
  finalize: number;
}

const partsOf = (run: SyncRun): RunParts => {
  const pull = (run.timings.pull ?? NaN) / 1000;
  const finalize = (run.timings.finalize ?? NaN) / 1000;
  return { pull, finalize, rest: seconds(run, 'startedAt') - pull - finalize };
};

/** Result of `runFairness`. */
export interface FairnessResult {
  /** 1-, 5- and 15-minute load averages at the start and at the end of the bench. */
  loadStart: number[];
  loadEnd: number[];
  largeSoloS: number;
  largeContendedS: number;
  rows: FairnessRow[];
  worstRatio: number;
  /** CPU seconds per process from the large district's trigger to its end (contended phase). */
  contendedCpuS: Record<string, number>;
}

const seconds = (run: SyncRun, from: 'startedAt' | 'createdAt'): number => {
  const start = run[from];
  if (!start || !run.finishedAt) throw new Error(`run ${run.id} has no ${from}/finishedAt`);
  return (Date.parse(run.finishedAt) - Date.parse(start)) / 1000;
};

/** One phase's product: an app to trigger and read runs with, and the workers beside it. */
interface Phase {
  ctx: AppContext;
  /** CPU seconds used so far, per process of the phase (the SIS processes included). */
  cpu(): Record<string, number>;
  close(): Promise<void>;
}

/** The districts, their SIS servers, and how to start a phase over them. */
interface Layout {
  large: DistrictConfig;
  smalls: DistrictConfig[];
  phase(): Promise<Phase>;
  close(): Promise<void>;
}

const smallId = (i: number) => `small-${String(i + 1).padStart(2, '0')}`;

/** A fresh empty SQLite store in a temp folder, and an env for it under a fresh queue prefix. */
async function freshStore(o: FairnessOptions) {
  const dir = mkdtempSync(join(tmpdir(), 'gs-fairness-'));
  const file = join(dir, 'store.db');
  const store = new SqliteRosterStore(file);
  await store.init();
  const env = parseEnv({
    REDIS_URL: o.redisUrl,
    STORE_URL: `sqlite:${file}`,
    QUEUE_PREFIX: `gs-fairness-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: 'silent',
  });
  return { dir, file, store, env };
}

/** `single`: the fake SIS servers and every worker in this process. */
async function singleLayout(o: FairnessOptions): Promise<Layout> {
  const site = (id: string, students: number, seed: number): Promise<PowerSchoolSite> =>
    startPowerSchoolSite(id, { students, seed, pageSize: o.pageSize });
  const large = await site('large', o.large, o.seed);
  const smalls: PowerSchoolSite[] = [];
  for (let i = 0; i < o.districts; i++)
    smalls.push(await site(smallId(i), o.small, o.seed + 1 + i));
  const all = [large, ...smalls];
  return {
    large: large.config,
    smalls: smalls.map(s => s.config),
    async phase() {
      const { dir, store, env } = await freshStore(o);
      const ctx = await createApp({
        env,
        logger: createLogger('silent'),
        districts: all.map(s => s.config),
        secrets: Object.fromEntries(all.flatMap(s => Object.entries(s.secrets))),
        store,
      });
      const workers = startWorkers(ctx, {
        concurrency: o.concurrency,
        pullConcurrency: o.pullConcurrency,
      });
      return {
        ctx,
        cpu: () => ({ 'bench (everything)': cpuSecondsOf('self') ?? NaN }),
        close: async () => {
          await workers.close(30000);
          for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
          await ctx.close();
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
    async close() {
      for (const s of all) await s.fake.close();
    },
  };
}

/**
 * `procs`: the large district's fake SIS in one child process, the small districts' in
 * another; per phase a pull and an apply worker process (`bench/ours.ts` roles).
 */
async function procsLayout(o: FairnessOptions): Promise<Layout> {
  const sisLarge = BenchChild.start('sis-large', './sis-server.ts', {
    nodeArgs: ['--max-old-space-size=6144'],
  });
  const sisSmall = BenchChild.start('sis-small', './sis-server.ts', {
    nodeArgs: ['--max-old-space-size=4096'],
  });
  const sis = [sisLarge, sisSmall];
  try {
    const specs: SiteSpec[] = Array.from({ length: o.districts }, (_, i) => ({
      id: smallId(i),
      students: o.small,
      seed: o.seed + 1 + i,
    }));
    const [largeSite, smallSites] = await Promise.all([
      sisLarge.call<SiteStarted[]>('sites', {
        sites: [{ id: 'large', students: o.large, seed: o.seed }],
        maxPageSize: o.pageSize,
      }),
      sisSmall.call<SiteStarted[]>('sites', { sites: specs, maxPageSize: o.pageSize }),
    ]);
    const sites = [...largeSite, ...smallSites];
    const configs = sites.map(s => powerSchoolSiteConfig(s.id, s, o.pageSize));
    const [large, ...smalls] = configs.map(c => c.config);
    if (!large) throw new Error('no large district');
    return {
      large,
      smalls,
      async phase() {
        const { dir, file, store, env } = await freshStore(o);
        // This process only triggers and reads runs (as the admin API would): no workers.
        const ctx = await createApp({
          env,
          logger: createLogger('silent'),
          districts: configs.map(c => c.config),
          secrets: Object.fromEntries(configs.flatMap(c => Object.entries(c.secrets))),
          store,
        });
        const roles: WorkerRole[] = ['apply', 'pull'];
        const workers = roles.map(role => ({
          role,
          c: BenchChild.start(`ours-${role}`, './ours.ts', {
            nodeArgs: ['--max-old-space-size=2048'],
          }),
        }));
        try {
          for (const { role, c } of workers) {
            const start: OursStart = {
              role,
              sis: sites[0] ?? { url: '', clientId: '', clientSecret: '' },
              sites,
              storeFile: file,
              redisUrl: o.redisUrl,
              queuePrefix: env.QUEUE_PREFIX,
              pageSize: o.pageSize,
              concurrency: o.concurrency,
              pullConcurrency: o.pullConcurrency,
              students: o.large + o.districts * o.small,
              phase: 'fairness',
            };
            await c.call('start', start);
          }
        } catch (err) {
          for (const { c } of workers) await c.stop(5000);
          await ctx.close();
          await store.close();
          throw err;
        }
        return {
          ctx,
          cpu: () => ({
            ...Object.fromEntries(workers.map(({ role, c }) => [role, c.cpuSeconds() ?? NaN])),
            'SIS large': sisLarge.cpuSeconds() ?? NaN,
            'SIS small': sisSmall.cpuSeconds() ?? NaN,
            bench: cpuSecondsOf('self') ?? NaN,
          }),
          close: async () => {
            for (const [i, { c }] of workers.entries()) {
              await c
                .call('finish', { obliterate: i === workers.length - 1 })
                .catch(() => undefined);
              await c.stop();
            }
            await ctx.close();
            await store.close();
            rmSync(dir, { recursive: true, force: true });
          },
        };
      },
      async close() {
        for (const c of sis) {
          await c.call('closeSites').catch(() => undefined);
          await c.stop();
        }
      },
    };
  } catch (err) {
    for (const c of sis) await c.stop(5000);
    throw err;
  }
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
  const layout = o.layout === 'single' ? await singleLayout(o) : await procsLayout(o);
  const { large, smalls } = layout;
  try {
    // 1. solo
    const solo = new Map<string, number>();
    const soloParts = new Map<string, RunParts>();
    let largeSoloS: number;
    {
      const p = await layout.phase();
      try {
        for (const s of smalls) {
          const alone = await syncAlone(p.ctx, s.id);
          solo.set(s.id, seconds(alone, 'startedAt'));
          soloParts.set(s.id, partsOf(alone));
          log(`solo ${s.id}: ${solo.get(s.id)?.toFixed(2)} s`);
        }
        largeSoloS = seconds(await syncAlone(p.ctx, large.id), 'startedAt');
        log(`solo large: ${largeSoloS.toFixed(2)} s`);
      } finally {
        await p.close();
      }
    }
    // 2. contended
    const p = await layout.phase();
    try {
      const { ctx } = p;
      const cpu0 = p.cpu();
      const { run: big } = await triggerSync(ctx, {
        districtId: large.id,
        dryRun: false,
        trigger: 'test',
      });
      // in the middle of its run: its first chunks are written
      for (;;) {
        const active = await ctx.store.countActive(large.id);
        if (active.students > 0) break;
        const r = await ctx.store.getRun(big.id);
        if (r && r.status !== 'queued' && r.status !== 'running')
          throw new Error(`large run ended early: ${r.status}`);
        await new Promise(r2 => setTimeout(r2, 50));
      }
      log('large district under way; triggering the small districts');
      const started = await Promise.all(
        smalls.map(s => triggerSync(ctx, { districtId: s.id, dryRun: false, trigger: 'test' })),
      );
      const rows = await Promise.all(
        started.map(async ({ run }, i) => {
          const done = await waitForRun(ctx, run.id, { timeoutMs: 6 * 3600_000, intervalMs: 50 });
          const bigNow = await ctx.store.getRun(big.id);
          const districtId = smalls[i]?.id ?? '?';
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
            soloParts: soloParts.get(districtId) ?? { pull: NaN, rest: NaN, finalize: NaN },
            contendedParts: partsOf(done),
            largeStillRunning: bigNow?.status === 'running',
          } satisfies FairnessRow;
        }),
      );
      const bigDone = await waitForRun(ctx, big.id, { timeoutMs: 6 * 3600_000, intervalMs: 50 });
      if (bigDone.status !== 'succeeded') throw new Error(`large: run ${bigDone.status}`);
      const cpu1 = p.cpu();
      return {
        loadStart,
        loadEnd: loadavg(),
        largeSoloS,
        largeContendedS: seconds(bigDone, 'startedAt'),
        rows,
        worstRatio: Math.max(...rows.map(r => r.ratio)),
        contendedCpuS: Object.fromEntries(
          Object.entries(cpu1).map(([k, v]) => [k, v - (cpu0[k] ?? 0)]),
        ),
      };
    } finally {
      await p.close();
    }
  } finally {
    await layout.close();
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
      `(apply concurrency ${o.concurrency}, pull concurrency ${o.pullConcurrency}, layout ${o.layout})`,
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
    `last small district: trigger → end ${f(Math.max(...r.rows.map(x => x.contendedFromTriggerS)))} s`,
    '',
    "where a small run's time went (median s over the small districts; rest = apply after the pull ended + finalize waiting for its worker):",
    '',
    '| part | solo | contended |',
    '| --- | ---: | ---: |',
    ...(['pull', 'rest', 'finalize'] as const).map(
      k =>
        `| ${k} | ${f(median(r.rows.map(x => x.soloParts[k])))} | ${f(median(r.rows.map(x => x.contendedParts[k])))} |`,
    ),
    '',
    `CPU s while contended (large trigger → end), per process: ${Object.entries(r.contendedCpuS)
      .map(([k, v]) => `${k} ${v.toFixed(1)}`)
      .join(', ')}`,
  ];
  return lines.join('\n');
}

/**
 * `npm run bench -- --scenario fairness --students N`: large = N, small = N / 50 (at least
 * 1,000), 20 small districts; `--seed`, `--page-size`, `--concurrency`, `--redis-url` as
 * for the other scenarios, `--pull-concurrency` and `--layout` as for `bench/fairness.ts`.
 * Prints the table.
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
  for (const f of [
    '--seed',
    '--page-size',
    '--concurrency',
    '--pull-concurrency',
    '--redis-url',
    '--layout',
  ]) {
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
    .addOption(
      new Option(
        '--layout <layout>',
        'procs: SIS, pull and apply in separate processes (deployment); single: all in one',
      )
        .choices(['procs', 'single'])
        .default('procs'),
    )
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
