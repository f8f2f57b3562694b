/**
 * The import CLI as an admin runs it (in-process, real SQLite file, real Redis): preview
 * a messy real file from test/fixtures, write the row report, confirm with the preview id.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { changeLogRepository } from '../../src/models/changes/index.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { seed, sisParent, student } from '../helpers/imports.js';
import { runCli as runCliInProcess } from '../helpers/cli.js';

const D = 'cli-district';
let dir: string;
let env: Record<string, string>;
let storeFile: string;

const runCli = (args: string[]) => runCliInProcess(args, env);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'gsync-imports-cli-'));
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
  await store.upsertSchools(D, [
    { sourcedId: 'sch-1', name: 'Lincoln Elementary' },
    { sourcedId: 'sch-2', name: 'Washington Middle' },
  ]);
  await seed(store, D, {
    students: [student(D, 1), student(D, 2), student(D, 3)],
    parents: [sisParent(D, 1), sisParent(D, 2)],
  });
  await store.close();
  env = {
    STORE_URL: `sqlite:${storeFile}`,
    DISTRICTS_DIR: districts,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    QUEUE_PREFIX: `gsync-imp-cli-${randomUUID().slice(0, 8)}`,
    LOG_LEVEL: 'silent',
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('guardian-sync import', () => {
  it('previews the messy fixture, writes the report, confirms; then imports associations', async () => {
    const fixture = 'test/fixtures/imports/messy-parents.csv';
    const report = join(dir, 'report.csv');
    const p = await runCli([
      'import',
      'parents',
      D,
      fixture,
      '--school-from-file',
      '--school-value',
      'LES=sch-1',
      '--report',
      report,
    ]);
    expect(p.stderr).toBe('');
    expect(p.code).toBe(0);
    expect(p.stdout).toMatch(/file {5}messy-parents\.csv \(csv, utf-8-bom, delimiter ";"/);
    expect(p.stdout).toMatch(/rows {5}8 data rows: 4 used, 4 with errors, 2 with warnings/);
    expect(p.stdout).toMatch(/plan {5}create 1 · update 2 · reactivate 0 · unchanged 0/);
    const id = /preview {2}(imp_[0-9a-f]{24})/.exec(p.stdout)?.[1];
    expect(id).toBeDefined();
    // A summary for people: samples as `field value`, no raw JSON objects; a pasteable confirm.
    expect(p.stdout).not.toMatch(/^\s*\{"/m);
    expect(p.stdout).toContain(
      `confirm  guardian-sync import parents ${D} ${fixture} --confirm ${id ?? ''}`,
    );
    const lines = readFileSync(report, 'utf8')
      .replace(/^\ufeff/, '')
      .trimEnd()
      .split('\r\n');
    expect(lines.map(l => l.split(',').slice(1, 3).join(','))).toEqual([
      'row,column',
      '4,Unique ID', // collapsed repeat of row 3 (warning)
      '5,Unique ID', // scientific notation
      '6,E-mail', // not an email
      '7,First Name', // blank
      '8,School', // Hogwarts: not in the value table, no such school
      '9,Unique ID', // email of P00002: merged into that account (warning)
      '9,E-mail', // …whose name differs: the name will change (warning)
    ]);

    const c = await runCli(['import', 'parents', D, fixture, '--confirm', id ?? '']);
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    expect(c.stdout).toMatch(new RegExp(`applied  ${id} {2}parents`));
    // The change log names the import and the OS user who confirmed it.
    const store = new SqliteRosterStore(storeFile);
    await store.init();
    try {
      const entries = await (
        await changeLogRepository(store)
      ).list(D, { causeIds: [id ?? ''], limit: 1000 });
      expect(entries.length).toBeGreaterThan(0);
      for (const e of entries)
        expect(e).toMatchObject({
          entity: 'parent',
          cause: { kind: 'import', id, trigger: 'parents' },
          actor: `cli:${userInfo().username}`,
        });
    } finally {
      await store.close();
    }
    const a = await runCli(['import', 'associations', D, 'test/fixtures/imports/associations.csv']);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/plan {5}add 2 · reactivate 0 · unchanged 0 · remove 0/);
    expect(a.stdout).toMatch(
      /row 4 {2}"N-100 \/ S00002" {2}warning: duplicate pair: same as row 3; the rows are collapsed/,
    );
    expect(a.stdout).toMatch(
      /row 5 {2}Parent Unique ID {2}"NOPE" {2}error: no parent account has this Unique ID/,
    );
    expect(a.stdout).toMatch(/row 6 {2}Parent Unique ID {2}error: Parent Unique ID is blank/);
  }, 60_000);

  it('--json prints the raw preview; under `npm run cli` the confirm line says so', async () => {
    const file = 'test/fixtures/imports/associations.csv';
    const j = await runCli(['import', 'associations', D, file, '--json']);
    expect(j.stderr).toBe('');
    expect(j.code).toBe(0);
    const preview = JSON.parse(j.stdout) as { previewId: string; kind: string };
    expect(preview.kind).toBe('associations');
    expect(preview.previewId).toMatch(/^imp_[0-9a-f]{24}$/);

    const npm = await runCliInProcess(['import', 'associations', D, file], {
      ...env,
      npm_lifecycle_event: 'cli',
      npm_lifecycle_script: 'tsx src/cli/main.ts',
    });
    expect(npm.code).toBe(0);
    expect(npm.stdout).toMatch(
      new RegExp(`^confirm  npm run cli -- import associations ${D} ${file} --confirm imp_`, 'm'),
    );

    const gone = await runCli(['import', 'associations', D, file, '--confirm', 'imp_nope']);
    expect(gone.code).toBe(4);
    expect(gone.stderr).toMatch(/^error: import preview imp_nope/);
  });

  it('confirm of data that changed since the preview exits 3 (decision needed) with a new preview', async () => {
    const file = join(dir, 'clear.csv');
    writeFileSync(file, 'P00002,S00003\n');
    const p = await runCli(['import', 'associations', D, file, '--no-headers', '--clear-existing']);
    expect(p.code).toBe(0);
    const id = /preview {2}(imp_[0-9a-f]{24})/.exec(p.stdout)?.[1] ?? '';
    expect(id).not.toBe('');
    const store = new SqliteRosterStore(storeFile);
    await store.init();
    try {
      await seed(store, D, {
        links: [
          {
            districtId: D,
            parentId: 'pa_sis_1',
            studentSourcedId: 'stu-3',
            origin: 'manual',
            status: 'active',
          },
        ],
      });
    } finally {
      await store.close();
    }
    const c = await runCli(['import', 'associations', D, file, '--confirm', id]);
    expect(c.code).toBe(3);
    expect(c.stdout).toMatch(/preview {2}imp_[0-9a-f]{24}/);
    expect(c.stdout).not.toContain(`preview  ${id}`);
  });

  it('a legacy .xls exits non-zero with the save-as message and changes nothing', async () => {
    const xls = join(dir, 'old.xls');
    writeFileSync(xls, Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0]));
    const r = await runCli(['import', 'parents', D, xls]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/old\.xls: this is a legacy Excel 97-2003 workbook/);
  }, 30_000);

  it('PowerSchool contacts template: --header-row below a category row, multi-row contacts, --only (issue 19)', async () => {
    const f = join(dir, 'contacts.csv');
    writeFileSync(
      f,
      [
        'Contact Information,,', // category row above the header
        'Unique ID,studentNumber,relationshipRole',
        'P00001,S00003,Parent',
        'P00001,,parent', // extra phone row of the same contact: merged
        'P00002,S00003,student', // left out by --only
        '',
      ].join('\r\n'),
    );
    const r = await runCli([
      'import',
      'associations',
      D,
      f,
      '--header-row',
      '2',
      '--only',
      'relationshipRole=parent,guardian',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/header {3}row 2 \(1 row above it not read\)/);
    expect(r.stdout).toMatch(/rows {5}2 data rows: 2 used, 0 with errors, 0 with warnings/);
    expect(r.stdout).toMatch(/plan {5}add 1 · .* · merged 1 · excluded 1$/m);
    expect(r.stdout).toMatch(
      /row 5 {2}relationshipRole {2}"student" {2}warning: left out: relationshipRole is "student", not one of parent, guardian \(only\)/,
    );
    expect(r.stdout).toMatch(/issues {3}0 errors, 1 warning$/m);
  }, 60_000);
});
