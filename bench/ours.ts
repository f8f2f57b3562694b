/**
 * Benchmark child process: guardian-sync itself. Real workers (BullMQ queues on Redis, the
 * SQLite store, the PowerSchool connector) sync the district from the fake SIS exactly as
 * `guardian-sync worker` processes would. The orchestrator starts one process per role:
 * `all` (every queue), or `pull` (trigger, pull, finalize) plus `apply` (roster-apply) to
 * use two cores. The run is started with `triggerSync` and timed from the trigger to the
 * run's terminal status (end to end: fake SIS → store).
 *
 * Methods: `start` (open the store, connect, start the role's workers), `run` (trigger a
 * sync and wait for it; in the process holding the trigger queue), `finish` (figures of
 * this process, then close everything; the last one also removes the part's queues).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Job } from 'bullmq';
import { createApp, type AppContext } from '../src/app.js';
import { parseEnv } from '../src/config/env.js';
import { triggerSync, waitForRun } from '../src/jobs/sync.js';
import { createLogger } from '../src/logger.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import { startWorkers, type RunningWorkers } from '../src/workers/index.js';
import { CORE_CONSUMER } from '../src/jobs/changes.js';
import { AUDIT_INDEX_CONSUMER, changeLogRepository } from '../src/models/changes/index.js';
import { changeLogWriteStats } from '../src/models/changes/sqlite.js';
import { QueueName } from '../src/workers/queues.js';
import {
  BENCH_DISTRICT_ID,
  benchSecrets,
  districtFor,
  type BenchSource,
  type Progress,
  type SisAccess,
} from './common.js';
import { dumpSourceMaps } from './cpu-profile.js';
import { emit, memoryOf, serve } from './ipc.js';
import type { SiteStarted } from './sis-server.js';
import { powerSchoolSiteConfig } from '../src/dev/powerschool-site.js';

/** Which queues a worker process serves. */
export type WorkerRole = 'all' | 'pull' | 'apply';

/** Queues of each role (`pull` also triggers and finalizes runs). */
export const ROLE_QUEUES: Record<WorkerRole, readonly string[] | undefined> = {
  all: undefined,
  // The pull process also runs the change-log consumer (activation emails, metrics).
  pull: [QueueName.trigger, QueueName.pull, QueueName.finalize, QueueName.changes],
  apply: [QueueName.apply],
};

/** Parameters of `start`. */
export interface OursStart {
  role: WorkerRole;
  sis: SisAccess;
  /** Default: the PowerSchool district. */
  source?: BenchSource;
  storeFile: string;
  redisUrl: string;
  queuePrefix: string;
  pageSize: number;
  /** Apply-worker concurrency (`WORKER_CONCURRENCY`). */
  concurrency: number;
  /** Pull-worker concurrency (`PULL_CONCURRENCY`); default: the product's. */
  pullConcurrency?: number;
  /**
   * Several PowerSchool districts (each served by `bench/sis-server.ts` `sites`) instead of
   * the bench district: the fairness bench. `sis` and `source` are then unused.
   */
  sites?: SiteStarted[];
  /** Students the SIS will deliver (progress total). */
  students: number;
  phase: string;
}

/** What `run` returns. */
export interface OursRun {
  wallMs: number;
  status: string;
  counts: unknown;
  rejectCount: number;
  timings: Record<string, number>;
  error?: string | undefined;
  /**
   * Change-log entries the run wrote, and how long (ms) after the run's end the consumer took
   * to catch up with them (emails queued, metrics counted).
   */
  logEntries: number;
  consumerCatchUpMs: number;
  /** How long (ms) after the run's end the audit index held every entry (docs/decisions/0019). */
  auditIndexCatchUpMs: number;
}

/** What `finish` returns. */
export interface OursFinish {
  writes: number;
  /** Change-log entries this process appended, and ms spent appending them. */
  changeLog: { entries: number; ms: number };
  peakRss: number;
  /** Apply jobs of this process (see `timelineSummary`); empty for a process without them. */
  applyTimeline: Record<string, number>;
  active: { students: number; accounts: number; links: number; codes: number };
}

/** Active roster rows in the store (for the correctness check of a run). */
export function activeFigures(store: SqliteRosterStore): OursFinish['active'] {
  const h = store.handle();
  if (h.kind !== 'sqlite') throw new Error('benchmark store must be SQLite');
  const n = (sql: string) => h.db.prepare(sql).pluck().get(BENCH_DISTRICT_ID) as number;
  const hasCodes =
    h.db
      .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'access_codes'`)
      .get() !== undefined;
  return {
    codes: hasCodes
      ? n(`SELECT count(*) FROM access_codes WHERE district_id = ? AND status = 'active'`)
      : 0,
    students: n(`SELECT count(*) FROM students WHERE district_id = ? AND status = 'active'`),
    accounts: n(
      `SELECT count(*) FROM parent_accounts WHERE district_id = ? AND status = 'active' AND origin = 'sis'`,
    ),
    links: n(
      `SELECT count(*) FROM guardian_links WHERE district_id = ? AND status = 'active' AND origin = 'sis'`,
    ),
  };
}

/** Apply jobs of this process: [enqueued, started, finished] (epoch ms). */
const timeline: [number, number, number][] = [];

/**
 * Summary of the apply timeline (seconds from the first enqueue): how fast the pull
 * enqueued chunks, how long they waited, how long an apply took.
 */
export function timelineSummary(t: readonly [number, number, number][]): Record<string, number> {
  if (t.length === 0) return {};
  const t0 = Math.min(...t.map(x => x[0]));
  const s = (ms: number) => Math.round(ms / 10) / 100;
  const avg = (f: (x: [number, number, number]) => number) =>
    s(t.reduce((a, x) => a + f(x), 0) / t.length);
  return {
    chunks: t.length,
    lastEnqueuedS: s(Math.max(...t.map(x => x[0])) - t0),
    lastAppliedS: s(Math.max(...t.map(x => x[2])) - t0),
    avgQueueWaitS: avg(x => x[1] - x[0]),
    avgApplyS: avg(x => x[2] - x[1]),
    applyBusyS: s(t.reduce((a, x) => a + (x[2] - x[1]), 0)),
  };
}

let state:
  | {
      ctx: AppContext;
      store: SqliteRosterStore;
      workers: RunningWorkers;
      progress: NodeJS.Timeout;
      writesAtStart: number;
    }
  | undefined;

async function start(params: unknown): Promise<{ pid: number }> {
  const p = params as OursStart;
  const env = parseEnv({
    REDIS_URL: p.redisUrl,
    STORE_URL: `sqlite:${p.storeFile}`,
    QUEUE_PREFIX: p.queuePrefix,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'error',
    WORKER_CONCURRENCY: String(p.concurrency),
    ...(p.pullConcurrency === undefined ? {} : { PULL_CONCURRENCY: String(p.pullConcurrency) }),
    // inline or thread (ADR 0021): compare with `SYNC_CHUNK_SENDER=inline npx tsx bench/run.ts …`
    ...(process.env.SYNC_CHUNK_SENDER ? { SYNC_CHUNK_SENDER: process.env.SYNC_CHUNK_SENDER } : {}),
  });
  const logger = createLogger(env.LOG_LEVEL);
  const store = new SqliteRosterStore(p.storeFile);
  await store.init();
  const sites = p.sites?.map(s => powerSchoolSiteConfig(s.id, s, p.pageSize));
  const ctx = await createApp({
    env,
    logger,
    districts: sites
      ? sites.map(s => s.config)
      : [districtFor(p.source ?? { kind: 'powerschool' }, p.sis, p.pageSize)],
    secrets: sites
      ? Object.fromEntries(sites.flatMap(s => Object.entries(s.secrets)))
      : benchSecrets(p.sis),
    store,
  });
  const workers = startWorkers(ctx, {
    concurrency: p.concurrency,
    ...(p.pullConcurrency === undefined ? {} : { pullConcurrency: p.pullConcurrency }),
  });
  // Roles: close the workers of other queues at once (no job exists yet, nothing is taken).
  const keep = ROLE_QUEUES[p.role];
  if (keep) {
    for (const w of workers.workers) if (!keep.includes(w.name)) await w.close();
  }
  let done = 0;
  const apply = workers.workers.find(w => w.name === QueueName.apply);
  if (!keep || keep.includes(QueueName.apply)) {
    apply?.on('completed', (job: Job) => {
      const chunk = (job.data as { chunk?: { students?: unknown[] } }).chunk;
      done += chunk?.students?.length ?? 0;
      // When the pull enqueued the chunk, when an apply worker took it, when it was done.
      timeline.push([job.timestamp, job.processedOn ?? 0, job.finishedOn ?? Date.now()]);
    });
  }
  // Issue 14.7: the longest event-loop stall while a pull or finalize job runs here (a stall
  // longer than half the job lock, PIPELINE_LOCK_MS / 2, could lose the lock). Printed to
  // stderr per job: `[bench] finalize: longest event-loop stall N ms over M ms`. Not with
  // `sites` (the fairness bench runs many pulls at once: one job's figure would mix them).
  for (const name of p.sites ? [] : [QueueName.pull, QueueName.finalize]) {
    const w = workers.workers.find(x => x.name === name);
    if (!w || (keep && !keep.includes(name))) continue;
    const h = monitorEventLoopDelay({ resolution: 10 });
    let since = 0;
    w.on('active', () => {
      h.reset();
      h.enable();
      since = performance.now();
    });
    const report = () => {
      h.disable();
      console.error(
        `[bench] ${name}: longest event-loop stall ${(h.max / 1e6).toFixed(0)} ms over ${(performance.now() - since).toFixed(0)} ms`,
      );
    };
    w.on('completed', report);
    w.on('failed', report);
  }
  const progress = setInterval(() => {
    if (done > 0) emit('progress', { phase: p.phase, done, total: p.students } satisfies Progress);
  }, 250);
  state = { ctx, store, workers, progress, writesAtStart: store.writeCount() };
  return { pid: process.pid };
}

async function run(params: unknown): Promise<OursRun> {
  if (!state) throw new Error('call start first');
  const { dryRun = false } = params as { dryRun?: boolean };
  const log = await changeLogRepository(state.store);
  const seq0 = await log.lastSeq(BENCH_DISTRICT_ID);
  const t0 = performance.now();
  const { run } = await triggerSync(state.ctx, {
    districtId: BENCH_DISTRICT_ID,
    dryRun,
    trigger: 'bench',
  });
  const finished = await waitForRun(state.ctx, run.id, {
    timeoutMs: 60 * 60 * 1000,
    intervalMs: 20,
  });
  const wallMs = performance.now() - t0;
  // The change-log consumer runs beside the pipeline; measure how far behind it ends.
  const lastSeq = await log.lastSeq(BENCH_DISTRICT_ID);
  const logEntries = lastSeq - seq0;
  const deadline = Date.now() + 10 * 60 * 1000;
  let consumerCatchUpMs: number | undefined;
  let auditIndexCatchUpMs: number | undefined;
  for (;;) {
    const since = performance.now() - t0 - wallMs;
    if (
      consumerCatchUpMs === undefined &&
      (await log.cursor(CORE_CONSUMER, BENCH_DISTRICT_ID)).seq >= lastSeq
    )
      consumerCatchUpMs = since;
    if (
      auditIndexCatchUpMs === undefined &&
      (await log.cursor(AUDIT_INDEX_CONSUMER, BENCH_DISTRICT_ID)).seq >= lastSeq
    )
      auditIndexCatchUpMs = since;
    if (consumerCatchUpMs !== undefined && auditIndexCatchUpMs !== undefined) break;
    if (Date.now() > deadline) throw new Error('the change-log consumer did not catch up');
    await new Promise(r => setTimeout(r, 20));
  }
  return {
    wallMs,
    logEntries,
    consumerCatchUpMs,
    auditIndexCatchUpMs,
    status: finished.status,
    counts: finished.counts,
    rejectCount: finished.rejectCount,
    timings: finished.timings,
    error: finished.error,
  };
}

async function finish(params: unknown): Promise<OursFinish> {
  if (!state) throw new Error('call start first');
  const { obliterate = false } = (params ?? {}) as { obliterate?: boolean };
  const { ctx, store, workers, progress, writesAtStart } = state;
  state = undefined;
  clearInterval(progress);
  const peakRss = memoryOf('self')?.peakRss ?? process.memoryUsage().rss;
  const writes = store.writeCount() - writesAtStart;
  // With --cpu-prof: the source maps of our modules go next to the profile, which V8 writes
  // at exit, so the orchestrator can move its call frames to .ts lines (bench/cpu-profile.ts).
  try {
    dumpSourceMaps();
  } catch (err) {
    console.error(`[bench] source maps for the CPU profile not written: ${String(err)}`);
  }
  try {
    const applyTimeline = timelineSummary(timeline);
    timeline.length = 0;
    return {
      writes,
      changeLog: changeLogWriteStats(),
      peakRss,
      applyTimeline,
      active: activeFigures(store),
    };
  } finally {
    await workers.close(10000);
    // The last process of a part leaves nothing behind in Redis (it may be a shared one).
    if (obliterate)
      for (const q of Object.values(ctx.queues))
        await q.obliterate({ force: true }).catch(() => undefined);
    await ctx.close();
    await store.close();
  }
}

serve({ start, run, finish });
