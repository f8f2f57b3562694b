/**
 * Schedules and sync modes against real Redis/BullMQ: `syncSchedules` adds, changes and
 * removes job schedulers as district configs change (also when two processes run it at
 * once); the API shows the next run time; add-only districts and freeze windows never
 * deactivate; a `no-sync` window skips scheduled triggers.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueEvents } from 'bullmq';
import { z } from 'zod';
import { createApp, type AppContext } from '../../src/app.js';
import { buildApiServer } from '../../src/api/server.js';
import { hashToken } from '../../src/config/api-tokens.js';
import { DistrictConfig } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import { withdrawStudent } from '../../src/dev/district-generator.js';
import { createLogger } from '../../src/logger.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { localDate } from '../../src/reconcile/freeze.js';
import { syncSchedules } from '../../src/workers/index.js';
import { QueueName } from '../../src/workers/queues.js';
import { startHarness, type Harness } from '../helpers/harness.js';

function district(id: string, schedule?: { cron: string; timezone?: string }) {
  return DistrictConfig.parse({
    id,
    name: `District ${id}`,
    connector: {
      kind: 'powerschool',
      baseUrl: 'http://127.0.0.1:9',
      clientIdEnv: 'PS_ID',
      clientSecretEnv: 'PS_SECRET',
    },
    ...(schedule ? { schedule } : {}),
  });
}

describe('district schedules (BullMQ job schedulers)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-sched-'));
  const prefix = `gsync-sched-${randomUUID().slice(0, 8)}`;
  const env = parseEnv({
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    STORE_URL: `sqlite:${join(dir, 'store.db')}`,
    QUEUE_PREFIX: prefix,
    LOG_LEVEL: 'silent',
  });
  const store = new SqliteRosterStore(join(dir, 'store.db'));
  const open: AppContext[] = [];

  /** A process started with these district files. */
  async function processWith(districts: DistrictConfig[]): Promise<AppContext> {
    const ctx = await createApp({ env, logger: createLogger('silent'), districts, store });
    open.push(ctx);
    return ctx;
  }

  const schedulers = async (ctx: AppContext) =>
    (await ctx.queues.trigger.getJobSchedulers(0, -1))
      .map(s => ({ key: s.key, pattern: s.pattern, tz: s.tz }))
      .sort((a, b) => a.key.localeCompare(b.key));

  beforeAll(async () => {
    await store.init();
  });
  afterAll(async () => {
    const last = open[open.length - 1];
    if (last) for (const q of Object.values(last.queues)) await q.obliterate({ force: true });
    for (const ctx of open) await ctx.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('adds one scheduler per scheduled district, in its time zone, with a next run time', async () => {
    const ctx = await processWith([
      district('alpha', { cron: '15 2 * * *', timezone: 'America/Chicago' }),
      district('beta', { cron: '0 3 * * 1-5' }),
      district('gamma'),
    ]);
    const r = await syncSchedules(ctx);
    expect(r.scheduled.sort()).toEqual(['district.alpha', 'district.beta']);
    expect(r.removed).toEqual([]);
    expect(await schedulers(ctx)).toEqual([
      { key: 'district.alpha', pattern: '15 2 * * *', tz: 'America/Chicago' },
      { key: 'district.beta', pattern: '0 3 * * 1-5', tz: 'UTC' },
    ]);
    const alpha = await ctx.queues.trigger.getJobScheduler('district.alpha');
    expect(alpha?.next).toBeGreaterThan(Date.now());
    const next = new Date(alpha?.next ?? 0);
    const hm = new Intl.DateTimeFormat('en-GB', {
      timeZone: 'America/Chicago',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    }).format(next);
    expect(hm).toBe('02:15');
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(25 * 3600 * 1000);

    // the API shows the same next run time
    const token = 'gst_schedule-test-token-0123456789abcdefghijklmno';
    const app = await buildApiServer(ctx, {
      tokens: [{ name: 't', sha256: hashToken(token), role: 'viewer' }],
      dashboard: false,
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${base}/districts/alpha`, {
        headers: { authorization: `Bearer ${token}` },
      });
      const body = z
        .object({
          schedule: z.object({
            cron: z.string(),
            timezone: z.string(),
            installed: z.boolean(),
            nextRunAt: z.string(),
          }),
        })
        .parse(await res.json());
      expect(body.schedule).toEqual({
        cron: '15 2 * * *',
        timezone: 'America/Chicago',
        installed: true,
        nextRunAt: next.toISOString(),
      });
    } finally {
      await app.close();
    }
  });

  it('changes and removes schedulers when the configuration changes', async () => {
    const ctx = await processWith([
      district('alpha', { cron: '30 4 * * *', timezone: 'America/Chicago' }),
      district('beta'),
      district('gamma', { cron: '0 1 * * *', timezone: 'Europe/Berlin' }),
    ]);
    const r = await syncSchedules(ctx);
    expect(r.removed).toEqual(['district.beta']);
    expect(await schedulers(ctx)).toEqual([
      { key: 'district.alpha', pattern: '30 4 * * *', tz: 'America/Chicago' },
      { key: 'district.gamma', pattern: '0 1 * * *', tz: 'Europe/Berlin' },
    ]);
  });

  it('two processes starting at once leave exactly one scheduler per district', async () => {
    const config = [
      district('alpha', { cron: '30 4 * * *', timezone: 'America/Chicago' }),
      district('gamma', { cron: '45 1 * * *', timezone: 'Europe/Berlin' }),
      district('delta', { cron: '0 5 * * *' }),
    ];
    const [a, b] = [await processWith(config), await processWith(config)];
    await Promise.all([syncSchedules(a), syncSchedules(b), syncSchedules(a)]);
    expect(await schedulers(a)).toEqual([
      { key: 'district.alpha', pattern: '30 4 * * *', tz: 'America/Chicago' },
      { key: 'district.delta', pattern: '0 5 * * *', tz: 'UTC' },
      { key: 'district.gamma', pattern: '45 1 * * *', tz: 'Europe/Berlin' },
    ]);
  });

  it('removes every scheduler when no district is scheduled', async () => {
    const ctx = await processWith([district('alpha'), district('gamma')]);
    const r = await syncSchedules(ctx);
    expect(r.removed.sort()).toEqual(['district.alpha', 'district.delta', 'district.gamma']);
    expect(await schedulers(ctx)).toEqual([]);
  });
});

describe('add-only districts and freeze windows', () => {
  const day = 24 * 3600 * 1000;
  const today = new Date();
  const window = {
    from: localDate(new Date(today.getTime() - day), 'UTC'),
    to: localDate(new Date(today.getTime() + day), 'UTC'),
  };

  describe('policy addOnly', () => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness({
        students: 200,
        seed: 31,
        district: { policies: { addOnly: true } },
      });
    });
    afterAll(async () => {
      await h?.close();
    });

    it('never deactivates, not even past the safeguard threshold, and says what it skipped', async () => {
      const first = await h.sync();
      expect(first.run.status).toBe('succeeded');
      const victims = h.sis.students.filter(s => s.enroll_status === 'A').slice(0, 40);
      for (const s of victims) withdrawStudent(h.sis, s.id);
      const { run } = await h.sync();
      expect(run.status).toBe('succeeded'); // not needs-approval: nothing would be deactivated
      expect(run.held).toBeUndefined();
      expect(run.counts.student?.['deactivate-skipped']).toBe(40);
      expect(run.counts.student?.deactivate).toBeUndefined();
      expect(run.counts.link?.remove).toBeUndefined();
      expect(run.counts.link?.['remove-skipped']).toBeGreaterThan(0);
      const active = new Set(await h.store.listActiveStudentIds(h.districtId));
      for (const s of victims) expect(active.has(String(s.id))).toBe(true);
      const links = await h.store.getLinks(h.districtId);
      expect(links.filter(l => l.status !== 'active')).toEqual([]);
    });
  });

  describe('a no-sync freeze window around today', () => {
    let h: Harness;
    let events: QueueEvents;
    beforeAll(async () => {
      h = await startHarness({
        students: 150,
        seed: 37,
        district: {
          policies: { freezeWindows: [{ ...window, mode: 'no-sync', reason: 'rollover' }] },
        },
      });
      events = new QueueEvents(QueueName.trigger, {
        connection: h.ctx.connection,
        prefix: h.ctx.prefix,
      });
      await events.waitUntilReady();
    });
    afterAll(async () => {
      await events?.close();
      await h?.close();
    });

    it('skips scheduled triggers', async () => {
      const job = await h.ctx.queues.trigger.add('scheduled-sync', {
        districtId: h.districtId,
        dryRun: false,
        trigger: 'schedule',
      });
      const result = z
        .object({ skipped: z.string() })
        .parse(await job.waitUntilFinished(events, 10000));
      expect(result.skipped).toContain('no-sync');
      expect(result.skipped).toContain('rollover');
      expect(await h.store.listRuns(h.districtId, 10)).toEqual([]);
    });

    it('runs a sync an admin starts by hand, add-only', async () => {
      const job = await h.ctx.queues.trigger.add('manual-sync', {
        districtId: h.districtId,
        dryRun: false,
        trigger: 'api',
      });
      const started = z
        .object({ runId: z.string(), started: z.boolean() })
        .parse(await job.waitUntilFinished(events, 10000));
      expect(started.started).toBe(true);
      const first = await h.sync();
      expect(['succeeded']).toContain(first.run.status);
      const victim = h.sis.students.find(s => s.enroll_status === 'A');
      if (!victim) throw new Error('no active student');
      withdrawStudent(h.sis, victim.id);
      const { run } = await h.sync();
      expect(run.status).toBe('succeeded');
      expect(run.counts.student?.['deactivate-skipped']).toBe(1);
      expect(await h.store.listActiveStudentIds(h.districtId)).toContain(String(victim.id));
    });
  });
});
