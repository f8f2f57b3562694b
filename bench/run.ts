/**
 * `npm run bench -- --students N [--scenario initial,nochange,churn,codes,import-preview]`
 *
 * The benchmark orchestrator. It starts, each in its own process:
 * - the fake PowerSchool over a seeded synthetic district (`bench/sis-server.ts`),
 * - for every scenario, guardian-sync itself (`bench/ours.ts`), the naive baseline
 *   (`bench/baseline.ts`) and the raw-insert limit (`bench/limit.ts`), one after the other,
 * and a private redis-server, then writes a Markdown table and a JSON file under
 * `bench/results/`. Ratios (ours / baseline, ours / limit) come from the same process run,
 * so they hold on a noisy machine. See docs/performance.md.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError, Option } from 'commander';
import type { ChurnSummary, SnapshotFigures } from './churn.js';
import {
  lastChangeSeq,
  type BenchSource,
  type PartResult,
  type Progress,
  type SisAccess,
} from './common.js';
import { profileReport } from './cpu-profile.js';
import { BenchChild } from './ipc.js';
import type { ImportFiles } from './imports.js';
import type { OursFinish, OursRun, OursStart, WorkerRole } from './ours.js';
import { RedisMemorySampler, startPrivateRedis, type PrivateRedis } from './redis.js';
import {
  checkTargets,
  mib,
  partFigures,
  ratiosOf,
  renderMarkdown,
  writeReference,
  type BenchReport,
  type PartFigures,
  type ScenarioReport,
} from './report.js';
import type { SisStarted } from './sis-server.js';
import { pendingScenario } from './scenarios.js';
import { runFairnessCli } from './fairness.js';
import { DELTA_KINDS, runDeltaBench } from './deltas.js';
import { runSlowSisBench } from './slow-sis.js';
import { SIS_KINDS } from './sis-kinds.js';

/** Issue 15 scenarios with their own tables (bench/deltas.ts, bench/slow-sis.ts). */
const OWN_TABLE_SCENARIOS = ['deltas', 'slow-sis'] as const;

/** Scenarios in the order they run (each resync starts from the store the previous left). */
// `codes` runs before `churn` so that its eSchoolPLUS files (and their ground truth) come
// from the district as generated, not as the churn left it.
export const SCENARIOS = ['initial', 'nochange', 'codes', 'churn', 'import-preview'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

const TITLES: Record<ScenarioName, string> = {
  initial: 'initial full sync (empty store)',
  nochange: 'no-change resync',
  churn: '1 % churn resync',
  codes: 'link-less sync with code issuance',
  'import-preview': '100,000-row association import preview',
};

/** Options of one bench run (the CLI flags). */
export interface BenchOptions {
  students: number;
  scenarios: ScenarioName[];
  seed: number;
  pageSize: number;
  concurrency: number;
  churnPercent: number;
  baseline: boolean;
  limit: boolean;
  /** Also time the SIS read alone (initial scenario). */
  pullOnly: boolean;
  /** Rows of the association import preview scenario (default 100,000). */
  importRows: number;
  /** Rows the naive import baseline times before projecting to all rows (0 = all). */
  importBaselineRows: number;
  /** Write the V8 CPU profile of our worker process into this folder. */
  cpuProf?: string | undefined;
  /** Use this Redis instead of a private redis-server. */
  redisUrl?: string | undefined;
  /**
   * Node flags of every measured process (ours, baseline, limit); default
   * `--max-semi-space-size=64`, the setting docs/performance.md recommends for workers.
   */
  nodeArgs: string[];
  /** 1: one worker process serving every queue; 2: a pull process and an apply process. */
  workerProcs: 1 | 2;
  /** Results folder (default bench/results). */
  out: string;
  /** Merge into `reference-<name>.{json,md}`. */
  reference?: string | undefined;
  /** Keep the SQLite files of the run (default: deleted). */
  keep: boolean;
  /** Show progress bars (default true; the smoke test turns them off). */
  progress: boolean;
  /** Description of the machine for the report. */
  machine: string;
}

const ownTable = new Set<string>();

const here = fileURLToPath(new URL('.', import.meta.url));

function machineDescription(): string {
  return `${process.platform}-${cpus().length}core`;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function scenarioList(v: string, prev: ScenarioName[] = []): ScenarioName[] {
  const out = [...prev];
  for (const s of v
    .split(',')
    .map(x => x.trim())
    .filter(Boolean)) {
    if ((OWN_TABLE_SCENARIOS as readonly string[]).includes(s)) {
      ownTable.add(s);
      continue;
    }
    if (!(SCENARIOS as readonly string[]).includes(s))
      throw new InvalidArgumentError(`unknown scenario "${s}" (known: ${SCENARIOS.join(', ')})`);
    out.push(s as ScenarioName);
  }
  if (out.length === 0 && ownTable.size === 0)
    throw new InvalidArgumentError(`name at least one scenario (known: ${SCENARIOS.join(', ')})`);
  return out;
}

function percent(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 100)
    throw new InvalidArgumentError('must be a number above 0 and at most 100');
  return n;
}

function rowsOrAll(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError('must be 0 (every row) or a positive integer');
  return n;
}

/** Codes a run issued (its `code.issue` count), 0 when none or not counted. */
function codesIssued(counts: unknown): number {
  const n = (counts as Record<string, Record<string, unknown> | undefined> | null)?.code?.issue;
  return typeof n === 'number' ? n : 0;
}

/** Progress bar of one part (cli-progress; periodic plain lines when not on a TTY). */
class PartProgress {
  private bar: cliProgress.SingleBar | undefined;

  constructor(private readonly enabled: boolean) {}

  update(p: Progress): void {
    if (!this.enabled) return;
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar(
        {
          format: `${p.phase.padEnd(34)} [{bar}] {percentage}% | {value}/{total} | {duration_formatted}`,
          noTTYOutput: true,
          notTTYSchedule: 10000,
          hideCursor: true,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(p.total, 0);
    }
    this.bar.setTotal(Math.max(p.total, p.done));
    this.bar.update(p.done);
  }

  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
  }
}

/** Run the benchmark; returns the report (also written to `opts.out`). */
export async function runBench(
  opts: BenchOptions,
): Promise<{ report: BenchReport; files: string[] }> {
  const startedAt = new Date().toISOString();
  const loadStart = loadavg();
  const log = (line: string) => {
    if (opts.progress) process.stderr.write(`${line}\n`);
  };
  // A resync needs the store of the initial sync: running one always runs `initial` first.
  const wanted = new Set<ScenarioName>(opts.scenarios.length ? opts.scenarios : SCENARIOS);
  if (wanted.has('nochange') || wanted.has('churn') || wanted.has('import-preview'))
    wanted.add('initial');
  const scenarios = SCENARIOS.filter(s => wanted.has(s));

  const stamp = startedAt.replace(/[:.]/g, '-');
  const work = resolve(here, '..', 'data', 'bench', `${opts.students}-${stamp}`);
  mkdirSync(work, { recursive: true });
  mkdirSync(opts.out, { recursive: true });
  const files = { ours: join(work, 'ours.db'), baseline: join(work, 'baseline.db') };

  let privateRedis: PrivateRedis | undefined;
  const redisUrl = opts.redisUrl ?? (privateRedis = await startPrivateRedis()).url;
  const sampler = new RedisMemorySampler(redisUrl);
  const bar = new PartProgress(opts.progress);
  const children: BenchChild[] = [];
  const child = (name: string, script: string, nodeArgs: string[] = []) => {
    const c = BenchChild.start(name, script, {
      nodeArgs,
      onEvent: (ev, data) => {
        if (ev === 'progress') bar.update(data as Progress);
      },
    });
    children.push(c);
    return c;
  };

  const sis = child('fake SIS', './sis-server.ts', ['--max-old-space-size=6144']);
  try {
    log(`generating ${opts.students.toLocaleString('en-US')} students (seed ${opts.seed})…`);
    const started = await sis.call<SisStarted>('start', {
      students: opts.students,
      seed: opts.seed,
      maxPageSize: opts.pageSize,
    });
    const access: SisAccess = {
      url: started.url,
      clientId: started.clientId,
      clientSecret: started.clientSecret,
    };
    log(
      `fake PowerSchool at ${access.url}: ${started.schools} schools, ${started.contacts.toLocaleString('en-US')} contacts (${(started.generateMs / 1000).toFixed(1)} s)`,
    );
    const sisRequests = async () => (await sis.call<{ requests: number }>('stats')).requests;

    /** Run one part in a fresh child process and collect its figures. */
    const measure = async (
      part: PartFigures['part'],
      records: number,
      script: string,
      method: string,
      params: Record<string, unknown>,
      nodeArgs: string[] = [],
    ): Promise<PartFigures> => {
      const c = child(part, script, nodeArgs);
      try {
        await c.call('ping'); // loaded: its start-up is not measured
        await sampler.mark();
        const req0 = await sisRequests();
        const cpu0 = { part: c.cpuSeconds() ?? 0, sis: sis.cpuSeconds() ?? 0 };
        const r = await c.call<PartResult>(method, params);
        const cpu = {
          part: (c.cpuSeconds() ?? 0) - cpu0.part,
          sis: (sis.cpuSeconds() ?? 0) - cpu0.sis,
        };
        bar.stop();
        const redis = await sampler.window();
        const req1 = await sisRequests();
        const peakRss = Math.max(r.peakRss, c.peakRss());
        const f = partFigures(part, records, { ...r, peakRss }, redis.added, req1 - req0, cpu);
        log(
          `  ${part.padEnd(8)} ${f.wallS.toFixed(2)} s, ${f.recordsPerS.toLocaleString('en-US')} records/s, ` +
            `peak RSS ${f.peakRssMiB} MiB, Redis +${f.redisPeakMiB} MiB, ${f.writes.toLocaleString('en-US')} writes, ${f.sisRequests} SIS requests, CPU ${f.cpuS} s + SIS ${f.sisCpuS} s`,
        );
        return f;
      } finally {
        bar.stop();
        await c.stop();
      }
    };

    /**
     * Our worker processes for one scenario: one process serving every queue, or (the
     * default) a `pull` process (trigger, pull, finalize) and an `apply` process.
     */
    const measureOurs = async (
      name: string,
      records: number,
      params: Omit<OursStart, 'role' | 'queuePrefix'>,
    ): Promise<PartFigures> => {
      const roles: WorkerRole[] = opts.workerProcs === 1 ? ['all'] : ['apply', 'pull'];
      const nodeArgs = (role: WorkerRole) => [
        '--max-old-space-size=2048',
        ...opts.nodeArgs,
        // One profile per thread (tsx's loader thread too): the biggest file is the worker.
        ...(opts.cpuProf
          ? ['--cpu-prof', `--cpu-prof-dir=${join(opts.cpuProf, `${stamp}-${name}-${role}`)}`]
          : []),
      ];
      const procs = roles.map(role => ({
        role,
        c: child(`ours-${role}`, './ours.ts', nodeArgs(role)),
      }));
      const queuePrefix = `gsync-bench-${randomUUID().slice(0, 8)}`;
      try {
        for (const { role, c } of procs) await c.call('start', { ...params, role, queuePrefix });
        const runner = procs[procs.length - 1]!;
        await sampler.mark();
        const req0 = await sisRequests();
        const cpu0 = procs.map(({ c }) => c.cpuSeconds() ?? 0);
        const main0 = procs.map(({ c }) => c.mainThreadCpuSeconds() ?? 0);
        const sisCpu0 = sis.cpuSeconds() ?? 0;
        const r = await runner.c.call<OursRun>('run', {});
        const cpuEach = procs.map(({ c }, i) => (c.cpuSeconds() ?? 0) - (cpu0[i] ?? 0));
        const mainEach = procs.map(({ c }, i) => (c.mainThreadCpuSeconds() ?? 0) - (main0[i] ?? 0));
        const cpu = cpuEach.reduce((a, b) => a + b, 0);
        const sisCpu = (sis.cpuSeconds() ?? 0) - sisCpu0;
        bar.stop();
        const redis = await sampler.window();
        const req1 = await sisRequests();
        const finished = [];
        for (const [i, { role, c }] of procs.entries()) {
          const f = await c.call<OursFinish>('finish', { obliterate: i === procs.length - 1 });
          finished.push({
            role,
            ...f,
            peakRss: Math.max(f.peakRss, c.peakRss()),
            cpuS: Math.round((cpuEach[i] ?? 0) * 10) / 10,
            mainThreadCpuS: Math.round((mainEach[i] ?? 0) * 10) / 10,
          });
        }
        const active = finished[finished.length - 1]?.active;
        const f = partFigures(
          'ours',
          records,
          {
            wallMs: r.wallMs,
            // Codes are written by the access-code repository, outside RosterStore.
            // writeCount(): the codes the run issued are writes too (counted before the line
            // below prints them).
            writes: finished.reduce((a, x) => a + x.writes, 0) + codesIssued(r.counts),
            peakRss: Math.max(...finished.map(x => x.peakRss)),
            details: {
              status: r.status,
              counts: r.counts,
              rejectCount: r.rejectCount,
              timings: r.timings,
              error: r.error,
              active,
              changeLog: {
                entries: r.logEntries,
                appendMs: Math.round(finished.reduce((a, x) => a + x.changeLog.ms, 0)),
                shareOfWallPercent:
                  Math.round((finished.reduce((a, x) => a + x.changeLog.ms, 0) / r.wallMs) * 1000) /
                  10,
                consumerCatchUpS: Math.round(r.consumerCatchUpMs / 10) / 100,
                auditIndexCatchUpS: Math.round(r.auditIndexCatchUpMs / 10) / 100,
              },
              applyTimeline: finished.find(x => x.role !== 'pull')?.applyTimeline,
              processes: finished.map(x => ({
                role: x.role,
                peakRssMiB: mib(x.peakRss),
                cpuS: x.cpuS,
                mainThreadCpuS: x.mainThreadCpuS,
                writes: x.writes,
              })),
            },
          },
          redis.added,
          req1 - req0,
          { part: cpu, sis: sisCpu },
        );
        if (process.env.BENCH_DEBUG)
          log(`  ${JSON.stringify({ timings: r.timings, apply: f.details.applyTimeline })}`);
        log(
          `  ours     ${f.wallS.toFixed(2)} s, ${f.recordsPerS.toLocaleString('en-US')} records/s, ` +
            `peak RSS ${finished.map(x => `${x.role} ${mib(x.peakRss)}`).join(', ')} MiB, Redis +${f.redisPeakMiB} MiB, ` +
            `${f.writes.toLocaleString('en-US')} writes, ${f.sisRequests} SIS requests, ` +
            `CPU ${finished.map(x => `${x.role} ${x.cpuS} (main thread ${x.mainThreadCpuS})`).join(', ')} + SIS ${f.sisCpuS} s; ` +
            `change log ${r.logEntries.toLocaleString('en-US')} entries, ` +
            `${JSON.stringify(f.details.changeLog)}`,
        );
        return f;
      } finally {
        bar.stop();
        for (const { c } of procs) await c.stop();
      }
    };

    /**
     * Link-less sync with code issuance (issue 5): the district as eSchoolPLUS files without
     * REG_STU_CONTACT (no relationships), access codes enabled, into an empty store: parent
     * accounts without links, and a code for every active student at finalize.
     */
    const codesScenario = async (title: string): Promise<ScenarioReport> => {
      const dir = join(work, 'eschoolplus');
      const w = await sis.call<{
        rows: Record<string, number>;
        expected: { students: number; accounts: number; links: number };
      }>('eschool', { dir });
      const source: BenchSource = { kind: 'eschoolplus', dir };
      const records = 2 * w.expected.students + w.expected.accounts;
      log(
        `${title}: ${records.toLocaleString('en-US')} records (${w.expected.students.toLocaleString('en-US')} students, ` +
          `${w.expected.accounts.toLocaleString('en-US')} accounts, a code per student)`,
      );
      const common = { sis: access, pageSize: opts.pageSize, students: w.expected.students };
      const codesDb = join(work, 'codes-ours.db');
      const parts: PartFigures[] = [
        await measureOurs('codes', records, {
          ...common,
          source,
          storeFile: codesDb,
          redisUrl,
          concurrency: opts.concurrency,
          phase: 'codes: guardian-sync',
        }),
      ];
      const ours = parts[0];
      const active = (ours?.details.active ?? {}) as Record<string, number>;
      const correct =
        ours?.details.status === 'succeeded' &&
        active.students === w.expected.students &&
        active.accounts === w.expected.accounts &&
        active.links === 0 &&
        active.codes === w.expected.students;
      if (!correct)
        log(
          `  WARNING: store differs from the ground truth: ${JSON.stringify({ active, expected: w.expected })}`,
        );
      const nodeArgs = ['--max-old-space-size=2048', ...opts.nodeArgs];
      if (opts.baseline)
        parts.push(
          await measure(
            'baseline',
            records,
            './baseline.ts',
            'sync',
            {
              ...common,
              source,
              codes: true,
              storeFile: join(work, 'codes-baseline.db'),
              phase: 'codes: naive baseline',
            },
            nodeArgs,
          ),
        );
      if (opts.limit)
        parts.push(
          await measure(
            'limit',
            records,
            './limit.ts',
            'insert',
            {
              sourceFile: codesDb,
              targetFile: join(work, 'limit.db'),
              phase: 'codes: raw-insert limit',
            },
            ['--max-old-space-size=6144', ...opts.nodeArgs],
          ),
        );
      return {
        name: 'codes',
        title,
        measurable: true,
        records,
        parts,
        ratios: ratiosOf(parts),
        correct,
      };
    };

    /**
     * The association import preview (issue 6) on copies of the store our sync left: ours
     * (`previewAssociationImport`), the naive per-row script, and the raw insert of the rows
     * the preview plans to add.
     */
    const importScenario = async (title: string): Promise<ScenarioReport> => {
      const rows = opts.importRows;
      const f: ImportFiles = {
        source: files.ours,
        ours: join(work, 'import-ours.db'),
        baseline: join(work, 'import-baseline.db'),
        limit: join(work, 'import-limit.db'),
        csv: join(work, 'associations.csv'),
      };
      const setup = child('import setup', './imports.ts', ['--max-old-space-size=2048']);
      try {
        await setup.call('setup', { files: f, rows, parents: 50000, seed: opts.seed + 2 });
      } finally {
        await setup.stop();
      }
      log(`${title}: ${rows.toLocaleString('en-US')} rows`);
      const nodeArgs = ['--max-old-space-size=2048', ...opts.nodeArgs];
      const parts: PartFigures[] = [
        await measure(
          'ours',
          rows,
          './imports.ts',
          'preview',
          { files: f, sis: access, rows, phase: 'import preview: guardian-sync' },
          nodeArgs,
        ),
      ];
      if (opts.baseline)
        parts.push(
          await measure(
            'baseline',
            rows,
            './imports.ts',
            'baseline',
            { files: f, sampleRows: opts.importBaselineRows },
            nodeArgs,
          ),
        );
      if (opts.limit)
        parts.push(await measure('limit', rows, './imports.ts', 'limit', { files: f }, nodeArgs));
      const counts = (parts[0]?.details.counts ?? {}) as Record<string, number>;
      const limitRows = parts.find(p => p.part === 'limit')?.writes;
      return {
        name: 'import-preview',
        title,
        measurable: true,
        records: rows,
        parts,
        ratios: ratiosOf(parts),
        // the preview plans exactly the links the raw insert wrote
        ...(limitRows === undefined ? {} : { correct: counts.add === limitRows }),
      };
    };

    const reports: ScenarioReport[] = [];
    /** The PowerSchool scenarios: initial, nochange, churn. */
    const syncScenario = async (name: ScenarioName, title: string): Promise<ScenarioReport> => {
      let churn: ChurnSummary | undefined;
      if (name === 'churn') {
        churn = await sis.call<ChurnSummary>('churn', {
          percent: opts.churnPercent,
          seed: opts.seed + 1,
        });
      }
      const snapshot = await sis.call<SnapshotFigures>('snapshot');
      log(`${title}: ${snapshot.records.toLocaleString('en-US')} records`);
      const common = { sis: access, pageSize: opts.pageSize, students: snapshot.students };
      const parts: PartFigures[] = [];
      const logSinceSeq = lastChangeSeq(files.ours);
      const ours = await measureOurs(name, snapshot.records, {
        ...common,
        storeFile: files.ours,
        redisUrl,
        concurrency: opts.concurrency,
        phase: `${name}: guardian-sync`,
      });
      parts.push(ours);
      const active = (ours.details.active ?? {}) as Record<string, number>;
      const correct =
        ours.details.status === 'succeeded' &&
        active.students === snapshot.expected.students &&
        active.accounts === snapshot.expected.accounts &&
        active.links === snapshot.expected.links;
      if (!correct)
        log(
          `  WARNING: store differs from the ground truth: ${JSON.stringify({ status: ours.details.status, active, expected: snapshot.expected })}`,
        );
      if (opts.baseline) {
        parts.push(
          await measure(
            'baseline',
            snapshot.records,
            './baseline.ts',
            'sync',
            { ...common, storeFile: files.baseline, phase: `${name}: naive baseline` },
            ['--max-old-space-size=2048', ...opts.nodeArgs],
          ),
        );
      }
      if (opts.pullOnly && name === 'initial') {
        parts.push(
          await measure(
            'pull',
            snapshot.records,
            './baseline.ts',
            'pullOnly',
            { ...common, phase: `${name}: SIS read only` },
            ['--max-old-space-size=2048', ...opts.nodeArgs],
          ),
        );
      }
      if (opts.limit) {
        parts.push(
          await measure(
            'limit',
            snapshot.records,
            './limit.ts',
            'insert',
            {
              sourceFile: files.ours,
              targetFile: join(work, 'limit.db'),
              phase: `${name}: raw-insert limit`,
              logSinceSeq,
            },
            ['--max-old-space-size=6144', ...opts.nodeArgs],
          ),
        );
      }
      return {
        name,
        title,
        measurable: true,
        snapshot,
        ...(churn ? { churn } : {}),
        parts,
        ratios: ratiosOf(parts),
        correct,
      };
    };

    for (const name of scenarios) {
      const title = TITLES[name];
      const pending = pendingScenario(name);
      if (pending) {
        log(`${title}: not yet measurable (${pending})`);
        reports.push({ name, title, measurable: false, reason: pending, parts: [], ratios: {} });
        continue;
      }
      try {
        reports.push(
          name === 'codes'
            ? await codesScenario(title)
            : name === 'import-preview'
              ? await importScenario(title)
              : await syncScenario(name, title),
        );
      } catch (err) {
        // One failed scenario must not lose the others' figures.
        const reason = `failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
        log(`${title}: ${reason}`);
        reports.push({ name, title, measurable: false, reason, parts: [], ratios: {} });
      }
    }

    const report: BenchReport = {
      startedAt,
      finishedAt: new Date().toISOString(),
      machine: {
        description: opts.machine,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
        memoryGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        platform: `${process.platform} ${process.arch}`,
        loadAverageStart: loadStart,
        loadAverageEnd: loadavg(),
      },
      options: {
        students: opts.students,
        seed: opts.seed,
        pageSize: opts.pageSize,
        concurrency: opts.concurrency,
        workerProcs: opts.workerProcs,
        nodeArgs: opts.nodeArgs.join(' '),
        churnPercent: opts.churnPercent,
        scenarios,
        redis: privateRedis ? 'private redis-server' : redisUrl.replace(/\/\/[^@]*@/, '//'),
      },
      sis: {
        schools: started.schools,
        contacts: started.contacts,
        generateS: Math.round(started.generateMs / 100) / 10,
      },
      scenarios: reports,
      targets: checkTargets(opts.students, reports),
    };
    const base = join(opts.out, `bench-${opts.students}-${stamp}`);
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
    writeFileSync(`${base}.md`, renderMarkdown(report));
    const written = [`${base}.json`, `${base}.md`];
    if (opts.reference) {
      const ref = join(opts.out, `reference-${opts.reference}`);
      writeReference(ref, opts.reference, report);
      written.push(`${ref}.json`, `${ref}.md`);
    }
    return { report, files: written };
  } finally {
    bar.stop();
    await sis.call('close').catch(() => undefined);
    for (const c of children) await c.stop();
    await sampler.close();
    await privateRedis?.stop();
    if (!opts.keep) rmSync(work, { recursive: true, force: true });
  }
}

async function main(argv: string[]): Promise<void> {
  // `--scenario fairness` (issue 15): its own two-phase run and table (bench/fairness.ts).
  if (
    argv.some((a, i) => /^--scenario(=|$)/.test(a) && /\bfairness\b/.test(a + (argv[i + 1] ?? '')))
  )
    return runFairnessCli(argv);
  const program = new Command('bench')
    .description('Benchmark guardian-sync against a naive baseline and the store limit')
    .option('--students <n>', 'students in the synthetic district', positiveInt, 50000)
    .addOption(
      new Option(
        '--scenario <names>',
        `comma-separated scenarios (default all: ${SCENARIOS.join(', ')})`,
      ).argParser(scenarioList),
    )
    .option('--seed <n>', 'generator seed', positiveInt, 42)
    .option('--page-size <n>', 'students per page (the plugin maximum)', positiveInt, 1000)
    .option('--concurrency <n>', 'apply-worker concurrency', positiveInt, 2)
    .option('--churn-percent <p>', 'percent of students changed in the churn scenario', percent, 1)
    .option('--no-baseline', 'skip the naive baseline')
    .option('--no-limit', 'skip the raw-insert limit')
    .option('--no-pull-only', 'skip timing the SIS read alone')
    .option('--import-rows <n>', 'rows of the association import preview', positiveInt, 100000)
    .option(
      '--import-baseline-rows <n>',
      'rows the naive import baseline times before projecting to all rows (0 = time every row; its cost per row is constant)',
      rowsOrAll,
      5000,
    )
    .option(
      '--cpu-prof <dir>',
      'write V8 CPU profiles of our worker processes into <dir> (remapped to .ts lines, summarized at the end)',
    )
    .option('--redis-url <url>', 'use this Redis instead of a private redis-server')
    .option(
      '--node-args <flags>',
      'node flags of every measured process',
      '--max-semi-space-size=64',
    )
    .addOption(
      new Option('--worker-procs <n>', 'worker processes: 1 (all queues) or 2 (pull | apply)')
        .choices(['1', '2'])
        .default('2'),
    )
    .option('--out <dir>', 'results folder', join(here, 'results'))
    .option('--reference <machine>', 'also merge into bench/results/reference-<machine>.{json,md}')
    .option('--keep', 'keep the SQLite files under data/bench/', false)
    .option('--machine <text>', 'machine description for the report', machineDescription());
  program.parse(argv);
  const o = program.opts<{
    students: number;
    scenario?: ScenarioName[];
    seed: number;
    pageSize: number;
    concurrency: number;
    churnPercent: number;
    baseline: boolean;
    limit: boolean;
    pullOnly: boolean;
    importRows: number;
    importBaselineRows: number;
    cpuProf?: string;
    redisUrl?: string;
    nodeArgs: string;
    workerProcs: '1' | '2';
    out: string;
    reference?: string;
    keep: boolean;
    machine: string;
  }>();
  if (o.cpuProf) mkdirSync(o.cpuProf, { recursive: true });
  const say = (line: string) => process.stdout.write(`${line}\n`);
  if (ownTable.has('deltas'))
    await runDeltaBench({
      students: o.students,
      seed: o.seed,
      churnPercent: o.churnPercent,
      pageSize: o.pageSize,
      redisUrl: o.redisUrl ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      kinds: DELTA_KINDS,
      log: say,
    });
  if (ownTable.has('slow-sis'))
    await runSlowSisBench({
      students: Math.min(o.students, 2000),
      seed: o.seed,
      latencyMs: 50,
      rps: 20,
      kinds: SIS_KINDS,
      log: say,
    });
  if (ownTable.size > 0 && (o.scenario ?? []).length === 0) return;
  const { report, files } = await runBench({
    students: o.students,
    scenarios: o.scenario ?? [],
    seed: o.seed,
    pageSize: o.pageSize,
    concurrency: o.concurrency,
    churnPercent: o.churnPercent,
    baseline: o.baseline,
    limit: o.limit,
    pullOnly: o.pullOnly,
    importRows: o.importRows,
    importBaselineRows: o.importBaselineRows,
    cpuProf: o.cpuProf ? resolve(o.cpuProf) : undefined,
    redisUrl: o.redisUrl,
    nodeArgs: o.nodeArgs.split(' ').filter(Boolean),
    workerProcs: o.workerProcs === '1' ? 1 : 2,
    out: resolve(o.out),
    reference: o.reference,
    keep: o.keep,
    progress: true,
    machine: o.machine,
  });
  process.stdout.write(`\n${renderMarkdown(report)}\n`);
  process.stdout.write(`written: ${files.join(', ')}\n`);
  // Profiles with .ts positions, and the top self-time functions of each worker process.
  if (o.cpuProf) process.stdout.write(`\n${profileReport(resolve(o.cpuProf)).join('\n')}\n`);
  process.stdout.write(`free memory now ${(freemem() / 2 ** 30).toFixed(1)} GiB\n`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv).catch((err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  });
}
