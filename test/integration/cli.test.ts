/** The CLI as a user runs it: bad configuration exits 2 with a message naming the problem. */
import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';

// Each test spawns CLI processes (a few seconds each on a loaded 2-core machine).
jest.setTimeout(240_000);

function runCli(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      cwd: process.cwd(),
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', code => resolve({ code, stderr, stdout }));
  });
}

describe('guardian-sync CLI configuration errors', () => {
  it('exits 2 naming each bad environment variable', async () => {
    const r = await runCli(['runs', 'x'], { REDIS_URL: 'ftp://x', LOG_LEVEL: 'chatty' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('REDIS_URL');
    expect(r.stderr).toContain('LOG_LEVEL');
  });

  it('exits 2 naming the district file and the unknown key', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-cli-'));
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({
        id: 'bad',
        name: 'Bad',
        connector: {
          kind: 'powerschool',
          baseUrl: 'https://x.example',
          clientIdEnv: 'A',
          clientSecretEnv: 'B',
          pagesize: 5,
        },
      }),
    );
    const r = await runCli(['runs', 'bad'], {
      DISTRICTS_DIR: dir,
      STORE_URL: `sqlite:${join(dir, 's.db')}`,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.json: connector.*pagesize/);
  });

  it('exits 2 for an unknown district', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-cli-'));
    const r = await runCli(['runs', 'nowhere'], {
      DISTRICTS_DIR: dir,
      STORE_URL: `sqlite:${join(dir, 's.db')}`,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown district "nowhere"');
  });
});

describe('guardian-sync CLI startup errors', () => {
  it('names REDIS_URL when Redis cannot be reached', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-cli-'));
    // port 9 (discard) is closed on loopback
    const r = await runCli(['runs', 'x'], {
      REDIS_URL: 'redis://127.0.0.1:9',
      DISTRICTS_DIR: dir,
      STORE_URL: `sqlite:${join(dir, 's.db')}`,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('REDIS_URL: cannot connect to Redis at 127.0.0.1:9');
  });

  it('names the option when a number is not a number', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-cli-'));
    const r = await runCli(['runs', 'x', '-n', 'abc'], {
      DISTRICTS_DIR: dir,
      STORE_URL: `sqlite:${join(dir, 's.db')}`,
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/option '-n, --limit <n>' argument 'abc' is invalid/);
  });
});

describe('guardian-sync rejects', () => {
  it('prints a run’s exclusions (or rejects) as CSV, formula cells neutralised', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-cli-'));
    const store = new SqliteRosterStore(join(dir, 's.db'));
    await store.init();
    await store.createRun({
      id: 'r-cli',
      districtId: 'd',
      connector: 'powerschool',
      status: 'succeeded',
      dryRun: false,
      trigger: 'cli',
      createdAt: '2026-01-01T00:00:00.000Z',
      counts: { guardian: { 'excluded:no email or username': 1 } },
      rejectCount: 1,
      timings: {},
    });
    await store.addRejects('r-cli', [
      { entity: 'student', recordId: '=1+2', reason: 'name.last_name: required' },
      { entity: 'guardian', recordId: '77', reason: 'no email or username', kind: 'excluded' },
    ]);
    await store.close();
    const env = { DISTRICTS_DIR: dir, STORE_URL: `sqlite:${join(dir, 's.db')}` };
    const excluded = await runCli(['rejects', 'r-cli', '--kind', 'excluded'], env);
    expect(excluded.stderr).toBe('');
    expect(excluded.code).toBe(0);
    expect(excluded.stdout).toBe(
      'entity,recordId,reason,kind\nguardian,77,no email or username,excluded\n',
    );
    const all = await runCli(['rejects', 'r-cli'], env);
    expect(all.stdout).toBe(
      "entity,recordId,reason,kind\nstudent,'=1+2,name.last_name: required,rejected\n" +
        'guardian,77,no email or username,excluded\n',
    );
    const bad = await runCli(['rejects', 'r-cli', '--kind', 'maybe'], env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/--kind <kind>.*maybe/);
  });
});
