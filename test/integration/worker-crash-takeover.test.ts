/**
 * Issue 14.7: a pull whose worker process is killed (`kill -9`) is taken up by another worker
 * with the DEFAULT job-lock settings (no `WORKER_LOCK_MS` / `WORKER_STALLED_INTERVAL_MS`):
 * pull and finalize hold a 30 s lock renewed every 15 s (`PIPELINE_LOCK_MS`), and look for
 * stalled jobs every 10 s (`PIPELINE_STALLED_INTERVAL_MS`), so the dead pull is free again
 * within about 30-40 s instead of the 2-4 minutes of the old 120 s lock. The test prints how
 * long the takeover took (no timing assertion: the machine may be loaded).
 *
 * While the pull is stuck, the run says so (run-ux finding 1): `GET /runs/:id` has `stalled`
 * (the worker that took the pull is no longer connected, since when it was last heard from),
 * `guardian-sync run` prints it, and once worker B took the pull up the run reads as a plain
 * `running` run again.
 *
 * Real parts: worker processes (`node --import tsx src/cli/main.ts worker`, kept warm by
 * test/helpers/worker-preload.ts), a fake PowerSchool on loopback, real Redis (own queue
 * prefix), a real SQLite file. "Mid-pull" is observed (pull job active, student pages asked
 * for), never guessed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken } from '../../src/config/api-tokens.js';
import { createApp, type AppContext } from '../../src/app.js';
import { RunDetail } from '../../src/shared/api-schemas.js';
import { runCli } from '../helpers/cli.js';
import { parseEnv } from '../../src/config/env.js';
import { generateDistrict } from '../../src/dev/district-generator.js';
import { startFakePowerSchool, type FakePowerSchool } from '../../src/dev/powerschool-server.js';
import { triggerSync, waitForRun } from '../../src/jobs/sync.js';
import { createLogger } from '../../src/logger.js';
import { PIPELINE_LOCK_MS, PIPELINE_STALLED_INTERVAL_MS } from '../../src/workers/index.js';
import { jobId } from '../../src/workers/queues.js';

const DISTRICT_ID = 'crashed';
const STUDENT_PAGES_ROUTE = 'GET /ws/v1/district/student';
/** Deadline of each wait: the takeover needs the lock + up to 2 stalled checks, generously. */
const DEADLINE_MS = 150_000;
/**
 * The default lock (30 s) and stalled check (10 s) are what this test documents, so it may run
 * longer than the 60 s a test should take: the takeover alone is 30-40 s plus worker starts.
 */
const TEST_MS = 240_000;

interface WorkerProcess {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

/** A worker process held by the preload until it gets its environment on stdin. */
function spawnHeldWorker(): WorkerProcess {
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      '--import',
      './test/helpers/worker-preload.ts',
      'src/cli/main.ts',
      'worker',
    ],
    {
      cwd: process.cwd(),
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let out = '';
  const keep = (d: Buffer) => {
    out = (out + d.toString()).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  child.stdin?.on('error', () => undefined);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(resolve =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exit, output: () => out };
}

async function killProcess(p: WorkerProcess): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await p.exit;
  p.child.stdin?.destroy();
  p.child.stdout?.destroy();
  p.child.stderr?.destroy();
}

/** Poll `probe` until done; fail after `ms` naming the last observation. */
async function until<T>(
  what: string,
  probe: () => Promise<{ done: boolean; seen: T }>,
  more: () => string = () => '',
  ms = DEADLINE_MS,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const { done, seen } = await probe();
    if (done) return seen;
    if (Date.now() > deadline)
      throw new Error(
        `${what}: not reached within ${ms} ms; last seen: ${JSON.stringify(seen)}\n${more()}`,
      );
    await new Promise(r => setTimeout(r, 25));
  }
}

const TOKEN = 'gst_takeover-viewer-token-0123456789abcdefghijklmn';

describe('kill -9 of a worker mid-pull, default lock settings', () => {
  let api: ApiServer | undefined;
  let dir: string;
  let fake: FakePowerSchool;
  let ctx: AppContext;
  let prefix: string;
  const workers: WorkerProcess[] = [];

  afterEach(async () => {
    await api?.close();
    for (const p of workers.splice(0)) await killProcess(p);
    if (ctx) {
      for (const q of Object.values(ctx.queues))
        await q.obliterate({ force: true }).catch(() => {});
      let cursor = '0';
      do {
        const [next, keys] = await ctx.redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
        cursor = next;
        if (keys.length) await ctx.redis.del(...keys);
      } while (cursor !== '0');
      await ctx.close();
    }
    await fake?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it(
    'a second worker takes the pull up and the run succeeds',
    async () => {
      // Both workers load while the world is set up (B waits warm for its environment).
      const a = spawnHeldWorker();
      const b = spawnHeldWorker();
      workers.push(a, b);
      dir = mkdtempSync(join(tmpdir(), 'gsync-takeover-'));
      const sis = generateDistrict({ seed: 1407, students: 120 });
      fake = await startFakePowerSchool(sis);
      const districts = join(dir, 'districts');
      mkdirSync(districts);
      writeFileSync(
        join(districts, `${DISTRICT_ID}.json`),
        JSON.stringify({
          id: DISTRICT_ID,
          name: 'Crashed District',
          connector: {
            kind: 'powerschool',
            baseUrl: fake.url,
            clientIdEnv: 'PS_ID',
            clientSecretEnv: 'PS_SECRET',
            pageSize: 20,
            retries: 1,
            timeoutMs: 15000,
          },
        }),
      );
      prefix = `gsync-takeover-${randomUUID().slice(0, 8)}`;
      const env = {
        REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
        STORE_URL: `sqlite:${join(dir, 'store.db')}`,
        QUEUE_PREFIX: prefix,
        DISTRICTS_DIR: districts,
        PS_ID: fake.clientId,
        PS_SECRET: fake.clientSecret,
      };
      ctx = await createApp({
        env: parseEnv({ ...env, LOG_LEVEL: 'silent' }),
        logger: createLogger('silent'),
        secrets: { PS_ID: fake.clientId, PS_SECRET: fake.clientSecret },
      });
      api = await buildApiServer(ctx, {
        tokens: [{ name: 'viewer', sha256: hashToken(TOKEN), role: 'viewer' }],
        bodyLimit: 4096,
      });
      const base = await api.listen({ host: '127.0.0.1', port: 0 });
      const readRun = async (id: string) => {
        const res = await fetch(`${base}/runs/${id}`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        expect(res.status).toBe(200);
        // The console reads the answer with the same schema (src/shared/api-schemas.ts).
        return RunDetail.parse(await res.json());
      };
      // No WORKER_LOCK_MS / WORKER_STALLED_INTERVAL_MS: the defaults are what is tested.
      const workerEnv = { ...env, LOG_LEVEL: 'info' };
      const start = async (p: WorkerProcess, name: string) => {
        p.child.stdin?.write(`${JSON.stringify(workerEnv)}\n`);
        await until(
          `worker ${name} started`,
          () =>
            Promise.resolve({
              done: p.output().includes('worker started'),
              seen: { exitCode: p.child.exitCode },
            }),
          () => p.output().slice(-4000),
        );
      };
      await start(a, 'A');

      // Slow answers keep the pull reading pages long enough to be killed in the middle.
      fake.faults.slowMs(400);
      const { run, started } = await triggerSync(ctx, {
        districtId: DISTRICT_ID,
        dryRun: false,
        trigger: 'test',
      });
      expect(started).toBe(true);
      const pullId = jobId.pull(DISTRICT_ID, run.id);
      await until(
        'mid-pull (pull active, student pages asked for)',
        async () => {
          const state = await ctx.queues.pull.getJobState(pullId);
          const pages = fake.stats.byRoute[STUDENT_PAGES_ROUTE] ?? 0;
          return { done: state === 'active' && pages >= 1, seen: { state, pages } };
        },
        () => a.output().slice(-4000),
      );
      const first = await ctx.queues.pull.getJob(pullId);
      const firstStart = first?.processedOn ?? 0;
      expect(firstStart).toBeGreaterThan(0);
      // Worker A is alive: a plain running run, with the time it waited before its pull began.
      const alive = await readRun(run.id);
      expect(alive.status).toBe('running');
      expect(alive.stalled).toBeUndefined();
      expect(alive.queueWait).toMatchObject({ queued: false });
      expect(alive.queueWait?.pullMs).toBeGreaterThanOrEqual(0);
      const workerA = first?.processedBy;
      expect(workerA).toMatch(/-\d+-[0-9a-f]{6}$/);

      a.child.kill('SIGKILL');
      const killedAt = Date.now();
      expect((await a.exit).signal).toBe('SIGKILL');
      // The pull died with its process: still active under a lock nobody renews.
      expect(await ctx.queues.pull.getJobState(pullId)).toBe('active');
      expect((await ctx.store.getRun(run.id))?.status).toBe('running');

      // The run says its worker is not heard from (A's connection closed with its process),
      // and that nothing takes the pull up while no worker is connected.
      const stalled = await until('run reported stalled', async () => {
        const r = await readRun(run.id);
        return { done: r.stalled !== undefined, seen: r };
      });
      const stalledSeenAt = Date.now();
      expect(stalled.status).toBe('running');
      expect(stalled.stalled).toMatchObject({
        job: 'pull',
        jobId: pullId,
        worker: workerA,
        workerConnected: false,
      });
      expect(stalled.stalled?.takeoverExpectedBy).toBeUndefined();
      expect(stalled.stalled?.message).toMatch(/^worker not heard from: the run's pull is stuck/);
      expect(stalled.stalled?.message).toContain('no worker is connected to the pull queue');
      const cli = await runCli(['run', run.id], { ...env, LOG_LEVEL: 'silent' });
      expect(cli.code).toBe(0);
      expect(cli.stdout).toMatch(/^status {3}running/m);
      expect(cli.stdout).toMatch(new RegExp(`^stalled  worker not heard from: .*${workerA}`, 'm'));

      await start(b, 'B');
      const bStartedAt = Date.now();
      // Taken up: the stalled pull went back to wait and B started it again.
      const taken = await until(
        'pull taken up by worker B',
        async () => {
          const job = await ctx.queues.pull.getJob(pullId);
          const state = await ctx.queues.pull.getJobState(pullId);
          const again = (job?.processedOn ?? 0) > firstStart;
          return {
            done: again,
            seen: { state, processedOn: job?.processedOn, stalled: job?.stalledCounter },
          };
        },
        () => b.output().slice(-4000),
      );
      const takenAt = Date.now();
      // Taken up (the SIS still answers slowly, so the pull is still reading): normal again.
      const after = await readRun(run.id);
      expect(after.status).toBe('running');
      expect(after.stalled).toBeUndefined();
      fake.faults.slowMs(0);
      const done = await waitForRun(ctx, run.id, { timeoutMs: DEADLINE_MS, intervalMs: 100 });
      expect(done.status).toBe('succeeded');
      // Every active student of the SIS is in the store (B read the roster from the start).
      const db = new Database(join(dir, 'store.db'), { readonly: true });
      const stored = db
        .prepare(`SELECT count(*) FROM students WHERE district_id = ? AND status = 'active'`)
        .pluck()
        .get(DISTRICT_ID);
      db.close();
      expect(stored).toBe(sis.students.filter(s => s.enroll_status === 'A').length);
      console.log('kill -9 mid-pull, default locks', {
        lockMs: PIPELINE_LOCK_MS,
        stalledIntervalMs: PIPELINE_STALLED_INTERVAL_MS,
        workerBStartMs: bStartedAt - killedAt,
        takeoverAfterKillMs: takenAt - killedAt,
        runDoneAfterKillMs: Date.now() - killedAt,
        taken,
        stalledSeenAfterKillMs: stalledSeenAt - killedAt,
        counts: done.counts,
      });
    },
    TEST_MS,
  );
});
