/**
 * The activation-email repository: one record per parent account (`districtId`, `parentId`)
 * that says whether the account's activation email was sent, and holds the hash of its
 * activation token. The record is what makes sending exactly-once: a send job claims the
 * record (`queued` → `sending`) before it talks to SMTP and records the outcome after, so a
 * re-delivered job, a retried run or a restored account never sends a second email.
 *
 * Implemented on SQLite (`sqlite.ts`) and MongoDB (`mongo.ts`) over the roster store's own
 * connection (`RosterStore.handle()`); both pass `test/contract/notifications.contract.ts`.
 *
 * Status machine (one generation; a resend starts the next generation at `queued`):
 *
 * ```
 * held ──release──► queued ──beginSend──► sending ──► sent
 * no-email ─(email appears, enqueue)─┘  ▲      │  ├──► failed      (5xx, account gone, retries spent)
 *                                       └──────┘  └──► maybe-sent  (connection lost after the body)
 *                                     (4xx: retry)
 * ```
 */
import type { RecordStatus } from '../../mapping/canonical.js';

export type ActivationStatus =
  'held' | 'no-email' | 'queued' | 'sending' | 'sent' | 'maybe-sent' | 'failed';

export const ACTIVATION_STATUSES: readonly ActivationStatus[] = [
  'held',
  'no-email',
  'queued',
  'sending',
  'sent',
  'maybe-sent',
  'failed',
];

/** Who asked for the email: a sync run, an admin import, or a resend request. */
export type ActivationSource = 'sync' | 'import' | 'resend';

export interface ActivationRecord {
  districtId: string;
  parentId: string;
  status: ActivationStatus;
  source: ActivationSource;
  /** 0 for the first email; each resend adds 1. Job ids and transitions carry it. */
  generation: number;
  /** Send attempts of the current generation. */
  attempts: number;
  /** Run whose deactivations the safeguard held (status `held`). */
  heldRunId?: string | undefined;
  /** Address the last attempt was sent to. */
  recipient?: string | undefined;
  /** sha256 (hex) of the current activation token; the token itself is never stored. */
  tokenHash?: string | undefined;
  /** ISO timestamps. */
  tokenExpiresAt?: string | undefined;
  tokenUsedAt?: string | undefined;
  queuedAt: string;
  /** Set while a `queued` record waits for the next rate-limit window. */
  deferredUntil?: string | undefined;
  /** Start of the current `sending` attempt (the claim's lease starts here). */
  sendingAt?: string | undefined;
  sentAt?: string | undefined;
  failedAt?: string | undefined;
  /** Why the record is `failed`/`maybe-sent`, or the last temporary failure. */
  reason?: string | undefined;
  messageId?: string | undefined;
  updatedAt: string;
}

/**
 * Fields a transition may set. A key present with `undefined` clears an optional field (as in
 * `SyncRunPatch`); an absent key leaves it alone.
 */
export type ActivationPatch = Partial<
  Pick<
    ActivationRecord,
    | 'status'
    | 'recipient'
    | 'tokenHash'
    | 'tokenExpiresAt'
    | 'deferredUntil'
    | 'sentAt'
    | 'failedAt'
    | 'reason'
    | 'messageId'
  >
>;

/** The parent account fields an activation email needs (read from the roster). */
export interface ActivationParent {
  id: string;
  givenName: string;
  familyName: string;
  email?: string | undefined;
  status: RecordStatus;
}

/** A child named in the email: an active student with an active link to the parent. */
export interface ActivationChild {
  sourcedId: string;
  givenName: string;
  familyName: string;
}

/** Outcome of `beginSend`. */
export type BeginSendResult =
  /** The caller owns the attempt and must record its outcome with `transition(['sending'])`. */
  | { kind: 'claimed'; record: ActivationRecord }
  /** Another attempt started at `record.sendingAt` and its lease has not run out. */
  | { kind: 'in-flight'; record: ActivationRecord; leaseEndsAt: string }
  /**
   * An earlier attempt claimed the record and never reported back (worker killed mid-send):
   * the record is now `maybe-sent`. Nothing may be sent.
   */
  | { kind: 'abandoned'; record: ActivationRecord }
  /** Nothing to send: already sent/failed/…, a newer generation exists, or no record. */
  | { kind: 'done'; record: ActivationRecord | undefined };

/** Outcome of `consumeToken`. */
export type ConsumeTokenResult =
  | { ok: true; districtId: string; parentId: string }
  | { ok: false; reason: 'unknown' | 'used' | 'expired' };

/** Outcome of `requeue` (a resend). */
export type RequeueResult =
  | { ok: true; record: ActivationRecord }
  | { ok: false; reason: 'in-flight' | 'activated'; record: ActivationRecord };

export interface ActivationRepository {
  /** Create tables/collections and indexes. Idempotent. */
  init(): Promise<void>;

  // --- roster reads --------------------------------------------------------------------
  /** The accounts among `parentIds` (any status); unknown ids are left out. */
  parents(districtId: string, parentIds: string[]): Promise<ActivationParent[]>;
  /** Active students with an active link (any origin) to the account, by family/given name. */
  children(districtId: string, parentId: string): Promise<ActivationChild[]>;

  // --- records -------------------------------------------------------------------------
  get(districtId: string, parentId: string): Promise<ActivationRecord | undefined>;
  /**
   * For each record: insert it when the account has none; when the stored one is `no-email`
   * and the new one is `queued`/`held` (the account got an email), move it to the new status.
   * Otherwise leave the stored record alone. Returns the stored record of every input, in order.
   */
  upsertPending(records: ActivationRecord[]): Promise<ActivationRecord[]>;
  /** Distinct run ids that `held` records of the district wait for. */
  heldRunIds(districtId: string): Promise<string[]>;
  /** `held` records of `runId` → `queued`. Returns the records released. */
  release(districtId: string, runId: string, now: string): Promise<ActivationRecord[]>;
  /**
   * Start the next generation (a resend): `queued`, new `generation`, token cleared (the old
   * link stops working at once). Creates generation 0 when the account has no record.
   * Refused while an attempt is `sending`, and once the account was activated.
   */
  requeue(districtId: string, parentId: string, now: string): Promise<RequeueResult>;
  /**
   * Apply `patch` when the record has `generation` and one of the `from` statuses. Returns
   * whether it did (false: someone else moved the record first).
   */
  transition(
    districtId: string,
    parentId: string,
    generation: number,
    from: readonly ActivationStatus[],
    patch: ActivationPatch,
  ): Promise<boolean>;
  /**
   * Atomically claim a `queued` record of `generation` for one send attempt: `sending`,
   * attempts + 1, the new token's hash and expiry, the recipient. A record already `sending`
   * whose lease (`sendingAt + leaseMs`) ran out becomes `maybe-sent` (see `BeginSendResult`).
   */
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
  ): Promise<BeginSendResult>;
  /**
   * Use an activation token: the record with this hash, unused and unexpired, gets
   * `tokenUsedAt = now`. Single use: a second call returns `used`.
   */
  consumeToken(tokenHash: string, now: string): Promise<ConsumeTokenResult>;
  /** Records per status, plus `deferred` (queued and waiting for a rate-limit window). */
  counts(districtId: string, now: string): Promise<Record<ActivationStatus | 'deferred', number>>;
}

/** Zero for every status, plus `deferred`. */
export function emptyActivationCounts(): Record<ActivationStatus | 'deferred', number> {
  const out = { deferred: 0 } as Record<ActivationStatus | 'deferred', number>;
  for (const s of ACTIVATION_STATUSES) out[s] = 0;
  return out;
}

/** Reason recorded when an attempt's worker never reported back. */
export function abandonedReason(sendingAt: string | undefined): string {
  return `a send attempt started at ${sendingAt ?? 'an unknown time'} never reported back (worker stopped); the email may have been delivered, so it is not sent again automatically`;
}
