/**
 * `guardian-sync students|associate|unassociate` as an admin runs them (a child process, real
 * SQLite file, real Redis).
 */
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { changeLogRepository } from '../../src/models/changes/index.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { seed, sisParent, student } from '../helpers/imports.js';

// Each test spawns CLI processes (a few seconds each on a loaded 2-core machine).
jest.setTimeout(240_000);

const D = 'cli-manual';
let dir: string;
let env: Record<string, string>;
let storeFile: string;

function runCli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      cwd: process.cwd(),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', code => resolve({ code, stdout, stderr }));
  });
}

async function links(): Promise<string[]> {
  const store = new SqliteRosterStore(storeFile);
  await store.init();
  try {
    return (await store.getLinks(D)).map(
      l => `${l.parentId}>${l.studentSourcedId}:${l.origin}:${l.status}`,
    );
  } finally {
    await store.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gsync-manual-cli-'));
  storeFile = join(dir, 'store.db');
  const districts = join(dir, 'districts');
  mkdirSync(districts);
  writeFileSync(
    join(districts, `${D}.json`),
    JSON.stringify({
      id: D,
      name: 'CLI District',
      connector: {
        kind: 'powerschool',
        baseUrl: 'https://ps.example.org',
        clientIdEnv: 'PS_ID',
        clientSecretEnv: 'PS_SECRET',
      },
    }),
  );
  const store = new SqliteRosterStore(storeFile);
  await store.init();
  await seed(store, D, {
    students: [
      student(D, 1, { givenName: 'Renée', familyName: 'Dubois', grade: '5' }),
      student(D, 2, { givenName: 'Rob', familyName: 'Smith' }),
    ],
    parents: [sisParent(D, 1)],
  });
  await store.close();
  env = {
    STORE_URL: `sqlite:${storeFile}`,
    DISTRICTS_DIR: districts,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: `gsync-manual-cli-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: 'silent',
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('guardian-sync students / associate / unassociate', () => {
  it('searches, associates, refuses unknown ids, and removes', async () => {
    const s = await runCli(['students', D, 'RENE']);
    expect(s.stderr).toBe('');
    expect(s.code).toBe(0);
    expect(s.stdout.trim().split('\n')).toEqual(['S00001\tDubois, Renée\t5\tsch-1\tstu-1']);

    const a = await runCli(['associate', D, 'pa_sis_1', 'S00001']);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^created {2}parent pa_sis_1 {2}student S00001 \(stu-1\)/);
    expect(await links()).toEqual(['pa_sis_1>stu-1:manual:active']);

    const bad = await runCli(['associate', D, 'pa_sis_1', 'S404']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/no student with Unique ID S404/);

    const u = await runCli(['unassociate', D, 'pa_sis_1', 'S00001']);
    expect(u.code).toBe(0);
    expect(u.stdout).toMatch(/^deactivated/);
    expect(await links()).toEqual(['pa_sis_1>stu-1:manual:inactive']);

    // Both changes are in the change log with the OS user who ran the commands.
    const store = new SqliteRosterStore(storeFile);
    await store.init();
    try {
      const entries = await (
        await changeLogRepository(store)
      ).list(D, { entity: 'link', studentSourcedId: 'stu-1', limit: 1000 });
      expect(entries.map(e => [e.action, e.origin, e.cause, e.actor])).toEqual([
        ['create', 'manual', { kind: 'manual' }, `cli:${userInfo().username}`],
        ['deactivate', 'manual', { kind: 'manual' }, `cli:${userInfo().username}`],
      ]);
    } finally {
      await store.close();
    }
  }, 240_000);
});
