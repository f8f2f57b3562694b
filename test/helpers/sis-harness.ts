/**
 * Integration harness for any connector kind (sibling of `harness.ts`, which is
 * PowerSchool-specific): a real SQLite store in a temp folder, real Redis with a unique queue
 * prefix, real BullMQ workers, and the district config the test gives (its fake SIS is the
 * test's own: an HTTP server or a folder of files).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createApp, type AppContext } from '../../src/app.js';
import { DistrictConfig } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import type { ConnectorOverrides } from '../../src/connectors/index.js';
import { triggerSync, waitForRun } from '../../src/jobs/sync.js';
import { createLogger } from '../../src/logger.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import type { SyncRun } from '../../src/models/types.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';

export interface SisHarness {
  ctx: AppContext;
  store: SqliteRosterStore;
  workers: RunningWorkers;
  districtId: string;
  /** A temp folder the test may use (removed on close). */
  dir: string;
  /** Trigger a run and wait for it to finish; returns the run and the store writes it made. */
  sync(opts?: { dryRun?: boolean }): Promise<{ run: SyncRun; writes: number }>;
  /** Replace the district's config (validated) for the next runs, e.g. a changed policy. */
  reconfigure(raw: Record<string, unknown>): void;
  close(): Promise<void>;
}

/**
 * Start the harness for one district. `district` is the raw district object (`id` defaults
 * to `test-district`, `name` to `Test District`); `secrets` are the variables it names.
 */
export async function startSisHarness(opts: {
  district: Record<string, unknown>;
  secrets?: Record<string, string>;
  overrides?: ConnectorOverrides;
}): Promise<SisHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-sis-'));
  const store = new SqliteRosterStore(join(dir, 'store.db'));
  await store.init();
  const env = parseEnv({
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    STORE_URL: `sqlite:${join(dir, 'store.db')}`,
    QUEUE_PREFIX: `gsync-test-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  });
  const parse = (raw: Record<string, unknown>) =>
    DistrictConfig.parse({ id: 'test-district', name: 'Test District', ...raw });
  const district = parse(opts.district);
  const ctx = await createApp({
    env,
    logger: createLogger(env.LOG_LEVEL),
    districts: [district],
    secrets: opts.secrets ?? {},
    store,
    connectorOverrides: opts.overrides ?? {},
  });
  const workers = startWorkers(ctx, { concurrency: 2 });
  return {
    ctx,
    store,
    workers,
    districtId: district.id,
    dir,
    async sync(o = {}) {
      const before = store.writeCount();
      const { run } = await triggerSync(ctx, {
        districtId: district.id,
        dryRun: o.dryRun ?? false,
        trigger: 'test',
      });
      const done = await waitForRun(ctx, run.id, { timeoutMs: 60000, intervalMs: 50 });
      return { run: done, writes: store.writeCount() - before };
    },
    reconfigure(raw) {
      const next = parse(raw);
      if (next.id !== district.id) throw new Error('reconfigure cannot change the district id');
      ctx.districts.set(next.id, next);
    },
    async close() {
      await workers.close(5000);
      for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
      await ctx.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
