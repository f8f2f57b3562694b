/**
 * The access-code repository port (issue 5): Parent Access Codes, their resets, redemptions,
 * self-registered usernames and per-district settings overrides. Two adapters share the
 * roster store's connection (`RosterStore.handle()`): `sqlite.ts` and `mongo.ts`; both pass
 * `test/contract/access-codes.contract.ts`.
 *
 * Rules both adapters keep:
 * - A code is unique across the whole system (all districts): unique index on the code.
 *   A collision on insert is retried with a freshly generated code.
 * - At most one `active` code per (district, student): unique (partial) index. A concurrent
 *   issuer that loses that race skips the student (someone else issued it).
 * - Codes are never deleted. Reset revokes (status `revoked`, `revokedAt`, `resetId`).
 * - Reads of roster data (students, schools, parent accounts, links) go straight to the
 *   roster store's tables/collections, read-only.
 * - Issuing and revoking log one change-log entry per code (`src/models/changes`, design
 *   invariant 13) in the same transaction as the write: entity `code`, entityId `codeRef(code)`
 *   — never the code's value — action `create` (issued) or `deactivate` (revoked), see
 *   `./changes.ts`.
 */
import type { RecordStatus } from '../../mapping/canonical.js';
import type { ChangeContext } from '../changes/types.js';

export type AccessCodeStatus = 'active' | 'revoked';

/** One stored code. `code` is canonical (12 symbols, no dashes). */
export interface AccessCodeRecord {
  code: string;
  districtId: string;
  studentSourcedId: string;
  status: AccessCodeStatus;
  /** ISO timestamp. */
  createdAt: string;
  revokedAt?: string | undefined;
  /** The reset that revoked this code. */
  resetId?: string | undefined;
}

/** Which students get codes at finalize (design: default only where no link). */
export type IssueTo = 'unlinked' | 'all';

/** Settings stored through the API/CLI; an absent field falls back to the district file. */
export interface AccessCodeSettingsOverride {
  districtId: string;
  enabled?: boolean | undefined;
  defaultRole?: string | undefined;
  issueTo?: IssueTo | undefined;
  updatedAt: string;
  updatedBy: string;
}

export type ResetScope = 'student' | 'list' | 'district';

/** One reset, as recorded (who, when, how many). */
export interface AccessCodeReset {
  id: string;
  districtId: string;
  /** Who asked (`cli:alice`, `api:token-name`, …). */
  actor: string;
  /** ISO timestamp. */
  at: string;
  scope: ResetScope;
  /** Students the reset was asked for (district scope: students holding a code). */
  requested: number;
  /** Codes revoked. */
  revoked: number;
  /** New codes issued. */
  issued: number;
}

export type RedemptionKind = 'register' | 'add-child';

/** A successful redemption (audit; idempotent per parent, student and code). */
export interface AccessCodeRedemption {
  districtId: string;
  code: string;
  parentId: string;
  studentSourcedId: string;
  kind: RedemptionKind;
  at: string;
}

/** A parent account created by registering with a code (username lives here). */
export interface AccessCodeAccount {
  districtId: string;
  parentId: string;
  username?: string | undefined;
  /** Trimmed, lower-cased username; unique per district. */
  usernameNormalized?: string | undefined;
  createdAt: string;
}

/** A row of the code exports: a student with their active code (if any). */
export interface StudentCodeRow {
  sourcedId: string;
  uniqueId: string;
  givenName: string;
  familyName: string;
  grade?: string | undefined;
  schoolSourcedIds: string[];
  status: RecordStatus;
  /** Canonical active code; undefined when the student holds none. */
  code?: string | undefined;
}

/** Options of `issueCodes`. */
export interface IssueOptions {
  /** A fresh canonical code per call (tests inject collisions). */
  generate: () => string;
  /** ISO timestamp stored as `createdAt`. */
  at: string;
  /** Attempts per student before giving up on collisions (default 8). */
  maxAttempts?: number;
  /** Cause and actor of the change-log entries (`code-issue`, `code-reset`). */
  change: ChangeContext;
}

/** Options of `revokeCodes`. */
export interface RevokeOptions {
  /** ISO timestamp stored as `revokedAt`. */
  at: string;
  /** The reset that revokes the codes. */
  resetId: string;
  /** Cause and actor of the change-log entries (`code-reset`). */
  change: ChangeContext;
}

/** A page of student ids and where the next page starts (undefined: no more). */
export interface IdPage {
  ids: string[];
  next: string | undefined;
}

/** Thrown when a student could not get a code after `maxAttempts` collisions. */
export class AccessCodeCollisionError extends Error {
  constructor(
    readonly studentSourcedId: string,
    attempts: number,
  ) {
    super(
      `could not issue a unique access code for student ${studentSourcedId} after ${attempts} attempts`,
    );
    this.name = 'AccessCodeCollisionError';
  }
}

export interface AccessCodeRepository {
  /** Create tables/collections and indexes. Idempotent. */
  init(): Promise<void>;

  // --- issuance -----------------------------------------------------------------------
  /**
   * Active students of the district without an active code, in sourcedId order, starting
   * after `after`. With `includeLinked: false` students with an active guardian link (any
   * origin) are left out too. `limit` bounds the students scanned, not only those returned.
   */
  studentsNeedingCodes(
    districtId: string,
    opts: { includeLinked: boolean; after?: string | undefined; limit: number },
  ): Promise<IdPage>;
  /**
   * Give each listed student a new active code, unless the student already holds one
   * (skipped). Code collisions (system-wide unique index) are retried with `generate()`.
   * Logs one entry per code issued, in the transaction that inserts it. Returns the codes
   * issued. Throws `AccessCodeCollisionError` after `maxAttempts`.
   */
  issueCodes(
    districtId: string,
    studentSourcedIds: string[],
    opts: IssueOptions,
  ): Promise<{ issued: { studentSourcedId: string; code: string }[]; skipped: string[] }>;
  /**
   * Revoke the active codes of the listed students, logging one entry per code revoked.
   * Returns how many were revoked.
   */
  revokeCodes(
    districtId: string,
    studentSourcedIds: string[],
    opts: RevokeOptions,
  ): Promise<number>;
  /** Students holding an active code, in sourcedId order, after `after` (keyset paging). */
  studentsWithActiveCodes(
    districtId: string,
    opts: { after?: string | undefined; limit: number },
  ): Promise<IdPage>;

  // --- lookups ------------------------------------------------------------------------
  /** The code (any status, any district), or undefined. `code` is canonical. */
  findCode(code: string): Promise<AccessCodeRecord | undefined>;
  /** Every code (active and revoked) of a student, newest first. */
  codesOfStudent(districtId: string, studentSourcedId: string): Promise<AccessCodeRecord[]>;
  /** Number of active codes in a district. */
  countActiveCodes(districtId: string): Promise<number>;
  /** A student's status in the roster, undefined when unknown. */
  studentStatus(districtId: string, sourcedId: string): Promise<RecordStatus | undefined>;
  /** sourcedIds of students with these Unique IDs: `uniqueId → sourcedId`. */
  studentIdsByUniqueId(districtId: string, uniqueIds: string[]): Promise<Map<string, string>>;
  /** Export rows of the district's active students after `after` (sourcedId order). */
  studentCodeRows(
    districtId: string,
    opts: { after?: string | undefined; limit: number },
  ): Promise<StudentCodeRow[]>;
  /** Export rows of the listed students (any order; active and inactive). */
  studentCodeRowsOf(districtId: string, studentSourcedIds: string[]): Promise<StudentCodeRow[]>;
  /** School names by sourcedId. */
  schoolNames(districtId: string): Promise<Map<string, string>>;

  // --- parent accounts (roster, read-only) and registrations -------------------------
  /** Status of a parent account, undefined when unknown. */
  parentStatus(districtId: string, parentId: string): Promise<RecordStatus | undefined>;
  /** Ids of accounts whose normalized email is `emailNormalized` (any status). */
  parentIdsByEmail(districtId: string, emailNormalized: string): Promise<string[]>;
  /** True when the parent has an active link (any origin) to the student. */
  hasActiveLink(districtId: string, parentId: string, studentSourcedId: string): Promise<boolean>;
  /** The account registered with this username (normalized), if any. */
  accountByUsername(
    districtId: string,
    usernameNormalized: string,
  ): Promise<AccessCodeAccount | undefined>;
  /**
   * Record the registration of an account (username). Idempotent for the same account;
   * throws `UsernameTakenError` when another account holds the username.
   */
  recordAccount(account: AccessCodeAccount): Promise<void>;
  /** Record a redemption; a second identical one is ignored. */
  recordRedemption(r: AccessCodeRedemption): Promise<void>;
  /** Redemptions of a district, oldest first. */
  listRedemptions(districtId: string): Promise<AccessCodeRedemption[]>;

  // --- settings and resets -------------------------------------------------------------
  getSettingsOverride(districtId: string): Promise<AccessCodeSettingsOverride | undefined>;
  /** Replace the district's override (fields absent = use the file's value). */
  putSettingsOverride(o: AccessCodeSettingsOverride): Promise<void>;
  recordReset(r: AccessCodeReset): Promise<void>;
  /** Newest first. */
  listResets(districtId: string, limit: number): Promise<AccessCodeReset[]>;
}

/** Thrown by `recordAccount` when the username belongs to another account. */
export class UsernameTakenError extends Error {
  constructor(readonly districtId: string) {
    super('username is already taken in this district');
    this.name = 'UsernameTakenError';
  }
}
