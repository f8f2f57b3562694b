/**
 * Failure handling of the pipeline as an operator meets it: permanent errors fail fast,
 * Redis with an evicting memory policy is refused, a worker stops cleanly on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Job } from 'bullmq';
import { createApp } from '../../src/app.js';
import { parseEnv } from '../../src/config/env.js';
import { ConfigError } from '../../src/errors.js';
import { createLogger } from '../../src/logger.js';
import { jobId } from '../../src/workers/queues.js';
import { startHarness, type Harness } from '../helpers/harness.js';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() =>
        typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Resolve with the child's exit code; reject after `ms`. */
function exitOf(child: ChildProcess, ms: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`process did not exit within ${ms} ms`)), ms);
    child.once('exit', code => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/** Resolve when `child` prints a line containing `text`; reject after `ms`. */
function waitForOutput(child: ChildProcess, text: string, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const t = setTimeout(
      () => reject(new Error(`"${text}" not printed within ${ms} ms; got: ${seen.slice(-500)}`)),
      ms,
    );
    const on = (d: Buffer) => {
      seen += d.toString();
      if (seen.includes(text)) {
        clearTimeout(t);
        resolve();
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
  });
}

describe('permanent errors', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ students: 50, seed: 5 });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('bad SIS credentials fail the run at once, without job retries, naming the cause', async () => {
    const good = h.ctx.secrets.PS_SECRET;
    h.ctx.secrets.PS_SECRET = 'wrong-secret';
    try {
      const { run, writes } = await h.sync();
      expect(run.status).toBe('failed');
      expect(run.error).toMatch(/credential|client/i);
      expect(writes).toBe(0);
      const job = await Job.fromId(h.ctx.queues.pull, jobId.pull(h.districtId, run.id));
      expect(job?.attemptsMade).toBe(1);
      expect(job?.opts.attempts).toBeGreaterThan(1); // retries were allowed, and skipped
    } finally {
      h.ctx.secrets.PS_SECRET = good;
    }
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
  });
});

describe('Redis memory policy', () => {
  let redis: ChildProcess | undefined;
  afterAll(async () => {
    if (redis && redis.exitCode === null) {
      redis.kill('SIGTERM');
      await exitOf(redis, 10000);
    }
  });

  it('refuses to start against a Redis that evicts keys', async () => {
    const port = await freePort();
    redis = spawn('redis-server', [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'allkeys-lru',
    ]);
    await waitForOutput(redis, 'Ready to accept connections', 10000);
    const env = parseEnv({
      REDIS_URL: `redis://127.0.0.1:${port}`,
      STORE_URL: 'sqlite::memory:',
      LOG_LEVEL: 'silent',
    });
    const attempt = createApp({ env, logger: createLogger('silent'), districts: [] });
    await expect(attempt).rejects.toThrow(ConfigError);
    await expect(attempt).rejects.toThrow(/maxmemory-policy is "allkeys-lru"/);
  });
});

describe('worker process', () => {
  it('stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-worker-'));
    writeFileSync(
      join(dir, 'd.json'),
      JSON.stringify({
        id: 'sigterm-test',
        name: 'SIGTERM test',
        connector: {
          kind: 'powerschool',
          baseUrl: 'http://127.0.0.1:9',
          clientIdEnv: 'X_ID',
          clientSecretEnv: 'X_SECRET',
        },
        schedule: { cron: '0 3 * * *' },
      }),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'worker'], {
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        DISTRICTS_DIR: dir,
        STORE_URL: `sqlite:${join(dir, 'store.db')}`,
        QUEUE_PREFIX: `gsync-sigterm-${process.pid}`,
        X_ID: 'id',
        X_SECRET: 'secret',
        LOG_LEVEL: 'info',
      },
    });
    await waitForOutput(child, 'worker started', 30000);
    const exited = exitOf(child, 30000);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
