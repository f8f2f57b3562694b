/**
 * District files changed while the API runs (issue 16, point 7): a district added after the
 * start is served (folder watch, or `POST /admin/districts/reload`); a bad file or a missing
 * secret is refused loudly and the previous configuration stays.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { z } from 'zod';
import { createApp, type AppContext } from '../../src/app.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken } from '../../src/config/api-tokens.js';
import { parseEnv } from '../../src/config/env.js';
import { watchDistrictFiles, type DistrictReload } from '../../src/config/reload.js';
import { createLogger } from '../../src/logger.js';
import { QueueName, redisOptionsFromUrl } from '../../src/workers/queues.js';
import { Queue } from 'bullmq';

jest.setTimeout(240_000);

const ADMIN = 'gst_reload-admin-token-0123456789abcdefghijklmnopqrstu';
const VIEWER = 'gst_reload-viewer-token-0123456789abcdefghijklmnopqrs';

const district = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  name: `District ${id}`,
  connector: {
    kind: 'powerschool',
    baseUrl: 'https://ps.example.org',
    clientIdEnv: `${id.toUpperCase().replace(/-/g, '_')}_ID`,
    clientSecretEnv: `${id.toUpperCase().replace(/-/g, '_')}_SECRET`,
  },
  ...extra,
});

const ErrorBody = z.object({
  code: z.string(),
  message: z.string(),
  details: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
});

describe('district files reloaded while the API runs', () => {
  let dir: string;
  let ctx: AppContext;
  let app: ApiServer;
  let base: string;
  const secrets: Record<string, string> = { FIRST_ID: 'a', FIRST_SECRET: 'b' };
  const reloads: DistrictReload[] = [];
  let nextReload: (() => void) | undefined;
  let watcher: ReturnType<typeof watchDistrictFiles>;

  const get = (path: string, token = ADMIN) =>
    fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const post = (path: string, token = ADMIN) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  const write = (file: string, body: unknown) =>
    writeFileSync(join(dir, file), typeof body === 'string' ? body : JSON.stringify(body));

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gsync-reload-'));
    write('first.json', district('first'));
    const env = parseEnv({
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      STORE_URL: `sqlite:${join(dir, 'store.db')}`,
      DISTRICTS_DIR: dir,
      QUEUE_PREFIX: `gsync-test-${randomUUID().slice(0, 8)}`,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    });
    ctx = await createApp({ env, logger: createLogger(env.LOG_LEVEL), secrets });
    app = await buildApiServer(ctx, {
      tokens: [
        { name: 'admin', sha256: hashToken(ADMIN), role: 'admin' },
        { name: 'viewer', sha256: hashToken(VIEWER), role: 'viewer' },
      ],
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    watcher = watchDistrictFiles(ctx, {
      debounceMs: 100,
      onReload: r => {
        reloads.push(r);
        nextReload?.();
      },
    });
  });
  afterAll(async () => {
    watcher?.close();
    await app?.close();
    await ctx?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a district added after the start, picked up by the folder watch', async () => {
    expect((await get('/districts/second')).status).toBe(404);
    secrets.SECOND_ID = 'c';
    secrets.SECOND_SECRET = 'd';
    const reloaded = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reload within 20 s')), 20000);
      nextReload = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    write('second.json', district('second'));
    await reloaded;
    expect(reloads.at(-1)).toMatchObject({ added: ['second'], removed: [] });
    expect((await get('/districts/second')).status).toBe(200);
    // the tests below use the reload route; a watch reload racing them would blur what they see
    watcher.close();
  });

  it('refuses a bad file with 422 naming file and key; the previous districts stay', async () => {
    write('third.json', { ...district('third'), conector: {} });
    const res = await post('/admin/districts/reload');
    expect(res.status).toBe(422);
    const body = ErrorBody.parse(await res.json());
    expect(body.code).toBe('invalid_config');
    expect(body.details?.map(d => d.message).join('\n')).toMatch(/third\.json.*conector/);
    expect((await get('/districts/first')).status).toBe(200);
    expect((await get('/districts/second')).status).toBe(200);
    unlinkSync(join(dir, 'third.json'));
  });

  it('refuses Skyward LMS with deltas enabled, naming the district and the setting', async () => {
    write('skyward-lms.json', {
      id: 'skyward-lms',
      name: 'Skyward LMS district',
      connector: {
        kind: 'skyward',
        api: 'lms',
        baseUrl: 'https://skyward.example.org/API',
        clientIdEnv: 'SKY_ID',
        clientSecretEnv: 'SKY_SECRET',
        usernameEnv: 'SKY_USER',
        passwordEnv: 'SKY_PASS',
        deltas: { enabled: true },
      },
    });
    const res = await post('/admin/districts/reload');
    expect(res.status).toBe(422);
    const body = ErrorBody.parse(await res.json());
    expect(body.code).toBe('invalid_config');
    expect(body.details?.map(d => d.message).join('\n')).toMatch(
      /skyward-lms\.json.*connector\.deltas\.enabled.*district "skyward-lms".*Skyward LMS API/,
    );
    expect((await get('/districts/skyward-lms')).status).toBe(404);
    expect((await get('/districts/first')).status).toBe(200);
    unlinkSync(join(dir, 'skyward-lms.json'));
  });

  it('refuses a district whose secrets are not set, naming the variable', async () => {
    write('fourth.json', district('fourth'));
    const res = await post('/admin/districts/reload');
    expect(res.status).toBe(422);
    const body = ErrorBody.parse(await res.json());
    expect(body.details?.map(d => d.message).join('\n')).toContain('FOURTH_ID');
    expect((await get('/districts/fourth')).status).toBe(404);
    secrets.FOURTH_ID = 'e';
    secrets.FOURTH_SECRET = 'f';
    const ok = await post('/admin/districts/reload');
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ added: ['fourth'] });
    expect((await get('/districts/fourth')).status).toBe(200);
  });

  it('drops a removed district; only an admin may reload', async () => {
    expect((await post('/admin/districts/reload', VIEWER)).status).toBe(403);
    unlinkSync(join(dir, 'fourth.json'));
    const res = await post('/admin/districts/reload');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ removed: ['fourth'] });
    expect((await get('/districts/fourth')).status).toBe(404);
  });
});

describe('the worker process reloads district files', () => {
  it('a district added while it runs gets its cron schedule, without a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-reload-worker-'));
    const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
    const prefix = `gsync-test-${randomUUID().slice(0, 8)}`;
    writeFileSync(join(dir, 'first.json'), JSON.stringify(district('first')));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'worker'], {
      cwd: process.cwd(),
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        REDIS_URL: redisUrl,
        DISTRICTS_DIR: dir,
        STORE_URL: `sqlite:${join(dir, 'store.db')}`,
        QUEUE_PREFIX: prefix,
        LOG_FORMAT: 'json',
        FIRST_ID: 'a',
        FIRST_SECRET: 'b',
        LATER_ID: 'c',
        LATER_SECRET: 'd',
      },
    });
    let stderr = '';
    const seen = (text: string, ms: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no "${text}" within ${ms} ms:\n${stderr}`)),
          ms,
        );
        const check = () => {
          if (!stderr.includes(text)) return;
          clearTimeout(timer);
          child.stderr.off('data', check);
          resolve();
        };
        child.stderr.on('data', check);
        check();
      });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const trigger = new Queue(QueueName.trigger, {
      connection: redisOptionsFromUrl(redisUrl),
      prefix,
    });
    try {
      await seen('worker started', 120_000);
      expect(await trigger.getJobScheduler('district.later')).toBeUndefined();
      writeFileSync(
        join(dir, 'later.json'),
        JSON.stringify(district('later', { schedule: { cron: '15 2 * * *' } })),
      );
      await seen('district files reloaded', 30_000);
      const line = stderr.split('\n').find(l => l.includes('district files reloaded')) ?? '';
      expect(JSON.parse(line)).toMatchObject({ added: ['later'] });
      // logged once the schedules follow the files
      const s = await trigger.getJobScheduler('district.later');
      expect(s?.pattern).toBe('15 2 * * *');
    } finally {
      child.kill('SIGTERM');
      await new Promise(r => child.once('close', r));
      for (const name of Object.values(QueueName)) {
        const q = new Queue(name, { connection: redisOptionsFromUrl(redisUrl), prefix });
        await q.obliterate({ force: true });
        await q.close();
      }
      await trigger.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
