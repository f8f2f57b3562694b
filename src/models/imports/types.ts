/**
 * The imports repository port: what admin imports read from and write to the store, and
 * the previews they keep between "preview" and "confirm" (design invariant 12).
 *
 * Implementations (`sqlite.ts`, `mongo.ts`) share the roster store's connection
 * (`RosterStore.handle()`), create their own tables/collections in `init()`, and pass the
 * contract suite `test/contract/imports-repository.contract.ts`.
 *
 * Rules both keep:
 * - Everything is scoped by `districtId`; nothing roster-related is ever deleted (links are
 *   deactivated). Only expired previews are deleted.
 * - State loads are bulk: one query per key list, never one per row.
 * - `applyParentImport` / `applyAssociationImport` re-load the state for the preview's keys,
 *   ask `isCurrent(state)` whether it is still the state the preview was planned on, and only
 *   then write the plan and mark the preview applied. SQLite does all of it in one
 *   `BEGIN IMMEDIATE` transaction; MongoDB claims the preview atomically first
 *   (`previewed → applying`) and relies on unique indexes (see `mongo.ts`).
 * - Writes of imports are not included in `RosterStore.writeCount()` (they are reported in
 *   the apply result instead).
 * - Every account and link the apply really changes gets one change-log entry
 *   (`src/models/changes`, design invariant 13), written in the same transaction as the change,
 *   with the request's `change` context; the entries are derived from the state re-loaded in
 *   that transaction (`./changes.ts`), so both adapters log the same entries.
 */
import type { RecordStatus } from '../../mapping/canonical.js';
import type { ChangeContext } from '../changes/types.js';
import type { GuardianLink, LinkOrigin, ParentAccount } from '../types.js';

/** Import-managed attributes of a parent account that the roster port does not model. */
export interface ParentProfile {
  districtId: string;
  parentId: string;
  /** Login name as written in the import file. */
  username?: string | undefined;
  /** `normalizeUsername(username)`: unique per district. */
  usernameNormalized?: string | undefined;
  /** Schools (district school sourcedIds) the account belongs to, sorted. */
  schoolSourcedIds: string[];
}

export interface SchoolRef {
  sourcedId: string;
  name: string;
}

/** Keys of a parent import file: everything identity matching may look at. */
export interface ParentImportKeys {
  uniqueIds: string[];
  emailsNormalized: string[];
  usernamesNormalized: string[];
}

/** Store state a parent import is planned on. */
export interface ParentImportState {
  /** Accounts (any status, any origin) with one of the keys' uniqueIds, emails or usernames. */
  parents: ParentAccount[];
  /** Profiles of those accounts. */
  profiles: ParentProfile[];
  /** All schools of the district. */
  schools: SchoolRef[];
  /**
   * Students (any status) whose Unique ID is one of the keys' uniqueIds or whose email
   * (normalized) is one of the keys' emails: a row naming one is a student, not a parent.
   */
  students: ImportStudentRef[];
}

/** A student as a parent import sees it (to refuse students imported as parents). */
export interface ImportStudentRef {
  sourcedId: string;
  uniqueId: string;
  givenName: string;
  familyName: string;
  email?: string | undefined;
  status: RecordStatus;
}

export interface AssociationImportKeys {
  parentUniqueIds: string[];
  studentUniqueIds: string[];
}

export interface AssociationParent {
  id: string;
  /** Absent for accounts without one (only possible for accounts of loaded links). */
  uniqueId?: string | undefined;
  status: RecordStatus;
}

export interface AssociationStudent {
  sourcedId: string;
  uniqueId: string;
  status: RecordStatus;
}

/** Store state an association import is planned on. */
export interface AssociationImportState {
  /**
   * Accounts (any status) with one of the keys' parent uniqueIds, and the accounts of the
   * loaded links (so a preview can name the parents whose links "clear" removes).
   */
  parents: AssociationParent[];
  /** Students with one of the keys' student uniqueIds (any status). */
  students: AssociationStudent[];
  /** Every link (any origin, any status) of those students. */
  links: GuardianLink[];
}

/** Fields a parent import may set on an existing account. */
export interface ImportParentSet {
  givenName?: string;
  familyName?: string;
  email?: string;
  emailNormalized?: string;
  uniqueId?: string;
  role?: string;
  status?: RecordStatus;
  /** The complete new list (the planner knows the current one). */
  lockedFields?: string[];
}

/** The complete profile an account has after the import. */
export interface ProfileWrite {
  username?: string | undefined;
  usernameNormalized?: string | undefined;
  schoolSourcedIds: string[];
}

/** What applying a parent import writes. */
export interface ParentImportWrite {
  creates: { account: ParentAccount; profile: ProfileWrite }[];
  updates: { parentId: string; set: ImportParentSet; profile?: ProfileWrite | undefined }[];
}

/** What applying an association import writes. */
export interface AssociationWrite {
  /** Links to insert or reactivate (origin `import`, status `active`). */
  upserts: GuardianLink[];
  /** Active links to deactivate (never deleted). */
  deactivations: { parentId: string; studentSourcedId: string; origin: LinkOrigin }[];
}

export type ImportKind = 'parents' | 'associations';
export type PreviewStatus = 'previewed' | 'applying' | 'applied' | 'superseded';

/** A stored preview. `meta` and `result` are the service's JSON (opaque to the store). */
export interface StoredPreview {
  id: string;
  districtId: string;
  kind: ImportKind;
  status: PreviewStatus;
  /** ISO timestamps. */
  createdAt: string;
  expiresAt: string;
  appliedAt?: string | undefined;
  /** Id of the preview that replaced this one (confirm found the data changed). */
  supersededBy?: string | undefined;
  meta: Record<string, unknown>;
  result?: Record<string, unknown> | undefined;
}

/** Large lists of a preview (records, plan items, issues), stored in parts. */
export type PreviewParts = Record<string, unknown[]>;

export interface ApplyRequest<K, S, W> {
  districtId: string;
  previewId: string;
  now: Date;
  keys: K;
  /** True when `state` is the state the preview was planned on (fingerprints match). */
  isCurrent: (state: S) => boolean;
  write: W;
  /** Stored on the preview with status `applied`. */
  result: Record<string, unknown>;
  /**
   * Cause and actor of the change-log entries (cause `import`, id = the preview id,
   * trigger = the import kind, notify = its "send activation email" option).
   */
  change: ChangeContext;
}

/**
 * - `applied`: written; `writes` rows/documents changed.
 * - `stale`: the data changed since the preview; nothing written; `state` is the current one.
 * - `unavailable`: the preview is missing, expired, not `previewed` (already applied,
 *   superseded) or being applied by someone else; nothing written.
 */
export type ApplyOutcome<S> =
  | { kind: 'applied'; writes: number; preview: StoredPreview }
  | { kind: 'stale'; state: S }
  | { kind: 'unavailable'; preview: StoredPreview | undefined };

export interface ImportRepository {
  /** Create tables/collections and indexes. Idempotent; the roster store must be initialised. */
  init(): Promise<void>;
  listSchools(districtId: string): Promise<SchoolRef[]>;
  loadParentImportState(districtId: string, keys: ParentImportKeys): Promise<ParentImportState>;
  loadAssociationState(
    districtId: string,
    keys: AssociationImportKeys,
  ): Promise<AssociationImportState>;
  /** Profiles of the given accounts (all of the district's when `parentIds` is undefined). */
  getProfiles(districtId: string, parentIds?: string[]): Promise<ParentProfile[]>;

  /** Store a preview and its parts; deletes the district's expired previews first. */
  savePreview(preview: StoredPreview, parts: PreviewParts, now: Date): Promise<void>;
  getPreview(districtId: string, id: string): Promise<StoredPreview | undefined>;
  /** One part of a preview, concatenated in order (empty when absent). */
  getPreviewPart(previewId: string, part: string): Promise<unknown[]>;
  /** Mark a `previewed` preview as replaced by `by`. */
  supersedePreview(districtId: string, id: string, by: string): Promise<void>;

  applyParentImport(
    req: ApplyRequest<ParentImportKeys, ParentImportState, ParentImportWrite>,
  ): Promise<ApplyOutcome<ParentImportState>>;
  applyAssociationImport(
    req: ApplyRequest<AssociationImportKeys, AssociationImportState, AssociationWrite>,
  ): Promise<ApplyOutcome<AssociationImportState>>;
}

/** Usernames compare trimmed and case-insensitively. Undefined when blank. */
export function normalizeUsername(username: string | undefined | null): string | undefined {
  if (username == null) return undefined;
  const n = username.trim().toLowerCase();
  return n === '' ? undefined : n;
}

/** How many items one stored part holds (keeps MongoDB documents far below 16 MB). */
export const PART_SIZE = 2000;
