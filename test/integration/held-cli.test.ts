/** `guardian-sync held`: what a needs-approval run holds, as a table, a JSON page or CSV. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { runCli } from '../helpers/cli.js';

describe('guardian-sync held', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'gsync-held-cli-'));
    const file = join(dir, 's.db');
    const store = new SqliteRosterStore(file);
    await store.init();
    const student = (n: number) => ({
      districtId: 'd1',
      sourcedId: `s${n}`,
      uniqueId: `U-${n}`,
      givenName: n === 2 ? '=cmd' : `Given${n}`,
      familyName: 'Family',
      schoolSourcedIds: [],
      status: 'active' as const,
    });
    await store.reconcileChunk(
      'd1',
      {
        connector: 'powerschool',
        studentSourcedIds: [],
        guardianSourcedIds: [],
        guardianUniqueIds: [],
        emailsNormalized: [],
      },
      () => ({
        students: [1, 2, 3].map(n => ({ action: 'create' as const, record: student(n) })),
        parentCreates: [],
        parentUpdates: [],
        links: [],
        linkRemovals: [],
        rejects: [],
        guardianAccounts: {},
      }),
      { dryRun: false },
    );
    await store.createRun({
      id: 'rheld1',
      districtId: 'd1',
      connector: 'powerschool',
      status: 'running',
      dryRun: false,
      trigger: 'cli',
      createdAt: '2025-01-01T00:00:00.000Z',
      counts: {},
      rejectCount: 0,
      timings: {},
    });
    await store.holdRun(
      'rheld1',
      {},
      {
        studentSourcedIds: ['s1', 's2', 's3'],
        parentIds: [],
        links: [],
      },
    );
    await store.close();
    env = { DISTRICTS_DIR: dir, STORE_URL: `sqlite:${file}` };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('lists the held students as a table, a JSON page and the whole list as CSV', async () => {
    const table = await runCli(['held', 'rheld1'], env);
    expect(table.stderr).toBe('');
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('run rheld1 (needs-approval) holds 3 students');
    expect(table.stdout).toMatch(/s1\s+U-1\s+Given1 Family/);

    const json = await runCli(
      ['held', 'rheld1', 'students', '--offset', '1', '--limit', '1', '--json'],
      env,
    );
    expect(json.code).toBe(0);
    const page = JSON.parse(json.stdout) as { total: number; items: { studentUniqueId: string }[] };
    expect(page.total).toBe(3);
    expect(page.items.map(i => i.studentUniqueId)).toEqual(['U-2']);

    const csv = await runCli(['held', 'rheld1', '--csv'], env);
    expect(csv.code).toBe(0);
    const lines = csv.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^kind,studentSourcedId,studentUniqueId,studentName,/);
    // a formula-looking name is neutralised
    expect(lines[2]).toContain(`s2,U-2,'=cmd Family`);

    const bad = await runCli(['held', 'rheld1', 'teachers'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('unknown list "teachers"');
  });
});
