/**
 * `ActivationRepository` on the roster store's SQLite database (better-sqlite3 12). Its table
 * is created by `init()` with `CREATE … IF NOT EXISTS` (independent of the roster's
 * `user_version` migrations; a later change to this table adds its own `ALTER`s here).
 * Every write runs in `db.transaction(...).immediate()`, so read-check-write sequences
 * (claiming a send, consuming a token) cannot interleave with another writer.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { RecordStatus } from '../../mapping/canonical.js';
import {
  abandonedReason,
  emptyActivationCounts,
  type ActivationChild,
  type ActivationParent,
  type ActivationPatch,
  type ActivationRecord,
  type ActivationRepository,
  type ActivationSource,
  type ActivationStatus,
  type BeginSendResult,
  type ConsumeTokenResult,
  type RequeueResult,
} from './types.js';
import { settle } from '../sqlite/adapter.js';

const DDL = `
CREATE TABLE IF NOT EXISTS activation_emails (
  district_id      TEXT NOT NULL,
  parent_id        TEXT NOT NULL,
  status           TEXT NOT NULL CHECK (status IN
                     ('held', 'no-email', 'queued', 'sending', 'sent', 'maybe-sent', 'failed')),
  source           TEXT NOT NULL CHECK (source IN ('sync', 'import', 'resend')),
  generation       INTEGER NOT NULL,
  attempts         INTEGER NOT NULL DEFAULT 0,
  held_run_id      TEXT,
  recipient        TEXT,
  token_hash       TEXT,
  token_expires_at TEXT,
  token_used_at    TEXT,
  queued_at        TEXT NOT NULL,
  deferred_until   TEXT,
  sending_at       TEXT,
  sent_at          TEXT,
  failed_at        TEXT,
  reason           TEXT,
  message_id       TEXT,
  updated_at       TEXT NOT NULL,
  PRIMARY KEY (district_id, parent_id)  -- one activation record per account (exactly-once)
);
-- consumeToken: a token hash identifies one record
CREATE UNIQUE INDEX IF NOT EXISTS activation_emails_token ON activation_emails (token_hash)
  WHERE token_hash IS NOT NULL;
-- counts per status
CREATE INDEX IF NOT EXISTS activation_emails_status ON activation_emails (district_id, status);
-- release the records a held run kept back
CREATE INDEX IF NOT EXISTS activation_emails_held ON activation_emails (district_id, held_run_id)
  WHERE held_run_id IS NOT NULL;
`;

interface Row {
  district_id: string;
  parent_id: string;
  status: string;
  source: string;
  generation: number;
  attempts: number;
  held_run_id: string | null;
  recipient: string | null;
  token_hash: string | null;
  token_expires_at: string | null;
  token_used_at: string | null;
  queued_at: string;
  deferred_until: string | null;
  sending_at: string | null;
  sent_at: string | null;
  failed_at: string | null;
  reason: string | null;
  message_id: string | null;
  updated_at: string;
}

const opt = (v: string | null): string | undefined => v ?? undefined;

function fromRow(r: Row): ActivationRecord {
  return {
    districtId: r.district_id,
    parentId: r.parent_id,
    status: r.status as ActivationStatus,
    source: r.source as ActivationSource,
    generation: r.generation,
    attempts: r.attempts,
    heldRunId: opt(r.held_run_id),
    recipient: opt(r.recipient),
    tokenHash: opt(r.token_hash),
    tokenExpiresAt: opt(r.token_expires_at),
    tokenUsedAt: opt(r.token_used_at),
    queuedAt: r.queued_at,
    deferredUntil: opt(r.deferred_until),
    sendingAt: opt(r.sending_at),
    sentAt: opt(r.sent_at),
    failedAt: opt(r.failed_at),
    reason: opt(r.reason),
    messageId: opt(r.message_id),
    updatedAt: r.updated_at,
  };
}

function toParams(r: ActivationRecord): Row {
  return {
    district_id: r.districtId,
    parent_id: r.parentId,
    status: r.status,
    source: r.source,
    generation: r.generation,
    attempts: r.attempts,
    held_run_id: r.heldRunId ?? null,
    recipient: r.recipient ?? null,
    token_hash: r.tokenHash ?? null,
    token_expires_at: r.tokenExpiresAt ?? null,
    token_used_at: r.tokenUsedAt ?? null,
    queued_at: r.queuedAt,
    deferred_until: r.deferredUntil ?? null,
    sending_at: r.sendingAt ?? null,
    sent_at: r.sentAt ?? null,
    failed_at: r.failedAt ?? null,
    reason: r.reason ?? null,
    message_id: r.messageId ?? null,
    updated_at: r.updatedAt,
  };
}

/** Patch keys → columns (the only columns `transition` may write). */
const PATCH_COLUMNS = {
  status: 'status',
  recipient: 'recipient',
  tokenHash: 'token_hash',
  tokenExpiresAt: 'token_expires_at',
  deferredUntil: 'deferred_until',
  sentAt: 'sent_at',
  failedAt: 'failed_at',
  reason: 'reason',
  messageId: 'message_id',
} as const satisfies Record<keyof ActivationPatch, string>;

const COLUMNS = Object.keys(toParams({} as ActivationRecord));

const SQL = {
  get: `SELECT * FROM activation_emails WHERE district_id = ? AND parent_id = ?`,
  insert: `INSERT INTO activation_emails (${COLUMNS.join(', ')})
    VALUES (${COLUMNS.map(c => `@${c}`).join(', ')})
    ON CONFLICT (district_id, parent_id) DO UPDATE SET
      status = excluded.status, source = excluded.source, held_run_id = excluded.held_run_id,
      queued_at = excluded.queued_at, updated_at = excluded.updated_at
    WHERE activation_emails.status = 'no-email' AND excluded.status IN ('queued', 'held')`,
  release: `UPDATE activation_emails
    SET status = 'queued', held_run_id = NULL, queued_at = @now, updated_at = @now
    WHERE district_id = @districtId AND held_run_id = @runId AND status = 'held'
    RETURNING *`,
  requeue: `UPDATE activation_emails SET
      status = 'queued', source = 'resend', generation = generation + 1, attempts = 0,
      held_run_id = NULL, token_hash = NULL, token_expires_at = NULL, deferred_until = NULL,
      sending_at = NULL, sent_at = NULL, failed_at = NULL, reason = NULL, message_id = NULL,
      queued_at = @now, updated_at = @now
    WHERE district_id = @districtId AND parent_id = @parentId
    RETURNING *`,
  claim: `UPDATE activation_emails SET
      status = 'sending', attempts = attempts + 1, token_hash = @tokenHash,
      token_expires_at = @tokenExpiresAt, recipient = @recipient, sending_at = @now,
      deferred_until = NULL, updated_at = @now
    WHERE district_id = @districtId AND parent_id = @parentId AND generation = @generation
      AND status = 'queued'
    RETURNING *`,
  abandon: `UPDATE activation_emails SET status = 'maybe-sent', reason = @reason, updated_at = @now
    WHERE district_id = @districtId AND parent_id = @parentId AND generation = @generation
      AND status = 'sending'
    RETURNING *`,
  byToken: `SELECT * FROM activation_emails WHERE token_hash = ?`,
  useToken: `UPDATE activation_emails SET token_used_at = @now, updated_at = @now
    WHERE token_hash = @tokenHash AND token_used_at IS NULL AND token_expires_at > @now`,
  counts: `SELECT status, COUNT(*) AS n FROM activation_emails WHERE district_id = ? GROUP BY status`,
  deferred: `SELECT COUNT(*) FROM activation_emails
    WHERE district_id = ? AND status = 'queued' AND deferred_until > ?`,
  parents: `SELECT p.id, p.given_name, p.family_name, p.email, p.status
    FROM json_each(@ids) AS k CROSS JOIN parent_accounts AS p
    WHERE p.district_id = @districtId AND p.id = k.value`,
  children: `SELECT DISTINCT s.sourced_id, s.given_name, s.family_name
    FROM guardian_links AS l
    JOIN students AS s ON s.district_id = l.district_id AND s.sourced_id = l.student_sourced_id
    WHERE l.district_id = ? AND l.parent_id = ? AND l.status = 'active' AND s.status = 'active'
    ORDER BY s.family_name, s.given_name, s.sourced_id`,
} as const;

/** `ActivationRepository` over the better-sqlite3 connection of a `SqliteRosterStore`. */
export class SqliteActivationRepository implements ActivationRepository {
  private readonly statements = new Map<string, Statement>();

  constructor(private readonly db: Database) {}

  init(): Promise<void> {
    return this.run(() => {
      this.db.exec(DDL);
    });
  }

  parents(districtId: string, parentIds: string[]): Promise<ActivationParent[]> {
    return this.run(() => {
      const rows = this.stmt('parents').all({ districtId, ids: JSON.stringify(parentIds) }) as {
        id: string;
        given_name: string;
        family_name: string;
        email: string | null;
        status: RecordStatus;
      }[];
      return rows.map(r => ({
        id: r.id,
        givenName: r.given_name,
        familyName: r.family_name,
        email: opt(r.email),
        status: r.status,
      }));
    });
  }

  children(districtId: string, parentId: string): Promise<ActivationChild[]> {
    return this.run(() =>
      (
        this.stmt('children').all(districtId, parentId) as {
          sourced_id: string;
          given_name: string;
          family_name: string;
        }[]
      ).map(r => ({ sourcedId: r.sourced_id, givenName: r.given_name, familyName: r.family_name })),
    );
  }

  get(districtId: string, parentId: string): Promise<ActivationRecord | undefined> {
    return this.run(() => this.read(districtId, parentId));
  }

  upsertPending(records: ActivationRecord[]): Promise<ActivationRecord[]> {
    return this.run(() =>
      this.db
        .transaction(() => {
          const insert = this.stmt('insert');
          return records.map(r => {
            insert.run(toParams(r));
            const stored = this.read(r.districtId, r.parentId);
            if (!stored) throw new Error(`activation record ${r.parentId} vanished`);
            return stored;
          });
        })
        .immediate(),
    );
  }

  heldRunIds(districtId: string): Promise<string[]> {
    return this.run(
      () =>
        this.db
          .prepare(
            `SELECT DISTINCT held_run_id FROM activation_emails
             WHERE district_id = ? AND held_run_id IS NOT NULL AND status = 'held'
             ORDER BY held_run_id`,
          )
          .pluck()
          .all(districtId) as string[],
    );
  }

  release(districtId: string, runId: string, now: string): Promise<ActivationRecord[]> {
    return this.run(() =>
      this.db
        .transaction(() =>
          (this.stmt('release').all({ districtId, runId, now }) as Row[]).map(fromRow),
        )
        .immediate(),
    );
  }

  requeue(districtId: string, parentId: string, now: string): Promise<RequeueResult> {
    return this.run(() =>
      this.db
        .transaction((): RequeueResult => {
          const current = this.read(districtId, parentId);
          if (!current) {
            const record: ActivationRecord = {
              districtId,
              parentId,
              status: 'queued',
              source: 'resend',
              generation: 0,
              attempts: 0,
              queuedAt: now,
              updatedAt: now,
            };
            this.stmt('insert').run(toParams(record));
            return { ok: true, record };
          }
          if (current.status === 'sending')
            return { ok: false, reason: 'in-flight', record: current };
          if (current.tokenUsedAt) return { ok: false, reason: 'activated', record: current };
          const row = this.stmt('requeue').get({ districtId, parentId, now }) as Row;
          return { ok: true, record: fromRow(row) };
        })
        .immediate(),
    );
  }

  transition(
    districtId: string,
    parentId: string,
    generation: number,
    from: readonly ActivationStatus[],
    patch: ActivationPatch,
  ): Promise<boolean> {
    return this.run(() => {
      const keys = (Object.keys(patch) as (keyof ActivationPatch)[]).filter(k =>
        Object.hasOwn(PATCH_COLUMNS, k),
      );
      if (Object.keys(patch).length !== keys.length)
        throw new Error(`activation transition may not set ${Object.keys(patch).join(', ')}`);
      const sets = keys.map(k => `${PATCH_COLUMNS[k]} = @p_${k}`);
      sets.push('updated_at = @now');
      const sql = `UPDATE activation_emails SET ${sets.join(', ')}
        WHERE district_id = @districtId AND parent_id = @parentId AND generation = @generation
          AND status IN (SELECT value FROM json_each(@from))`;
      const params: Record<string, string | number | null> = {
        districtId,
        parentId,
        generation,
        from: JSON.stringify(from),
        now: new Date().toISOString(),
      };
      for (const k of keys) params[`p_${k}`] = patch[k] ?? null;
      return (
        this.db
          .transaction(() => this.cached(`transition:${keys.join(',')}`, sql).run(params).changes)
          .immediate() === 1
      );
    });
  }

  beginSend(
    districtId: string,
    parentId: string,
    generation: number,
    claim: {
      tokenHash: string;
      tokenExpiresAt: string;
      recipient: string;
      now: string;
      leaseMs: number;
    },
  ): Promise<BeginSendResult> {
    return this.run(() =>
      this.db
        .transaction((): BeginSendResult => {
          const current = this.read(districtId, parentId);
          if (!current || current.generation !== generation)
            return { kind: 'done', record: current };
          if (current.status === 'queued') {
            const row = this.stmt('claim').get({
              districtId,
              parentId,
              generation,
              tokenHash: claim.tokenHash,
              tokenExpiresAt: claim.tokenExpiresAt,
              recipient: claim.recipient,
              now: claim.now,
            }) as Row;
            return { kind: 'claimed', record: fromRow(row) };
          }
          if (current.status === 'sending') {
            const started = Date.parse(current.sendingAt ?? current.updatedAt);
            const leaseEnds = started + claim.leaseMs;
            if (leaseEnds > Date.parse(claim.now))
              return {
                kind: 'in-flight',
                record: current,
                leaseEndsAt: new Date(leaseEnds).toISOString(),
              };
            const row = this.stmt('abandon').get({
              districtId,
              parentId,
              generation,
              now: claim.now,
              reason: abandonedReason(current.sendingAt),
            }) as Row;
            return { kind: 'abandoned', record: fromRow(row) };
          }
          return { kind: 'done', record: current };
        })
        .immediate(),
    );
  }

  consumeToken(tokenHash: string, now: string): Promise<ConsumeTokenResult> {
    return this.run(() =>
      this.db
        .transaction((): ConsumeTokenResult => {
          const row = this.stmt('byToken').get(tokenHash) as Row | undefined;
          if (!row) return { ok: false, reason: 'unknown' };
          if (row.token_used_at) return { ok: false, reason: 'used' };
          if (!row.token_expires_at || row.token_expires_at <= now)
            return { ok: false, reason: 'expired' };
          this.stmt('useToken').run({ tokenHash, now });
          return { ok: true, districtId: row.district_id, parentId: row.parent_id };
        })
        .immediate(),
    );
  }

  counts(districtId: string, now: string): Promise<Record<ActivationStatus | 'deferred', number>> {
    return this.run(() => {
      const out = emptyActivationCounts();
      for (const r of this.stmt('counts').all(districtId) as {
        status: ActivationStatus;
        n: number;
      }[])
        out[r.status] = r.n;
      out.deferred = this.stmt('deferred').pluck().get(districtId, now) as number;
      return out;
    });
  }

  private read(districtId: string, parentId: string): ActivationRecord | undefined {
    const row = this.stmt('get').get(districtId, parentId) as Row | undefined;
    return row ? fromRow(row) : undefined;
  }

  private run<T>(fn: () => T): Promise<T> {
    return settle(fn);
  }

  private stmt(name: keyof typeof SQL): Statement {
    return this.cached(name, SQL[name]);
  }

  private cached(key: string, sql: string): Statement {
    let s = this.statements.get(key);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(key, s);
    }
    return s;
  }
}
