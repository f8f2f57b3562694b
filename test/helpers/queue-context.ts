/**
 * An app context for tests of the queues without workers (chunk turns, the chunk sender): a
 * fresh SQLite store in a temporary folder, real Redis under a queue prefix of its own, and
 * one PowerSchool district `districtId` whose SIS is never called.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createApp, type AppContext } from '../../src/app.js';
import { DistrictConfig } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import { createLogger } from '../../src/logger.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';

/** A context from `openQueueContext`; `close` obliterates its queues and removes its folder. */
export interface QueueContext {
  ctx: AppContext;
  store: SqliteRosterStore;
  close(): Promise<void>;
}

/**
 * Open the context (`label` names the temporary folder and the queue prefix). Throws when
 * Redis or the store cannot be opened.
 */
export async function openQueueContext(label: string, districtId: string): Promise<QueueContext> {
  const dir = mkdtempSync(join(tmpdir(), `gsync-${label}-`));
  const store = new SqliteRosterStore(join(dir, 'store.db'));
  await store.init();
  const env = parseEnv({
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    STORE_URL: `sqlite:${join(dir, 'store.db')}`,
    QUEUE_PREFIX: `gsync-${label}-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  });
  const ctx = await createApp({
    env,
    logger: createLogger(env.LOG_LEVEL),
    districts: [
      DistrictConfig.parse({
        id: districtId,
        name: districtId,
        connector: {
          kind: 'powerschool',
          baseUrl: 'http://127.0.0.1:9',
          clientIdEnv: 'PS_ID',
          clientSecretEnv: 'PS_SECRET',
        },
      }),
    ],
    secrets: { PS_ID: 'x', PS_SECRET: 'y' },
    store,
  });
  return {
    ctx,
    store,
    async close() {
      for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
      await ctx.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
