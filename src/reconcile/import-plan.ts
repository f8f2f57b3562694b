/**
 * Pure planners of admin imports: (file records, store state, options) → plan + row issues.
 * No I/O happens here; `src/imports/service.ts` loads the state, stores the preview and
 * applies the plan through the imports repository.
 *
 * Identity (design invariant 7, same order as `planChunk`): same Unique ID → same normalized
 * email when exactly one account has it → create. Imports have no SIS source ids. Repeated
 * rows of one person (same Unique ID and email — one row per child is common) collapse into
 * one account with a warning.
 *
 * Both planners are deterministic: the same records, state and options give the same plan
 * (new account ids are derived from district and Unique ID), which is what lets confirm check
 * that it applies exactly what the preview showed (invariant 12).
 */
import { createHash } from 'node:crypto';
import { normalizeEmail } from '../mapping/canonical.js';
import {
  normalizeUsername,
  type AssociationImportKeys,
  type AssociationImportState,
  type AssociationWrite,
  type ImportParentSet,
  type ImportStudentRef,
  type ParentImportKeys,
  type ParentImportState,
  type ParentImportWrite,
  type ParentProfile,
  type ProfileWrite,
  type SchoolRef,
} from '../models/imports/types.js';
import type { GuardianLink, LinkOrigin, ParentAccount } from '../models/types.js';

/** A problem with one row of an import file. `warning` rows are still used. */
export interface RowIssue {
  file: string;
  /** Spreadsheet row number (the header is row 1). */
  row: number;
  /** The column's header as written in the file, or empty for whole-row problems. */
  column: string;
  value: string;
  reason: string;
  severity: 'error' | 'warning';
}

// --- parents -------------------------------------------------------------------------------

/** A usable row of a parent import file (text already validated). */
export interface ParentImportRecord {
  row: number;
  uniqueId: string;
  firstName: string;
  lastName: string;
  email?: string | undefined;
  username?: string | undefined;
  role?: string | undefined;
  school?: string | undefined;
  /**
   * A continuation row (PowerSchool contacts template, Finalsite): names blank, its Unique ID
   * named on another row; blank fields were filled from that row. Merged without a warning.
   */
  continuation?: boolean | undefined;
  /** The Unique ID cell was a bare Excel number (leading zeros may be lost). */
  numericId?: boolean | undefined;
}

/** A row merged into another row of the same person (multi-row layouts); listed in previews. */
export interface MergedRow {
  row: number;
  /** The row it was merged into. */
  into: number;
  uniqueId: string;
}

export type RoleSource = { source: 'fixed'; role: string } | { source: 'file' };
export type SchoolSource =
  | { source: 'none' }
  | { source: 'fixed'; school: string }
  | { source: 'file'; valueTable: Record<string, string> };

export interface ParentPlanOptions {
  districtId: string;
  fileName: string;
  /** Header of each field's column, for issues. */
  columns: Partial<
    Record<'firstName' | 'lastName' | 'uniqueId' | 'email' | 'username' | 'role' | 'school', string>
  >;
  roles: RoleSource;
  /** Roles that exist in the district (`Parent` plus custom roles). */
  knownRoles: readonly string[];
  schools: SchoolSource;
  /** "Don't update existing records": matched accounts are reported, never changed. */
  dontUpdateExisting: boolean;
  /** "Don't allow duplicates": an email of another Unique ID rejects the row (never merged). */
  dontAllowDuplicates: boolean;
  /** "Send activation email": new accounts with an email get one. */
  sendActivationEmail: boolean;
}

export interface PlannedParentCreate {
  rows: number[];
  account: ParentAccount;
  profile: ProfileWrite;
}

export interface PlannedParentUpdate {
  rows: number[];
  parentId: string;
  uniqueId?: string | undefined;
  action: 'update' | 'reactivate';
  /** Field names that change (`givenName`, `email`, `username`, `schools`…). */
  changes: string[];
  set: ImportParentSet;
  profile?: ProfileWrite | undefined;
}

export interface PlannedParentSkip {
  rows: number[];
  parentId: string;
  uniqueId?: string | undefined;
  /** `unchanged`: the account already matches; `dont-update-existing`: changes withheld. */
  reason: 'unchanged' | 'dont-update-existing';
  changes: string[];
}

export interface ParentImportPlan {
  creates: PlannedParentCreate[];
  updates: PlannedParentUpdate[];
  skips: PlannedParentSkip[];
  /** New accounts that get an activation email. */
  activationParentIds: string[];
}

/**
 * Deterministic id of an account created by an import (`pa_` + 24 hex of
 * sha256(district, "import", Unique ID)), so a repeated confirm never creates a second one.
 */
export function importParentAccountId(districtId: string, uniqueId: string): string {
  const h = createHash('sha256').update(`${districtId}\u0000import\u0000${uniqueId}`);
  return `pa_${h.digest('hex').slice(0, 24)}`;
}

/** The keys `loadParentImportState` needs for these records. */
export function parentImportKeys(records: readonly ParentImportRecord[]): ParentImportKeys {
  const uniqueIds = new Set<string>();
  const emails = new Set<string>();
  const usernames = new Set<string>();
  for (const r of records) {
    uniqueIds.add(r.uniqueId);
    if (r.numericId) for (const c of zeroPadded(r.uniqueId)) uniqueIds.add(c);
    const e = normalizeEmail(r.email);
    if (e) emails.add(e);
    const u = normalizeUsername(r.username);
    if (u) usernames.add(u);
  }
  return {
    uniqueIds: [...uniqueIds].sort(),
    emailsNormalized: [...emails].sort(),
    usernamesNormalized: [...usernames].sort(),
  };
}

/** Longest id the zero-padding check pads a bare number to (digits). */
export const MAX_PADDED_ID = 12;

/**
 * The zero-padded spellings of a digits-only id, one per width up to `MAX_PADDED_ID`
 * (`123` → `0123`, `00123`, …): what the id may have been before Excel stored it as a number.
 */
export function zeroPadded(id: string): string[] {
  if (!/^\d+$/.test(id)) return [];
  const out: string[] = [];
  for (let w = id.length + 1; w <= MAX_PADDED_ID; w++) out.push(id.padStart(w, '0'));
  return out;
}

const stripZeros = (id: string) => id.replace(/^0+(?=\d)/, '');

/**
 * Checks ids read from bare Excel numbers (design.md "Spreadsheet values"): Excel drops the
 * leading zeros of a number, so `123` may be the district's `00123`. `known`: ids in the store
 * with a description of their owner; `columnIds`: the other (text) ids of the same column.
 * `check(value)` returns the reason for a row error, or undefined when the id is safe to use.
 */
export function zeroPadCheck(
  label: string,
  known: Iterable<{ id: string; who: string }>,
  columnIds: Iterable<string>,
): (value: string) => string | undefined {
  const byStripped = new Map<string, { id: string; who: string }[]>();
  for (const k of known) {
    if (!/^0\d/.test(k.id) || !/^\d+$/.test(k.id)) continue;
    const key = stripZeros(k.id);
    byStripped.set(key, [...(byStripped.get(key) ?? []), k]);
  }
  const widths = new Map<number, string>();
  const counts = new Map<number, number>();
  for (const id of columnIds) {
    if (!/^0\d+$/.test(id)) continue;
    widths.set(id.length, widths.get(id.length) ?? id);
    counts.set(id.length, (counts.get(id.length) ?? 0) + 1);
  }
  let width: number | undefined;
  for (const [w, n] of counts) if (width === undefined || n > (counts.get(width) ?? 0)) width = w;
  const fix = 'format the column as Text in Excel and enter the ids with their zeros';
  return value => {
    if (!/^\d+$/.test(value)) return undefined;
    const hits = (byStripped.get(stripZeros(value)) ?? []).filter(k => k.id !== value);
    if (hits.length > 0)
      return `Excel stored this ${label} as the number ${value}, which loses leading zeros; did you mean ${hits.map(h => `${h.id} (${h.who})`).join(' or ')}? Not matched; ${fix}`;
    if (width !== undefined && width > value.length)
      return `Excel stored this ${label} as the number ${value}, but the other ids of the column have leading zeros (e.g. ${widths.get(width) ?? ''}); probably ${value.padStart(width, '0')}? Not matched; ${fix}`;
    return undefined;
  };
}

/** Case-insensitive lookup of a role name; returns the district's spelling. */
export function findRole(knownRoles: readonly string[], name: string): string | undefined {
  const want = name.trim().toLowerCase();
  return knownRoles.find(r => r.toLowerCase() === want);
}

const schoolKey = (v: string) => v.normalize('NFKC').trim().toLowerCase().replace(/\s+/g, ' ');

/**
 * Resolve a School value: the value table first (keys compared case- and space-
 * insensitively), then an exact (case-insensitive) school sourcedId or name.
 * Returns the school's sourcedId, or undefined.
 */
export function resolveSchool(
  value: string,
  schools: readonly SchoolRef[],
  valueTable: Record<string, string> = {},
): string | undefined {
  const key = schoolKey(value);
  const byId = new Map(schools.map(s => [schoolKey(s.sourcedId), s.sourcedId]));
  for (const [from, to] of Object.entries(valueTable)) {
    if (schoolKey(from) === key) return byId.get(schoolKey(to));
  }
  const id = byId.get(key);
  if (id) return id;
  const byName = schools.filter(s => schoolKey(s.name) === key);
  return byName.length === 1 ? byName[0]?.sourcedId : undefined;
}

interface Group {
  first: ParentImportRecord;
  rows: number[];
  schoolRows: { row: number; value: string }[];
}

interface Working {
  account: ParentAccount;
  profile: ProfileWrite;
  isNew: boolean;
  /** Set once a group has been applied to this account (later groups only add schools). */
  touched: boolean;
  rows: number[];
  set: ImportParentSet;
  changes: Set<string>;
  profileChanged: boolean;
}

/**
 * Plan a parent account import. Returns the plan and every row issue (errors: row not used;
 * warnings: used, with a remark). See `docs/imports.md` for each rule.
 */
export function planParentImport(
  records: readonly ParentImportRecord[],
  state: ParentImportState,
  opts: ParentPlanOptions,
): { plan: ParentImportPlan; issues: RowIssue[]; merged: MergedRow[] } {
  const issues: RowIssue[] = [];
  const merged: MergedRow[] = [];
  const col = (k: keyof ParentPlanOptions['columns']) => opts.columns[k] ?? '';
  const issue = (
    severity: RowIssue['severity'],
    row: number,
    column: string,
    value: string | undefined,
    reason: string,
  ) => issues.push({ file: opts.fileName, row, column, value: value ?? '', reason, severity });

  // --- ids Excel stored as numbers -------------------------------------------------------
  const padCheck = zeroPadCheck(
    'Unique ID',
    state.parents.flatMap(p =>
      p.uniqueId ? [{ id: p.uniqueId, who: `${p.givenName} ${p.familyName}` }] : [],
    ),
    records.filter(r => !r.numericId).map(r => r.uniqueId),
  );

  // --- collapse repeated rows of one person ------------------------------------------------
  const groups = new Map<string, Group>();
  for (const r of byRow(records)) {
    if (r.numericId) {
      const reason = padCheck(r.uniqueId);
      if (reason) {
        issue('error', r.row, col('uniqueId'), r.uniqueId, reason);
        continue;
      }
    }
    const g = groups.get(r.uniqueId);
    if (!g) {
      groups.set(r.uniqueId, {
        first: r,
        rows: [r.row],
        schoolRows: r.school ? [{ row: r.row, value: r.school }] : [],
      });
      continue;
    }
    const f = g.first;
    const diff: [keyof ParentPlanOptions['columns'], string | undefined][] = [];
    if (normalizeEmail(f.email) !== normalizeEmail(r.email)) diff.push(['email', r.email]);
    if (f.firstName !== r.firstName) diff.push(['firstName', r.firstName]);
    if (f.lastName !== r.lastName) diff.push(['lastName', r.lastName]);
    if (normalizeUsername(f.username) !== normalizeUsername(r.username))
      diff.push(['username', r.username]);
    if ((f.role ?? '').toLowerCase() !== (r.role ?? '').toLowerCase()) diff.push(['role', r.role]);
    const d = diff[0];
    if (d) {
      issue(
        'error',
        r.row,
        col(d[0]),
        d[1],
        `Unique ID ${r.uniqueId} is already in row ${f.row} with a different ${col(d[0]) || d[0]}; one Unique ID is one person`,
      );
      continue;
    }
    g.rows.push(r.row);
    if (r.school) g.schoolRows.push({ row: r.row, value: r.school });
    if (r.continuation) {
      merged.push({ row: r.row, into: f.row, uniqueId: r.uniqueId });
      continue;
    }
    issue(
      'warning',
      r.row,
      col('uniqueId'),
      r.uniqueId,
      `same person as row ${f.row}; the rows are collapsed into one account`,
    );
  }

  // --- index existing accounts -----------------------------------------------------------
  const profiles = new Map(state.profiles.map(p => [p.parentId, p]));
  const byUid = new Map<string, Working>();
  const byEmail = new Map<string, Working[]>();
  const byUsername = new Map<string, Working>();
  const working: Working[] = [];
  const index = (w: Working) => {
    if (w.account.uniqueId) byUid.set(w.account.uniqueId, w);
    const e = w.account.emailNormalized;
    if (e) {
      const list = byEmail.get(e) ?? [];
      if (!list.includes(w)) list.push(w);
      byEmail.set(e, list);
    }
    if (w.profile.usernameNormalized) byUsername.set(w.profile.usernameNormalized, w);
  };
  for (const account of [...state.parents].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    const p: ParentProfile | undefined = profiles.get(account.id);
    const w: Working = {
      account: {
        ...account,
        sources: [...account.sources],
        lockedFields: [...account.lockedFields],
      },
      profile: {
        username: p?.username,
        usernameNormalized: p?.usernameNormalized,
        schoolSourcedIds: [...(p?.schoolSourcedIds ?? [])],
      },
      isNew: false,
      touched: false,
      rows: [],
      set: {},
      changes: new Set(),
      profileChanged: false,
    };
    working.push(w);
    index(w);
  }
  const who = (w: Working) =>
    w.account.uniqueId ? `Unique ID ${w.account.uniqueId}` : `account ${w.account.id}`;
  const studentsByUid = new Map<string, ImportStudentRef>();
  const studentsByEmail = new Map<string, ImportStudentRef>();
  for (const st of [...state.students].sort((a, b) => (a.sourcedId < b.sourcedId ? -1 : 1))) {
    if (!studentsByUid.has(st.uniqueId)) studentsByUid.set(st.uniqueId, st);
    const e = normalizeEmail(st.email);
    if (e && !studentsByEmail.has(e)) studentsByEmail.set(e, st);
  }
  const studentName = (st: ImportStudentRef) =>
    `${st.givenName} ${st.familyName} (Unique ID ${st.uniqueId}, ${st.status})`;

  // --- plan each person ------------------------------------------------------------------
  const fixedSchool =
    opts.schools.source === 'fixed' ? resolveSchool(opts.schools.school, state.schools) : undefined;
  for (const g of groups.values()) {
    const r = g.first;
    // role
    let role: string | undefined;
    if (opts.roles.source === 'fixed') role = findRole(opts.knownRoles, opts.roles.role);
    else {
      role = r.role === undefined ? undefined : findRole(opts.knownRoles, r.role);
      if (!role) {
        for (const row of g.rows)
          issue(
            'error',
            row,
            col('role'),
            r.role,
            r.role === undefined
              ? 'Role is blank'
              : `role "${r.role}" does not exist in this district (roles: ${opts.knownRoles.join(', ')})`,
          );
        continue;
      }
    }
    if (!role) continue; // a fixed role is validated by the service before planning
    // schools
    const schoolIds = new Set<string>();
    if (fixedSchool) schoolIds.add(fixedSchool);
    let usableRows = g.rows;
    if (opts.schools.source === 'file') {
      const bad = new Set<number>();
      for (const s of g.schoolRows) {
        const id = resolveSchool(s.value, state.schools, opts.schools.valueTable);
        if (id) schoolIds.add(id);
        else {
          bad.add(s.row);
          issue(
            'error',
            s.row,
            col('school'),
            s.value,
            `school "${s.value}" is not in the value table and is not the id or name of a school of this district`,
          );
        }
      }
      const withSchool = new Set(g.schoolRows.map(s => s.row));
      for (const row of g.rows)
        if (!withSchool.has(row) && !bad.has(row))
          issue('error', row, col('school'), '', 'School is blank');
      usableRows = g.rows.filter(row => !bad.has(row) && withSchool.has(row));
      if (usableRows.length === 0) continue;
    }
    const row = usableRows[0] ?? r.row;

    // identity (invariant 7)
    const email = normalizeEmail(r.email);
    const username = normalizeUsername(r.username);
    let w = byUid.get(r.uniqueId);
    let keepEmail = true;
    if (w && email) {
      const owners = (byEmail.get(email) ?? []).filter(o => o !== w);
      if (owners.length > 0) {
        if (opts.dontAllowDuplicates) {
          issue(
            'error',
            row,
            col('email'),
            r.email,
            `email belongs to another parent account (${owners.map(who).join(', ')}); duplicates are not allowed`,
          );
          continue;
        }
        keepEmail = false;
        issue(
          'warning',
          row,
          col('email'),
          r.email,
          `email not changed: it belongs to another parent account (${owners.map(who).join(', ')})`,
        );
      }
    } else if (!w && email) {
      const candidates = byEmail.get(email) ?? [];
      if (candidates.length > 1) {
        issue(
          'error',
          row,
          col('email'),
          r.email,
          `ambiguous: ${candidates.length} parent accounts have this email (${candidates.map(who).join(', ')}); not matched`,
        );
        continue;
      }
      const c = candidates[0];
      if (c?.account.uniqueId && c.account.uniqueId !== r.uniqueId) {
        if (opts.dontAllowDuplicates) {
          issue(
            'error',
            row,
            col('email'),
            r.email,
            `email belongs to Unique ID ${c.account.uniqueId}; duplicates are not allowed`,
          );
          continue;
        }
        issue(
          'warning',
          row,
          col('uniqueId'),
          r.uniqueId,
          `matched by email to the account of Unique ID ${c.account.uniqueId} (one mailbox, one account); the Unique ID ${r.uniqueId} is not stored`,
        );
      }
      if (c && (c.account.givenName !== r.firstName || c.account.familyName !== r.lastName)) {
        // Matching by email is the identity rule, but a different name on the row may be a
        // different person sharing a mailbox: say so, and say exactly what confirm does. The
        // first row of an account sets its fields: an account created or updated by an
        // earlier row keeps that row's name (only schools are added), and "don't update
        // existing" changes nothing.
        const name = `${c.account.givenName} ${c.account.familyName}`;
        const whose = c.isNew
          ? `the new account of ${name} (row ${Math.min(...c.rows)} of this file)`
          : `the existing account of ${name}`;
        issue(
          'warning',
          row,
          col('email'),
          r.email,
          c.isNew || c.touched
            ? `matched by email to ${whose}; its name stays ${name} (the account's first row sets its fields)`
            : opts.dontUpdateExisting
              ? `matched by email to ${whose}; its name stays ${name} (don't update existing)`
              : `matched by email to ${whose}; its name will change to ${r.firstName} ${r.lastName}`,
        );
      }
      w = c;
    }
    if (username) {
      const owner = byUsername.get(username);
      if (owner && owner !== w) {
        issue(
          'error',
          row,
          col('username'),
          r.username,
          `username is taken by another parent account (${who(owner)})`,
        );
        continue;
      }
    }

    if (!w) {
      // A person the SIS knows as a student is not a new parent (SDS users.csv mixes roles).
      const st = studentsByUid.get(r.uniqueId);
      const se = email ? studentsByEmail.get(email) : undefined;
      if (st || se) {
        issue(
          'error',
          row,
          st ? col('uniqueId') : col('email'),
          st ? r.uniqueId : r.email,
          st
            ? `Unique ID ${r.uniqueId} belongs to the student ${studentName(st)}; a student is not imported as a parent (leave student rows out of the file, e.g. only role=parent)`
            : `email belongs to the student ${studentName(se as ImportStudentRef)}; a student is not imported as a parent (leave student rows out of the file, e.g. only role=parent)`,
        );
        continue;
      }
      const account: ParentAccount = {
        districtId: opts.districtId,
        id: importParentAccountId(opts.districtId, r.uniqueId),
        uniqueId: r.uniqueId,
        givenName: r.firstName,
        familyName: r.lastName,
        email: r.email,
        emailNormalized: email,
        role,
        status: 'active',
        origin: 'import',
        sources: [],
        lockedFields: [],
      };
      const nw: Working = {
        account,
        profile: {
          username: r.username,
          usernameNormalized: username,
          schoolSourcedIds: [...schoolIds].sort(),
        },
        isNew: true,
        touched: true,
        rows: [...usableRows],
        set: {},
        changes: new Set(),
        profileChanged: false,
      };
      working.push(nw);
      index(nw);
      if (opts.sendActivationEmail && !email)
        issue('warning', row, col('email'), '', 'no email: activation email not sent');
      continue;
    }

    w.rows.push(...usableRows);
    const addSchools = [...schoolIds].filter(id => !w.profile.schoolSourcedIds.includes(id));
    const changeProfileSchools = () => {
      if (addSchools.length === 0) return;
      w.profile.schoolSourcedIds = [...w.profile.schoolSourcedIds, ...addSchools].sort();
      w.profileChanged = true;
      w.changes.add('schools');
    };
    if (w.isNew || w.touched) {
      // A second Unique ID of the file resolved to this account by email: only its schools
      // are added (the first row owns the fields).
      changeProfileSchools();
      continue;
    }
    w.touched = true;
    const a = w.account;
    const set = w.set;
    const change = <K extends 'givenName' | 'familyName' | 'role'>(field: K, value: string) => {
      if (a[field] === value) return;
      a[field] = value;
      set[field] = value;
      w.changes.add(field);
    };
    change('givenName', r.firstName);
    change('familyName', r.lastName);
    change('role', role);
    if (keepEmail && email && email !== a.emailNormalized) {
      a.email = r.email;
      a.emailNormalized = email;
      set.email = r.email;
      set.emailNormalized = email;
      w.changes.add('email');
      const list = byEmail.get(email) ?? [];
      list.push(w);
      byEmail.set(email, list);
    }
    if (!a.uniqueId) {
      a.uniqueId = r.uniqueId;
      set.uniqueId = r.uniqueId;
      w.changes.add('uniqueId');
      byUid.set(r.uniqueId, w);
    }
    if (a.status === 'inactive') {
      a.status = 'active';
      set.status = 'active';
      w.changes.add('status');
    }
    if (username && username !== w.profile.usernameNormalized) {
      w.profile.username = r.username;
      w.profile.usernameNormalized = username;
      w.profileChanged = true;
      w.changes.add('username');
      byUsername.set(username, w);
    }
    changeProfileSchools();
    if (a.origin === 'sis') {
      // An admin's import is an admin edit: sync must not overwrite it (invariant 6).
      const lock = ['givenName', 'familyName', 'email'].filter(f => w.changes.has(f));
      const locked = [...new Set([...a.lockedFields, ...lock])].sort();
      if (locked.length !== a.lockedFields.length) set.lockedFields = locked;
    }
  }

  // --- collect -------------------------------------------------------------------------
  const plan: ParentImportPlan = { creates: [], updates: [], skips: [], activationParentIds: [] };
  // first row of each parent, computed once (not in the comparator: a parent can span many rows)
  const firstRows = new Map<Working, number>();
  for (const w of working)
    if (w.rows.length > 0)
      firstRows.set(
        w,
        w.rows.reduce((m, x) => (x < m ? x : m)),
      );
  for (const w of [...firstRows.keys()].sort(
    (x, y) => (firstRows.get(x) ?? 0) - (firstRows.get(y) ?? 0),
  )) {
    const rows = [...w.rows].sort((x, y) => x - y);
    if (w.isNew) {
      plan.creates.push({ rows, account: w.account, profile: w.profile });
      if (opts.sendActivationEmail && w.account.emailNormalized)
        plan.activationParentIds.push(w.account.id);
      continue;
    }
    const changes = [...w.changes].sort();
    const base = { rows, parentId: w.account.id, uniqueId: w.account.uniqueId };
    if (changes.length === 0) plan.skips.push({ ...base, reason: 'unchanged', changes });
    else if (opts.dontUpdateExisting)
      plan.skips.push({ ...base, reason: 'dont-update-existing', changes });
    else
      plan.updates.push({
        ...base,
        action: w.set.status === 'active' ? 'reactivate' : 'update',
        changes,
        set: w.set,
        profile: w.profileChanged ? w.profile : undefined,
      });
  }
  issues.sort((x, y) => x.row - y.row);
  return { plan, issues, merged };
}

/** What the repository writes for a parent plan. */
export function parentImportWrite(plan: ParentImportPlan): ParentImportWrite {
  return {
    creates: plan.creates.map(c => ({ account: c.account, profile: c.profile })),
    updates: plan.updates.map(u => ({ parentId: u.parentId, set: u.set, profile: u.profile })),
  };
}

// --- associations ----------------------------------------------------------------------

/** A usable row of an association file. */
export interface AssociationImportRecord {
  row: number;
  parentUniqueId: string;
  studentUniqueId: string;
  /** Id cells that were bare Excel numbers (leading zeros may be lost). */
  numeric?: ('parentUniqueId' | 'studentUniqueId')[] | undefined;
}

export interface AssociationPlanOptions {
  districtId: string;
  fileName: string;
  columns: Partial<Record<'parentUniqueId' | 'studentUniqueId', string>>;
  /** "Clear parent associations for specified students". */
  clearExisting: boolean;
  /**
   * Rows the reader could not use (blank or malformed cells), with the student Unique ID
   * when that cell was readable: their students are not cleared.
   */
  unusableRows?: readonly { row: number; studentUniqueId?: string | undefined }[];
}

export interface PlannedLink {
  row: number;
  parentId: string;
  parentUniqueId: string;
  studentSourcedId: string;
  studentUniqueId: string;
}

export interface PlannedLinkRemoval {
  parentId: string;
  parentUniqueId?: string | undefined;
  studentSourcedId: string;
  studentUniqueId: string;
  origin: LinkOrigin;
}

export interface AssociationImportPlan {
  adds: PlannedLink[];
  reactivations: PlannedLink[];
  /** The import link exists and is active already. */
  unchanged: PlannedLink[];
  /** Links the clear option deactivates (origins import, manual, access-code). */
  removals: PlannedLinkRemoval[];
  /** `sis` links the file does not list, kept because the SIS sync owns them (invariant 6). */
  keptSis: PlannedLinkRemoval[];
  /** Students whose links were not cleared because one of their rows has an error. */
  notCleared: { studentUniqueId: string; rows: number[] }[];
}

/** The keys `loadAssociationState` needs for these records. */
export function associationImportKeys(
  records: readonly AssociationImportRecord[],
): AssociationImportKeys {
  const parents = new Set<string>();
  const students = new Set<string>();
  for (const r of records) {
    parents.add(r.parentUniqueId);
    students.add(r.studentUniqueId);
    // the zero-padded spellings, so the planner can tell `123` from the district's `00123`
    if (r.numeric?.includes('parentUniqueId'))
      for (const c of zeroPadded(r.parentUniqueId)) parents.add(c);
    if (r.numeric?.includes('studentUniqueId'))
      for (const c of zeroPadded(r.studentUniqueId)) students.add(c);
  }
  return { parentUniqueIds: [...parents].sort(), studentUniqueIds: [...students].sort() };
}

const pairKey = (a: string, b: string) => `${a}\u0000${b}`;

/** Records in row order (files are read in order, so usually no copy is needed). */
function byRow<T extends { row: number }>(records: readonly T[]): readonly T[] {
  for (let i = 1; i < records.length; i++) {
    if ((records[i - 1]?.row ?? 0) > (records[i]?.row ?? 0))
      return [...records].sort((a, b) => a.row - b.row);
  }
  return records;
}

/**
 * Plan an association import. Without `clearExisting`, links are only added (or
 * reactivated). With it, for each student named in the file, active links of origins
 * `import`, `manual` and `access-code` that the file does not list are deactivated; `sis`
 * links are kept and reported (the SIS sync owns them and would restore them), and a
 * student with an erroneous row keeps all its links (bad input never removes data).
 */
export function planAssociationImport(
  records: readonly AssociationImportRecord[],
  state: AssociationImportState,
  opts: AssociationPlanOptions,
): { plan: AssociationImportPlan; issues: RowIssue[] } {
  const issues: RowIssue[] = [];
  const pCol = opts.columns.parentUniqueId ?? '';
  const sCol = opts.columns.studentUniqueId ?? '';
  const issue = (
    row: number,
    column: string,
    value: string,
    reason: string,
    severity: RowIssue['severity'] = 'error',
  ) => issues.push({ file: opts.fileName, row, column, value, reason, severity });

  const parents = new Map<string, AssociationImportState['parents'][number]>();
  for (const p of state.parents) if (p.uniqueId !== undefined) parents.set(p.uniqueId, p);
  const students = new Map<string, AssociationImportState['students']>();
  for (const s of state.students) {
    const list = students.get(s.uniqueId) ?? [];
    list.push(s);
    students.set(s.uniqueId, list);
  }
  const importLinks = new Map<string, GuardianLink>();
  const linksOfStudent = new Map<string, GuardianLink[]>();
  for (const l of state.links) {
    if (l.origin === 'import') importLinks.set(pairKey(l.parentId, l.studentSourcedId), l);
    const list = linksOfStudent.get(l.studentSourcedId) ?? [];
    list.push(l);
    linksOfStudent.set(l.studentSourcedId, list);
  }
  const parentUid = new Map(state.parents.map(p => [p.id, p.uniqueId]));
  const studentPad = zeroPadCheck(
    'Student Unique ID',
    state.students.map(st => ({ id: st.uniqueId, who: `student ${st.sourcedId}` })),
    records.filter(r => !r.numeric?.includes('studentUniqueId')).map(r => r.studentUniqueId),
  );
  const parentPad = zeroPadCheck(
    'Parent Unique ID',
    state.parents.flatMap(p => (p.uniqueId ? [{ id: p.uniqueId, who: `account ${p.id}` }] : [])),
    records.filter(r => !r.numeric?.includes('parentUniqueId')).map(r => r.parentUniqueId),
  );

  const plan: AssociationImportPlan = {
    adds: [],
    reactivations: [],
    unchanged: [],
    removals: [],
    keptSis: [],
    notCleared: [],
  };
  const seenPairs = new Map<string, number>();
  const desired = new Set<string>();
  /** Students named in the file (resolved), in first-row order. */
  const named = new Map<string, { uniqueId: string; errorRows: number[] }>();
  for (const r of byRow(records)) {
    const sPad = r.numeric?.includes('studentUniqueId') ? studentPad(r.studentUniqueId) : undefined;
    const pPad = r.numeric?.includes('parentUniqueId') ? parentPad(r.parentUniqueId) : undefined;
    if (sPad || pPad) {
      // Never a silent match: `123` may be another child than the district's `00123`.
      if (pPad) issue(r.row, pCol, r.parentUniqueId, pPad);
      if (sPad) issue(r.row, sCol, r.studentUniqueId, sPad);
      // The students this row may mean keep their links (bad input never removes data).
      for (const uid of [r.studentUniqueId, ...zeroPadded(r.studentUniqueId)]) {
        const list = students.get(uid) ?? [];
        const only = list.length === 1 ? list[0] : undefined;
        if (!only) continue;
        const entry = named.get(only.sourcedId) ?? { uniqueId: uid, errorRows: [] };
        entry.errorRows.push(r.row);
        named.set(only.sourcedId, entry);
      }
      continue;
    }
    const candidates = students.get(r.studentUniqueId) ?? [];
    const student = candidates.length === 1 ? candidates[0] : undefined;
    const parent = parents.get(r.parentUniqueId);
    let bad = false;
    if (student) {
      if (!named.has(student.sourcedId))
        named.set(student.sourcedId, { uniqueId: r.studentUniqueId, errorRows: [] });
    }
    if (!parent) {
      issue(r.row, pCol, r.parentUniqueId, 'no parent account has this Unique ID');
      bad = true;
    } else if (parent.status !== 'active') {
      issue(r.row, pCol, r.parentUniqueId, 'the parent account is inactive');
      bad = true;
    }
    if (candidates.length === 0) {
      issue(r.row, sCol, r.studentUniqueId, 'no student has this Unique ID');
      bad = true;
    } else if (!student) {
      issue(
        r.row,
        sCol,
        r.studentUniqueId,
        `ambiguous: ${candidates.length} students have this Unique ID`,
      );
      bad = true;
    } else if (student.status !== 'active') {
      issue(r.row, sCol, r.studentUniqueId, 'the student is inactive');
      bad = true;
    }
    if (!bad && parent && student) {
      const key = pairKey(r.parentUniqueId, r.studentUniqueId);
      const first = seenPairs.get(key);
      if (first !== undefined) {
        // Same rule as repeated rows of a parent import: a warning, the rows collapsed.
        issue(
          r.row,
          '',
          `${r.parentUniqueId} / ${r.studentUniqueId}`,
          `duplicate pair: same as row ${first}; the rows are collapsed into one link`,
          'warning',
        );
        continue;
      }
      seenPairs.set(key, r.row);
      const link: PlannedLink = {
        row: r.row,
        parentId: parent.id,
        parentUniqueId: r.parentUniqueId,
        studentSourcedId: student.sourcedId,
        studentUniqueId: r.studentUniqueId,
      };
      desired.add(pairKey(parent.id, student.sourcedId));
      const existing = importLinks.get(pairKey(parent.id, student.sourcedId));
      if (!existing) plan.adds.push(link);
      else if (existing.status !== 'active') plan.reactivations.push(link);
      else plan.unchanged.push(link);
    } else if (student) {
      named.get(student.sourcedId)?.errorRows.push(r.row);
    }
  }

  for (const u of opts.unusableRows ?? []) {
    const candidates = u.studentUniqueId ? (students.get(u.studentUniqueId) ?? []) : [];
    const student = candidates.length === 1 ? candidates[0] : undefined;
    if (!student || !u.studentUniqueId) continue;
    const entry = named.get(student.sourcedId) ?? { uniqueId: u.studentUniqueId, errorRows: [] };
    entry.errorRows.push(u.row);
    named.set(student.sourcedId, entry);
  }

  if (opts.clearExisting) {
    for (const [sourcedId, s] of named) {
      if (s.errorRows.length > 0) {
        plan.notCleared.push({
          studentUniqueId: s.uniqueId,
          rows: [...s.errorRows].sort((a, b) => a - b),
        });
        continue;
      }
      const links = [...(linksOfStudent.get(sourcedId) ?? [])].sort((a, b) =>
        a.parentId === b.parentId
          ? a.origin < b.origin
            ? -1
            : 1
          : a.parentId < b.parentId
            ? -1
            : 1,
      );
      for (const l of links) {
        if (l.status !== 'active' || desired.has(pairKey(l.parentId, sourcedId))) continue;
        const removal: PlannedLinkRemoval = {
          parentId: l.parentId,
          parentUniqueId: parentUid.get(l.parentId),
          studentSourcedId: sourcedId,
          studentUniqueId: s.uniqueId,
          origin: l.origin,
        };
        if (l.origin === 'sis') plan.keptSis.push(removal);
        else plan.removals.push(removal);
      }
    }
  }
  plan.notCleared.sort((a, b) => (a.rows[0] ?? 0) - (b.rows[0] ?? 0));
  issues.sort((x, y) => x.row - y.row);
  return { plan, issues };
}

/** What the repository writes for an association plan. */
export function associationWrite(
  districtId: string,
  plan: AssociationImportPlan,
): AssociationWrite {
  const link = (l: PlannedLink): GuardianLink => ({
    districtId,
    parentId: l.parentId,
    studentSourcedId: l.studentSourcedId,
    origin: 'import',
    status: 'active',
  });
  return {
    upserts: [...plan.adds, ...plan.reactivations].map(link),
    deactivations: plan.removals.map(r => ({
      parentId: r.parentId,
      studentSourcedId: r.studentSourcedId,
      origin: r.origin,
    })),
  };
}

// --- fingerprints ----------------------------------------------------------------------

/** JSON with object keys sorted (stable across stores and property order). */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .filter(k => o[k] !== undefined)
          .sort()
          .map(k => [k, o[k]]),
      );
    }
    return v;
  });
}

/** sha256 hex of `stableJson(value)`. */
export function fingerprint(value: unknown): string {
  return createHash('sha256').update(stableJson(value)).digest('hex');
}

const byString =
  <T>(key: (t: T) => string) =>
  (a: T, b: T) => {
    const x = key(a);
    const y = key(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };

/** Incremental sha256 over JSON tuples (one small `JSON.stringify` per record). */
class TupleHash {
  private readonly h = createHash('sha256');
  add(...values: unknown[]): void {
    this.h.update(JSON.stringify(values));
    this.h.update('\n');
  }
  hex(): string {
    return this.h.digest('hex');
  }
}

const opt = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

/**
 * Fingerprint of the state a parent import was planned on: the matched accounts (every
 * field, sources and locks), their profiles, the district's schools and roles. Record order
 * and property order do not matter.
 */
export function parentStateFingerprint(
  state: ParentImportState,
  knownRoles: readonly string[],
): string {
  const h = new TupleHash();
  for (const p of [...state.parents].sort(byString(x => x.id)))
    h.add(
      'parent',
      p.districtId,
      p.id,
      opt(p.uniqueId),
      p.givenName,
      p.familyName,
      opt(p.email),
      opt(p.emailNormalized),
      opt(p.phone),
      p.role,
      opt(p.sisRole),
      p.status,
      p.origin,
      p.sources.map(s => `${s.connector}\u0000${s.sourcedId}`).sort(),
      [...p.lockedFields].sort(),
    );
  for (const p of [...state.profiles].sort(byString(x => x.parentId)))
    h.add(
      'profile',
      p.parentId,
      opt(p.username),
      opt(p.usernameNormalized),
      [...p.schoolSourcedIds].sort(),
    );
  for (const s of [...state.schools].sort(byString(x => x.sourcedId)))
    h.add('school', s.sourcedId, s.name);
  for (const s of [...state.students].sort(byString(x => x.sourcedId)))
    h.add('student', s.sourcedId, s.uniqueId, s.givenName, s.familyName, opt(s.email), s.status);
  h.add('roles', [...knownRoles].sort());
  return h.hex();
}

/** Fingerprint of the state an association import was planned on (order-independent). */
export function associationStateFingerprint(state: AssociationImportState): string {
  const h = new TupleHash();
  for (const p of [...state.parents].sort(byString(x => x.id)))
    h.add('parent', p.id, opt(p.uniqueId), p.status);
  for (const s of [...state.students].sort(byString(x => x.sourcedId)))
    h.add('student', s.sourcedId, s.uniqueId, s.status);
  const linkKey = (l: GuardianLink) => `${l.parentId}\u0000${l.studentSourcedId}\u0000${l.origin}`;
  for (const l of [...state.links].sort(byString(linkKey)))
    h.add('link', l.parentId, l.studentSourcedId, l.origin, l.status, opt(l.relationship));
  return h.hex();
}

/**
 * Fingerprint of a plan (an object of arrays): every item, in order, per key in sorted key
 * order. Items are JSON as built by the planners; the stored plan round-trips through JSON
 * unchanged, so the fingerprint of the stored plan equals the preview's.
 */
export function planFingerprint(plan: object): string {
  const h = new TupleHash();
  const p = plan as Record<string, unknown>;
  for (const key of Object.keys(p).sort()) {
    const items = p[key];
    if (!Array.isArray(items)) {
      h.add(key, items);
      continue;
    }
    h.add(key, items.length);
    for (const item of items) h.add(item);
  }
  return h.hex();
}
