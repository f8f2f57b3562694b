/**
 * Migration 12 on a database written before it (docs/decisions/0019): the entries already
 * logged are indexed by parent and by student in `change_audit`, the audit cursor of every
 * district is at the end of its log, the two indexes of `change_log` are gone, and the
 * audit's reads give the same entries as before.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { changeLogRepository } from '../../src/models/changes/index.js';
import { AUDIT_INDEX_CONSUMER } from '../../src/models/changes/types.js';
import { MIGRATIONS, SqliteRosterStore } from '../../src/models/sqlite/store.js';

/** Migrations that write sqlite_schema (as the store runs them). */
const UNSAFE = new Set([6, 9]);

describe('migration 12 (audit index) on an older database', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'gs-m12-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('indexes the entries already logged, moves the cursor to the end, drops the old indexes', async () => {
    const path = join(dir, 'v10.db');
    const raw = new Database(path);
    MIGRATIONS.slice(0, 10).forEach((sql, i) => {
      raw.unsafeMode(UNSAFE.has(i));
      raw.exec(sql);
      raw.unsafeMode(false);
    });
    raw.pragma('user_version = 10');
    raw.exec(`
      INSERT INTO change_batches (id, district_id, first_seq, last_seq, at, cause_kind, actor, counts)
        VALUES (1, 'd1', 1, 4, '2026-01-01T00:00:00.000Z', 'manual', 'cli:ana', '{}'),
               (2, 'd2', 1, 1, '2026-01-01T00:00:00.000Z', 'manual', 'cli:ana', '{}');
      INSERT INTO change_log (district_id, seq, batch_id, entity, entity_id, action, parent_id,
          student_sourced_id, origin)
        VALUES ('d1', 1, 1, 'parent', 'p1', 'create', 'p1', NULL, NULL),
               ('d1', 2, 1, 'student', 's1', 'create', NULL, 's1', NULL),
               ('d1', 3, 1, 'link', 'manual:p1:s1', 'create', 'p1', 's1', 'manual'),
               ('d1', 4, 1, 'code', 'ac_0123456789abcdef', 'create', NULL, 's1', NULL),
               ('d2', 1, 2, 'parent', 'p1', 'create', 'p1', NULL, NULL);
      INSERT INTO change_seq (district_id, last) VALUES ('d1', 4), ('d2', 1);`);
    raw.close();

    const store = new SqliteRosterStore(path);
    try {
      await store.init();
      expect(store.schemaVersion()).toBe(MIGRATIONS.length);
      const h = store.handle();
      if (h.kind !== 'sqlite') throw new Error('sqlite expected');
      expect(h.db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(
        h.db
          .prepare('SELECT district_id, kind, key, seq FROM change_audit ORDER BY 1, 4, 2')
          .raw()
          .all(),
      ).toEqual([
        ['d1', 'p', 'p1', 1],
        ['d1', 's', 's1', 2],
        ['d1', 'p', 'p1', 3],
        ['d1', 's', 's1', 3],
        ['d1', 's', 's1', 4],
        ['d2', 'p', 'p1', 1],
      ]);
      expect(
        h.db
          .prepare(
            `SELECT name FROM sqlite_schema WHERE type = 'index'
             AND name IN ('change_log_parent', 'change_log_student')`,
          )
          .all(),
      ).toEqual([]);
      const repo = await changeLogRepository(store);
      expect((await repo.cursor(AUDIT_INDEX_CONSUMER, 'd1')).seq).toBe(4);
      expect((await repo.cursor(AUDIT_INDEX_CONSUMER, 'd2')).seq).toBe(1);
      expect(
        (await repo.list('d1', { studentSourcedId: 's1', limit: 10 })).map(e => e.seq),
      ).toEqual([2, 3, 4]);
      expect(
        (await repo.list('d1', { parentId: 'p1', entity: 'link', limit: 10 })).map(e => e.seq),
      ).toEqual([3]);
      // nothing left to index
      expect(await repo.indexAudit('d1', { maxEntries: 100 })).toEqual({ from: 4, to: 4 });
    } finally {
      await store.close();
    }
  });
});
