/**
 * `guardian-sync students|associate|unassociate` as an admin runs them (in-process, real
 * SQLite file, real Redis).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { changeLogRepository } from '../../src/models/changes/index.js';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { seed, sisParent, student } from '../helpers/imports.js';
import { runCli as runCliInProcess } from '../helpers/cli.js';

const D = 'cli-manual';
let dir: string;
let env: Record<string, string>;
let storeFile: string;

const runCli = (args: string[]) => runCliInProcess(args, env);

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
    parents: [
      sisParent(D, 1),
      // two accounts sharing one email: the SIS's, and one an admin imported before
      // (one active SIS account per email is a unique index; other origins may share it)
      sisParent(D, 2, { email: 'Shared@example.org', emailNormalized: 'shared@example.org' }),
      sisParent(D, 3, {
        email: 'shared@example.org',
        emailNormalized: 'shared@example.org',
        origin: 'import',
        sources: [],
      }),
    ],
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
    expect(bad.code).toBe(4); // not found (src/cli/exit.ts)
    expect(bad.stderr).toMatch(/^error: .*no student with Unique ID S404/);

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

  it('addresses the parent by Unique ID or email; an unknown or shared one is refused', async () => {
    const byUniqueId = await runCli(['associate', D, 'P00001', 'S00002']);
    expect(byUniqueId.stderr).toBe('');
    expect(byUniqueId.code).toBe(0);
    expect(byUniqueId.stdout).toMatch(/^created {2}parent pa_sis_1 {2}student S00002 \(stu-2\)/);

    const byEmail = await runCli(['unassociate', D, 'PARENT1@example.org', 'S00002']);
    expect(byEmail.code).toBe(0);
    expect(byEmail.stdout).toMatch(/^deactivated {2}parent pa_sis_1 {2}student S00002/);

    const forcedKind = await runCli(['associate', D, 'P00001', 'S00002', '--by', 'email']);
    expect(forcedKind.code).toBe(4);
    expect(forcedKind.stderr).toMatch(
      /^error: district cli-manual has no parent account with email/,
    );

    const unknown = await runCli(['associate', D, 'nobody@example.org', 'S00002']);
    expect(unknown.code).toBe(4);
    expect(unknown.stderr).toContain('no parent account with account id, Unique ID or email');

    const shared = await runCli(['associate', D, 'shared@example.org', 'S00002']);
    expect(shared.code).toBe(1);
    expect(shared.stderr).toMatch(/^error: email shared@example.org belongs to 2 parent accounts/);
    expect(shared.stderr).toContain('pa_sis_2 (Unique ID P00002');
    expect(shared.stderr).toContain('pa_sis_3 (Unique ID P00003');
    expect(shared.stderr).not.toMatch(/[A-Z][a-zA-Z]+Error/);

    // the candidate's account id settles it
    const chosen = await runCli(['associate', D, 'pa_sis_3', 'S00002', '--by', 'id']);
    expect(chosen.code).toBe(0);
    expect(await links()).toEqual(
      expect.arrayContaining(['pa_sis_1>stu-2:manual:inactive', 'pa_sis_3>stu-2:manual:active']),
    );
  }, 240_000);
});
