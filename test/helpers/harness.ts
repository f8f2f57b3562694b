/**
 * Integration harness: a real fake PowerSchool on loopback, a real SQLite store in a temp
 * folder, real Redis with a unique queue prefix per harness, and real BullMQ workers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createApp, type AppContext } from '../../src/app.js';
import { DistrictConfig } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import { generateDistrict, type SyntheticDistrict } from '../../src/dev/district-generator.js';
import { startFakePowerSchool, type FakePowerSchool } from '../../src/dev/powerschool-server.js';
import {
  generateSections,
  type GenerateSectionsOptions,
  type SyntheticSections,
} from '../../src/dev/section-generator.js';
import type { SisConnector } from '../../src/connectors/types.js';
import { triggerSync, waitForRun } from '../../src/jobs/sync.js';
import { createLogger } from '../../src/logger.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import type { SyncRun } from '../../src/models/types.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';

export interface Harness {
  sis: SyntheticDistrict;
  /** Sections served by the fake (when the `sections` option was given). */
  sections?: SyntheticSections | undefined;
  fake: FakePowerSchool;
  ctx: AppContext;
  store: SqliteRosterStore;
  workers: RunningWorkers;
  districtId: string;
  /** Trigger a run and wait for it to finish; returns the run and store writes it made. */
  sync(opts?: { dryRun?: boolean }): Promise<{ run: SyncRun; writes: number }>;
  close(): Promise<void>;
}

export async function startHarness(opts: {
  students: number;
  seed: number;
  district?: Record<string, unknown>;
  fake?: Parameters<typeof startFakePowerSchool>[1];
  /** Extra environment variables (e.g. `SMTP_URL` of a test SMTP catcher). */
  env?: Record<string, string>;
  /** Extra keys of the district's `connector` block (e.g. `{ sections: true }`). */
  connector?: Record<string, unknown>;
  /** Serve generated course sections from the fake (`generateSections(sis, options)`). */
  sections?: GenerateSectionsOptions;
  /** Build the district's connector in code (e.g. a link-less dev connector over `sis`). */
  connectorFactory?: (sis: SyntheticDistrict) => SisConnector | undefined;
  /** The store's SQLite `busy_timeout` (ms; default the store's 5000). */
  busyTimeoutMs?: number;
}): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-test-'));
  const sis = generateDistrict({ seed: opts.seed, students: opts.students });
  const sections = opts.sections ? generateSections(sis, opts.sections) : undefined;
  const fake = await startFakePowerSchool(sis, { ...opts.fake, ...(sections ? { sections } : {}) });
  const store = new SqliteRosterStore(
    join(dir, 'store.db'),
    opts.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: opts.busyTimeoutMs },
  );
  await store.init();
  const env = parseEnv({
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    STORE_URL: `sqlite:${join(dir, 'store.db')}`,
    QUEUE_PREFIX: `gsync-test-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...opts.env,
  });
  const district = DistrictConfig.parse({
    id: 'test-district',
    name: 'Test District',
    connector: {
      kind: 'powerschool',
      baseUrl: fake.url,
      clientIdEnv: 'PS_ID',
      clientSecretEnv: 'PS_SECRET',
      pageSize: 100,
      retries: 2,
      timeoutMs: 5000,
      ...opts.connector,
    },
    ...opts.district,
  });
  const ctx = await createApp({
    env,
    logger: createLogger(env.LOG_LEVEL),
    districts: [district],
    secrets: { PS_ID: fake.clientId, PS_SECRET: fake.clientSecret },
    store,
    connectorOverrides: { powerschool: { client: { minBackoffMs: 5, maxBackoffMs: 20 } } },
    ...(opts.connectorFactory ? { connectorFactory: () => opts.connectorFactory?.(sis) } : {}),
  });
  const workers = startWorkers(ctx, { concurrency: 2 });
  return {
    sis,
    sections,
    fake,
    ctx,
    store,
    workers,
    districtId: district.id,
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
    async close() {
      await workers.close(5000);
      for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
      await ctx.close();
      await store.close();
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
