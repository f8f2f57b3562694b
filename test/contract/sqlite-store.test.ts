/**
 * The store contract on SQLite (a temp file and `:memory:`), plus what only SQLite has:
 * pragmas, migrations, atomic rollback of a failing write, query plans, `openStore`.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { ConfigError, StoreConflictError } from '../../src/errors.js';
import { openStore } from '../../src/models/index.js';
import { MIGRATIONS, SQL, SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { ActiveRunExistsError } from '../../src/models/types.js';
import { keys, parent, plan, runStoreContract, student } from './store.contract.js';
import { onSqliteStores } from '../helpers/sqlite-stores.js';

onSqliteStores(runStoreContract, 'gs-sqlite-', ['nested', 'store.db']);

/** The indexes of `parent_accounts` whose name mentions email. */
async function emailIndexes(store: SqliteRosterStore): Promise<string[]> {
  return (await store.listIndexes())
    .filter(x => x.collection === 'parent_accounts' && x.name.includes('email'))
    .map(x => x.name)
    .sort();
}

describe('SqliteRosterStore specifics', () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gs-sqlite-'));
    file = join(dir, 'data', 'store.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates the parent folder and uses WAL, busy timeout, NORMAL sync, foreign keys', async () => {
    const store = new SqliteRosterStore(file);
    await store.init();
    expect(store.settings()).toEqual({
      journalMode: 'wal',
      busyTimeoutMs: 5000,
      synchronous: 1,
      foreignKeys: true,
      walAutocheckpoint: 16000,
    });
    await store.close();
    await store.close(); // idempotent
    await expect(store.ping()).rejects.toThrow();
  });

  it('carries invariant 7 by a partial unique index when the data allows it, else lists the duplicates', async () => {
    const mail = { email: 'Same@x.test', emailNormalized: 'same@x.test' };
    const first = new SqliteRosterStore(file);
    await first.init();
    expect(first.identityIndex()).toEqual({ unique: true, duplicates: [] });
    await first.createParent(parent('p1', mail, 'd1'));
    // a second active sis account with the same email is refused; other origins are not
    await expect(first.createParent(parent('p2', mail, 'd1'))).rejects.toBeInstanceOf(
      StoreConflictError,
    );
    await first.createParent(parent('p3', { ...mail, origin: 'manual' }, 'd1'));
    await first.createParent(parent('p4', mail, 'd2'));
    // an inactive sis account shares the email too (outside the invariant)
    await first.createParent(parent('p5', { ...mail, status: 'inactive' }, 'd1'));
    // one email index (migration 11): the unique one serves the lookups by email as well
    expect(await emailIndexes(first)).toEqual(['parent_accounts_sis_email']);
    await first.close();
    // A database written before the index, with two accounts sharing an email: no index,
    // nothing merged, the duplicates listed; once one is deactivated the next start adds it.
    const raw = new Database(file);
    raw.exec(`DROP INDEX parent_accounts_sis_email;
      CREATE TEMP TABLE t AS SELECT * FROM parent_accounts WHERE district_id = 'd1' AND id = 'p1';
      UPDATE t SET id = 'p2';
      INSERT INTO parent_accounts SELECT * FROM t;`);
    raw.close();
    const second = new SqliteRosterStore(file);
    await second.init();
    expect(second.identityIndex()).toEqual({
      unique: false,
      duplicates: [{ districtId: 'd1', emailNormalized: 'same@x.test', parentIds: ['p1', 'p2'] }],
    });
    expect((await second.getParents('d1')).map(p => p.id).sort()).toEqual(['p1', 'p2', 'p3', 'p5']);
    // without the unique index, the lookups by email keep an index of their own
    expect(await emailIndexes(second)).toEqual(['parent_accounts_email']);
    await second.applyDeactivations('d1', { studentSourcedIds: [], parentIds: ['p2'], links: [] });
    await second.close();
    const third = new SqliteRosterStore(file);
    await third.init();
    expect(third.identityIndex()).toEqual({ unique: true, duplicates: [] });
    expect(await emailIndexes(third)).toEqual(['parent_accounts_sis_email']);
    await third.close();
  });

  it('migration 11 replaces the two email indexes of a version-10 store by one, keeping every row', async () => {
    mkdirSync(dirname(file), { recursive: true });
    const raw = new Database(file);
    raw.pragma('foreign_keys = ON');
    for (const [i, sql] of MIGRATIONS.slice(0, 10).entries()) {
      raw.unsafeMode(i === 6 || i === 9);
      raw.exec(sql);
    }
    raw.unsafeMode(false);
    raw.exec(`CREATE UNIQUE INDEX parent_accounts_sis_email ON parent_accounts
        (district_id, email_normalized)
        WHERE status = 'active' AND origin = 'sis' AND email_normalized IS NOT NULL;
      INSERT INTO parent_accounts (district_id, id, given_name, family_name, email,
        email_normalized, role, status, origin) VALUES
        ('d1', 'p1', 'A', 'B', 'Eva@x.test', 'eva@x.test', 'parent', 'active', 'sis'),
        ('d1', 'p2', 'A', 'B', 'eva@x.test', 'eva@x.test', 'parent', 'active', 'manual');`);
    raw.pragma('user_version = 10');
    raw.close();
    const store = new SqliteRosterStore(file);
    await store.init();
    expect(store.schemaVersion()).toBe(MIGRATIONS.length);
    expect(store.identityIndex()).toEqual({ unique: true, duplicates: [] });
    expect(await emailIndexes(store)).toEqual(['parent_accounts_sis_email']);
    const h = store.handle();
    if (h.kind !== 'sqlite') throw new Error('sqlite expected');
    expect(h.db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(
      h.db
        .prepare(`SELECT sql FROM sqlite_schema WHERE name = 'parent_accounts_sis_email'`)
        .pluck()
        .get(),
    ).toMatch(/CASE WHEN status = 'active' AND origin = 'sis' THEN 1 END/);
    expect((await store.getParents('d1')).map(p => p.id)).toEqual(['p1', 'p2']);
    await store.close();
  });

  it('finds accounts of every origin and status by email through the one email index', async () => {
    const mail = { email: 'Same@x.test', emailNormalized: 'same@x.test' };
    const store = new SqliteRosterStore(file);
    await store.init();
    await store.createParent(parent('p1', mail, 'd1'));
    await store.createParent(parent('p2', { ...mail, origin: 'import' }, 'd1'));
    await store.createParent(parent('p3', { ...mail, status: 'inactive' }, 'd1'));
    await store.createParent(parent('p4', { ...mail, origin: 'manual' }, 'd1'));
    const h = store.handle();
    if (h.kind !== 'sqlite') throw new Error('sqlite expected');
    const params = {
      districtId: 'd1',
      connector: 'powerschool',
      sourcedIds: '[]',
      uniqueIds: '[]',
      emails: '["same@x.test"]',
    };
    const found = h.db.prepare(SQL.loadParents).all(params) as { id: string }[];
    expect(found.map(r => r.id)).toEqual(['p1', 'p2', 'p3', 'p4']);
    const plan = (
      h.db.prepare(`EXPLAIN QUERY PLAN ${SQL.loadParents}`).all(params) as { detail: string }[]
    ).map(r => r.detail);
    expect(plan.some(d => d.includes('USING INDEX parent_accounts_sis_email'))).toBe(true);
    // a second active sis account is still refused
    await expect(store.createParent(parent('p5', mail, 'd1'))).rejects.toThrow(
      'parent account p5 conflicts with an existing account',
    );
    await store.close();
  });

  it('migrates to the latest schema version once and keeps data across reopen', async () => {
    const first = new SqliteRosterStore(file);
    expect(first.schemaVersion()).toBe(0);
    await first.init();
    expect(first.schemaVersion()).toBe(MIGRATIONS.length);
    await first.reconcileChunk(
      'd1',
      keys(),
      () => plan({ students: [{ action: 'create', record: student('s1', {}, 'd1') }] }),
      { dryRun: false },
    );
    await first.close();

    const second = new SqliteRosterStore(file);
    await second.init();
    await second.init();
    expect(second.schemaVersion()).toBe(MIGRATIONS.length);
    expect((await second.getStudents('d1')).map(s => s.sourcedId)).toEqual(['s1']);
    await second.close();
  });

  it('migration 4 moves held lists out of the run row into held pages', async () => {
    const path = file.replace('data/', '');
    const raw = new Database(path);
    raw.exec(MIGRATIONS[0] ?? '');
    raw.exec(MIGRATIONS[1] ?? '');
    raw.pragma('user_version = 2');
    const legacy = {
      studentSourcedIds: ['s1', 's2', 's3'],
      parentIds: ['p1'],
      links: [{ parentId: 'p1', studentSourcedId: 's1' }],
    };
    raw
      .prepare(
        `INSERT INTO sync_runs (id, district_id, connector, status, dry_run, run_trigger,
          created_at, held) VALUES ('old', 'd1', 'powerschool', 'needs-approval', 0, 'cli',
          '2025-01-01T00:00:00.000Z', ?)`,
      )
      .run(JSON.stringify(legacy));
    raw.close();
    const store = new SqliteRosterStore(path);
    await store.init();
    expect(store.schemaVersion()).toBe(MIGRATIONS.length);
    expect((await store.getRun('old'))?.held).toEqual({ students: 3, parents: 1, links: 1 });
    expect((await store.listHeld('old', 'student', 1, 5)).studentSourcedIds).toEqual(['s2', 's3']);
    expect((await store.listHeld('old', 'parent', 0, 5)).parentIds).toEqual(['p1']);
    expect((await store.listHeld('old', 'link', 0, 5)).links).toEqual(legacy.links);
    await store.close();
  });

  it('migration 6 keeps the rejects of an older database as rejects (issue 18 §4)', async () => {
    const path = join(dir, 'v2.db');
    const raw = new Database(path);
    raw.exec(MIGRATIONS[0] ?? '');
    raw.exec(MIGRATIONS[1] ?? '');
    raw.pragma('user_version = 2');
    raw
      .prepare(
        `INSERT INTO sync_runs (id, district_id, connector, status, dry_run, run_trigger, created_at)
         VALUES ('r-old', 'd1', 'powerschool', 'succeeded', 0, 'api', '2025-01-01T00:00:00.000Z')`,
      )
      .run();
    raw
      .prepare(
        `INSERT INTO run_rejects (run_id, district_id, seq, entity, record_id, reason)
         VALUES ('r-old', 'd1', 1, 'student', 's9', 'bad')`,
      )
      .run();
    raw.close();
    const store = new SqliteRosterStore(path);
    await store.init();
    expect(store.schemaVersion()).toBe(MIGRATIONS.length);
    const old = { entity: 'student', recordId: 's9', reason: 'bad' };
    expect(await store.listRejects('r-old', 0, 10)).toEqual([old]);
    expect(await store.listRejects('r-old', 0, 10, { kind: 'rejected' })).toEqual([old]);
    expect(await store.listRejects('r-old', 0, 10, { kind: 'excluded' })).toEqual([]);
    await store.close();
  });

  it('migration 7 lets an older database store cancelled runs; the one-active index stays', async () => {
    const path = join(dir, 'v6.db');
    const raw = new Database(path);
    raw.pragma('foreign_keys = ON');
    for (const sql of MIGRATIONS.slice(0, 6)) raw.exec(sql);
    raw.pragma('user_version = 6');
    raw
      .prepare(
        `INSERT INTO sync_runs (id, district_id, connector, status, dry_run, run_trigger, created_at)
         VALUES ('r-old', 'd1', 'powerschool', 'queued', 0, 'api', '2025-01-01T00:00:00.000Z')`,
      )
      .run();
    raw
      .prepare(
        `INSERT INTO run_rejects (run_id, district_id, seq, entity, record_id, reason)
         VALUES ('r-old', 'd1', 1, 'student', 's9', 'bad')`,
      )
      .run();
    // the old schema refuses the status (checked by message: the native addon may build its
    // errors in another Jest realm, where `toThrow` does not see them as thrown errors)
    let refused = 'not refused';
    try {
      raw.prepare(`UPDATE sync_runs SET status = 'cancelled'`).run();
    } catch (err) {
      refused = String((err as { message?: unknown }).message);
    }
    expect(refused).toMatch(/CHECK/);
    raw.close();
    const store = new SqliteRosterStore(path);
    await store.init();
    expect(store.schemaVersion()).toBe(MIGRATIONS.length);
    await store.updateRun('r-old', { status: 'cancelled' });
    expect((await store.getRun('r-old'))?.status).toBe('cancelled');
    expect(await store.listRejects('r-old', 0, 10)).toHaveLength(1);
    // other statuses are still checked, one active run per district is still enforced
    await expect(
      store.updateRun('r-old', { status: 'nonsense' as unknown as 'failed' }),
    ).rejects.toMatchObject({ message: expect.stringMatching(/CHECK/) as unknown });
    const queued = (id: string) => ({
      id,
      districtId: 'd1',
      connector: 'powerschool',
      status: 'queued' as const,
      dryRun: false,
      trigger: 'api',
      createdAt: '2025-01-02T00:00:00.000Z',
      counts: {},
      rejectCount: 0,
      timings: {},
    });
    await store.createRun(queued('r-new'));
    await expect(store.createRun(queued('r-other'))).rejects.toBeInstanceOf(ActiveRunExistsError);
    const check = new Database(path, { readonly: true });
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(check.pragma('foreign_key_check')).toEqual([]);
    check.close();
    await store.close();
  });

  it('refuses a database written by a newer schema version', async () => {
    const raw = new Database(file.replace('data/', ''));
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    const store = new SqliteRosterStore(file.replace('data/', ''));
    await expect(store.init()).rejects.toThrow(/newer/);
    await store.close();
  });

  it('rolls the whole chunk back when a write fails half-way', async () => {
    const store = new SqliteRosterStore(file);
    await store.init();
    await store.createParent(parent('p1', { uniqueId: 'U-1' }));
    const before = store.writeCount();
    const failing = plan({
      students: [{ action: 'create', record: student('s1') }],
      parentCreates: [parent('p0'), parent('p2', { uniqueId: 'U-1' })],
    });
    await expect(
      store.reconcileChunk('district-a', keys(), () => failing, { dryRun: false }),
    ).rejects.toBeInstanceOf(StoreConflictError);
    expect(await store.getStudents('district-a')).toEqual([]);
    expect((await store.getParents('district-a')).map(p => p.id)).toEqual(['p1']);
    expect(store.writeCount()).toBe(before);
    await store.close();
  });

  it('two connections on one file share data and the one-active-run index', async () => {
    const a = new SqliteRosterStore(file);
    const b = new SqliteRosterStore(file);
    await a.init();
    await b.init();
    const run = {
      id: 'r1',
      districtId: 'd1',
      connector: 'powerschool',
      status: 'running' as const,
      dryRun: false,
      trigger: 'cli',
      createdAt: '2025-01-01T00:00:00.000Z',
      counts: {},
      rejectCount: 0,
      timings: {},
    };
    await a.createRun(run);
    await expect(b.createRun({ ...run, id: 'r2' })).rejects.toMatchObject({
      name: 'ActiveRunExistsError',
      activeRun: run,
    });
    await a.close();
    await b.close();
  });

  it('chunk loads probe an index per key: no table scan, no district-wide range', async () => {
    const store = new SqliteRosterStore(file);
    await store.init();
    await store.close();
    const db = new Database(file, { readonly: true });
    const plans = (sql: string, params: unknown[]): string[] =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map(
        r => r.detail,
      );
    const list = JSON.stringify(['a', 'b']);
    const details = [
      ...plans(SQL.loadStudents, [{ districtId: 'd', keys: list }]),
      ...plans(SQL.loadParents, [
        { districtId: 'd', connector: 'c', sourcedIds: list, uniqueIds: list, emails: list },
      ]),
      ...plans(SQL.loadSources, [{ districtId: 'd', keys: list }]),
      ...plans(SQL.loadLinks, [{ districtId: 'd', keys: list }]),
      ...plans(SQL.deactivateStudents, [{ districtId: 'd', keys: list }]),
      ...plans(SQL.deactivateParents, [{ districtId: 'd', keys: list }]),
    ];
    expect(details.some(d => d.startsWith('SEARCH'))).toBe(true);
    db.close();
    const scans = details.filter(
      d =>
        /^SCAN (students|parent_accounts|parent_sources|guardian_links|s|p|l)\b/.test(d) ||
        /\(district_id=\?\)$/.test(d),
    );
    expect(scans).toEqual([]);
  });

  it('finalize scans active ids through covering indexes: no row read, no sort (issue 20 §6)', async () => {
    const store = new SqliteRosterStore(file);
    await store.init();
    await store.close();
    const db = new Database(file, { readonly: true });
    const plan = (sql: string, params: unknown[]): string[] =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as { detail: string }[]).map(
        r => r.detail,
      );
    const page = [{ districtId: 'd', after: '', limit: 5000 }];
    expect({
      students: plan(SQL.activeStudentIdPage, page),
      parents: plan(SQL.activeSisParentIdPage, page),
      countStudents: plan(SQL.countActiveStudents, ['d']),
      countParents: plan(SQL.countActiveParents, ['d']),
    }).toEqual({
      students: [
        'SEARCH students USING COVERING INDEX students_active_ids (district_id=? AND status=? AND sourced_id>?)',
      ],
      parents: [
        'SEARCH parent_accounts USING COVERING INDEX parent_accounts_active_ids (district_id=? AND status=? AND origin=? AND id>?)',
      ],
      countStudents: [
        'SEARCH students USING COVERING INDEX students_active_ids (district_id=? AND status=?)',
      ],
      countParents: [
        'SEARCH parent_accounts USING COVERING INDEX parent_accounts_active_ids (district_id=? AND status=?)',
      ],
    });
    // migration 9 replaced the status indexes it extends
    const indexes = (
      db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'index'`).all() as { name: string }[]
    ).map(r => r.name);
    expect(indexes).toEqual(
      expect.arrayContaining(['students_active_ids', 'parent_accounts_active_ids']),
    );
    expect(indexes).not.toContain('students_district_status');
    expect(indexes).not.toContain('parent_accounts_status_origin');
    db.close();
  });
});

describe('openStore', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gs-open-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('opens and initialises a SQLite store for sqlite:<path>', async () => {
    const store = await openStore(`sqlite:${join(dir, 'x', 'gs.db')}`);
    expect(store).toBeInstanceOf(SqliteRosterStore);
    await store.ping();
    expect(await store.countActive('d')).toEqual({ students: 0, parents: 0 });
    await store.close();
  });

  it('accepts sqlite:// and sqlite::memory:', async () => {
    const abs = await openStore(`sqlite://${join(dir, 'abs.db')}`);
    expect((abs as SqliteRosterStore).file).toBe(join(dir, 'abs.db'));
    await abs.close();
    const mem = await openStore('sqlite::memory:');
    await mem.ping();
    await mem.close();
  });

  it('refuses unknown schemes and empty paths with ConfigError', async () => {
    await expect(openStore('postgres://u:secret@h/db')).rejects.toBeInstanceOf(ConfigError);
    await expect(openStore('postgres://u:secret@h/db')).rejects.not.toThrow(/secret/);
    await expect(openStore('sqlite:')).rejects.toBeInstanceOf(ConfigError);
  });
});
