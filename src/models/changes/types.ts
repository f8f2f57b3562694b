/**
 * The change log (design invariant 13, "the store remembers"): one append-only entry per change
 * to a parent account, a guardian link, a student or a Parent Access Code, written by the store
 * in the same transaction as the change itself, with its cause and actor and a per-district
 * sequence number (1, 2, 3, … with no gaps).
 *
 * Everything that reports or reacts to what happened reads this log, never the Redis run
 * ledger or process memory: activation emails, run counts, metrics (`src/jobs/changes.ts`),
 * the audit ("why is this parent linked to this student"), the change feed and webhooks.
 *
 * Writers: the roster store (`reconcileChunk`, `applyDeactivations`, `addLink`,
 * `createParent`) and the feature repositories that write roster rows (imports, access
 * codes). Each passes a `ChangeContext` (cause + actor); the store fills in `districtId`,
 * `seq` and `at`. A dry run, or a change the deletion safeguard holds, writes no entry: only
 * changes that were made are logged.
 *
 * Readers go through `ChangeLogRepository` (`changeLogRepository(store)`), implemented for
 * SQLite (`sqlite.ts`) and MongoDB (`mongo.ts`) and checked by
 * `test/contract/change-log.contract.ts`.
 */
import { createHash } from 'node:crypto';
import type { LinkOrigin } from '../types.js';

/** What an entry is about. */
export type ChangeEntity = 'parent' | 'link' | 'student' | 'code';

/**
 * What happened to it:
 * - `create`, `update`, `reactivate`, `deactivate` — any entity (codes: `create` = issued,
 *   `deactivate` = revoked by a reset);
 * - `match` — a parent account got another SIS identity (a source) without other changes
 *   (a second SIS entry of the same person, matched by uniqueId or email).
 */
export type ChangeAction = 'create' | 'update' | 'match' | 'reactivate' | 'deactivate';

export const CHANGE_ENTITIES: readonly ChangeEntity[] = ['parent', 'link', 'student', 'code'];
export const CHANGE_ACTIONS: readonly ChangeAction[] = [
  'create',
  'update',
  'match',
  'reactivate',
  'deactivate',
];

/**
 * Why a change was made:
 * - `sync` — a sync run (`id` = run id, `trigger` = the run's trigger: schedule, api, cli…);
 * - `approval` — an admin approved a held run (`id` = run id): its held deactivations;
 * - `import` — an admin import was confirmed (`id` = preview id, `trigger` = parents |
 *   associations; `notify` = its "send activation email" option);
 * - `manual` — a manual association or its removal (no id);
 * - `redemption` — a guardian redeemed a Parent Access Code (`id` = the code's ref, never the
 *   code itself; `trigger` = register | add-child);
 * - `code-issue` — codes issued at the end of a run (`id` = run id) or by an admin;
 * - `code-reset` — codes reset by an admin (`id` = the reset id);
 * - `system` — anything else (tests, maintenance scripts).
 */
export type ChangeCauseKind =
  'sync' | 'approval' | 'import' | 'manual' | 'redemption' | 'code-issue' | 'code-reset' | 'system';

export interface ChangeCause {
  kind: ChangeCauseKind;
  /** Run id, import preview id, reset id or code ref (see `ChangeCauseKind`). */
  id?: string | undefined;
  /** Sync: the run's trigger; import: its kind; redemption: register | add-child. */
  trigger?: string | undefined;
  /** Import: the admin asked for activation emails for the accounts it creates. */
  notify?: boolean | undefined;
}

/**
 * Who made the change: `schedule`, `api:<token name>`, `cli:<os user>`, `guardian` (a code
 * redemption), `system`. Never a secret.
 */
export type ChangeActor = string;

/** Cause and actor of a write, passed to every store method that changes roster data. */
export interface ChangeContext {
  cause: ChangeCause;
  actor: ChangeActor;
}

/** The context of writes that name none (tests, maintenance): cause `system`, actor `system`. */
export const SYSTEM_CHANGE: ChangeContext = { cause: { kind: 'system' }, actor: 'system' };

/** Field values as logged: strings, string lists, booleans or null (a cleared field). */
export type ChangeValue = string | string[] | boolean | null;
export type ChangeFields = Record<string, ChangeValue>;

/** One change, as the writer describes it (the store adds district, sequence, time, cause). */
export interface NewChange {
  entity: ChangeEntity;
  /**
   * Id of the changed record: parent → account id; student → sourcedId; code → `codeRef`
   * (never the code's value); link → `linkRef(origin, parentId, studentSourcedId)`.
   */
  entityId: string;
  action: ChangeAction;
  /** Parent entries: the account; link entries: the link's parent. */
  parentId?: string | undefined;
  /** Student, link and code entries: the student. */
  studentSourcedId?: string | undefined;
  /** Link entries: the link's origin. */
  origin?: LinkOrigin | undefined;
  /** Previous values of the fields that changed (absent for `create`). */
  before?: ChangeFields | undefined;
  /** New values of the fields that changed (`create`: every field that has a value). */
  after?: ChangeFields | undefined;
}

/** A stored entry. */
export interface ChangeEntry extends NewChange {
  districtId: string;
  /** Per-district sequence: the first entry of a district is 1, then 2, 3… without gaps. */
  seq: number;
  /** ISO timestamp of the write. */
  at: string;
  cause: ChangeCause;
  actor: ChangeActor;
}

/** The `entityId` of a link entry. */
export function linkRef(origin: LinkOrigin, parentId: string, studentSourcedId: string): string {
  return `${origin}:${parentId}:${studentSourcedId}`;
}

/** Filters of `ChangeLogRepository.list` (all optional; combined with AND). */
export interface ChangeQuery {
  /** Only entries with `seq > afterSeq` (default 0: from the start). */
  afterSeq?: number | undefined;
  /** Only entries with `seq <= toSeq`. */
  toSeq?: number | undefined;
  entity?: ChangeEntity | undefined;
  actions?: readonly ChangeAction[] | undefined;
  parentId?: string | undefined;
  studentSourcedId?: string | undefined;
  /** Entries whose `cause.id` is one of these (a run's entries: sync + approval + code-issue). */
  causeIds?: readonly string[] | undefined;
  /** At most this many entries (1..10,000). */
  limit: number;
}

/**
 * Consumer name of the audit index's cursor (`ChangeLogRepository.indexAudit`): every entry
 * with `seq <=` this cursor is in the index by parent and by student; later entries are read
 * by a scan of the log's tail (docs/decisions/0019-audit-index-by-consumer.md).
 */
export const AUDIT_INDEX_CONSUMER = 'audit-index';

/** Upper bound of `ChangeQuery.limit` (both adapters clamp to it). */
export const MAX_CHANGE_PAGE = 10_000;

/** Entity → action → number of entries, e.g. `{ parent: { create: 12 } }`. */
export type ChangeCounts = Record<string, Record<string, number>>;

/** A consumer's position in a district's log (durable, compare-and-set). */
export interface ConsumerCursor {
  consumer: string;
  districtId: string;
  /** Last sequence number the consumer has fully handled (0: none). */
  seq: number;
  /** ISO timestamp of the last change of `seq`. */
  updatedAt?: string | undefined;
  /** Consumer state, e.g. a webhook's last error and attempt counts (JSON-safe values). */
  state: Record<string, unknown>;
}

export interface ChangeLogRepository {
  /** Create tables/collections and indexes. Idempotent. */
  init(): Promise<void>;

  /** Entries of a district matching `q`, in sequence order. */
  list(districtId: string, q: ChangeQuery): Promise<ChangeEntry[]>;
  /** The district's last sequence number (0 when it has no entry). */
  lastSeq(districtId: string): Promise<number>;
  /**
   * Number of entries by entity and action among those with `cause.id` in `causeIds`, as
   * written. Used for a run's counts when it ends (finalize, failure, approval), long before
   * retention could prune anything; after a prune the SQLite adapter still counts what was
   * written (it keeps per-write totals), MongoDB counts the entries left. A run keeps its own
   * counts, so reports never depend on it after the fact.
   */
  countByCause(districtId: string, causeIds: readonly string[]): Promise<ChangeCounts>;
  /** Number of entries by entity and action with `afterSeq < seq <= toSeq`. */
  countRange(districtId: string, afterSeq: number, toSeq: number): Promise<ChangeCounts>;
  /** Districts that have entries (for consumers that sweep every district). */
  districts(): Promise<string[]>;

  /** The consumer's cursor in the district (seq 0 and empty state when it has none). */
  cursor(consumer: string, districtId: string): Promise<ConsumerCursor>;
  /**
   * Move the cursor from `fromSeq` to `toSeq` (and replace its state) only if it is still at
   * `fromSeq`. Returns false when another worker moved it first (nothing changed).
   */
  advance(
    consumer: string,
    districtId: string,
    fromSeq: number,
    toSeq: number,
    state?: Record<string, unknown>,
  ): Promise<boolean>;
  /** Replace the cursor's state without moving it (e.g. a webhook's last error). */
  setState(consumer: string, districtId: string, state: Record<string, unknown>): Promise<void>;
  /** Every cursor of a consumer (all districts). */
  cursors(consumer: string): Promise<ConsumerCursor[]>;

  /**
   * Audit index (docs/decisions/0019-audit-index-by-consumer.md): index the district's entries
   * after the audit index's cursor (`AUDIT_INDEX_CONSUMER`) by parent and by student, at most
   * `maxEntries` sequence numbers and never past `toSeq` (default: the district's last
   * sequence number). The index rows and the cursor move are one transaction: a crash leaves
   * both as they were. Returns the cursor before and after (`to === from`: nothing to do).
   * `list` with `parentId` or `studentSourcedId` is complete whatever the cursor (it scans
   * the entries after it), so this only decides how fast those reads are.
   * Throws on store errors (nothing moved then).
   */
  indexAudit(
    districtId: string,
    opts: { maxEntries: number; toSeq?: number | undefined },
  ): Promise<{ from: number; to: number }>;

  /**
   * Delete the district's entries written before `before` (ISO), except the newest
   * `create`/`reactivate` entry of every currently active link (the entry that explains why
   * the link exists) and of every active parent account. Returns how many were deleted.
   */
  prune(districtId: string, before: string): Promise<number>;
}

/**
 * The `entityId` of a Parent Access Code in the log: `ac_` + 16 hex of SHA-256 of the
 * canonical code. The log never holds a code's value (anyone who can read the feed could
 * otherwise register as a guardian); the same code always gives the same ref.
 */
export function codeRef(canonicalCode: string): string {
  return `ac_${createHash('sha256').update(canonicalCode).digest('hex').slice(0, 16)}`;
}
