/**
 * The OneRoster 1.1/1.2 REST connector (sis-reference §1): the shared core behind the
 * generic `oneroster` kind, the Infinite Campus preset (`src/connectors/infinite-campus/`)
 * and Skyward's OneRoster API (`src/connectors/skyward/`).
 *
 * A full pull reads `/schools`, then every guardian-type user of `/users` into a
 * `GuardianIndex` (the users collection is not ordered by student), optionally `/classes`
 * and `/enrollments`, then pages `/students` and yields one chunk per page. A delta pull
 * (`filter=dateLastModified>'…'`) reads only changed users plus the students and guardians
 * they reference (`GET /users/{id}`), and never removes anything.
 */
import type { Logger } from 'pino';
import type { OneRosterDeltas } from '../../config/oneroster.js';
import { IncompleteSnapshotError, SisHttpError } from '../../errors.js';
import type { Guardian, RosterChunk, School } from '../../mapping/canonical.js';
import {
  buildOneRosterChunk,
  guardianRoleOf,
  isStudentUser,
  mapOneRosterSchool,
  type OneRosterMappingOptions,
} from '../../mapping/oneroster.js';
import type { ConnectorCapabilities, PullContext, PullStats, SisConnector } from '../types.js';
import type { RestClient } from './client.js';
import { oneRosterPages } from './paging.js';
import {
  OrClass,
  OrEnrollment,
  OrOrg,
  OrUser,
  parseRecords,
  singleRecord,
  type OrUserRecord,
} from './payloads.js';
import { EnrollmentIndex, freshStudents, GuardianIndex, noGuardianHint } from './roster.js';

/** What a OneRoster REST connector needs besides its HTTP client. */
export interface OneRosterSettings {
  kind: 'oneroster' | 'infinite-campus' | 'skyward';
  /** Product name for messages (`Infinite Campus`). */
  vendor: string;
  /** Records per page (`limit`). */
  pageSize: number;
  /** Read `/classes` and `/enrollments` into sections/enrollments. */
  enrollments: boolean;
  deltas: OneRosterDeltas;
  mapping: OneRosterMappingOptions;
  /** The feed lists every guardian (else absence removes nothing). */
  guardianLinksComplete: boolean;
  /** Parallel `GET /users/{id}` requests in a delta. Default 4. */
  lookupConcurrency?: number | undefined;
}

/** Pull statistics: `PullStats` plus token requests and what the last pull saw. */
export interface OneRosterPullStats extends PullStats {
  tokenRequests: number;
  /** Guardian-type users indexed by the last full pull (or delta). */
  guardiansIndexed?: number | undefined;
  /** `tobedeleted` students left out of the last pull. */
  deletedStudents?: number | undefined;
  /** Students with no guardian in the feed (last pull). */
  studentsWithoutGuardians?: number | undefined;
}

/** Run `fn` over `items`, at most `concurrency` at a time; results in input order. */
async function mapPool<T, R>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = [];
  let next = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const i = next++;
      const item = items[i] as T;
      try {
        results[i] = await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const n = Math.max(1, Math.min(concurrency, items.length));
  await Promise.all(Array.from({ length: n }, () => worker()));
  return results;
}

/** `role`/`roles[].role` of an unparsed record (to tell who a broken record was). */
export function rawRoles(rec: unknown): string[] {
  if (typeof rec !== 'object' || rec === null) return [];
  const r = rec as { role?: unknown; roles?: unknown };
  const out: string[] = [];
  if (typeof r.role === 'string') out.push(r.role.toLowerCase());
  const roles: unknown[] = Array.isArray(r.roles) ? r.roles : r.roles ? [r.roles] : [];
  for (const x of roles)
    if (typeof x === 'object' && x !== null && typeof (x as { role?: unknown }).role === 'string')
      out.push(String((x as { role: string }).role).toLowerCase());
  return out;
}

/**
 * A chunk of guardians only (no students, no relationships, `relationshipsSupplied: false`)
 * for the guardians of `candidates` not in `included`, or undefined when there are none. A
 * delta uses it for guardians whose own record changed but none of whose students did.
 */
export function guardiansOnlyChunk(
  candidates: readonly (Guardian | undefined)[],
  included: ReadonlySet<string>,
): RosterChunk | undefined {
  const byId = new Map<string, Guardian>();
  for (const g of candidates) if (g && !included.has(g.sourcedId)) byId.set(g.sourcedId, g);
  if (byId.size === 0) return undefined;
  return {
    students: [],
    guardians: [...byId.values()],
    relationships: [],
    relationshipsSupplied: false,
  };
}

/** An ISO date-time without milliseconds (`2025-01-15T00:00:00Z`), the form SDS documents. */
export function filterTimestamp(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * `SisConnector` over a OneRoster REST API. Construct through `createConnector` (or the
 * IC/Skyward factories), which resolve secrets and build the `RestClient`.
 */
export class OneRosterConnector implements SisConnector {
  readonly kind: OneRosterSettings['kind'];
  readonly capabilities: ConnectorCapabilities;
  private schoolIds: Set<string> | undefined;
  private expectedStudents: number | undefined;
  private snapshot: 'full' | 'delta' | undefined;
  private watermark: string | undefined;
  private guardiansIndexed: number | undefined;
  private deletedStudents: number | undefined;
  private withoutGuardians: number | undefined;

  constructor(
    private readonly settings: OneRosterSettings,
    private readonly client: RestClient,
    private readonly logger: Logger,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.kind = settings.kind;
    this.capabilities = {
      guardianLinks: true,
      enrollments: settings.enrollments,
      delta: settings.deltas.enabled,
      guardianLinksComplete: settings.guardianLinksComplete,
    };
  }

  /** Authenticate and read one org (`GET /orgs?limit=1`). Throws like `RestClient.get`. */
  async checkConnection(): Promise<void> {
    await this.client.accessToken();
    await this.client.get('/orgs', { limit: 1, offset: 0 });
  }

  /**
   * Every school (`GET /schools`, wrapper `orgs`). A school without a name is a reject;
   * `tobedeleted` schools are left out. Throws `IncompleteSnapshotError` when fewer unique
   * orgs arrived than `X-Total-Count` said; HTTP/payload errors as `RestClient.get`.
   */
  async readSchools(ctx: PullContext): Promise<School[]> {
    const schools: School[] = [];
    const seen = new Set<string>();
    const ids = new Set<string>();
    let total: number | undefined;
    for await (const page of oneRosterPages(this.client, '/schools', 'orgs', {
      pageSize: this.settings.pageSize,
      signal: ctx.signal,
    })) {
      total = page.total ?? total;
      const { ok, failures } = parseRecords(OrOrg, page.records);
      for (const f of failures) {
        seen.add(f.recordId.startsWith('#') ? `page${page.pageNo}${f.recordId}` : f.recordId);
        ctx.reject({ entity: 'school', recordId: f.recordId, reason: f.reason });
      }
      for (const org of ok) {
        if (seen.has(org.sourcedId)) continue;
        seen.add(org.sourcedId);
        const m = mapOneRosterSchool(org);
        if (!m) continue;
        if (!m.ok) {
          ctx.reject(m.reject);
          continue;
        }
        ids.add(m.school.sourcedId);
        schools.push(m.school);
      }
    }
    if (total !== undefined && seen.size !== total) {
      throw new IncompleteSnapshotError(
        `${this.settings.vendor} schools: received ${seen.size} unique orgs, X-Total-Count said ${total}`,
      );
    }
    this.schoolIds = ids;
    return schools;
  }

  /**
   * Stream the roster: a delta when deltas are enabled, a watermark was saved and fewer
   * than `fullPullEveryRuns - 1` deltas followed the last full pull; else a full pull.
   * `stats().snapshot` says which, `stats().watermark` what to save when the run succeeds.
   *
   * Throws `IncompleteSnapshotError` when a collection delivered fewer unique records than
   * its `X-Total-Count` (or a page repeats), HTTP/payload/config errors as `RestClient.get`.
   */
  async *readRoster(ctx: PullContext): AsyncGenerator<RosterChunk> {
    const started = this.now();
    const { deltas } = this.settings;
    this.watermark = filterTimestamp(new Date(started.getTime() - deltas.overlapSeconds * 1000));
    this.snapshot = undefined;
    this.guardiansIndexed = undefined;
    this.deletedStudents = 0;
    this.withoutGuardians = 0;
    const st = ctx.deltaState;
    if (
      deltas.enabled &&
      st?.watermark !== undefined &&
      st.runsSinceFull + 1 < deltas.fullPullEveryRuns
    ) {
      const outcome = yield* this.readDelta(ctx, st.watermark);
      if (outcome === 'done') {
        this.snapshot = 'delta';
        return;
      }
      ctx.logger.warn(
        { maxChangedUsers: deltas.maxChangedUsers },
        `${this.settings.vendor}: too many changed users for a delta; pulling in full`,
      );
    }
    yield* this.readFull(ctx);
    this.snapshot = 'full';
  }

  private async *readFull(ctx: PullContext): AsyncGenerator<RosterChunk> {
    const { settings } = this;
    const { signal } = ctx;
    if (!this.schoolIds) await this.readSchools(ctx);
    const index = new GuardianIndex(settings.mapping);
    const usersIncomplete = await this.indexGuardians(ctx, index);
    this.guardiansIndexed = index.size;
    const enrollments = settings.enrollments ? await this.readEnrollments(ctx) : undefined;
    ctx.logger.info(
      { guardians: index.size, usersIncomplete },
      `${settings.vendor}: guardian index built; paging students`,
    );

    const seen = new Set<string>();
    let total: number | undefined;
    let students = 0;
    const withoutGuardians: string[] = [];
    let withoutGuardiansCount = 0;
    for await (const page of oneRosterPages(this.client, '/students', 'users', {
      pageSize: settings.pageSize,
      signal,
    })) {
      total = page.total ?? total;
      const { ok, failures } = parseRecords(OrUser, page.records);
      for (const f of failures) {
        const recordId = f.recordId.startsWith('#')
          ? `page ${page.pageNo} ${f.recordId}`
          : f.recordId;
        seen.add(recordId);
        ctx.reject({ entity: 'student', recordId, reason: f.reason });
      }
      const fresh = freshStudents(ok, seen, true);
      if (fresh.length === 0) continue;
      const r = buildOneRosterChunk({
        students: fresh,
        guardian: id => index.get(id),
        guardiansListing: id => index.listingOf(id),
        options: settings.mapping,
        linksComplete: settings.guardianLinksComplete && !usersIncomplete,
        schoolIds: this.schoolIds,
        enrollments,
      });
      for (const rej of r.rejects) ctx.reject(rej);
      this.deletedStudents = (this.deletedStudents ?? 0) + r.deletedStudents.length;
      withoutGuardiansCount += r.studentsWithoutGuardians.length;
      for (const id of r.studentsWithoutGuardians)
        if (withoutGuardians.length < 5) withoutGuardians.push(id);
      students += r.chunk.students.length;
      if (r.chunk.students.length > 0) yield r.chunk;
    }
    this.expectedStudents = total;
    this.withoutGuardians = withoutGuardiansCount;
    if (total !== undefined && seen.size !== total) {
      throw new IncompleteSnapshotError(
        `${settings.vendor} students: received ${seen.size} unique students, X-Total-Count said ${total}`,
      );
    }
    if (!settings.guardianLinksComplete) {
      const hint = noGuardianHint(
        settings.vendor,
        withoutGuardiansCount,
        withoutGuardians,
        students,
        index.usableCount(),
      );
      if (hint) ctx.reject(hint);
    }
  }

  /**
   * Read `/users` into `index` (guardian-type users only). Returns true when some user
   * record could not be parsed and may have been a guardian (links are then not removed).
   */
  private async indexGuardians(ctx: PullContext, index: GuardianIndex): Promise<boolean> {
    const seen = new Set<string>();
    let total: number | undefined;
    let incomplete = false;
    for await (const page of oneRosterPages(this.client, '/users', 'users', {
      pageSize: this.settings.pageSize,
      signal: ctx.signal,
    })) {
      total = page.total ?? total;
      const { ok, failures } = parseRecords(OrUser, page.records);
      for (const f of failures) {
        seen.add(f.recordId.startsWith('#') ? `page${page.pageNo}${f.recordId}` : f.recordId);
        const roles = rawRoles(f.raw);
        if (roles.includes('student')) continue; // the students pass reports it
        if (roles.length > 0 && !guardianRoleOf(roles)) continue; // staff: not ours
        incomplete = true;
        ctx.reject({ entity: 'guardian', recordId: f.recordId, reason: f.reason });
      }
      for (const u of ok) {
        seen.add(u.sourcedId);
        for (const rej of index.add(u)) ctx.reject(rej);
      }
    }
    if (total !== undefined && seen.size !== total) {
      throw new IncompleteSnapshotError(
        `${this.settings.vendor} users: received ${seen.size} unique users, X-Total-Count said ${total}`,
      );
    }
    return incomplete;
  }

  /** Read `/classes` and `/enrollments` into an `EnrollmentIndex` (parse failures are rejects). */
  private async readEnrollments(ctx: PullContext): Promise<EnrollmentIndex> {
    const idx = new EnrollmentIndex();
    const opts = { pageSize: this.settings.pageSize, signal: ctx.signal };
    for await (const page of oneRosterPages(this.client, '/classes', 'classes', opts)) {
      const { ok, failures } = parseRecords(OrClass, page.records);
      for (const f of failures)
        ctx.reject({ entity: 'chunk', recordId: `class ${f.recordId}`, reason: f.reason });
      for (const c of ok) idx.addClass(c);
    }
    for await (const page of oneRosterPages(this.client, '/enrollments', 'enrollments', opts)) {
      const { ok, failures } = parseRecords(OrEnrollment, page.records);
      for (const f of failures)
        ctx.reject({ entity: 'chunk', recordId: `enrollment ${f.recordId}`, reason: f.reason });
      for (const e of ok) idx.addEnrollment(e);
    }
    return idx;
  }

  /**
   * Delta: users changed after `since`, plus the students their guardians list and the
   * guardians their students list (`GET /users/{id}`). Chunks never remove links
   * (`relationshipsSupplied: false`) and carry no sections. Returns `too-many` (having
   * yielded nothing) when more than `maxChangedUsers` changed.
   */
  private async *readDelta(
    ctx: PullContext,
    since: string,
  ): AsyncGenerator<RosterChunk, 'done' | 'too-many'> {
    const { settings } = this;
    if (!this.schoolIds) await this.readSchools(ctx);
    const changed = new Map<string, OrUserRecord>();
    for await (const page of oneRosterPages(this.client, '/users', 'users', {
      pageSize: settings.pageSize,
      params: { filter: `dateLastModified>'${since}'` },
      signal: ctx.signal,
    })) {
      const { ok, failures } = parseRecords(OrUser, page.records);
      for (const f of failures) {
        const roles = rawRoles(f.raw);
        ctx.reject({
          entity: roles.includes('student') ? 'student' : 'guardian',
          recordId: f.recordId,
          reason: f.reason,
        });
      }
      for (const u of ok) changed.set(u.sourcedId, u);
      if (changed.size > settings.deltas.maxChangedUsers) return 'too-many';
    }
    const index = new GuardianIndex(settings.mapping);
    const students = new Map<string, OrUserRecord>();
    for (const u of changed.values()) {
      if (isStudentUser(u)) students.set(u.sourcedId, u);
      else for (const rej of index.add(u)) ctx.reject(rej);
    }
    // Students listed by changed guardians, so their new links can be planned.
    const needStudents = new Set<string>();
    for (const u of changed.values()) {
      if (!index.get(u.sourcedId)?.guardian) continue;
      for (const s of u.agentSourcedIds)
        if (!students.has(s) && !changed.has(s)) needStudents.add(s);
    }
    for (const u of await this.lookupUsers(ctx, [...needStudents])) {
      if (isStudentUser(u)) students.set(u.sourcedId, u);
    }
    // Guardians the students list that did not change.
    const needGuardians = new Set<string>();
    for (const s of students.values())
      for (const a of s.agentSourcedIds) if (!index.has(a) && !changed.has(a)) needGuardians.add(a);
    for (const u of await this.lookupUsers(ctx, [...needGuardians])) {
      for (const rej of index.add(u)) ctx.reject(rej);
    }
    this.guardiansIndexed = index.size;
    ctx.logger.info(
      { changedUsers: changed.size, students: students.size, guardians: index.size, since },
      `${settings.vendor}: delta pull`,
    );
    const list = [...students.values()];
    const seen = new Set<string>();
    const included = new Set<string>();
    for (let i = 0; i < list.length; i += settings.pageSize) {
      ctx.signal.throwIfAborted();
      const fresh = freshStudents(list.slice(i, i + settings.pageSize), seen, true);
      const r = buildOneRosterChunk({
        students: fresh,
        guardian: id => index.get(id),
        guardiansListing: id => index.listingOf(id),
        options: settings.mapping,
        linksComplete: false,
        schoolIds: this.schoolIds,
      });
      // In a delta, an agent outside the changed set that was not found is not news.
      for (const rej of r.rejects) if (rej.entity !== 'relationship') ctx.reject(rej);
      this.deletedStudents = (this.deletedStudents ?? 0) + r.deletedStudents.length;
      for (const g of r.chunk.guardians) included.add(g.sourcedId);
      if (r.chunk.students.length > 0) yield r.chunk;
    }
    // Changed guardians none of whose students is in the delta (their link is listed only on
    // the student's side): their own changes still apply; their links wait for the full pull.
    const leftover = guardiansOnlyChunk(
      [...changed.keys()].map(id => index.get(id)?.guardian),
      included,
    );
    if (leftover) yield leftover;
    return 'done';
  }

  /** `GET /users/{id}` for each id (bounded concurrency); 404s are skipped. */
  private async lookupUsers(ctx: PullContext, ids: string[]): Promise<OrUserRecord[]> {
    const found = await mapPool(ids, this.settings.lookupConcurrency ?? 4, async id => {
      ctx.signal.throwIfAborted();
      try {
        const res = await this.client.get(
          `/users/${encodeURIComponent(id)}`,
          undefined,
          ctx.signal,
        );
        const r = OrUser.safeParse(singleRecord(res.body, 'user'));
        if (!r.success) {
          ctx.reject({
            entity: 'guardian',
            recordId: id,
            reason: 'GET /users/{id}: not a user record',
          });
          return undefined;
        }
        return r.data;
      } catch (err) {
        if (err instanceof SisHttpError && err.status === 404) return undefined;
        throw err;
      }
    });
    return found.filter((u): u is OrUserRecord => u !== undefined);
  }

  stats(): OneRosterPullStats {
    const s = this.client.stats();
    return {
      httpRequests: s.httpRequests,
      httpByStatus: s.httpByStatus,
      tokenRequests: s.tokenRequests,
      expectedStudents: this.expectedStudents,
      snapshot: this.snapshot,
      watermark: this.snapshot === undefined ? undefined : this.watermark,
      guardiansIndexed: this.guardiansIndexed,
      deletedStudents: this.deletedStudents,
      studentsWithoutGuardians: this.withoutGuardians,
    };
  }
}
