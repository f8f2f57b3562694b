/**
 * The `RosterStore` port: everything guardian-sync keeps, behind one interface with two
 * adapters (SQLite via better-sqlite3 in `sqlite/`, MongoDB via mongoose in `mongo/`).
 * Both pass the contract suite in `test/contract/store.contract.ts`.
 *
 * Rules every adapter keeps:
 * - Every read and write is scoped by `districtId`.
 * - Nothing is hard-deleted: students, parent accounts and links are deactivated.
 * - `writeCount()` counts roster rows/documents written (students, parent accounts, parent
 *   sources, links) since the store was opened. Run bookkeeping (sync runs, rejects) is not
 *   counted: invariant 1 ("a no-change resync performs zero writes") is about the roster.
 * - `reconcileChunk` is atomic per chunk: it loads the state the planner needs, calls the
 *   pure planner and writes the plan so that no other writer can interleave (SQLite: one
 *   `BEGIN IMMEDIATE` transaction; MongoDB: one multi-document transaction per chunk, which
 *   needs a replica set). Both write the chunk's change-log entries in that same transaction
 *   (`src/models/changes/`).
 */
import type { Database } from 'better-sqlite3';
import type { Connection } from 'mongoose';
import type { GuardianRole, RecordStatus } from '../mapping/canonical.js';
import type { ChangeContext } from './changes/types.js';

/** Where a guardian link came from. Sync owns only `sis` links (invariant 6). */
export type LinkOrigin = 'sis' | 'import' | 'access-code' | 'manual';
/** Where a parent account came from. Sync deactivates only accounts it created or matched. */
export type AccountOrigin = 'sis' | 'import' | 'access-code' | 'manual';

export interface StoredStudent {
  districtId: string;
  sourcedId: string;
  uniqueId: string;
  givenName: string;
  familyName: string;
  email?: string | undefined;
  schoolSourcedIds: string[];
  grade?: string | undefined;
  status: RecordStatus;
}

/** A SIS identity attached to a parent account: (connector, the SIS's own id of the person). */
export interface ParentSource {
  connector: string;
  sourcedId: string;
}

export interface ParentAccount {
  districtId: string;
  /** Store id of the account (stable, opaque; deterministic for sync-created accounts). */
  id: string;
  uniqueId?: string | undefined;
  givenName: string;
  familyName: string;
  email?: string | undefined;
  /** `normalizeEmail(email)`; indexed for identity matching. */
  emailNormalized?: string | undefined;
  phone?: string | undefined;
  /** Platform role name: `Parent` by default, or a district's custom role. */
  role: string;
  /** The SIS's guardian role (parent/guardian/relative) when the account came from a SIS. */
  sisRole?: GuardianRole | undefined;
  status: RecordStatus;
  origin: AccountOrigin;
  /** SIS identities matched to this account (siblings' duplicate entries collapse here). */
  sources: ParentSource[];
  /** Fields an admin edited by hand; sync never overwrites them (invariant 6). */
  lockedFields: string[];
}

export interface GuardianLink {
  districtId: string;
  parentId: string;
  studentSourcedId: string;
  origin: LinkOrigin;
  relationship?: string | undefined;
  status: RecordStatus;
}

/** Keys the planner needs loaded for one chunk. */
export interface ChunkKeys {
  /** Connector kind whose `sources` the guardian sourcedIds are matched against. */
  connector: string;
  studentSourcedIds: string[];
  /**
   * Unique IDs (student numbers) of the chunk's students: a student whose sourcedId is new
   * but whose Unique ID is known is the same student re-keyed (moved, not created).
   * Optional for older callers (then nothing is matched by Unique ID).
   */
  studentUniqueIds?: string[] | undefined;
  guardianSourcedIds: string[];
  guardianUniqueIds: string[];
  emailsNormalized: string[];
}

/** Existing state for a chunk: every record matching any of the chunk's keys. */
export interface ChunkState {
  /** Students matched by sourcedId or by Unique ID (`ChunkKeys.studentUniqueIds`). */
  students: StoredStudent[];
  /** Accounts matched by source, uniqueId or normalized email (all statuses). */
  parents: ParentAccount[];
  /** All links (any origin, any status) of the loaded students. */
  links: GuardianLink[];
  /**
   * Active `sis` links to students outside the chunk of the loaded `sis` accounts whose first
   * (field-owning) source is not one of the chunk's guardians; absent when there are none.
   * The planner hands field ownership to a live source only when the account has no student
   * outside the chunk (docs/decisions/0005).
   */
  accountLinks?: GuardianLink[] | undefined;
}

/** A field-level change to an existing parent account. */
export interface ParentUpdate {
  id: string;
  set: Partial<
    Pick<
      ParentAccount,
      | 'givenName'
      | 'familyName'
      | 'email'
      | 'emailNormalized'
      | 'phone'
      | 'sisRole'
      | 'status'
      | 'uniqueId'
    >
  >;
  addSources: ParentSource[];
}

/**
 * `move`: the SIS re-keyed a known student (new sourcedId, same Unique ID). The stored record
 * takes the new sourcedId (`from` is the old one) and its links and access codes follow.
 */
export type StudentAction = 'create' | 'update' | 'reactivate' | 'move';
export type ParentAction = 'create' | 'update' | 'reactivate' | 'match';
export type LinkAction = 'add' | 'reactivate' | 'update';

export interface Reject {
  entity:
    'school' | 'student' | 'guardian' | 'relationship' | 'section' | 'enrollment' | 'chunk' | 'run';
  /** The SIS record id (or file row) the reject is about. */
  recordId: string;
  reason: string;
  /**
   * `rejected` (default): the record failed validation. `excluded`: the record is valid but a
   * rule or district policy left it out (no portal access, relative, disabled user, linked to
   * no student…); `reason` names the rule. Both are counted and listed with the run (design.md
   * invariant 14: nothing silent).
   */
  kind?: 'rejected' | 'excluded' | undefined;
}

/** Which rejects `listRejects` returns: all (default), or one kind. */
export interface RejectFilter {
  kind?: 'rejected' | 'excluded' | undefined;
}

/** What applying one chunk changes. Computed purely by `planChunk`; written by the store. */
export interface ChunkPlan {
  /** `from`: the old sourcedId of a `move`. */
  students: { action: StudentAction; record: StoredStudent; from?: string | undefined }[];
  /**
   * New students that match nothing (neither sourcedId nor Unique ID), with the `sis` links
   * the chunk gives them, when the planner was asked to defer them (`PlanContext.
   * deferUnmatched`): the store keeps them with the run instead of creating them, and the
   * finalize step creates them, or holds them when the run looks like a mass re-key
   * (docs/decisions/0004-safeguard-and-rekeys.md). Absent or empty: nothing deferred.
   */
  deferredStudents?: DeferredStudent[] | undefined;
  parentCreates: ParentAccount[];
  parentUpdates: { action: Exclude<ParentAction, 'create'>; update: ParentUpdate }[];
  links: { action: LinkAction; link: GuardianLink }[];
  /**
   * `sis` links of this chunk's students that the SIS no longer lists. Not applied with the
   * chunk: the finalize step applies them only when the snapshot is complete (invariant 4).
   */
  linkRemovals: { parentId: string; studentSourcedId: string }[];
  rejects: Reject[];
  /** Parent account id each guardian sourcedId resolved to (for the run's seen set). */
  guardianAccounts: Record<string, string>;
  /** Students of the chunk skipped as unchanged (`UnchangedCheck`); absent: none. */
  unchangedStudents?: number | undefined;
}

/** A new student kept with its run instead of created (see `ChunkPlan.deferredStudents`). */
export interface DeferredStudent {
  record: StoredStudent;
  /** `sis` links the snapshot gives the student (parent account ids resolved by the chunk). */
  links: { parentId: string; relationship?: string | undefined }[];
}

/**
 * One deferred student of a run, as stored: `remapFrom` is the sourcedId of the existing
 * student the finalize step proposes it replaces (same name, school and grade; only
 * unambiguous pairs), applied when an admin approves the run.
 */
export interface RunDeferredStudent extends DeferredStudent {
  runId: string;
  remapFrom?: string | undefined;
}

/** Deactivations the finalize step computed (or held for approval). */
export interface Deactivations {
  studentSourcedIds: string[];
  parentIds: string[];
  links: { parentId: string; studentSourcedId: string }[];
}

/**
 * How many deactivations a `needs-approval` run holds. The held lists themselves are kept
 * outside the run, in pages (`holdRun`, `listHeld`): a district-sized list does not fit in
 * one MongoDB document (16 MiB), docs/decisions/0006-held-lists-and-orphaned-parents.md.
 */
export interface HeldSummary {
  students: number;
  parents: number;
  links: number;
}

/** The three held lists of a run: `student` sourcedIds, parent account `id`s, `link`s. */
export type HeldKind = 'student' | 'parent' | 'link';

/** Held records per page row/document (`holdRun`). */
export const HELD_PAGE_SIZE = 1000;

/** What `RosterStore.activeIdPages` lists: active students, or active `sis`-origin accounts. */
export type ActiveIdKind = 'student' | 'sis-parent';

/** Ids per page of `RosterStore.activeIdPages` (one SQLite statement / one MongoDB batch). */
export const ACTIVE_ID_PAGE = 5000;

export type RunStatus =
  'queued' | 'running' | 'succeeded' | 'failed' | 'needs-approval' | 'discarded' | 'cancelled';

/** Counts per entity and action, e.g. `{ student: { create: 10 }, parent: { match: 2 } }`. */
export type RunCounts = Record<string, Record<string, number>>;

export interface SyncRun {
  id: string;
  districtId: string;
  connector: string;
  status: RunStatus;
  dryRun: boolean;
  /** `schedule`, `api`, `cli`, … */
  trigger: string;
  /** Who started it: `schedule`, `api:<token name>`, `cli:<os user>` (change-log actor). */
  actor?: string | undefined;
  /** Who approved, discarded or cancelled the run, and when (ISO). */
  decidedBy?: string | undefined;
  decidedAt?: string | undefined;
  createdAt: string;
  startedAt?: string | undefined;
  finishedAt?: string | undefined;
  counts: RunCounts;
  rejectCount: number;
  /** Timings in milliseconds per phase (`pull`, `apply`, `finalize`, `total`). */
  timings: Record<string, number>;
  /**
   * How many deactivations the deletion safeguard holds (status `needs-approval`); the lists
   * are read page by page with `RosterStore.listHeld`.
   */
  held?: HeldSummary | undefined;
  error?: string | undefined;
  /**
   * The pull is waiting for the SIS (HTTP 429 with a long `Retry-After`): it was rescheduled
   * to `until` (ISO) instead of failing; `reschedules` counts how often this run waited.
   * Kept after the pull resumes (with `until` in the past) so the run's history says so.
   */
  waiting?: RunWait | undefined;
  /**
   * Which district configuration the run used: set when the run is queued (the triggering
   * process's view) and again when a worker starts its pull (what the pull really uses).
   */
  config?: RunConfig | undefined;
}

/** The district configuration a run used (see `SyncRun.config`). */
export interface RunConfig {
  /** The district file it was read from; absent: configured in code (tests, demo). */
  file?: string | undefined;
  /**
   * sha256 (hex) of that file's bytes when it was read. Absent (with `loadedAt`) when the
   * triggering process could not know it: the worker records it when the pull starts.
   */
  sha256?: string | undefined;
  /** When the process that recorded it read the file (ISO). */
  loadedAt?: string | undefined;
  /**
   * The district file on disk could not be used when the run was recorded (a secret it names
   * is not set, it is invalid, or a reload was refused): the run used the configuration above
   * (the one loaded before). Absent: the configuration above is the file on disk.
   */
  refused?: RunConfigRefusal | undefined;
}

/** A district file on disk that a run could not use, and why. */
export interface RunConfigRefusal {
  file: string;
  /** sha256 (hex) of the refused file's bytes; absent when it could not be read. */
  sha256?: string | undefined;
  /** When it was refused (ISO). */
  at: string;
  /** One line per problem, each naming the file, key or environment variable. */
  problems: string[];
}

/** Why and until when a run's pull waits for the SIS (see `SyncRun.waiting`). */
export interface RunWait {
  /** ISO time the pull is rescheduled for. */
  until: string;
  /** What the SIS said (method, path, its Retry-After), for the admin. */
  reason: string;
  /** How many times this run's pull was rescheduled for a rate limit. */
  reschedules: number;
}

export type SyncRunPatch = Partial<Omit<SyncRun, 'id' | 'districtId' | 'connector' | 'createdAt'>>;

/** Thrown by `createRun` when the district already has a queued or running run. */
export class ActiveRunExistsError extends Error {
  constructor(readonly activeRun: SyncRun) {
    super(`district ${activeRun.districtId} already has an active run ${activeRun.id}`);
    this.name = 'ActiveRunExistsError';
  }
}

/** Pure planner signature (see `src/reconcile/plan.ts`). */
export type ChunkPlanner = (state: ChunkState) => ChunkPlan;

/**
 * Skip a chunk's unchanged students (docs/decisions/0014): `reconcileChunk` reads, inside its
 * transaction, the digest stored with each of `studentSourcedIds` and the account each of
 * `guardianSourcedIds` (of the chunk's connector) belongs to, and calls `narrow` with them;
 * only the narrowed part is loaded, planned and written, and the digests `digestsAfter`
 * returns are stored (or cleared: null) in the same transaction. Built by
 * `unchangedCheck` (src/reconcile/digest.ts).
 */
export interface UnchangedCheck {
  studentSourcedIds: string[];
  guardianSourcedIds: string[];
  /**
   * `stored`: studentSourcedId → stored digest (students without one are absent);
   * `accounts`: guardian sourcedId → parent account id of its source.
   */
  narrow(stored: ReadonlyMap<string, string>, accounts: ReadonlyMap<string, string>): NarrowedChunk;
}

/** The part of a chunk that must be planned (see `UnchangedCheck`). */
export interface NarrowedChunk {
  keys: ChunkKeys;
  planner: ChunkPlanner;
  /** Students skipped because their digest matched (their part of the chunk is not planned). */
  unchangedStudents: number;
  /** Guardian sourcedId → account id of the skipped guardians (the run's seen set). */
  skippedGuardianAccounts: Record<string, string>;
  /** studentSourcedId → digest to store after `plan` is written (null: clear it). */
  digestsAfter(plan: ChunkPlan): Map<string, string | null>;
}

/**
 * The adapter's own connection, for feature repositories that live beside the roster
 * (`src/models/<feature>/`: access codes, notifications, imports…). They share the store's
 * connection and create their own tables/collections idempotently in their `init()`.
 */
export type StoreHandle =
  { kind: 'sqlite'; db: Database } | { kind: 'mongo'; connection: Connection };

/**
 * Fault injection, for tests only (the store contract's "a chunk failing half-way"). No
 * production code sets it.
 */
export interface StoreTestHooks {
  /**
   * Called once per `reconcileChunk` write inside the chunk's transaction, right after the
   * plan's first write reached the database (SQLite: the first account insert; MongoDB: the
   * accounts bulk; before the students and links either way). A hook that throws fails the
   * chunk at that point.
   */
  afterFirstPlanWrite?: (() => void) | undefined;
}

/** One index of the store: its table/collection and name. */
export interface StoreIndex {
  collection: string;
  name: string;
}

/** Order of `RosterStore.listIndexes()`: by collection, then name. */
export function byCollectionAndName(a: StoreIndex, b: StoreIndex): number {
  if (a.collection !== b.collection) return a.collection < b.collection ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Duplicate email groups `RosterStore.identityIndex()` lists at most. */
export const IDENTITY_DUPLICATES_LISTED = 100;

/**
 * Whether design invariant 7 (one active `sis` account per normalized email in a district) is
 * carried by a unique index (`unique`), or, when the data did not allow building it, the
 * groups of accounts that share an email (at most `IDENTITY_DUPLICATES_LISTED`), which an
 * admin must merge or deactivate (docs/decisions/0011).
 */
export interface IdentityIndexStatus {
  unique: boolean;
  duplicates: { districtId: string; emailNormalized: string; parentIds: string[] }[];
}

export interface RosterStore {
  /** Fault injection for tests only (see `StoreTestHooks`); empty in production. */
  readonly testHooks?: StoreTestHooks;
  /** The underlying connection (see `StoreHandle`). */
  handle(): StoreHandle;
  /**
   * Create tables/collections and missing indexes, apply pending SQLite migrations.
   * Idempotent. Never drops an index (docs/decisions/0010).
   */
  init(): Promise<void>;
  /**
   * Every index the database holds (SQLite: `sqlite_master` indexes, automatic ones
   * included; MongoDB: `listIndexes` of every collection), by collection then name.
   */
  listIndexes(): Promise<StoreIndex[]>;
  /** Invariant 7's unique index after `init()` (see `IdentityIndexStatus`); undefined before. */
  identityIndex(): IdentityIndexStatus | undefined;
  close(): Promise<void>;
  /** Cheap liveness probe; throws when the store is unreachable. */
  ping(): Promise<void>;
  /** Roster rows/documents written since open (see header). */
  writeCount(): number;

  // --- roster -------------------------------------------------------------------------
  upsertSchools(districtId: string, schools: { sourcedId: string; name: string }[]): Promise<void>;
  /**
   * Atomically: load the state for `keys`, call `planner(state)`, and unless `dryRun`,
   * write the plan and its change-log entries (cause and actor from `options.change`,
   * default `SYSTEM_CHANGE`). The plan's `deferredStudents` are kept with `options.runId`
   * (required when there are any). Returns the plan that was (or would be) applied.
   */
  reconcileChunk(
    districtId: string,
    keys: ChunkKeys,
    planner: ChunkPlanner,
    options: {
      dryRun: boolean;
      change?: ChangeContext | undefined;
      runId?: string | undefined;
      /**
       * Skip unchanged students (`UnchangedCheck`); ignored by a dry run. A store may ignore
       * it (every student is then planned: slower, same result).
       */
      unchanged?: UnchangedCheck | undefined;
    },
  ): Promise<ChunkPlan>;
  /**
   * sourcedIds of the district's active students, whole. Loads the district: for tests and
   * small lists; finalize streams `activeIdPages` instead.
   */
  listActiveStudentIds(districtId: string): Promise<string[]>;
  /** Ids of the district's active `sis`-origin parent accounts, in id order (whole; see above). */
  listActiveSisParentIds(districtId: string): Promise<string[]>;
  /**
   * The district's active student sourcedIds (`'student'`) or active `sis`-origin account ids
   * (`'sis-parent'`), in id order, as pages of at most `pageSize` ids (default
   * `ACTIVE_ID_PAGE`). Read through a covering index (SQLite: keyset pages over
   * `(district_id, status, sourced_id | origin, id)`; MongoDB: one cursor over
   * `{districtId, status, sourcedId}` / `{districtId, status, origin, id}` with a covered
   * projection), so memory is one page whatever the district's size (docs/decisions/0012).
   * Ids written while iterating after the current position may or may not be seen.
   */
  activeIdPages(districtId: string, kind: ActiveIdKind, pageSize?: number): AsyncIterable<string[]>;
  /**
   * Active `sis` links of the given students or parents (finalize deactivates the links of
   * deactivated students and parents with them, and restores them when they return).
   */
  listActiveSisLinks(
    districtId: string,
    of: { studentSourcedIds: string[]; parentIds: string[] },
  ): Promise<{ parentId: string; studentSourcedId: string }[]>;
  countActive(districtId: string): Promise<{ students: number; parents: number }>;
  /** Number of the district's active `sis`-origin links (the safeguard's link measure). */
  countActiveSisLinks(districtId: string): Promise<number>;
  /**
   * The deferred students of a run (see `ChunkPlan.deferredStudents`), by sourcedId; with
   * `onlyRemapped`, only those with a proposed `remapFrom`. Paged by `offset`/`limit`.
   */
  listDeferredStudents(
    runId: string,
    opts?: { onlyRemapped?: boolean; offset?: number; limit?: number },
  ): Promise<RunDeferredStudent[]>;
  /** Number of deferred students of a run, and how many have a proposed remap. */
  countDeferredStudents(runId: string): Promise<{ students: number; remapped: number }>;
  /**
   * Record the proposed remap of a run: `pairs` maps a deferred student's sourcedId to the
   * sourcedId of the existing student it replaces (replacing any earlier proposal).
   * Idempotent.
   */
  setRemap(runId: string, pairs: { sourcedId: string; remapFrom: string }[]): Promise<void>;
  /**
   * Write a run's deferred students in one transaction, with change-log entries from
   * `change`: each with a `remapFrom` (when `remap` is true) is a `move` of that existing
   * student (its links and access codes follow), every other one is created; then their
   * `sis` links are added. Re-applying writes nothing. Returns the records written.
   */
  applyDeferredStudents(
    districtId: string,
    runId: string,
    change: ChangeContext,
    opts: { remap: boolean },
  ): Promise<number>;
  /**
   * Deactivate (never delete), logging one change-log entry per record whose status changed
   * (cause and actor from `change`). Returns the number of records whose status changed.
   */
  applyDeactivations(districtId: string, d: Deactivations, change?: ChangeContext): Promise<number>;

  getStudents(districtId: string): Promise<StoredStudent[]>;
  getParents(districtId: string): Promise<ParentAccount[]>;
  getLinks(districtId: string): Promise<GuardianLink[]>;
  /**
   * Insert a link, or update the status/relationship of the existing link of that origin
   * (import/manual/access-code; also deactivates with `status: 'inactive'`). Logs the change.
   * Returns true when a row changed.
   */
  addLink(link: GuardianLink, change?: ChangeContext): Promise<boolean>;
  /** Create an account outside the sync (import/manual/access-code). Logs the creation. */
  createParent(account: ParentAccount, change?: ChangeContext): Promise<void>;

  // --- runs ---------------------------------------------------------------------------
  /** Create a run; throws `ActiveRunExistsError` when the district has a queued/running one. */
  createRun(run: SyncRun): Promise<SyncRun>;
  updateRun(id: string, patch: SyncRunPatch): Promise<SyncRun>;
  getRun(id: string): Promise<SyncRun | undefined>;
  findActiveRun(districtId: string): Promise<SyncRun | undefined>;
  /** Newest first. */
  listRuns(districtId: string, limit: number): Promise<SyncRun[]>;
  /** Append rejects and exclusions (their `kind` is kept; identical ones are stored once). */
  addRejects(runId: string, rejects: Reject[]): Promise<void>;

  // --- held deactivations (docs/decisions/0006) --------------------------------------
  /**
   * Hold `held` for an admin's decision: store the three lists in pages of `HELD_PAGE_SIZE`
   * outside the run (replacing any pages an earlier attempt stored for it), and patch the run
   * with `patch` plus `status: 'needs-approval'` and `held` (the list sizes). SQLite does both
   * in one transaction; MongoDB writes the pages first (idempotent, one insert per page, so a
   * list of millions never forms one transaction) and then changes the run's status in one
   * atomic update: pages of a run that is not `needs-approval` are never read. Throws when the
   * run is unknown. Returns the updated run.
   */
  holdRun(id: string, patch: SyncRunPatch, held: Deactivations): Promise<SyncRun>;
  /**
   * `limit` held records of one kind from `offset` (0-based, in the order they were held),
   * as a `Deactivations` holding only that kind's list, ready for `applyDeactivations`.
   * Empty past the end or when the run holds nothing.
   */
  listHeld(runId: string, kind: HeldKind, offset: number, limit: number): Promise<Deactivations>;
  /**
   * Close a held run: patch it (status `succeeded` after approval, `discarded`) and drop its
   * held pages, in one transaction (SQLite) or the patch first, then the pages (MongoDB).
   * `held` is cleared on the run. Returns the updated run.
   */
  settleHeldRun(id: string, patch: SyncRunPatch): Promise<SyncRun>;
  /**
   * Students and parent accounts (with sources) of a district by their sourcedIds / ids, any
   * status, sorted by sourcedId / id; unknown ids are left out. For listing held records by
   * name and Unique ID.
   */
  findRecords(
    districtId: string,
    ids: { studentSourcedIds: string[]; parentIds: string[] },
  ): Promise<{ students: StoredStudent[]; parents: ParentAccount[] }>;
  /**
   * Active `sis`-origin parent accounts that have at least one link and whose every active
   * link is a `sis` link listed in `ending` (so no `import`, `manual` or `access-code` link
   * is active): once `ending` is applied, they have no child left (an orphaned parent,
   * design.md issue 18 §5). Sorted by id.
   */
  listOrphanedSisParentIds(
    districtId: string,
    ending: { parentId: string; studentSourcedId: string }[],
  ): Promise<string[]>;
  /**
   * A page of a run's rejects and exclusions in insertion order; `filter.kind` keeps one kind
   * (`rejected` includes records stored before kinds existed). `kind` is set on exclusions
   * only (absent means `rejected`).
   */
  listRejects(
    runId: string,
    offset: number,
    limit: number,
    filter?: RejectFilter,
  ): Promise<Reject[]>;
}
