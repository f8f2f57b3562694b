/**
 * Redis for the benchmark: a private `redis-server` on a free loopback port (so other
 * users of the shared Redis neither add to nor take from the measured memory), and a
 * sampler of `INFO memory` `used_memory`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

/** A running private Redis. */
export interface PrivateRedis {
  url: string;
  pid: number | undefined;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Start `redis-server` (from PATH) on 127.0.0.1 and a free port, without persistence,
 * `maxmemory-policy noeviction` (as guardian-sync requires). Resolves once it answers PING.
 * Throws when redis-server cannot be started within 10 s.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'gsync-bench-redis-'));
  const proc: ChildProcess = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--maxmemory-policy',
      'noeviction',
      '--dir',
      dir,
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  const exited = new Promise<void>(resolve => proc.once('exit', () => resolve()));
  const deadline = Date.now() + 10000;
  for (;;) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      break;
    } catch {
      client.disconnect();
      if (Date.now() > deadline || proc.exitCode !== null) {
        proc.kill('SIGKILL');
        throw new Error(`could not start redis-server on port ${port}`);
      }
      await new Promise(r => setTimeout(r, 100));
    }
  }
  return {
    url,
    pid: proc.pid,
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Samples `used_memory` every `intervalMs`; `window()` gives the peak since `mark()`. */
export class RedisMemorySampler {
  private readonly client: Redis;
  private timer: NodeJS.Timeout | undefined;
  private start = 0;
  private peak = 0;

  constructor(
    url: string,
    private readonly intervalMs = 100,
  ) {
    this.client = new Redis(url, { maxRetriesPerRequest: 1 });
    this.client.on('error', () => undefined);
  }

  private async usedMemory(): Promise<number> {
    const info = await this.client.info('memory');
    const m = /^used_memory:(\d+)/m.exec(info);
    return m?.[1] === undefined ? 0 : Number(m[1]);
  }

  /** Begin a measurement window (records the current usage as its start). */
  async mark(): Promise<void> {
    this.start = await this.usedMemory();
    this.peak = this.start;
    if (!this.timer) {
      this.timer = setInterval(() => {
        this.usedMemory().then(
          v => {
            this.peak = Math.max(this.peak, v);
          },
          () => undefined,
        );
      }, this.intervalMs);
    }
  }

  /** Peak `used_memory` in the window and its growth over the window's start, bytes. */
  async window(): Promise<{ peak: number; added: number }> {
    this.peak = Math.max(this.peak, await this.usedMemory());
    return { peak: this.peak, added: Math.max(0, this.peak - this.start) };
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.client.quit().catch(() => undefined);
  }
}
