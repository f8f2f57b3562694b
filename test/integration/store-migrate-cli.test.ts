/**
 * `guardian-sync store migrate` on a real SQLite file (docs/decisions/0010): the dry run
 * reports pending migrations and changes nothing, the migration applies them, and invariant
 * 7's unique index is reported — or, when accounts already share an email, those accounts.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import Database from 'better-sqlite3';
import { MIGRATIONS } from '../../src/models/sqlite/store.js';
import { runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'gs-store-migrate-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function version(path: string): number {
  const db = new Database(path, { readonly: true });
  try {
    return Number(db.pragma('user_version', { simple: true }));
  } finally {
    db.close();
  }
}

describe('store migrate (SQLite)', () => {
  it('reports pending migrations on --dry-run without applying them, then applies them', async () => {
    const path = join(dir, 'fresh.db');
    new Database(path).close(); // an existing, empty store file (schema version 0)
    const env = { STORE_URL: `sqlite:${path}` };
    const dry = await runCli(['store', 'migrate', '--dry-run', '--json'], env);
    expect(dry.code).toBe(0);
    const report = JSON.parse(dry.stdout) as {
      schema: { before: number; after: number; latest: number };
    };
    expect(report.schema).toEqual({ before: 0, after: 0, latest: MIGRATIONS.length });
    expect(version(path)).toBe(0);

    const done = await runCli(['store', 'migrate'], env);
    expect(done.code).toBe(0);
    expect(done.stdout).toContain(`SQLite schema version 0 → ${MIGRATIONS.length}`);
    expect(done.stdout).toContain('enforced by a unique index');
    expect(version(path)).toBe(MIGRATIONS.length);

    const again = await runCli(['store', 'migrate', '--dry-run'], env);
    expect(again.stdout).toContain(`SQLite schema version ${MIGRATIONS.length}: up to date`);
  });

  it('lists the accounts that share an email when the unique index cannot be built', async () => {
    const path = join(dir, 'dupes.db');
    new Database(path).close();
    const env = { STORE_URL: `sqlite:${path}` };
    expect((await runCli(['store', 'migrate'], env)).code).toBe(0);
    // Two active SIS accounts with one mailbox, as written before a district's chunks took
    // turns: the index must go for them to be insertable.
    const db = new Database(path);
    db.exec('DROP INDEX parent_accounts_sis_email');
    const insert = db.prepare(
      `INSERT INTO parent_accounts (district_id, id, given_name, family_name, email, email_normalized, role, status, origin)
       VALUES ('d1', ?, 'Pat', 'Doe', 'Pat@Example.org', 'pat@example.org', 'parent', 'active', 'sis')`,
    );
    insert.run('p-1');
    insert.run('p-2');
    db.close();

    const r = await runCli(['store', 'migrate'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('NOT enforced');
    expect(r.stdout).toContain('d1 pat@example.org: p-1, p-2');
  });

  it('refuses a path where no store exists, creating nothing (a mistyped STORE_URL)', async () => {
    const missing = join(dir, 'no-such-folder', 'store.db');
    for (const args of [['--dry-run'], []]) {
      const r = await runCli(['store', 'migrate', ...args], { STORE_URL: `sqlite:${missing}` });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`no SQLite store at ${missing}`);
      expect(existsSync(join(dir, 'no-such-folder'))).toBe(false);
    }
  });

  it('refuses --drop-unknown-indexes on SQLite as a usage error', async () => {
    const r = await runCli(['store', 'migrate', '--drop-unknown-indexes'], {
      STORE_URL: `sqlite:${join(dir, 'x.db')}`,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('MongoDB stores only');
  });
});
