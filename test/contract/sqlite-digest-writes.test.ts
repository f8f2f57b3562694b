/**
 * Migration 10 (docs/decisions/0014, "cheaper chunk writes"): while a sync writes a chunk with
 * digests, the digest triggers stand aside and the store clears itself what the chunk's
 * writes made stale; the rewritten CHECK constraints still refuse what they refused.
 * Real SQLite, the real planner and digests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { RosterChunk } from '../../src/mapping/canonical.js';
import { MIGRATIONS, SqliteRosterStore } from '../../src/models/sqlite/store.js';
import { unchangedCheck } from '../../src/reconcile/digest.js';
import { chunkKeys, planChunk, type PlanContext } from '../../src/reconcile/plan.js';

const D = 'd1';
const ctx: PlanContext = { districtId: D, connector: 'powerschool', parentRole: 'parent' };

function chunk(student: string, guardian: string, email: string): RosterChunk {
  return {
    students: [
      {
        sourcedId: student,
        uniqueId: `u${student}`,
        givenName: 'Ana',
        familyName: 'Pérez',
        schoolSourcedIds: ['sch1'],
        status: 'active',
      },
    ],
    guardians: [
      { sourcedId: guardian, givenName: 'Eva', familyName: 'Pérez', email, status: 'active' },
    ],
    relationships: [{ guardianSourcedId: guardian, studentSourcedId: student }],
    relationshipsSupplied: true,
  } as RosterChunk;
}

async function apply(store: SqliteRosterStore, c: RosterChunk) {
  return store.reconcileChunk(D, chunkKeys(c, ctx.connector), s => planChunk(c, s, ctx), {
    dryRun: false,
    unchanged: unchangedCheck(c, ctx),
  });
}

let store: SqliteRosterStore;
const db = () => {
  const h = store.handle();
  if (h.kind !== 'sqlite') throw new Error('sqlite expected');
  return h.db;
};
const digest = (sid: string) =>
  db()
    .prepare(`SELECT sync_digest FROM students WHERE district_id = ? AND sourced_id = ?`)
    .pluck()
    .get(D, sid) as string | null;

beforeEach(async () => {
  store = new SqliteRosterStore(':memory:');
  await store.init();
});
afterEach(async () => {
  await store.close();
});

describe('digests while a sync writes (migration 10)', () => {
  it('a later chunk matching an existing account clears the digest of that account’s student in an earlier chunk', async () => {
    await apply(store, chunk('s1', 'g1', 'eva@x.test'));
    expect(digest('s1')).not.toBeNull();
    // the same person under a second SIS contact id in another chunk: matched by email, so the
    // account gains a source and a link; the first chunk's student must be planned again
    const plan = await apply(store, chunk('s2', 'g2', 'eva@x.test'));
    expect(plan.parentCreates).toHaveLength(0);
    expect(plan.parentUpdates.map(u => u.update.addSources)).toEqual([
      [{ connector: 'powerschool', sourcedId: 'g2' }],
    ]);
    expect(digest('s1')).toBeNull();
    expect(digest('s2')).not.toBeNull();
    // nothing of the pause is left behind
    expect(db().prepare(`SELECT count(*) FROM sync_digest_writer`).pluck().get()).toBe(0);
  });

  it('a chunk with a new account leaves other students’ digests alone', async () => {
    await apply(store, chunk('s1', 'g1', 'eva@x.test'));
    const before = digest('s1');
    await apply(store, chunk('s2', 'g2', 'other@x.test'));
    expect(digest('s1')).toBe(before);
  });

  it('outside a sync the triggers still clear: an out-of-band link to the account', async () => {
    await apply(store, chunk('s1', 'g1', 'eva@x.test'));
    await apply(store, chunk('s2', 'g2', 'other@x.test'));
    const parentId = db()
      .prepare(`SELECT parent_id FROM guardian_links WHERE student_sourced_id = 's1'`)
      .pluck()
      .get() as string;
    db()
      .prepare(
        `INSERT INTO guardian_links (district_id, parent_id, student_sourced_id, origin, status)
         VALUES (?, ?, 's2', 'manual', 'active')`,
      )
      .run(D, parentId);
    expect(digest('s1')).toBeNull();
    expect(digest('s2')).toBeNull();
  });

  it('a chunk failing half-way leaves the triggers in force', async () => {
    store.testHooks.afterFirstPlanWrite = () => {
      throw new Error('boom');
    };
    await expect(apply(store, chunk('s1', 'g1', 'eva@x.test'))).rejects.toThrow('boom');
    expect(db().prepare(`SELECT count(*) FROM sync_digest_writer`).pluck().get()).toBe(0);
  });
});

describe('CHECK constraints of migration 10', () => {
  const refused = (sql: string): string => {
    try {
      db().exec(sql);
      return 'accepted';
    } catch (err) {
      return String((err as { message?: unknown }).message);
    }
  };

  it('still refuse an unknown origin, SIS role or change-log entity, and accept NULL roles', () => {
    const account = (id: string, origin: string, sisRole: string) =>
      `INSERT INTO parent_accounts (district_id, id, given_name, family_name, role, sis_role,
         status, origin) VALUES ('d1', '${id}', 'A', 'B', 'parent', ${sisRole}, 'active', '${origin}')`;
    expect(refused(account('p1', 'elsewhere', "'parent'"))).toMatch(/CHECK/);
    expect(refused(account('p2', 'sis', "'uncle'"))).toMatch(/CHECK/);
    expect(refused(account('p3', 'access-code', 'NULL'))).toBe('accepted');
    expect(
      refused(`INSERT INTO guardian_links (district_id, parent_id, student_sourced_id, origin,
        status) VALUES ('d1', 'p3', 's1', 'nowhere', 'active')`),
    ).toMatch(/CHECK/);
    expect(
      refused(`INSERT INTO change_log (district_id, seq, batch_id, entity, entity_id, action)
        VALUES ('d1', 1, 1, 'school', 'x', 'create')`),
    ).toMatch(/CHECK/);
  });

  it('build no temporary b-tree per row written', () => {
    const ephemeral = (sql: string) =>
      (db().prepare(`EXPLAIN ${sql}`).all() as { opcode: string }[]).filter(
        r => r.opcode === 'OpenEphemeral',
      ).length;
    expect(
      ephemeral(`INSERT INTO parent_accounts (district_id, id, given_name, family_name, role,
        sis_role, status, origin) VALUES ('d1', 'p9', 'A', 'B', 'parent', 'parent', 'active', 'sis')`),
    ).toBe(0);
    expect(
      ephemeral(`INSERT INTO change_log (district_id, seq, batch_id, entity, entity_id, action)
        VALUES ('d1', 1, 1, 'link', 'x', 'create')`),
    ).toBe(0);
  });
});

describe('migration 10 on an older database', () => {
  it('keeps every row, passes the integrity check and rewrites only the CHECK text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'gs-m10-'));
    try {
      const path = join(dir, 'v9.db');
      const raw = new Database(path);
      raw.pragma('foreign_keys = ON');
      for (const sql of MIGRATIONS.slice(0, 6)) raw.exec(sql);
      raw.unsafeMode(true);
      raw.exec(MIGRATIONS[6] ?? '');
      raw.unsafeMode(false);
      for (const sql of MIGRATIONS.slice(7, 9)) raw.exec(sql);
      raw.pragma('user_version = 9');
      raw.exec(`INSERT INTO parent_accounts (district_id, id, given_name, family_name, role,
          sis_role, status, origin) VALUES ('d1', 'p1', 'A', 'B', 'parent', 'guardian', 'active', 'sis');
        INSERT INTO guardian_links (district_id, parent_id, student_sourced_id, origin, status)
          VALUES ('d1', 'p1', 's1', 'sis', 'active');`);
      raw.close();
      const upgraded = new SqliteRosterStore(path);
      await upgraded.init();
      expect(upgraded.schemaVersion()).toBe(MIGRATIONS.length);
      expect((await upgraded.getParents('d1')).map(p => [p.id, p.sisRole])).toEqual([
        ['p1', 'guardian'],
      ]);
      expect((await upgraded.getLinks('d1')).map(l => l.studentSourcedId)).toEqual(['s1']);
      const h = upgraded.handle();
      if (h.kind !== 'sqlite') throw new Error('sqlite expected');
      expect(h.db.pragma('integrity_check', { simple: true })).toBe('ok');
      const tables = h.db
        .prepare(
          `SELECT sql FROM sqlite_schema WHERE type = 'table'
            AND name IN ('parent_accounts', 'guardian_links', 'change_log')`,
        )
        .pluck()
        .all() as string[];
      expect(tables).toHaveLength(3);
      for (const sql of tables) expect(sql).not.toMatch(/CHECK \((sis_role|origin|entity) IN/);
      await upgraded.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
