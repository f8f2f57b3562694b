/**
 * The CLI as a user runs it: one error style (`error: …` on stderr, no class names) and the
 * exit-code table of src/cli/exit.ts (0 ok, 1 failure, 2 usage/configuration, 3 decision
 * needed, 4 not found), labelled tables and `--json`, `--version`, and the command prefix it
 * prints. In-process (test/helpers/cli.ts), except ONE spawned smoke test of `npm run cli`.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { pathToFileURL } from 'node:url';
import { packageVersion as versionOf } from '../../src/cli/main.js';
import { runCli } from '../helpers/cli.js';

const packageVersion = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string })
  .version;

/** A district directory with an empty store and one stored run `r-cli` (exclusions, held). */
async function storeWithRun(): Promise<Record<string, string>> {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-cli-'));
  writeFileSync(
    join(dir, 'd.json'),
    JSON.stringify({
      id: 'd',
      name: 'D',
      connector: {
        kind: 'powerschool',
        baseUrl: 'https://ps.example.org',
        clientIdEnv: 'PS_ID',
        clientSecretEnv: 'PS_SECRET',
      },
    }),
  );
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
    counts: {
      student: { create: 300, deactivate: 2, 'deactivate-held': 1 },
      guardian: { 'excluded:no email or username': 1 },
    },
    rejectCount: 1,
    timings: {},
  });
  await store.addRejects('r-cli', [
    { entity: 'student', recordId: '=1+2', reason: 'name.last_name: required' },
    { entity: 'guardian', recordId: '77', reason: 'no email or username', kind: 'excluded' },
  ]);
  await store.close();
  return {
    DISTRICTS_DIR: dir,
    STORE_URL: `sqlite:${join(dir, 's.db')}`,
    PS_ID: 'i',
    PS_SECRET: 's',
  };
}

describe('guardian-sync CLI configuration and usage errors (exit 2)', () => {
  it('exits 2 naming each bad environment variable', async () => {
    const r = await runCli(['runs', 'x'], { REDIS_URL: 'ftp://x', LOG_LEVEL: 'chatty' });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: configuration problem: /);
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

  it('names REDIS_URL when Redis cannot be reached', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-cli-'));
    // port 9 (discard) is closed on loopback
    const r = await runCli(['runs', 'x'], {
      REDIS_URL: 'redis://127.0.0.1:9',
      LOG_LEVEL: 'silent',
      DISTRICTS_DIR: dir,
      STORE_URL: `sqlite:${join(dir, 's.db')}`,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('REDIS_URL: cannot connect to Redis at 127.0.0.1:9');
  });

  it('names the option when a number is not a number, or a choice is not one', async () => {
    const env = await storeWithRun();
    const r = await runCli(['runs', 'd', '-n', 'abc'], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/option '-n, --limit <n>' argument 'abc' is invalid/);
    const bad = await runCli(['rejects', 'r-cli', '--kind', 'maybe'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--kind <kind>.*maybe/);
  });
});

describe('guardian-sync CLI not found (exit 4) and failures (exit 1)', () => {
  it('an unknown district is "not found" from every command', async () => {
    const env = await storeWithRun();
    for (const args of [
      ['runs', 'nowhere'],
      ['sync', 'nowhere'],
      ['codes', 'export', 'nowhere'],
      ['students', 'nowhere', 'a'],
    ]) {
      const r = await runCli(args, env);
      expect([args.join(' '), r.code]).toEqual([args.join(' '), 4]);
      expect(r.stderr).toMatch(/^error: (unknown district "nowhere"|no district nowhere)/);
      expect(r.stderr).not.toMatch(/configuration|[A-Z][a-zA-Z]+Error/);
    }
  });

  it('`run nope` (and remap, rejects, held, approve, discard, cancel) says "no run nope", exit 4', async () => {
    const env = await storeWithRun();
    for (const cmd of ['run', 'remap', 'rejects', 'held', 'approve', 'discard', 'cancel']) {
      const r = await runCli([cmd, 'nope'], env);
      expect([cmd, r.code, r.stderr]).toEqual([cmd, 4, 'error: no run nope\n']);
    }
  });

  it('a refused operation exits 1 with the reason, no class name', async () => {
    const env = await storeWithRun();
    const r = await runCli(['approve', 'r-cli'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^error: .*r-cli/);
    expect(r.stderr).not.toMatch(/[A-Z][a-zA-Z]+Error|unexpected error/);
  });
});

describe('guardian-sync runs / run / rejects / --version', () => {
  it('runs: a labelled table, counts per entity and action; --json for scripts', async () => {
    const env = await storeWithRun();
    const r = await runCli(['runs', 'd'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [header, row] = r.stdout.trimEnd().split('\n');
    expect(header).toMatch(
      /^created\s+run\s+status\s+trigger\s+held\s+skipped\s+excluded\s+rejects\s+changes$/,
    );
    expect(row).toMatch(
      /^2026-01-01T00:00:00.000Z\s+r-cli\s+succeeded\s+cli\s+1\s+0\s+1\s+1\s+student create 300, deactivate 2$/,
    );

    const j = await runCli(['runs', 'd', '--json'], env);
    expect(j.code).toBe(0);
    const runs = JSON.parse(j.stdout) as { id: string; counts: Record<string, unknown> }[];
    expect(runs.map(x => x.id)).toEqual(['r-cli']);
    expect(runs[0]?.counts).toMatchObject({ student: { create: 300, deactivate: 2 } });

    const one = await runCli(['run', 'r-cli', '--json'], env);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ id: 'r-cli', status: 'succeeded' });
  });

  it('prints follow-up commands with the prefix the user used', async () => {
    const env = await storeWithRun();
    const bin = await runCli(['run', 'r-cli'], env);
    expect(bin.code).toBe(0);
    expect(bin.stdout).toContain('(guardian-sync rejects r-cli --kind excluded)');
    const npm = await runCli(['run', 'r-cli'], {
      ...env,
      npm_lifecycle_event: 'cli',
      npm_lifecycle_script: 'tsx src/cli/main.ts',
    });
    expect(npm.stdout).toContain('(npm run cli -- rejects r-cli --kind excluded)');
  });

  it('prints a run’s exclusions (or rejects) as CSV, formula cells neutralised', async () => {
    const env = await storeWithRun();
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
  });

  it('--version prints the version of package.json, from the sources and the built bin', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${packageVersion}\n`);
    // the bin is dist/src/cli/main.js: package.json is three levels up there
    expect(versionOf(pathToFileURL(join(process.cwd(), 'dist/src/cli/main.js')))).toBe(
      packageVersion,
    );
  });
});

describe('the real entry point (spawned once)', () => {
  it('`npm run cli -- …` prints npm follow-ups and exits with the table’s code', async () => {
    const env = await storeWithRun();
    const npm = (args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const child = spawn('npm', ['run', '--silent', 'cli', '--', ...args], {
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
    const ok = await npm(['run', 'r-cli']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('(npm run cli -- rejects r-cli --kind excluded)');
    const missing = await npm(['run', 'nope']);
    expect(missing.code).toBe(4);
    expect(missing.stderr).toContain('error: no run nope');
  }, 240_000);
});
