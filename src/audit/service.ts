/**
 * The audit for district admins (issue 13, "Accountability" in the design): answers read from
 * the change log (design invariant 13), never from the run ledger or process memory.
 *
 * - `whyLinked` — "who is linked to this student, and why": every guardian link of the
 *   student (all origins; active ones first, inactive ones too) with the parent account, and
 *   the change-log entry that explains the link: the newest entry that created or reactivated
 *   it (its cause — sync run, approval, import preview, manual association, code redemption —
 *   and actor, the run's status for run causes) and, for an inactive link, the entry that
 *   removed it. A link whose explaining entry is missing (made before the change log existed,
 *   or pruned) says so in words ("no record: …"), never silently.
 * - `parentHistory` — "what happened to this parent account": the account (fields, SIS
 *   identities, origin, status), its children (links of every origin, active first, each
 *   explained as above) and a page of every change-log entry about the account or its links,
 *   in sequence order, each with cause, actor and a one-line summary.
 *
 * References are what admins have at hand: a student by SIS sourcedId or district Unique ID; a
 * parent by account id, Unique ID or email (trimmed, case-insensitive). A reference matching
 * several records is refused (`ambiguous-*`) with the candidates named, never guessed.
 *
 * Nothing here writes. A Parent Access Code's value never appears in an answer: the change
 * log only holds code refs (`codeRef`), and no code table is read.
 *
 * Errors are `AuditError` with a stable `problem` (the API maps them to statuses).
 */
import { z } from 'zod';
import type { AppContext } from '../app.js';
import { GuardianSyncError } from '../errors.js';
import { normalizeEmail } from '../mapping/canonical.js';
import { auditReads } from '../models/audit/index.js';
import {
  changeLogRepository,
  linkRef,
  type ChangeAction,
  type ChangeCauseKind,
  type ChangeEntry,
  type ChangeFields,
  type ChangeLogRepository,
  type ChangeQuery,
} from '../models/changes/index.js';
import { studentLookup } from '../models/imports/student-lookup.js';
import type {
  AccountOrigin,
  GuardianLink,
  LinkOrigin,
  ParentAccount,
  ParentSource,
  StoredStudent,
  SyncRun,
} from '../models/types.js';
import type { RecordStatus } from '../mapping/canonical.js';

/** What the audit needs from the application context. */
export type AuditContext = Pick<AppContext, 'store' | 'districts'>;

export type AuditProblem =
  | 'invalid-request'
  | 'unknown-district'
  | 'unknown-student'
  | 'unknown-parent'
  | 'ambiguous-student'
  | 'ambiguous-parent';

/** A record an ambiguous reference matched: its id and a one-line description. */
export interface AuditCandidate {
  id: string;
  label: string;
}

/** A refused audit request; `problem` says why (stable code), `candidates` when ambiguous. */
export class AuditError extends GuardianSyncError {
  readonly retryable = false;
  constructor(
    readonly problem: AuditProblem,
    message: string,
    readonly candidates: AuditCandidate[] = [],
  ) {
    super(message);
  }
}

/** How a student reference is read (default: sourcedId or Unique ID). */
export const StudentRefKind = z.enum(['sourcedId', 'uniqueId']);
export type StudentRefKind = z.infer<typeof StudentRefKind>;
/** How a parent reference is read (default: account id, Unique ID or email). */
export const ParentRefKind = z.enum(['id', 'uniqueId', 'email']);
export type ParentRefKind = z.infer<typeof ParentRefKind>;

/** Default and largest page of `parentHistory`'s history. */
export const DEFAULT_HISTORY_LIMIT = 100;
export const MAX_HISTORY_LIMIT = 1000;

const Id = z.string().trim().min(1).max(200);
const Ref = z.string().trim().min(1).max(320);

const WhyLinkedInput = z.strictObject({
  districtId: Id,
  student: Ref,
  by: StudentRefKind.optional(),
});
const ParentHistoryInput = z.strictObject({
  districtId: Id,
  parent: Ref,
  by: ParentRefKind.optional(),
  afterSeq: z.number().int().min(0).default(0),
  limit: z.number().int().min(1).max(MAX_HISTORY_LIMIT).default(DEFAULT_HISTORY_LIMIT),
});

// --- answers ---------------------------------------------------------------------------

/** The cause of a logged change (see `ChangeCause`; `id` is never a code's value). */
export interface AuditCause {
  kind: ChangeCauseKind;
  /** Run id (sync, approval, code-issue), import preview id, reset id or code ref. */
  id?: string | undefined;
  /** Sync: the run's trigger; import: parents | associations; redemption: register | add-child. */
  trigger?: string | undefined;
}

/** The run a run-caused change belongs to, as it stands now. */
export interface AuditRun {
  id: string;
  /** queued, running, succeeded, failed, needs-approval, discarded, cancelled; `unknown` when not found. */
  status: string;
  trigger?: string | undefined;
  actor?: string | undefined;
  createdAt?: string | undefined;
  finishedAt?: string | undefined;
}

/** One change-log entry as the audit shows it. */
export interface AuditEvent {
  /** The entry's per-district sequence number. */
  seq: number;
  /** When it was written (ISO). */
  at: string;
  action: ChangeAction;
  cause: AuditCause;
  /** `schedule`, `api:<token name>`, `cli:<user>`, `guardian`, `system`. */
  actor: string;
  /** For run causes (sync, approval, code-issue): the run and its current status. */
  run?: AuditRun | undefined;
  /** One human sentence, e.g. "linked by sync run r1 (trigger schedule; run succeeded) on …". */
  sentence: string;
}

export interface AuditParent {
  id: string;
  uniqueId?: string | undefined;
  givenName?: string | undefined;
  familyName?: string | undefined;
  /** "Given Family", or "(no such account)" for a link to a missing account. */
  name: string;
  email?: string | undefined;
  status?: RecordStatus | undefined;
  origin?: AccountOrigin | undefined;
  /** True when the link names an account the store does not have. */
  missing?: true | undefined;
}

export interface AuditStudent {
  sourcedId: string;
  uniqueId?: string | undefined;
  givenName?: string | undefined;
  familyName?: string | undefined;
  /** "Given Family", or "(no such student)". */
  name: string;
  grade?: string | undefined;
  status?: RecordStatus | undefined;
  schoolSourcedIds?: string[] | undefined;
  missing?: true | undefined;
}

/** A link with the entries that explain it. */
export interface LinkAudit {
  origin: LinkOrigin;
  status: RecordStatus;
  relationship?: string | undefined;
  /** When the explaining entry was written (created or last reactivated); null: no record. */
  since: string | null;
  /** The entry that created or last reactivated the link; null: no record of it. */
  how: AuditEvent | null;
  /** Inactive links: when it was removed (null: no record). */
  until?: string | null | undefined;
  /** Inactive links: the entry that deactivated it; null: no record of it. */
  ended?: AuditEvent | null | undefined;
  /** The whole answer in words, "no record: …" included. */
  explanation: string;
}

export interface StudentGuardian extends LinkAudit {
  parent: AuditParent;
}

/** `whyLinked`'s answer. */
export interface StudentGuardians {
  districtId: string;
  student: AuditStudent;
  /** Numbers of active and inactive links. */
  counts: { active: number; inactive: number };
  /** Active links first, then inactive ones; each by parent name, parent id, origin. */
  guardians: StudentGuardian[];
}

export interface ParentChild extends LinkAudit {
  student: AuditStudent;
}

/** One entry of a parent's history. */
export interface HistoryEntry extends AuditEvent {
  entity: 'parent' | 'link';
  /** Link entries: the student and the link's origin. */
  studentSourcedId?: string | undefined;
  origin?: LinkOrigin | undefined;
  /** Previous values of the changed fields (absent for creations). */
  before?: ChangeFields | undefined;
  /** New values of the changed fields. */
  after?: ChangeFields | undefined;
}

export interface AuditAccount {
  id: string;
  uniqueId?: string | undefined;
  givenName: string;
  familyName: string;
  name: string;
  email?: string | undefined;
  phone?: string | undefined;
  role: string;
  sisRole?: string | undefined;
  status: RecordStatus;
  origin: AccountOrigin;
  /** SIS identities of the person (connector, the SIS's own id). */
  sources: ParentSource[];
  /** Fields an admin edited by hand (sync leaves them alone). */
  lockedFields: string[];
  /** The entry that created (or last reactivated) the account; null: no record of it. */
  created: AuditEvent | null;
  /** That entry in words, or "no record: …". */
  explanation: string;
}

/** `parentHistory`'s answer. */
export interface ParentHistory {
  districtId: string;
  account: AuditAccount;
  counts: { activeChildren: number; inactiveChildren: number };
  /** Active links first, then inactive ones; each by student name, sourcedId, origin. */
  children: ParentChild[];
  history: {
    /** The page asked for: entries with `seq > afterSeq`. */
    afterSeq: number;
    limit: number;
    entries: HistoryEntry[];
    /** `afterSeq` of the next page; null when this page is the last. */
    nextAfter: number | null;
  };
}

// --- helpers ---------------------------------------------------------------------------

function parse<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const r = schema.safeParse(input);
  if (!r.success)
    throw new AuditError(
      'invalid-request',
      r.error.issues.map(i => `${i.path.join('.') || 'input'}: ${i.message}`).join('; '),
    );
  return r.data;
}

function checkDistrict(ctx: AuditContext, districtId: string): void {
  if (!ctx.districts.has(districtId))
    throw new AuditError('unknown-district', `no district ${districtId}`);
}

/** `2026-03-02T02:00:07.123Z` → `2026-03-02 02:00 UTC` (other text is returned unchanged). */
export function auditTime(iso: string): string {
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d)/.exec(iso);
  return m && iso.endsWith('Z') ? `${m[1]} ${m[2]} UTC` : iso;
}

const fullName = (given?: string, family?: string): string =>
  [given, family].filter(s => s !== undefined && s !== '').join(' ') || '(no name)';

/** Every entry matching `q` (pages of 10,000 until the end). */
async function listAll(
  log: ChangeLogRepository,
  districtId: string,
  q: Omit<ChangeQuery, 'limit' | 'afterSeq'>,
): Promise<ChangeEntry[]> {
  const out: ChangeEntry[] = [];
  let after = 0;
  for (;;) {
    const page = await log.list(districtId, { ...q, afterSeq: after, limit: 10_000 });
    out.push(...page);
    const last = page[page.length - 1];
    if (page.length < 10_000 || !last) return out;
    after = last.seq;
  }
}

const RUN_CAUSES: readonly ChangeCauseKind[] = ['sync', 'approval', 'code-issue'];

/** The runs of the entries' run causes (that belong to `districtId`), by id. */
async function runsOf(
  ctx: AuditContext,
  districtId: string,
  entries: readonly (ChangeEntry | undefined)[],
): Promise<Map<string, SyncRun | undefined>> {
  const ids = new Set<string>();
  for (const e of entries)
    if (e && RUN_CAUSES.includes(e.cause.kind) && e.cause.id !== undefined) ids.add(e.cause.id);
  const runs = new Map<string, SyncRun | undefined>();
  await Promise.all(
    [...ids].map(async id => {
      const run = await ctx.store.getRun(id);
      runs.set(id, run?.districtId === districtId ? run : undefined);
    }),
  );
  return runs;
}

function auditRun(e: ChangeEntry, runs: Map<string, SyncRun | undefined>): AuditRun | undefined {
  if (!RUN_CAUSES.includes(e.cause.kind) || e.cause.id === undefined) return undefined;
  const run = runs.get(e.cause.id);
  if (!run) return { id: e.cause.id, status: 'unknown' };
  const r: AuditRun = { id: run.id, status: run.status, trigger: run.trigger };
  if (run.actor !== undefined) r.actor = run.actor;
  r.createdAt = run.createdAt;
  if (run.finishedAt !== undefined) r.finishedAt = run.finishedAt;
  return r;
}

/**
 * How a change came about, as a phrase after a verb: "by sync run r1 (trigger schedule; run
 * succeeded)", "by hand by cli:alice", "with the student's Parent Access Code (Add Child)".
 */
export function causePhrase(e: Pick<ChangeEntry, 'cause' | 'actor'>, run?: AuditRun): string {
  const { cause, actor } = e;
  const id = cause.id ?? '(no id)';
  switch (cause.kind) {
    case 'sync': {
      const trigger = cause.trigger ?? run?.trigger;
      const detail = [
        trigger !== undefined ? `trigger ${trigger}` : undefined,
        run
          ? run.status === 'unknown'
            ? 'run no longer recorded'
            : `run ${run.status}`
          : undefined,
      ].filter((s): s is string => s !== undefined);
      return `by sync run ${id}${detail.length ? ` (${detail.join('; ')})` : ''}`;
    }
    case 'approval':
      return `by the approval of held run ${id} by ${actor}`;
    case 'import':
      return `by import ${id}${cause.trigger ? ` (${cause.trigger})` : ''} confirmed by ${actor}`;
    case 'manual':
      return `by hand by ${actor}`;
    case 'redemption':
      return `with the student's Parent Access Code (${cause.trigger === 'add-child' ? 'Add Child' : 'registration'})`;
    case 'code-issue':
      return `by code issuance${cause.id ? ` of run ${cause.id}` : ''} by ${actor}`;
    case 'code-reset':
      return `by code reset ${id} by ${actor}`;
    case 'system':
      return `by a system change (actor ${actor})`;
    default:
      return `by a ${String(cause.kind)} change (actor ${actor})`;
  }
}

/** The sentence of an entry that created (or reactivated) a link. */
function linkMadeSentence(e: ChangeEntry, run: AuditRun | undefined): string {
  const again = e.action !== 'create';
  const on = `on ${auditTime(e.at)}`;
  switch (e.cause.kind) {
    case 'sync':
      return `${again ? 're-linked' : 'linked'} ${causePhrase(e, run)} ${on}`;
    case 'manual':
      return `${again ? 're-associated' : 'associated'} by hand by ${e.actor} ${on}`;
    case 'import':
      return `${again ? 're-imported' : 'imported'} from preview ${e.cause.id ?? '(no id)'} by ${e.actor} ${on}`;
    case 'redemption':
      if (e.cause.trigger === 'add-child')
        return `${again ? 're-added' : 'added'} with the student's Parent Access Code (Add Child) ${on}`;
      return `${again ? 're-linked' : 'registered'} with the student's Parent Access Code ${on}`;
    default:
      return `${again ? 're-linked' : 'linked'} ${causePhrase(e, run)} ${on}`;
  }
}

/** The sentence of an entry that deactivated a link. */
function linkEndedSentence(e: ChangeEntry, run: AuditRun | undefined): string {
  return `removed ${causePhrase(e, run)} on ${auditTime(e.at)}`;
}

function auditEvent(
  e: ChangeEntry,
  runs: Map<string, SyncRun | undefined>,
  sentence: (e: ChangeEntry, run: AuditRun | undefined) => string,
): AuditEvent {
  const run = auditRun(e, runs);
  const cause: AuditCause = { kind: e.cause.kind };
  if (e.cause.id !== undefined) cause.id = e.cause.id;
  if (e.cause.trigger !== undefined) cause.trigger = e.cause.trigger;
  const ev: AuditEvent = {
    seq: e.seq,
    at: e.at,
    action: e.action,
    cause,
    actor: e.actor,
    sentence: sentence(e, run),
  };
  if (run) ev.run = run;
  return ev;
}

/** Why an explaining entry can be missing. */
const NO_RECORD_REASON = 'created before the change log, or its entry was pruned';
/** Text of a link (or account) without an explaining entry. */
export const NO_RECORD = `no record: ${NO_RECORD_REASON}`;

const isActivation = (e: ChangeEntry): boolean =>
  e.action === 'create' ||
  e.action === 'reactivate' ||
  (e.action === 'update' && e.after?.status === 'active');
const isDeactivation = (e: ChangeEntry): boolean =>
  e.action === 'deactivate' || (e.action === 'update' && e.after?.status === 'inactive');

/** The entries that explain a link (its entries, in sequence order). */
function explainEntries(entries: readonly ChangeEntry[]): {
  made?: ChangeEntry | undefined;
  ended?: ChangeEntry | undefined;
} {
  let made: ChangeEntry | undefined;
  let ended: ChangeEntry | undefined;
  for (const e of entries) {
    if (isActivation(e)) {
      made = e;
      ended = undefined;
    } else if (isDeactivation(e)) ended = e;
  }
  return { made, ended };
}

/** The explaining entries of a link, as events and words. */
function explainLink(
  link: GuardianLink,
  entries: readonly ChangeEntry[],
  runs: Map<string, SyncRun | undefined>,
): LinkAudit {
  const { made, ended } = explainEntries(entries);
  const out: LinkAudit = {
    origin: link.origin,
    status: link.status,
    since: null,
    how: null,
    explanation: NO_RECORD,
  };
  if (link.relationship !== undefined) out.relationship = link.relationship;
  if (link.status === 'active') {
    if (made && !ended) {
      out.how = auditEvent(made, runs, linkMadeSentence);
      out.since = made.at;
      out.explanation = out.how.sentence;
    } else if (ended) {
      // The log's last status change removed the link, yet it is active: say so.
      out.explanation = `no record: the change log's last entry for this link removed it on ${auditTime(ended.at)} (seq ${ended.seq}); it was made active again without a log entry`;
    }
    return out;
  }
  if (made) {
    out.how = auditEvent(made, runs, linkMadeSentence);
    out.since = made.at;
  }
  out.ended = ended ? auditEvent(ended, runs, linkEndedSentence) : null;
  out.until = ended ? ended.at : null;
  out.explanation = [
    out.how ? out.how.sentence : `no record of how it was made (${NO_RECORD_REASON})`,
    out.ended ? out.ended.sentence : 'no record of its removal',
  ].join('; ');
  return out;
}

const ORIGIN_ORDER: readonly LinkOrigin[] = ['sis', 'import', 'manual', 'access-code'];
const originRank = (o: LinkOrigin) => {
  const i = ORIGIN_ORDER.indexOf(o);
  return i < 0 ? ORIGIN_ORDER.length : i;
};
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function auditParent(id: string, p: ParentAccount | undefined): AuditParent {
  if (!p) return { id, name: '(no such account)', missing: true };
  const out: AuditParent = {
    id: p.id,
    givenName: p.givenName,
    familyName: p.familyName,
    name: fullName(p.givenName, p.familyName),
    status: p.status,
    origin: p.origin,
  };
  if (p.uniqueId !== undefined) out.uniqueId = p.uniqueId;
  if (p.email !== undefined) out.email = p.email;
  return out;
}

function auditStudent(sourcedId: string, s: StoredStudent | undefined): AuditStudent {
  if (!s) return { sourcedId, name: '(no such student)', missing: true };
  const out: AuditStudent = {
    sourcedId: s.sourcedId,
    uniqueId: s.uniqueId,
    givenName: s.givenName,
    familyName: s.familyName,
    name: fullName(s.givenName, s.familyName),
    status: s.status,
    schoolSourcedIds: [...s.schoolSourcedIds],
  };
  if (s.grade !== undefined) out.grade = s.grade;
  return out;
}

const studentLabel = (s: StoredStudent) =>
  `${s.sourcedId} (Unique ID ${s.uniqueId}, ${fullName(s.givenName, s.familyName)}, ${s.status})`;
const parentLabel = (p: ParentAccount) =>
  `${p.id} (${[
    p.uniqueId !== undefined ? `Unique ID ${p.uniqueId}` : 'no Unique ID',
    fullName(p.givenName, p.familyName),
    p.email,
    p.status,
  ]
    .filter(Boolean)
    .join(', ')})`;

// --- resolution ------------------------------------------------------------------------

/**
 * The student `ref` names: by sourcedId, by Unique ID, or (no `by`) either. Throws
 * `AuditError` `unknown-student`, or `ambiguous-student` naming the candidates when the
 * reference matches several students (a Unique ID on two records, or one student's sourcedId
 * that is another's Unique ID).
 */
export async function resolveStudent(
  ctx: AuditContext,
  districtId: string,
  ref: string,
  by?: StudentRefKind,
): Promise<StoredStudent> {
  const lookup = await studentLookup(ctx);
  const found = new Map<string, StoredStudent>();
  if (by !== 'uniqueId') {
    const s = await lookup.studentBySourcedId(districtId, ref);
    if (s) found.set(s.sourcedId, s);
  }
  if (by !== 'sourcedId')
    for (const s of await lookup.studentsByUniqueId(districtId, ref)) found.set(s.sourcedId, s);
  const all = [...found.values()];
  const [only] = all;
  if (all.length === 1 && only) return only;
  const what =
    by === 'sourcedId' ? 'sourcedId' : by === 'uniqueId' ? 'Unique ID' : 'sourcedId or Unique ID';
  if (all.length === 0)
    throw new AuditError(
      'unknown-student',
      `district ${districtId} has no student with ${what} ${ref}`,
    );
  const candidates = all.map(s => ({ id: s.sourcedId, label: studentLabel(s) }));
  throw new AuditError(
    'ambiguous-student',
    `${what} ${ref} matches ${all.length} students: ${candidates.map(c => c.label).join('; ')}. ` +
      (by === undefined
        ? 'Ask again saying which kind of reference it is (API: by=sourcedId or by=uniqueId; CLI: --by sourcedId or --by uniqueId), or with the sourcedId of one of them.'
        : 'Ask again with the sourcedId of one of them (API: by=sourcedId; CLI: --by sourcedId).'),
    candidates,
  );
}

/**
 * The parent account `ref` names: by account id, by Unique ID, by email (trimmed,
 * case-insensitive), or (no `by`) any of them (email only when `ref` has an `@`). Throws
 * `AuditError` `unknown-parent`, or `ambiguous-parent` naming the candidates (an email shared
 * by several accounts; an id that is another account's Unique ID).
 */
export async function resolveParent(
  ctx: AuditContext,
  districtId: string,
  ref: string,
  by?: ParentRefKind,
): Promise<ParentAccount> {
  const reads = await auditReads(ctx.store);
  const found = new Map<string, ParentAccount>();
  const add = (ps: readonly (ParentAccount | undefined)[]) => {
    for (const p of ps) if (p) found.set(p.id, p);
  };
  if (by === undefined || by === 'id') add(await reads.parentsByIds(districtId, [ref]));
  if (by === undefined || by === 'uniqueId') add([await reads.parentByUniqueId(districtId, ref)]);
  const email = normalizeEmail(ref);
  if (email !== undefined && (by === 'email' || (by === undefined && ref.includes('@'))))
    add(await reads.parentsByEmail(districtId, email));
  const all = [...found.values()];
  const [only] = all;
  if (all.length === 1 && only) return only;
  const what =
    by === 'id'
      ? 'account id'
      : by === 'uniqueId'
        ? 'Unique ID'
        : by === 'email'
          ? 'email'
          : ref.includes('@')
            ? 'account id, Unique ID or email'
            : 'account id or Unique ID';
  if (all.length === 0)
    throw new AuditError(
      'unknown-parent',
      `district ${districtId} has no parent account with ${what} ${ref}`,
    );
  const candidates = all.map(p => ({ id: p.id, label: parentLabel(p) }));
  const shared = email !== undefined && all.every(p => p.emailNormalized === email);
  throw new AuditError(
    'ambiguous-parent',
    `${shared ? `email ${email} belongs to` : `${what} ${ref} matches`} ${all.length} parent accounts: ` +
      `${candidates.map(c => c.label).join('; ')}. Choose one and ask again with its account id (by=id).`,
    candidates,
  );
}

// --- the two questions -----------------------------------------------------------------

/**
 * "Who is linked to this student, and why?" Resolves the student (`resolveStudent`: by
 * sourcedId or Unique ID), then lists every link of the student — active ones first, then
 * inactive ones — with the parent account, origin, status, relationship, `since` (when the
 * entry that created or last reactivated the link was written), that entry's cause, actor
 * and run status (`how`), for inactive links the entry that removed it (`ended`), and the
 * answer in words. A link without an explaining entry reads "no record: …".
 * Throws `AuditError` (`invalid-request`, `unknown-district`, `unknown-student`,
 * `ambiguous-student`).
 */
export async function whyLinked(
  ctx: AuditContext,
  districtId: string,
  studentRef: string,
  opts: { by?: StudentRefKind | undefined } = {},
): Promise<StudentGuardians> {
  const v = parse(WhyLinkedInput, { districtId, student: studentRef, by: opts.by });
  checkDistrict(ctx, v.districtId);
  const student = await resolveStudent(ctx, v.districtId, v.student, v.by);
  const [reads, log] = await Promise.all([auditReads(ctx.store), changeLogRepository(ctx.store)]);
  const [links, entries] = await Promise.all([
    reads.linksOfStudent(v.districtId, student.sourcedId),
    listAll(log, v.districtId, { studentSourcedId: student.sourcedId, entity: 'link' }),
  ]);
  const parents = new Map(
    (
      await reads.parentsByIds(
        v.districtId,
        links.map(l => l.parentId),
      )
    ).map(p => [p.id, p]),
  );
  const byLink = groupByLink(entries);
  const explaining = links.map(l => explainEntries(byLink.get(refOf(l)) ?? []));
  const runs = await runsOf(
    ctx,
    v.districtId,
    explaining.flatMap(x => [x.made, x.ended]),
  );
  const guardians: StudentGuardian[] = links.map(l => ({
    parent: auditParent(l.parentId, parents.get(l.parentId)),
    ...explainLink(l, byLink.get(refOf(l)) ?? [], runs),
  }));
  guardians.sort(
    (a, b) =>
      Number(a.status !== 'active') - Number(b.status !== 'active') ||
      cmp(a.parent.familyName ?? '', b.parent.familyName ?? '') ||
      cmp(a.parent.givenName ?? '', b.parent.givenName ?? '') ||
      cmp(a.parent.id, b.parent.id) ||
      originRank(a.origin) - originRank(b.origin),
  );
  const active = guardians.filter(g => g.status === 'active').length;
  return {
    districtId: v.districtId,
    student: auditStudent(student.sourcedId, student),
    counts: { active, inactive: guardians.length - active },
    guardians,
  };
}

const refOf = (l: GuardianLink) => linkRef(l.origin, l.parentId, l.studentSourcedId);

function groupByLink(entries: readonly ChangeEntry[]): Map<string, ChangeEntry[]> {
  const out = new Map<string, ChangeEntry[]>();
  for (const e of entries) {
    if (e.entity !== 'link') continue;
    let list = out.get(e.entityId);
    if (!list) out.set(e.entityId, (list = []));
    list.push(e);
  }
  return out;
}

const fieldList = (f: ChangeFields | undefined) => Object.keys(f ?? {}).join(', ');
const valueText = (v: ChangeFields[string] | undefined): string =>
  v === undefined || v === null ? '(none)' : Array.isArray(v) ? v.join(' ') : String(v);

/** One line about a history entry (without its date), e.g. "linked to student S1 … by …". */
function historySummary(
  e: ChangeEntry,
  run: AuditRun | undefined,
  students: Map<string, StoredStudent>,
): string {
  const by = causePhrase(e, run);
  if (e.entity === 'parent') {
    switch (e.action) {
      case 'create':
        return `account created ${by}`;
      case 'update':
        return `account updated (${fieldList(e.after)}) ${by}`;
      case 'match': {
        const before = new Set(Array.isArray(e.before?.sources) ? e.before.sources : []);
        const added = Array.isArray(e.after?.sources)
          ? e.after.sources.filter(s => !before.has(s))
          : [];
        const rest = Object.keys(e.after ?? {}).filter(k => k !== 'sources');
        return `matched another SIS entry of the same person${added.length ? ` (${added.join(', ')})` : ''}${rest.length ? `, updated ${rest.join(', ')}` : ''} ${by}`;
      }
      case 'reactivate':
        return `account reactivated ${by}`;
      case 'deactivate':
        return `account deactivated ${by}`;
    }
  }
  const sid = e.studentSourcedId ?? '?';
  const s = students.get(sid);
  const who = s ? `${s.uniqueId} ${fullName(s.givenName, s.familyName)}` : sid;
  const link = `student ${who} (${e.origin ?? '?'})`;
  switch (e.action) {
    case 'create':
      return `linked to ${link} ${by}`;
    case 'reactivate':
      return `link to ${link} reactivated ${by}`;
    case 'deactivate':
      return `link to ${link} removed ${by}`;
    default: {
      const changes = Object.keys(e.after ?? {})
        .map(k => `${k}: ${valueText(e.before?.[k])} → ${valueText(e.after?.[k])}`)
        .join(', ');
      return `link to ${link} updated (${changes}) ${by}`;
    }
  }
}

/**
 * "What happened to this parent account?" Resolves the account (`resolveParent`: by id,
 * Unique ID or email; an email shared by several accounts is refused naming them), and
 * returns its fields, SIS identities, origin and status with the entry that created it; its
 * children (every link, active first, explained like `whyLinked`); and one page of its
 * history — every change-log entry about the account or its links with `seq > afterSeq`, in
 * order, at most `limit` (default 100, at most 1000), with `nextAfter` for the next page.
 * Throws `AuditError` (`invalid-request`, `unknown-district`, `unknown-parent`,
 * `ambiguous-parent`).
 */
export async function parentHistory(
  ctx: AuditContext,
  districtId: string,
  parentRef: string,
  opts: {
    by?: ParentRefKind | undefined;
    afterSeq?: number | undefined;
    limit?: number | undefined;
  } = {},
): Promise<ParentHistory> {
  const v = parse(ParentHistoryInput, {
    districtId,
    parent: parentRef,
    by: opts.by,
    afterSeq: opts.afterSeq,
    limit: opts.limit,
  });
  checkDistrict(ctx, v.districtId);
  const account = await resolveParent(ctx, v.districtId, v.parent, v.by);
  const [reads, log] = await Promise.all([auditReads(ctx.store), changeLogRepository(ctx.store)]);
  const [links, linkEntries, accountEntries, page] = await Promise.all([
    reads.linksOfParent(v.districtId, account.id),
    listAll(log, v.districtId, { parentId: account.id, entity: 'link' }),
    listAll(log, v.districtId, {
      parentId: account.id,
      entity: 'parent',
      actions: ['create', 'reactivate'],
    }),
    log.list(v.districtId, { parentId: account.id, afterSeq: v.afterSeq, limit: v.limit + 1 }),
  ]);
  const more = page.length > v.limit;
  const entries = more ? page.slice(0, v.limit) : page;
  const studentIds = new Set(links.map(l => l.studentSourcedId));
  for (const e of entries) if (e.studentSourcedId !== undefined) studentIds.add(e.studentSourcedId);
  const students = new Map(
    (await reads.studentsBySourcedIds(v.districtId, [...studentIds])).map(s => [s.sourcedId, s]),
  );
  const byLink = groupByLink(linkEntries);
  const explaining = links.map(l => explainEntries(byLink.get(refOf(l)) ?? []));
  const createdEntry = accountEntries[accountEntries.length - 1];
  const runs = await runsOf(ctx, v.districtId, [
    ...explaining.flatMap(x => [x.made, x.ended]),
    createdEntry,
    ...entries,
  ]);

  const children: ParentChild[] = links.map(l => ({
    student: auditStudent(l.studentSourcedId, students.get(l.studentSourcedId)),
    ...explainLink(l, byLink.get(refOf(l)) ?? [], runs),
  }));
  children.sort(
    (a, b) =>
      Number(a.status !== 'active') - Number(b.status !== 'active') ||
      cmp(a.student.familyName ?? '', b.student.familyName ?? '') ||
      cmp(a.student.givenName ?? '', b.student.givenName ?? '') ||
      cmp(a.student.sourcedId, b.student.sourcedId) ||
      originRank(a.origin) - originRank(b.origin),
  );
  const activeChildren = children.filter(c => c.status === 'active').length;

  const created = createdEntry
    ? auditEvent(
        createdEntry,
        runs,
        (e, run) =>
          `account ${e.action === 'create' ? 'created' : 'reactivated'} ${causePhrase(e, run)} on ${auditTime(e.at)}`,
      )
    : null;
  const acc: AuditAccount = {
    id: account.id,
    givenName: account.givenName,
    familyName: account.familyName,
    name: fullName(account.givenName, account.familyName),
    role: account.role,
    status: account.status,
    origin: account.origin,
    sources: account.sources.map(s => ({ connector: s.connector, sourcedId: s.sourcedId })),
    lockedFields: [...account.lockedFields],
    created,
    explanation: created ? created.sentence : NO_RECORD,
  };
  if (account.uniqueId !== undefined) acc.uniqueId = account.uniqueId;
  if (account.email !== undefined) acc.email = account.email;
  if (account.phone !== undefined) acc.phone = account.phone;
  if (account.sisRole !== undefined) acc.sisRole = account.sisRole;

  const history: HistoryEntry[] = entries.map(e => {
    const ev = auditEvent(e, runs, (x, run) => historySummary(x, run, students));
    const h: HistoryEntry = { ...ev, entity: e.entity === 'parent' ? 'parent' : 'link' };
    if (e.studentSourcedId !== undefined) h.studentSourcedId = e.studentSourcedId;
    if (e.origin !== undefined) h.origin = e.origin;
    if (e.before !== undefined) h.before = e.before;
    if (e.after !== undefined) h.after = e.after;
    return h;
  });
  const last = entries[entries.length - 1];
  return {
    districtId: v.districtId,
    account: acc,
    counts: { activeChildren, inactiveChildren: children.length - activeChildren },
    children,
    history: {
      afterSeq: v.afterSeq,
      limit: v.limit,
      entries: history,
      nextAfter: more && last ? last.seq : null,
    },
  };
}
