/**
 * Issue 16 §2 and §5 through the real pipeline (fake PowerSchool, SQLite, Redis, BullMQ):
 * cancelling a queued run (no worker) and a running one mid-pull, `sync --wait --timeout`,
 * the report of a queued run no worker can take, and metrics of held runs that are
 * discarded or approved.
 */
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job } from 'bullmq';
import { z } from 'zod';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { renderMetrics } from '../../src/api/metrics.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { changeEmail, withdrawStudent } from '../../src/dev/district-generator.js';
import { runCountsFromLog } from '../../src/jobs/changes.js';
import { approveRun, cancelRun, discardRun, triggerSync } from '../../src/jobs/sync.js';
import { workerWait } from '../../src/jobs/worker-wait.js';
import type { RunCounts } from '../../src/models/types.js';
import { jobId } from '../../src/workers/queues.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { parsePrometheusText, sumOf } from '../helpers/prometheus.js';

jest.setTimeout(240_000);

async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(r => setTimeout(r, 50));
  }
}

const total = (c: RunCounts) =>
  Object.values(c).reduce((n, a) => n + Object.values(a).reduce((m, k) => m + k, 0), 0);

const TOKENS = {
  admin: 'gst_test-admin-token-0123456789abcdefghijklmnopqrstuv',
  viewer: 'gst_test-viewer-token-0123456789abcdefghijklmnopqrstu',
  other: 'gst_test-other-district-admin-0123456789abcdefghijklm',
};
const ENTRIES: ApiTokenEntry[] = [
  { name: 'ops-admin', sha256: hashToken(TOKENS.admin), role: 'admin' },
  { name: 'ops-viewer', sha256: hashToken(TOKENS.viewer), role: 'viewer' },
  {
    name: 'other-admin',
    sha256: hashToken(TOKENS.other),
    role: 'admin',
    districts: ['other-district'],
  },
];

const RunDetail = z.looseObject({
  id: z.string(),
  status: z.string(),
  decidedBy: z.string().optional(),
  waitingForWorkerSince: z.string().optional(),
});

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      cwd: process.cwd(),
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', code => resolve({ code, stderr, stdout }));
  });
}

describe('a queued run with no worker', () => {
  let h: Harness;
  let app: ApiServer;
  let base: string;
  let cliEnv: Record<string, string>;
  let dir: string;

  const call = (who: keyof typeof TOKENS, method: string, path: string) =>
    fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${TOKENS[who]}` } });

  beforeAll(async () => {
    h = await startHarness({ students: 60, seed: 161 });
    await h.workers.close(5000); // no worker from here on
    app = await buildApiServer(h.ctx, { tokens: ENTRIES });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    // The same district, store and queues for CLI processes.
    dir = mkdtempSync(join(tmpdir(), 'gsync-cancel-'));
    writeFileSync(
      join(dir, `${h.districtId}.json`),
      JSON.stringify({
        id: h.districtId,
        name: 'Test District',
        connector: {
          kind: 'powerschool',
          baseUrl: h.fake.url,
          clientIdEnv: 'PS_ID',
          clientSecretEnv: 'PS_SECRET',
        },
      }),
    );
    cliEnv = {
      REDIS_URL: h.ctx.env.REDIS_URL,
      STORE_URL: `sqlite:${h.store.file}`,
      QUEUE_PREFIX: h.ctx.prefix,
      DISTRICTS_DIR: dir,
      PS_ID: h.fake.clientId,
      PS_SECRET: h.fake.clientSecret,
    };
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('sync --wait --timeout gives up with exit status 5, the run stays queued and is reported', async () => {
    const r = await runCli(['sync', h.districtId, '--wait', '--timeout', '1'], cliEnv);
    expect(r.stderr).toMatch(/timeout: run \S+ is still queued after 1 s; it keeps going/);
    expect(r.stderr).toContain('no worker is connected');
    expect(r.code).toBe(5);
    const run = await h.ctx.store.findActiveRun(h.districtId);
    expect(run?.status).toBe('queued');
    if (!run) return;

    // reported as waiting for a worker: API detail, `run`, metrics
    const detail = RunDetail.parse(await (await call('viewer', 'GET', `/runs/${run.id}`)).json());
    expect(detail.waitingForWorkerSince).toBe(run.createdAt);
    const shown = await runCli(['run', run.id], cliEnv);
    expect(shown.stdout).toContain(`waiting for a worker since ${run.createdAt}`);
    const samples = parsePrometheusText((await renderMetrics(h.ctx)).text);
    expect(
      sumOf(samples, 'guardian_sync_runs_queued_without_worker', { district: h.districtId }),
    ).toBe(1);
    expect(
      sumOf(samples, 'guardian_sync_runs_queued_without_worker_seconds', {
        district: h.districtId,
      }),
    ).toBeGreaterThanOrEqual(0);

    // every later trigger answers "already queued"
    const again = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    expect(again).toMatchObject({ started: false, run: { id: run.id } });
  });

  it('cancel via the API: viewer 403, other district 403, admin cancels; a new trigger starts at once', async () => {
    const run = await h.ctx.store.findActiveRun(h.districtId);
    if (!run) throw new Error('expected the queued run of the test before');
    expect((await call('viewer', 'POST', `/runs/${run.id}/cancel`)).status).toBe(403);
    expect((await call('other', 'POST', `/runs/${run.id}/cancel`)).status).toBe(403);
    expect((await call('admin', 'POST', '/runs/r-no-such-run/cancel')).status).toBe(404);
    const res = await call('admin', 'POST', `/runs/${run.id}/cancel`);
    expect(res.status).toBe(200);
    const body = z.object({ run: RunDetail }).parse(await res.json());
    expect(body.run).toMatchObject({ status: 'cancelled', decidedBy: 'api:ops-admin' });
    const stored = await h.store.getRun(run.id);
    expect(stored?.decidedAt).toBeDefined();
    expect(stored?.finishedAt).toBeDefined();
    // its pull job left the queue; the run is no longer reported as waiting
    expect(await Job.fromId(h.ctx.queues.pull, jobId.pull(h.districtId, run.id))).toBeUndefined();
    expect(stored && (await workerWait(h.ctx, stored))).toBeUndefined();
    // a cancelled run cannot be cancelled again
    expect((await call('admin', 'POST', `/runs/${run.id}/cancel`)).status).toBe(409);
    const next = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    expect(next.started).toBe(true);
    expect(next.run.status).toBe('queued');
  });

  it('cancel via the CLI', async () => {
    const run = await h.ctx.store.findActiveRun(h.districtId);
    if (!run) throw new Error('expected the queued run of the test before');
    const r = await runCli(['cancel', run.id], cliEnv);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/status\s+cancelled/);
    expect(await h.store.getRun(run.id)).toMatchObject({
      status: 'cancelled',
      decidedBy: expect.stringMatching(/^cli:/) as unknown,
    });
    expect(await h.ctx.store.findActiveRun(h.districtId)).toBeUndefined();
    const samples = parsePrometheusText((await renderMetrics(h.ctx)).text);
    expect(
      sumOf(samples, 'guardian_sync_runs_queued_without_worker', { district: h.districtId }),
    ).toBe(0);
  });
});

describe('cancelling a running run, and metrics of held runs', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ students: 600, seed: 162 });
    expect((await h.sync()).run.status).toBe('succeeded');
  });
  afterAll(async () => {
    await h?.close();
  });

  it('stops mid-pull: cancelled, nothing deactivated, what it wrote stays and is counted', async () => {
    const withdrawn = h.sis.students.filter(s => s.enroll_status === 'A').slice(0, 3);
    for (const s of withdrawn) withdrawStudent(h.sis, s.id);
    for (const c of h.sis.contacts)
      changeEmail(h.sis, c.contactId, `c${c.contactId}.cancel@example.org`);
    h.fake.faults.slowMs(300);
    const { run } = await triggerSync(h.ctx, {
      districtId: h.districtId,
      dryRun: false,
      trigger: 'test',
    });
    // The first chunk is written; then the SIS holds the rest of the pull.
    await until(
      async () => total(await runCountsFromLog(h.ctx, h.districtId, run.id)) > 0,
      60000,
      'the first chunk',
    );
    h.fake.faults.pause();
    const cancelled = await cancelRun(h.ctx, run.id, 'test:operator');
    expect(cancelled).toMatchObject({ status: 'cancelled', decidedBy: 'test:operator' });
    h.fake.faults.slowMs(0);
    h.fake.faults.resume();
    // The pull stops at its next chunk; chunks still queued are skipped.
    const pull = await Job.fromId(h.ctx.queues.pull, jobId.pull(h.districtId, run.id));
    await until(
      async () => (await pull?.getState()) === 'completed',
      60000,
      'the pull job to stop',
    );
    await until(
      async () => {
        const c = await h.ctx.queues.apply.getJobCounts('waiting', 'active', 'delayed');
        return (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0) === 0;
      },
      60000,
      'the apply queue to drain',
    );
    const after = await h.store.getRun(run.id);
    expect(after?.status).toBe('cancelled');
    expect(await h.ctx.queues.finalize.getJob(jobId.finalize(h.districtId, run.id))).toBeFalsy();
    // what it wrote stays and is counted from the log, and it did not write everything
    const logged = await runCountsFromLog(h.ctx, h.districtId, run.id);
    expect(after?.counts).toEqual(logged);
    expect(logged.parent?.update ?? 0).toBeGreaterThan(0);
    expect(logged.parent?.update ?? 0).toBeLessThan(h.sis.contacts.length);
    const stored = await h.store.getStudents(h.districtId);
    for (const s of withdrawn)
      expect(stored.find(x => x.sourcedId === String(s.id))?.status).toBe('active');
    expect(logged.student?.deactivate).toBeUndefined();

    // The district syncs again at once; that run deactivates them.
    const next = await h.sync();
    expect(next.run.status).toBe('succeeded');
    expect(next.run.counts.student?.deactivate).toBe(3);
  });

  it('counts records and outcomes truthfully for held runs discarded, then approved', async () => {
    const m = async () => parsePrometheusText((await renderMetrics(h.ctx)).text);
    const dl = { district: h.districtId };
    const outcome = (s: Awaited<ReturnType<typeof m>>, status: string) =>
      sumOf(s, 'guardian_sync_runs_total', { ...dl, status, dry_run: 'false' });
    const deactivated = (s: Awaited<ReturnType<typeof m>>) =>
      sumOf(s, 'guardian_sync_records_processed_total', {
        ...dl,
        entity: 'student',
        action: 'deactivate',
      });
    const decisions = (s: Awaited<ReturnType<typeof m>>, decision: string) =>
      sumOf(s, 'guardian_sync_held_run_decisions_total', { ...dl, decision });
    // all earlier deactivations counted (consumer caught up)
    await until(async () => deactivated(await m()) === 3, 30000, 'earlier deactivations');
    const before = await m();

    const victims = h.sis.students.filter(s => s.enroll_status === 'A').slice(0, 80);
    for (const s of victims) withdrawStudent(h.sis, s.id);
    const first = await h.sync();
    expect(first.run.status).toBe('needs-approval');
    expect((await discardRun(h.ctx, first.run.id, 'test:operator')).status).toBe('discarded');
    const second = await h.sync();
    expect(second.run.status).toBe('needs-approval');
    expect((await approveRun(h.ctx, second.run.id, 'test:operator')).status).toBe('succeeded');

    // Only the approved run's deactivations are records processed (never the discarded).
    await until(
      async () => deactivated(await m()) >= deactivated(before) + 80,
      30000,
      'the approval deactivations',
    );
    const after = await m();
    expect(deactivated(after) - deactivated(before)).toBe(80);
    // Each held run is counted held, then with its decision; the discarded one never succeeded.
    expect(outcome(after, 'needs-approval') - outcome(before, 'needs-approval')).toBe(2);
    expect(outcome(after, 'discarded') - outcome(before, 'discarded')).toBe(1);
    expect(outcome(after, 'succeeded') - outcome(before, 'succeeded')).toBe(1);
    expect(decisions(after, 'approved') - decisions(before, 'approved')).toBe(1);
    expect(decisions(after, 'discarded') - decisions(before, 'discarded')).toBe(1);
    // the cancelled run of the test before has its own outcome
    expect(outcome(after, 'cancelled')).toBe(1);
  });
});
