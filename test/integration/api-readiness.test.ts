/**
 * Readiness over real HTTP against a Redis server this test starts on its own port and
 * stops: `/readyz` answers 200, then 503 naming Redis while it is down, then 200 again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { z } from 'zod';
import { createApp, type AppContext } from '../../src/app.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken } from '../../src/config/api-tokens.js';
import { DistrictConfig } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import { createLogger } from '../../src/logger.js';

const TOKEN = 'gst_readiness-test-token-0123456789abcdefghijklmnop';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Start `redis-server` on `port` and resolve once it answers PING. */
async function startRedis(port: number): Promise<ChildProcess> {
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const probe = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    retryStrategy: () => null,
  });
  probe.on('error', () => undefined);
  const deadline = Date.now() + 10000;
  try {
    for (;;) {
      try {
        await probe.connect();
        if ((await probe.ping()) === 'PONG') return proc;
      } catch {
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
        await new Promise(r => setTimeout(r, 50));
      }
    }
  } finally {
    probe.disconnect();
  }
}

async function stopRedis(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise(r => proc.once('exit', r));
  proc.kill('SIGKILL');
  await exited;
}

const Readiness = z.object({
  status: z.enum(['ready', 'unavailable']),
  checks: z.object({
    redis: z.object({ ok: z.boolean(), error: z.string().optional() }),
    store: z.object({ ok: z.boolean() }),
  }),
});

describe('readiness with a Redis that goes away', () => {
  let port: number;
  let redis: ChildProcess;
  let ctx: AppContext;
  let app: ApiServer;
  let base: string;
  const dir = mkdtempSync(join(tmpdir(), 'gsync-ready-'));

  const readyz = async () => {
    const res = await fetch(`${base}/readyz`, { headers: { authorization: `Bearer ${TOKEN}` } });
    return { status: res.status, body: Readiness.parse(await res.json()) };
  };

  beforeAll(async () => {
    port = await freePort();
    redis = await startRedis(port);
    const env = parseEnv({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      STORE_URL: `sqlite:${join(dir, 'store.db')}`,
      QUEUE_PREFIX: 'gsync-ready',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    });
    const district = DistrictConfig.parse({
      id: 'ready-district',
      name: 'Readiness District',
      connector: {
        kind: 'powerschool',
        baseUrl: 'http://127.0.0.1:9',
        clientIdEnv: 'PS_ID',
        clientSecretEnv: 'PS_SECRET',
      },
    });
    ctx = await createApp({ env, logger: createLogger(env.LOG_LEVEL), districts: [district] });
    await ctx.store.init();
    app = await buildApiServer(ctx, {
      tokens: [{ name: 'probe', sha256: hashToken(TOKEN), role: 'viewer' }],
      dashboard: false,
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });

  afterAll(async () => {
    await app?.close();
    await ctx?.close();
    if (redis) await stopRedis(redis);
    rmSync(dir, { recursive: true, force: true });
  });

  it('is ready while Redis and the store answer', async () => {
    const r = await readyz();
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('ready');
    expect(r.body.checks.redis.ok).toBe(true);
    expect(r.body.checks.store.ok).toBe(true);
    // the queues have open connections now (metrics reads every queue's job counts)
    const m = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(m.status).toBe(200);
  });

  it('answers 503 naming Redis when Redis is stopped, and recovers when it is back', async () => {
    await stopRedis(redis);
    const down = await readyz();
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('unavailable');
    expect(down.body.checks.redis.ok).toBe(false);
    expect(down.body.checks.redis.error).toBeTruthy();
    expect(down.body.checks.store.ok).toBe(true);
    // liveness does not depend on Redis; metrics fail with a JSON error, the process lives on
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const m = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect([500, 503]).toContain(m.status);
    const err = z.object({ code: z.string() }).parse(await m.json());
    expect(['internal', 'service_unavailable']).toContain(err.code);

    redis = await startRedis(port);
    const deadline = Date.now() + 15000;
    let again = await readyz();
    while (again.status !== 200 && Date.now() < deadline) {
      await new Promise(r => setTimeout(r, 100));
      again = await readyz();
    }
    expect(again.status).toBe(200);
    expect(again.body.checks.redis.ok).toBe(true);
  });
});
