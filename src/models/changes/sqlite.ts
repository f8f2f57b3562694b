/**
 * The change log on SQLite: the `change_log` and `change_batches` tables (created by the
 * roster store's migration 2, `CHANGE_LOG_DDL`), the writer `appendChanges` that every roster
 * write calls inside its own `BEGIN IMMEDIATE` transaction, and the reader
 * `SqliteChangeLogRepository`.
 *
 * - `change_log` is a WITHOUT ROWID table keyed by (district_id, seq): a district's entries are
 *   appended at the end of its key range, and the feed reads them with one range scan.
 * - What every entry of one write shares — time, cause, actor — is one `change_batches` row
 *   (an `appendChanges` call: a chunk, a deactivation pass, an import), with the batch's
 *   counts per entity and action, so a run's counts are read from a few hundred batch rows
 *   instead of an index over millions of entries. This keeps the entries small: at 500,000
 *   students the log is about 2.3 million entries, and its cost per entry was cut by a third
 *   (docs/performance.md).
 * - Sequence numbers come from `change_seq` (one counter row per district), incremented in the
 *   writer's transaction, so they are gap-free and in commit order (SQLite has one writer).
 * - `change_cursors` holds each consumer's position per district (activation emails and
 *   metrics, webhooks, the audit index), moved by compare-and-set.
 * - `change_audit` (migration 12, `AUDIT_INDEX_MIGRATION`) indexes the entries by parent and
 *   by student for the audit. It is not written by `appendChanges` but by `indexAudit`, which
 *   the change-log consumer calls (docs/decisions/0019-audit-index-by-consumer.md); `list` by
 *   parent or student reads it up to its cursor and scans the log after it.
 */
import type { Database, Statement } from 'better-sqlite3';
import { settle, StatementCache } from '../sqlite/adapter.js';
import type { LinkOrigin } from '../types.js';
import {
  CHANGE_ENTITIES,
  type ChangeAction,
  type ChangeCauseKind,
  type ChangeContext,
  type ChangeCounts,
  type ChangeEntity,
  type ChangeEntry,
  type ChangeFields,
  type ChangeLogRepository,
  type ChangeQuery,
  type ConsumerCursor,
  type NewChange,
  AUDIT_INDEX_CONSUMER,
  MAX_CHANGE_PAGE,
} from './types.js';

/** Tables of the change log (run once by the roster store's migrations). */
export const CHANGE_LOG_DDL = `
  CREATE TABLE change_batches (
    id            INTEGER PRIMARY KEY,
    district_id   TEXT NOT NULL,
    first_seq     INTEGER NOT NULL,
    last_seq      INTEGER NOT NULL,
    at            TEXT NOT NULL,
    cause_kind    TEXT NOT NULL,
    cause_id      TEXT,
    cause_trigger TEXT,
    cause_notify  INTEGER,
    actor         TEXT NOT NULL,
    counts        TEXT NOT NULL   -- JSON: entity → action → n (as written; pruning keeps them)
  );
  -- run counts: the batches of a run (sync, approval, code issuance)
  CREATE INDEX change_batches_cause ON change_batches (district_id, cause_id)
    WHERE cause_id IS NOT NULL;
  -- retention: batches left without entries
  CREATE INDEX change_batches_at ON change_batches (district_id, at);

  CREATE TABLE change_log (
    district_id        TEXT NOT NULL,
    seq                INTEGER NOT NULL,
    batch_id           INTEGER NOT NULL,  -- change_batches.id: time, cause, actor
    entity             TEXT NOT NULL CHECK (entity IN ('parent', 'link', 'student', 'code')),
    entity_id          TEXT NOT NULL,
    action             TEXT NOT NULL,
    parent_id          TEXT,
    student_sourced_id TEXT,
    origin             TEXT,
    before             TEXT,          -- JSON object of the changed fields' previous values
    after              TEXT,          -- JSON object of their new values
    PRIMARY KEY (district_id, seq)    -- the feed: a range scan per district
  ) WITHOUT ROWID;
  -- audit: history of a parent account and of its links (dropped by migration 12: change_audit)
  CREATE INDEX change_log_parent ON change_log (district_id, parent_id, seq)
    WHERE parent_id IS NOT NULL;
  -- audit: history of a student and of its links (dropped by migration 12: change_audit)
  CREATE INDEX change_log_student ON change_log (district_id, student_sourced_id, seq)
    WHERE student_sourced_id IS NOT NULL;

  CREATE TABLE change_seq (
    district_id TEXT PRIMARY KEY,
    last        INTEGER NOT NULL
  );

  CREATE TABLE change_cursors (
    consumer    TEXT NOT NULL,
    district_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    updated_at  TEXT,
    state       TEXT NOT NULL DEFAULT '{}',  -- JSON
    PRIMARY KEY (consumer, district_id)
  );
`;

/**
 * Migration 12 (docs/decisions/0019-audit-index-by-consumer.md): the audit's two indexes of
 * `change_log` (by parent, by student), maintained in every write transaction, become the
 * table `change_audit`, filled by the change-log consumer from the log in batches
 * (`indexAudit`) with its cursor (`AUDIT_INDEX_CONSUMER` in `change_cursors`) in the same
 * transaction. The existing entries are indexed here, and the cursor set to the end of each
 * district's log.
 */
export const AUDIT_INDEX_MIGRATION = `
  CREATE TABLE change_audit (
    district_id TEXT NOT NULL,
    kind        TEXT NOT NULL,     -- 'p': key is the entry's parent_id; 's': its student_sourced_id
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,  -- change_log.seq
    PRIMARY KEY (district_id, kind, key, seq)
  ) WITHOUT ROWID;
  INSERT INTO change_audit (district_id, kind, key, seq)
    SELECT district_id, 'p', parent_id, seq FROM change_log WHERE parent_id IS NOT NULL;
  INSERT INTO change_audit (district_id, kind, key, seq)
    SELECT district_id, 's', student_sourced_id, seq FROM change_log
    WHERE student_sourced_id IS NOT NULL;
  INSERT INTO change_cursors (consumer, district_id, seq, updated_at)
    SELECT '${AUDIT_INDEX_CONSUMER}', district_id, last, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    FROM change_seq WHERE true
    ON CONFLICT (consumer, district_id) DO UPDATE SET seq = excluded.seq,
      updated_at = excluded.updated_at;
  DROP INDEX IF EXISTS change_log_parent;
  DROP INDEX IF EXISTS change_log_student;
`;

/** `change_audit.kind` of the two keys. */
const AUDIT_KIND = { parent: 'p', student: 's' } as const;

interface Row {
  district_id: string;
  seq: number;
  at: string;
  entity: string;
  entity_id: string;
  action: string;
  parent_id: string | null;
  student_sourced_id: string | null;
  origin: string | null;
  before: string | null;
  after: string | null;
  cause_kind: string;
  cause_id: string | null;
  cause_trigger: string | null;
  cause_notify: number | null;
  actor: string;
}

const INSERT = `INSERT INTO change_log (district_id, seq, batch_id, entity, entity_id, action,
    parent_id, student_sourced_id, origin, before, after)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const BATCH = `INSERT INTO change_batches (district_id, first_seq, last_seq, at, cause_kind,
    cause_id, cause_trigger, cause_notify, actor, counts)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
/** An entry with its batch's time, cause and actor. */
const selectColumns = (seq: string): string => `SELECT l.district_id, ${seq} AS seq, l.batch_id,
    l.entity, l.entity_id, l.action, l.parent_id, l.student_sourced_id, l.origin, l.before,
    l.after, b.at, b.cause_kind, b.cause_id, b.cause_trigger, b.cause_notify, b.actor`;
const SELECT = `${selectColumns('l.seq')}
  FROM change_log AS l JOIN change_batches AS b ON b.id = l.batch_id`;
/** The audit index's cursor in `@districtId` (0 when it has none). */
const INDEXED_UP_TO = `SELECT coalesce((SELECT seq FROM change_cursors
    WHERE consumer = '${AUDIT_INDEX_CONSUMER}' AND district_id = @districtId), 0)`;
const BUMP = `INSERT INTO change_seq (district_id, last) VALUES (?, ?)
  ON CONFLICT (district_id) DO UPDATE SET last = last + excluded.last RETURNING last`;

const writers = new WeakMap<Database, { insert: Statement; bump: Statement; batch: Statement }>();

/** Entries this process appended and the time it took (ms), for the benchmark's report. */
const writeStats = { entries: 0, ms: 0 };

/** What `appendChanges` did in this process so far: entries written and milliseconds spent. */
export function changeLogWriteStats(): { entries: number; ms: number } {
  return { ...writeStats };
}

const fieldsJson = (f: ChangeFields | undefined): string | null =>
  f === undefined ? null : JSON.stringify(f);

/**
 * Append `changes` to the district's log with the next sequence numbers, in order. Must run
 * inside the caller's write transaction (the same one as the change). `at` defaults to now.
 * Returns the last sequence number written (0 when `changes` is empty: nothing is written).
 */
export function appendChanges(
  db: Database,
  districtId: string,
  context: ChangeContext,
  changes: readonly NewChange[],
  at: string = new Date().toISOString(),
): number {
  if (changes.length === 0) return 0;
  if (!db.inTransaction) throw new Error('appendChanges must run inside the write transaction');
  const t0 = performance.now();
  let w = writers.get(db);
  if (!w) {
    w = { insert: db.prepare(INSERT), bump: db.prepare(BUMP), batch: db.prepare(BATCH) };
    writers.set(db, w);
  }
  const last = w.bump.pluck().get(districtId, changes.length) as number;
  let seq = last - changes.length;
  const { cause, actor } = context;
  const notify = cause.notify === undefined ? null : cause.notify ? 1 : 0;
  const counts: ChangeCounts = {};
  for (const c of changes) addCount(counts, c.entity, c.action, 1);
  const batchId = w.batch.run(
    districtId,
    seq + 1,
    last,
    at,
    cause.kind,
    cause.id ?? null,
    cause.trigger ?? null,
    notify,
    actor,
    JSON.stringify(counts),
  ).lastInsertRowid;
  for (const c of changes) {
    w.insert.run(
      districtId,
      ++seq,
      batchId,
      c.entity,
      c.entityId,
      c.action,
      c.parentId ?? null,
      c.studentSourcedId ?? null,
      c.origin ?? null,
      fieldsJson(c.before),
      fieldsJson(c.after),
    );
  }
  writeStats.entries += changes.length;
  writeStats.ms += performance.now() - t0;
  return last;
}

function fromRow(r: Row): ChangeEntry {
  const e: ChangeEntry = {
    districtId: r.district_id,
    seq: r.seq,
    at: r.at,
    entity: r.entity as ChangeEntity,
    entityId: r.entity_id,
    action: r.action as ChangeAction,
    cause: { kind: r.cause_kind as ChangeCauseKind },
    actor: r.actor,
  };
  if (r.parent_id !== null) e.parentId = r.parent_id;
  if (r.student_sourced_id !== null) e.studentSourcedId = r.student_sourced_id;
  if (r.origin !== null) e.origin = r.origin as LinkOrigin;
  if (r.before !== null) e.before = JSON.parse(r.before) as ChangeFields;
  if (r.after !== null) e.after = JSON.parse(r.after) as ChangeFields;
  if (r.cause_id !== null) e.cause.id = r.cause_id;
  if (r.cause_trigger !== null) e.cause.trigger = r.cause_trigger;
  if (r.cause_notify !== null) e.cause.notify = r.cause_notify === 1;
  return e;
}

function addCount(out: ChangeCounts, entity: string, action: string, n: number): void {
  const t = (out[entity] ??= {});
  t[action] = (t[action] ?? 0) + n;
}

/** `ChangeLogRepository` on the roster store's SQLite database. */
export class SqliteChangeLogRepository implements ChangeLogRepository {
  private readonly statements: StatementCache;

  constructor(private readonly db: Database) {
    this.statements = new StatementCache(db);
  }

  /** The tables come with the roster store's migrations; this only checks they exist. */
  init(): Promise<void> {
    const found = this.db
      .prepare(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'change_log'`)
      .pluck()
      .get() as number;
    if (found !== 1)
      return Promise.reject(
        new Error('the change_log table is missing: open the store with openStore() first'),
      );
    return Promise.resolve();
  }

  /**
   * Entries matching `q`, in sequence order. With `parentId` or `studentSourcedId` the read is
   * the union of the audit index up to its cursor and a scan of the entries after it (one
   * statement: one snapshot of index, cursor and log), so it is complete however far the
   * audit index trails; without them, a range scan of the district's key range.
   */
  list(districtId: string, q: ChangeQuery): Promise<ChangeEntry[]> {
    return settle(() => {
      const where: string[] = [];
      const params: Record<string, string | number> = {
        districtId,
        after: Math.max(0, Math.floor(q.afterSeq ?? 0)),
        limit: Math.min(MAX_CHANGE_PAGE, Math.max(1, Math.floor(q.limit))),
      };
      if (q.toSeq !== undefined) {
        where.push('l.seq <= @to');
        params.to = q.toSeq;
      }
      if (q.entity !== undefined) {
        where.push('l.entity = @entity');
        params.entity = q.entity;
      }
      if (q.actions !== undefined) {
        where.push('l.action IN (SELECT value FROM json_each(@actions))');
        params.actions = JSON.stringify(q.actions);
      }
      if (q.parentId !== undefined) {
        where.push('l.parent_id = @parentId');
        params.parentId = q.parentId;
      }
      if (q.studentSourcedId !== undefined) {
        where.push('l.student_sourced_id = @student');
        params.student = q.studentSourcedId;
      }
      if (q.causeIds !== undefined) {
        where.push(
          `l.batch_id IN (SELECT id FROM change_batches WHERE district_id = @districtId
            AND cause_id IN (SELECT value FROM json_each(@causes)))`,
        );
        params.causes = JSON.stringify(q.causeIds);
      }
      const filters = where.map(w => ` AND ${w}`).join('');
      const keyed =
        q.parentId !== undefined
          ? { kind: AUDIT_KIND.parent, key: q.parentId }
          : q.studentSourcedId !== undefined
            ? { kind: AUDIT_KIND.student, key: q.studentSourcedId }
            : undefined;
      let sql: string;
      if (keyed === undefined) {
        sql = `${SELECT} WHERE l.district_id = @districtId AND l.seq > @after${filters}
          ORDER BY l.seq LIMIT @limit`;
      } else {
        const toSeqOfIndex = q.toSeq === undefined ? '' : ' AND a.seq <= @to';
        params.kind = keyed.kind;
        params.key = keyed.key;
        // CROSS JOIN: SQLite keeps the join order, so the index drives (never a scan of the
        // log's indexed range probing the index); `a.seq` is the index's order (no sort).
        sql = `WITH indexed (n) AS (${INDEXED_UP_TO})
          ${selectColumns('a.seq')} FROM change_audit AS a
            CROSS JOIN change_log AS l ON l.district_id = a.district_id AND l.seq = a.seq
            CROSS JOIN change_batches AS b ON b.id = l.batch_id
          WHERE a.district_id = @districtId AND a.kind = @kind AND a.key = @key
            AND a.seq > @after AND a.seq <= (SELECT n FROM indexed)${toSeqOfIndex}${filters}
          UNION ALL
          ${SELECT} WHERE l.district_id = @districtId
            AND l.seq > max(@after, (SELECT n FROM indexed))${filters}
          ORDER BY seq LIMIT @limit`;
      }
      return (this.stmt(sql).all(params) as Row[]).map(fromRow);
    });
  }

  lastSeq(districtId: string): Promise<number> {
    return settle(
      () =>
        (this.stmt('SELECT last FROM change_seq WHERE district_id = ?').pluck().get(districtId) as
          number | undefined) ?? 0,
    );
  }

  countByCause(districtId: string, causeIds: readonly string[]): Promise<ChangeCounts> {
    return settle(() => {
      const rows = this.stmt(
        `SELECT counts FROM change_batches
         WHERE district_id = ? AND cause_id IN (SELECT value FROM json_each(?))`,
      )
        .pluck()
        .all(districtId, JSON.stringify(causeIds)) as string[];
      const out: ChangeCounts = {};
      for (const json of rows)
        for (const [entity, actions] of Object.entries(JSON.parse(json) as ChangeCounts))
          for (const [action, n] of Object.entries(actions)) addCount(out, entity, action, n);
      return out;
    });
  }

  countRange(districtId: string, afterSeq: number, toSeq: number): Promise<ChangeCounts> {
    return settle(() => {
      const rows = this.stmt(
        `SELECT entity, action, count(*) AS n FROM change_log
         WHERE district_id = ? AND seq > ? AND seq <= ? GROUP BY entity, action`,
      ).all(districtId, afterSeq, toSeq) as { entity: string; action: string; n: number }[];
      const out: ChangeCounts = {};
      for (const r of rows) addCount(out, r.entity, r.action, r.n);
      return out;
    });
  }

  districts(): Promise<string[]> {
    return settle(
      () =>
        this.stmt('SELECT district_id FROM change_seq ORDER BY district_id')
          .pluck()
          .all() as string[],
    );
  }

  cursor(consumer: string, districtId: string): Promise<ConsumerCursor> {
    return settle(() => {
      const row = this.stmt(
        'SELECT * FROM change_cursors WHERE consumer = ? AND district_id = ?',
      ).get(consumer, districtId) as CursorRow | undefined;
      return row ? cursorFromRow(row) : { consumer, districtId, seq: 0, state: {} };
    });
  }

  advance(
    consumer: string,
    districtId: string,
    fromSeq: number,
    toSeq: number,
    state?: Record<string, unknown>,
  ): Promise<boolean> {
    return settle(() =>
      this.db
        .transaction(() => {
          const row = this.stmt(
            'SELECT * FROM change_cursors WHERE consumer = ? AND district_id = ?',
          ).get(consumer, districtId) as CursorRow | undefined;
          const current = row?.seq ?? 0;
          if (current !== fromSeq) return false;
          const json = JSON.stringify(state ?? (row ? JSON.parse(row.state) : {}));
          this.stmt(
            `INSERT INTO change_cursors (consumer, district_id, seq, updated_at, state)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (consumer, district_id) DO UPDATE SET
             seq = excluded.seq, updated_at = excluded.updated_at, state = excluded.state`,
          ).run(consumer, districtId, toSeq, new Date().toISOString(), json);
          return true;
        })
        .immediate(),
    );
  }

  setState(consumer: string, districtId: string, state: Record<string, unknown>): Promise<void> {
    return settle(() => {
      this.stmt(
        `INSERT INTO change_cursors (consumer, district_id, seq, updated_at, state)
         VALUES (?, ?, 0, NULL, ?) ON CONFLICT (consumer, district_id) DO UPDATE SET
         state = excluded.state`,
      ).run(consumer, districtId, JSON.stringify(state));
    });
  }

  cursors(consumer: string): Promise<ConsumerCursor[]> {
    return settle(() =>
      (
        this.stmt('SELECT * FROM change_cursors WHERE consumer = ? ORDER BY district_id').all(
          consumer,
        ) as CursorRow[]
      ).map(cursorFromRow),
    );
  }

  indexAudit(
    districtId: string,
    opts: { maxEntries: number; toSeq?: number | undefined },
  ): Promise<{ from: number; to: number }> {
    return settle(() => {
      const r = this.indexAuditBatch(districtId, opts);
      // The WAL pages this batch wrote are copied into the database here, by the consumer,
      // rather than by the next writer's commit that crosses the auto-checkpoint threshold
      // (the apply worker's, most of the time). Passive: never waits for readers or writers.
      if (r.to > r.from && !this.db.memory) this.db.pragma('wal_checkpoint(PASSIVE)');
      return r;
    });
  }

  private indexAuditBatch(
    districtId: string,
    opts: { maxEntries: number; toSeq?: number | undefined },
  ): { from: number; to: number } {
    return this.db
      .transaction(() => {
        const from =
          (this.stmt(
            `SELECT seq FROM change_cursors WHERE consumer = '${AUDIT_INDEX_CONSUMER}'
               AND district_id = ?`,
          )
            .pluck()
            .get(districtId) as number | undefined) ?? 0;
        const last =
          (this.stmt('SELECT last FROM change_seq WHERE district_id = ?')
            .pluck()
            .get(districtId) as number | undefined) ?? 0;
        const to = Math.min(
          last,
          from + Math.max(1, Math.floor(opts.maxEntries)),
          opts.toSeq ?? last,
        );
        if (to <= from) return { from, to: from };
        // Re-indexing an entry is a no-op (OR IGNORE), so a batch repeated after a lost
        // cursor (a restore, a manual reset) is harmless.
        this.stmt(
          `INSERT OR IGNORE INTO change_audit (district_id, kind, key, seq)
             SELECT district_id, '${AUDIT_KIND.parent}', parent_id, seq FROM change_log
             WHERE district_id = @districtId AND seq > @from AND seq <= @to
               AND parent_id IS NOT NULL
             UNION ALL
             SELECT district_id, '${AUDIT_KIND.student}', student_sourced_id, seq FROM change_log
             WHERE district_id = @districtId AND seq > @from AND seq <= @to
               AND student_sourced_id IS NOT NULL`,
        ).run({ districtId, from, to });
        this.stmt(
          `INSERT INTO change_cursors (consumer, district_id, seq, updated_at)
             VALUES ('${AUDIT_INDEX_CONSUMER}', ?, ?, ?) ON CONFLICT (consumer, district_id)
             DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at`,
        ).run(districtId, to, new Date().toISOString());
        return { from, to };
      })
      .immediate();
  }

  prune(districtId: string, before: string): Promise<number> {
    return settle(() =>
      this.db
        .transaction(() => {
          // The newest create/reactivate entry of each active link and active account stays:
          // it is the answer to "why can this person see this child".
          const keep = `
            SELECT max(c.seq) FROM change_log AS c
            JOIN guardian_links AS l ON l.district_id = c.district_id
              AND l.parent_id = c.parent_id AND l.student_sourced_id = c.student_sourced_id
              AND l.origin = c.origin AND l.status = 'active'
            WHERE c.district_id = @districtId AND c.entity = 'link'
              AND c.action IN ('create', 'reactivate')
            GROUP BY c.parent_id, c.student_sourced_id, c.origin
            UNION ALL
            SELECT max(c.seq) FROM change_log AS c
            JOIN parent_accounts AS p ON p.district_id = c.district_id AND p.id = c.parent_id
              AND p.status = 'active'
            WHERE c.district_id = @districtId AND c.entity = 'parent'
              AND c.action IN ('create', 'reactivate')
            GROUP BY c.parent_id`;
          const n = this.db
            .prepare(
              `DELETE FROM change_log WHERE district_id = @districtId
               AND batch_id IN (SELECT id FROM change_batches
                 WHERE district_id = @districtId AND at < @before)
               AND seq NOT IN (${keep})`,
            )
            .run({ districtId, before }).changes;
          // Batches whose every entry is gone go too (their run's counts stay on the run).
          this.db
            .prepare(
              `DELETE FROM change_batches WHERE district_id = @districtId AND at < @before
               AND NOT EXISTS (SELECT 1 FROM change_log AS l WHERE l.district_id = @districtId
                 AND l.seq BETWEEN change_batches.first_seq AND change_batches.last_seq)`,
            )
            .run({ districtId, before });
          // Audit index rows of the deleted entries (the read joins the log, so rows left
          // behind would be harmless, but they would only take space).
          if (n > 0)
            this.db
              .prepare(
                `DELETE FROM change_audit WHERE district_id = @districtId AND NOT EXISTS
                 (SELECT 1 FROM change_log AS l WHERE l.district_id = @districtId
                   AND l.seq = change_audit.seq)`,
              )
              .run({ districtId });
          return n;
        })
        .immediate(),
    );
  }

  private stmt(sql: string): Statement {
    return this.statements.get(sql);
  }
}

interface CursorRow {
  consumer: string;
  district_id: string;
  seq: number;
  updated_at: string | null;
  state: string;
}

function cursorFromRow(r: CursorRow): ConsumerCursor {
  const c: ConsumerCursor = {
    consumer: r.consumer,
    districtId: r.district_id,
    seq: r.seq,
    state: JSON.parse(r.state) as Record<string, unknown>,
  };
  if (r.updated_at !== null) c.updatedAt = r.updated_at;
  return c;
}

/** True for an entity name of the log (for validating query strings). */
export function isChangeEntity(v: string): v is ChangeEntity {
  return (CHANGE_ENTITIES as readonly string[]).includes(v);
}
