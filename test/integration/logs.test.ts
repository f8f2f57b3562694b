/**
 * Logs go to stderr, never stdout; they are JSON unless stderr is a terminal or
 * LOG_FORMAT=pretty; a CLI command's output is not followed by log lines unless LOG_LEVEL
 * asks for them (issue 16, point 4).
 */
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Queue } from 'bullmq';
import { createLogger, prettyLine } from '../../src/logger.js';
import { QueueName, redisOptionsFromUrl } from '../../src/workers/queues.js';

jest.setTimeout(240_000);

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Spawned {
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
  /** Resolves when stderr contains `text`; rejects after `ms` or when the process exits. */
  waitForStderr(text: string, ms: number): Promise<void>;
}

function spawnCli(args: string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    cwd: process.cwd(),
  });
  let out = '';
  let err = '';
  const waiters: { text: string; resolve: () => void }[] = [];
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of waiters.splice(0))
      if (err.includes(w.text)) w.resolve();
      else waiters.push(w);
  });
  const exited = new Promise<number | null>(resolve => child.on('close', code => resolve(code)));
  return {
    stdout: () => out,
    stderr: () => err,
    exited,
    kill: signal => child.kill(signal),
    waitForStderr(text, ms) {
      if (err.includes(text)) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no "${text}" on stderr within ${ms} ms:\n${err}`)),
          ms,
        );
        waiters.push({
          text,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
        });
        void exited.then(code => {
          clearTimeout(timer);
          reject(new Error(`exited ${code} before "${text}":\n${err}`));
        });
      });
    },
  };
}

describe('logger', () => {
  function capture(format: 'json' | 'pretty' | 'auto', isTTY: boolean) {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const logger = createLogger('info', { destination: sink, format, isTTY });
    return { logger, lines };
  }

  it('writes JSON when not a terminal, pretty lines on a terminal or with LOG_FORMAT=pretty', () => {
    const json = capture('auto', false);
    json.logger.child({ component: 'workers' }).warn({ queue: 'pull', n: 3 }, 'job failed');
    expect(JSON.parse(json.lines[0] ?? '')).toMatchObject({ msg: 'job failed', queue: 'pull' });

    for (const [format, tty] of [
      ['auto', true],
      ['pretty', false],
    ] as const) {
      const pretty = capture(format, tty);
      pretty.logger.child({ component: 'workers' }).warn({ queue: 'pull', n: 3 }, 'job failed');
      expect(pretty.lines[0]).toMatch(
        /^\d\d:\d\d:\d\d\.\d{3} WARN +\[workers\] job failed queue=pull n=3\n$/,
      );
    }
  });

  it('pretty lines keep redaction and quote values with spaces', () => {
    const pretty = capture('pretty', false);
    pretty.logger.info({ password: 'hunter2', err: 'socket hang up' }, 'connect');
    expect(pretty.lines[0]).toContain('password=[redacted]');
    expect(pretty.lines[0]).toContain('err="socket hang up"');
    expect(pretty.lines[0]).not.toContain('hunter2');
    expect(prettyLine('not json')).toBe('not json\n');
  });
});

describe('log streams of the processes', () => {
  let dir: string;
  let prefix: string;
  let env: Record<string, string>;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gsync-logs-'));
    prefix = `gsync-test-${randomUUID().slice(0, 8)}`;
    // two districts, so that each command below starts a run (and logs "run queued" at info)
    for (const id of ['logs-quiet', 'logs-chatty'])
      writeFileSync(
        join(dir, `${id}.json`),
        JSON.stringify({
          id,
          name: id,
          connector: {
            kind: 'powerschool',
            baseUrl: 'http://127.0.0.1:9',
            clientIdEnv: 'LOGS_PS_ID',
            clientSecretEnv: 'LOGS_PS_SECRET',
          },
        }),
      );
    env = {
      REDIS_URL,
      DISTRICTS_DIR: dir,
      STORE_URL: `sqlite:${join(dir, 'store.db')}`,
      QUEUE_PREFIX: prefix,
      LOGS_PS_ID: 'id',
      LOGS_PS_SECRET: 'secret',
    };
  });

  afterAll(async () => {
    for (const name of Object.values(QueueName)) {
      const q = new Queue(name, { connection: redisOptionsFromUrl(REDIS_URL), prefix });
      await q.obliterate({ force: true });
      await q.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('a CLI command prints its output only; LOG_LEVEL=info adds JSON lines on stderr', async () => {
    const quiet = spawnCli(['sync', 'logs-quiet'], env);
    expect(await quiet.exited).toBe(0);
    expect(quiet.stdout()).toMatch(/^run \S+ queued\n$/);
    expect(quiet.stderr()).toBe('');

    const chatty = spawnCli(['sync', 'logs-chatty'], { ...env, LOG_LEVEL: 'info' });
    expect(await chatty.exited).toBe(0);
    expect(chatty.stdout()).not.toContain('{');
    const lines = chatty.stderr().trim().split('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) expect(JSON.parse(l)).toHaveProperty('msg');
    expect(chatty.stderr()).toContain('"msg":"run queued"');
  });

  it('the worker logs to stderr (JSON, or pretty with LOG_FORMAT=pretty), nothing on stdout', async () => {
    for (const format of ['json', 'pretty'] as const) {
      const worker = spawnCli(['worker'], { ...env, LOG_FORMAT: format });
      try {
        await worker.waitForStderr('worker started', 120_000);
      } finally {
        worker.kill('SIGTERM');
      }
      expect(await worker.exited).toBe(0);
      expect(worker.stdout()).toBe('');
      const started = worker
        .stderr()
        .split('\n')
        .find(l => l.includes('worker started'));
      if (format === 'json') expect(JSON.parse(started ?? '')).toHaveProperty('districts');
      else expect(started).toMatch(/^\d\d:\d\d:\d\d\.\d{3} INFO +worker started districts=/);
    }
  });
});
