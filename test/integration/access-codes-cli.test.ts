/**
 * `guardian-sync codes …` as a user runs it (in-process: test/helpers/cli.ts), against the
 * SQLite store a real sync filled (fake PowerSchool, BullMQ on real Redis).
 */
import { jest } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { changeLogRepository } from '../../src/models/changes/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { runCli } from '../helpers/cli.js';

// beforeAll runs a real sync (fake PowerSchool, BullMQ): room for a loaded machine. The CLI
// calls themselves run in-process and take well under a second each.
jest.setTimeout(240_000);

describe('guardian-sync codes (CLI)', () => {
  let h: Harness;
  let dir: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    h = await startHarness({
      students: 60,
      seed: 47,
      district: { accessCodes: { enabled: true } },
    });
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    dir = mkdtempSync(join(tmpdir(), 'gsync-codes-cli-'));
    const district = h.ctx.district(h.districtId);
    writeFileSync(
      join(dir, 'test-district.json'),
      JSON.stringify({
        id: district.id,
        name: district.name,
        connector: {
          kind: 'powerschool',
          baseUrl: h.fake.url,
          clientIdEnv: 'PS_ID',
          clientSecretEnv: 'PS_SECRET',
        },
        accessCodes: { enabled: true },
      }),
    );
    env = {
      DISTRICTS_DIR: dir,
      STORE_URL: h.ctx.env.storeUrl,
      REDIS_URL: h.ctx.env.REDIS_URL,
      QUEUE_PREFIX: h.ctx.prefix,
      LOG_LEVEL: 'silent',
      PS_ID: h.fake.clientId,
      PS_SECRET: h.fake.clientSecret,
    };
  });
  afterAll(async () => {
    await h?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('settings, export to a file, reset one student, show their codes', async () => {
    const s = await runCli(
      ['codes', 'settings', h.districtId, '--issue-to', 'all', '--actor', 'cli:test'],
      env,
    );
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/issueTo\s+all\s+\(override by cli:test\)/);

    const issue = await runCli(['codes', 'issue', h.districtId], env);
    expect(issue.code).toBe(0);
    const active = (await h.store.getStudents(h.districtId)).filter(x => x.status === 'active');
    expect(issue.stdout).toContain(`active code(s) in ${h.districtId}`);
    expect(issue.stdout).toMatch(new RegExp(`; ${active.length} active code`));
    // Each code issued is logged: cause code-issue (no run), actor the OS user.
    const issued = Number(/^(\d+) code\(s\) issued/.exec(issue.stdout)?.[1]);
    expect(issued).toBeGreaterThan(0);
    const logged = (
      await (
        await changeLogRepository(h.store)
      ).list(h.districtId, {
        entity: 'code',
        limit: 10_000,
      })
    ).filter(x => x.cause.kind === 'code-issue' && x.cause.id === undefined);
    expect(logged).toHaveLength(issued);
    for (const x of logged)
      expect(x).toMatchObject({ action: 'create', actor: `cli:${userInfo().username}` });

    const out = join(dir, 'codes.csv');
    const e = await runCli(['codes', 'export', h.districtId, '-o', out], env);
    expect(e.code).toBe(0);
    const bytes = readFileSync(out);
    expect([...bytes.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    const rows: string[][] = parse(bytes.subarray(3).toString('utf8'));
    expect(rows.length - 1).toBe(active.length);
    const first = rows[1] ?? [];

    const r = await runCli(
      ['codes', 'reset', h.districtId, '--student', first[0] ?? '', '--student', 'nobody'],
      env,
    );
    expect(r.code).toBe(4); // one student not found (the other is reset)
    expect(r.stdout).toMatch(/\(list\) by cli:.*2 requested, 1 revoked, 1 issued/);
    expect(r.stdout).toContain('not found: nobody');
    const newCode = /\t([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})/.exec(r.stdout)?.[1];
    expect(newCode).toBeDefined();
    expect(newCode).not.toBe(first[5]);

    const show = await runCli(['codes', 'show', h.districtId, first[0] ?? ''], env);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain(`${newCode}  active`);
    expect(show.stdout).toContain(`${first[5]}  revoked`);

    const all = await runCli(['codes', 'reset', h.districtId, '--all'], env);
    expect(all.code).toBe(2); // refuses without --yes
    expect(all.stderr).toContain('--yes');

    const resets = await runCli(['codes', 'resets', h.districtId], env);
    expect(resets.code).toBe(0);
    expect(resets.stdout.split('\n')[0]).toMatch(
      /^at\s+by\s+scope\s+requested\s+revoked\s+issued\s+reset$/,
    );
    const resetsJson = await runCli(['codes', 'resets', h.districtId, '--json'], env);
    expect(resetsJson.code).toBe(0);
    const parsed = JSON.parse(resetsJson.stdout) as { scope: string; requested: number }[];
    expect(parsed.map(x => [x.scope, x.requested])).toEqual([['list', 2]]);
    const showJson = await runCli(['codes', 'show', h.districtId, first[0] ?? '', '--json'], env);
    expect(showJson.code).toBe(0);
    const shown = JSON.parse(showJson.stdout) as { codes: { status: string }[] };
    expect(shown.codes.map(c => c.status)).toContain('active');
  });

  it('one error style: unknown district exits 4, disabled codes exit 1, no class names', async () => {
    const unknown = await runCli(['codes', 'export', 'nowhere'], env);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toBe('error: unknown district "nowhere" (known: test-district)\n');
    const sections = await runCli(['codes', 'sections', 'nowhere'], env);
    expect(sections.code).toBe(4);

    const off = await runCli(['codes', 'settings', h.districtId, '--disable'], env);
    expect(off.code).toBe(0);
    const disabled = await runCli(['codes', 'issue', h.districtId], env);
    expect(disabled.code).toBe(1);
    expect(disabled.stderr).toMatch(/^error: access codes are disabled for district/);
    expect(disabled.stderr).not.toMatch(/[A-Z][a-zA-Z]+Error|unexpected error/);

    const both = await runCli(['codes', 'settings', h.districtId, '--enable', '--disable'], env);
    expect(both.code).toBe(2);
    expect(both.stderr).toBe('error: --enable and --disable together\n');
  });
});
