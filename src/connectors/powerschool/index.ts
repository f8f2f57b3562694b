/**
 * The PowerSchool connector (sis-reference §2): schools and active students from the v1
 * district resources, guardians and links from either the bulk PowerQuery
 * `com.guardiansync.roster.student_contacts` or, as a fallback, the per-student contacts API.
 */
import type { Logger } from 'pino';
import type { PowerSchoolConnectorConfig } from '../../config/district.js';
import { IncompleteSnapshotError, SisHttpError } from '../../errors.js';
import type { RosterChunk, School } from '../../mapping/canonical.js';
import {
  buildPowerSchoolChunk,
  contactFromApi,
  contactsFromRosterRows,
  mapPowerSchoolSchool,
  type PsContactRecord,
} from '../../mapping/powerschool.js';
import type { Reject } from '../../models/types.js';
import { attachSections, type SectionSnapshot } from '../../mapping/powerschool-sections.js';
import type { ConnectorCapabilities, PullContext, PullStats, SisConnector } from '../types.js';
import { PowerSchoolClient, type ClientStats, type PowerSchoolClientOptions } from './client.js';
import { readPowerSchoolSections } from './sections.js';
import {
  parseEach,
  PsContact,
  PsContactsList,
  PsMetadata,
  PsPowerQueryPage,
  PsResourceCount,
  PsRosterContactRow,
  PsSchool,
  PsSchoolsPage,
  PsStudent,
  PsStudentsPage,
  rawRecordId,
  ROSTER_CONTACTS_QUERY,
} from './payloads.js';

/** FIQL filter of the students read: enrolled (active) students only (§2.5 enroll_status). */
export const ACTIVE_STUDENTS_Q = 'school_enrollment.enroll_status==A';
/** Expansions requested with each students page. */
export const STUDENT_EXPANSIONS = 'school_enrollment,contact_info';

/** Code-level options (not in district files): secrets, logger, test timing knobs. */
export interface PowerSchoolConnectorOptions {
  clientId: string;
  clientSecret: string;
  logger: Logger;
  /** Retry/backoff timing and clock overrides for the HTTP client (tests use ms-scale values). */
  client?: Pick<
    PowerSchoolClientOptions,
    | 'minBackoffMs'
    | 'maxBackoffMs'
    | 'maxRetryAfterMs'
    | 'inlineRetryAfterMs'
    | 'tokenRefreshMarginMs'
    | 'now'
  >;
  /** Clock for the pull date (current contact detail rows). Default `new Date()`. */
  now?: () => Date;
  /** District policy `preRegisteredStudents` (default `exclude`). */
  preRegisteredStudents?: 'exclude' | 'include' | undefined;
}

/** Page-size limits of the plugin (`GET /ws/v1/metadata`, §2.4). */
export interface PowerSchoolLimits {
  studentMaxPageSize?: number | undefined;
  schoolMaxPageSize?: number | undefined;
  queryMaxPageSize?: number | undefined;
  sectionMaxPageSize?: number | undefined;
}

/** Stats of this connector: `PullStats` plus the token requests made. */
export interface PowerSchoolPullStats extends PullStats {
  tokenRequests: number;
}

/** Run `fn` over `items` with at most `concurrency` in flight; results in input order. Stops taking new items after the first failure. */
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
      const item = items[i];
      if (item === undefined) continue;
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

/** True when two PowerQuery pages hold the same rows (cheap test first: length, first row). */
function samePage(a: readonly unknown[], b: readonly unknown[]): boolean {
  if (a.length !== b.length) return false;
  if (JSON.stringify(a[0]) !== JSON.stringify(b[0])) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

function dedupeRejects(rejects: readonly Reject[]): Reject[] {
  const seen = new Set<string>();
  return rejects.filter(r => {
    const k = `${r.entity}\u0000${r.recordId}\u0000${r.reason}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * `SisConnector` for PowerSchool SIS. Construct with the district's validated
 * `PowerSchoolConnectorConfig` and the resolved secrets (see `createConnector`).
 */
export class PowerSchoolConnector implements SisConnector {
  readonly kind = 'powerschool' as const;
  readonly capabilities: ConnectorCapabilities;
  private readonly client: PowerSchoolClient;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private limitsCache: PowerSchoolLimits | undefined;
  private expectedStudents: number | undefined;
  /** Set (for the rest of one pull) when the plugin refused the bulk PowerQuery (403/404) in `auto` mode. */
  private bulkUnavailable = false;
  /** School ids of the last `readSchools` (sections are read per school). */
  private schoolIds: string[] | undefined;

  private readonly preRegistered: 'exclude' | 'include';

  constructor(
    private readonly config: PowerSchoolConnectorConfig,
    options: PowerSchoolConnectorOptions,
  ) {
    this.logger = options.logger;
    this.capabilities = { guardianLinks: true, enrollments: config.sections, delta: false };
    this.now = options.now ?? (() => new Date());
    this.preRegistered = options.preRegisteredStudents ?? 'exclude';
    this.client = new PowerSchoolClient({
      baseUrl: config.baseUrl,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      credentialsSource: `${config.clientIdEnv}/${config.clientSecretEnv}`,
      timeoutMs: config.timeoutMs,
      retries: config.retries,
      logger: options.logger,
      ...options.client,
    });
  }

  /**
   * Get a token and read `/ws/v1/metadata`. Throws `ConfigError` (credentials refused),
   * `SisHttpError` or `SisPayloadError`.
   */
  async checkConnection(): Promise<void> {
    await this.client.accessToken();
    this.limitsCache = undefined;
    await this.limits(undefined);
  }

  /**
   * The plugin's page-size limits (`GET /ws/v1/metadata`: `student_max_page_size`,
   * `school_max_page_size`, `schema_table_query_max_page_size`), cached until the next pull starts.
   */
  async limits(signal: AbortSignal | undefined): Promise<PowerSchoolLimits> {
    if (this.limitsCache) return this.limitsCache;
    const m = (await this.client.get('/ws/v1/metadata', PsMetadata, { signal })).metadata;
    this.limitsCache = {
      studentMaxPageSize: m.student_max_page_size,
      schoolMaxPageSize: m.school_max_page_size,
      queryMaxPageSize: m.schema_table_query_max_page_size,
      sectionMaxPageSize: m.section_max_page_size,
    };
    return this.limitsCache;
  }

  private pageSize(max: number | undefined): number {
    const cap = max !== undefined && max > 0 ? max : this.config.pageSize;
    return Math.max(1, Math.min(this.config.pageSize, cap));
  }

  /**
   * All schools (`GET /ws/v1/district/school/count`, then pages 1..n of
   * `/ws/v1/district/school`, page size capped by `school_max_page_size`). A school without
   * a name is a reject. Throws `IncompleteSnapshotError` when the unique ids received differ
   * from the count; HTTP/payload errors as `checkConnection`.
   */
  async readSchools(ctx: PullContext): Promise<School[]> {
    const { signal } = ctx;
    const limits = await this.limits(signal);
    const size = this.pageSize(limits.schoolMaxPageSize);
    const count = (
      await this.client.get('/ws/v1/district/school/count', PsResourceCount, { signal })
    ).resource.count;
    const seen = new Set<string>();
    const schools: School[] = [];
    for (let page = 1; page <= Math.ceil(count / size); page++) {
      signal.throwIfAborted();
      const body = await this.client.get('/ws/v1/district/school', PsSchoolsPage, {
        params: { page, pagesize: size },
        signal,
      });
      const { ok, failures } = parseEach(PsSchool, body.schools?.school ?? [], ['id']);
      for (const f of failures) {
        seen.add(f.recordId.startsWith('#') ? `page${page}${f.recordId}` : f.recordId);
        ctx.reject({ entity: 'school', recordId: f.recordId, reason: f.reason });
      }
      for (const raw of ok) {
        if (seen.has(raw.id)) continue;
        seen.add(raw.id);
        const m = mapPowerSchoolSchool(raw);
        if (m.ok) schools.push(m.school);
        else ctx.reject(m.reject);
      }
    }
    this.schoolIds = schools.map(s => s.sourcedId);
    if (seen.size !== count) {
      throw new IncompleteSnapshotError(
        `PowerSchool schools: received ${seen.size} unique schools, the count endpoint said ${count}`,
      );
    }
    return schools;
  }

  /**
   * Stream the roster, one chunk per students page (§2.4: count first, then pages
   * 1..ceil(count/pagesize) of `GET /ws/v1/district/student?q=school_enrollment.enroll_status==A
   * &expansions=school_enrollment,contact_info`, page size capped by
   * `student_max_page_size`). Guardians and links of each page come from the bulk
   * PowerQuery (one DCID range per page) or the per-student contacts API, per
   * `guardianReads`. Records that fail validation or policy go to `ctx.reject`.
   *
   * Throws `IncompleteSnapshotError` at the end when the unique student ids received differ
   * from the count (a page skipped or repeated); `SisHttpError` after retries (or at once
   * for 4xx); `ConfigError` when credentials are refused; `SisPayloadError` when a page does
   * not match its documented shape.
   */
  async *readRoster(ctx: PullContext): AsyncGenerator<RosterChunk> {
    const { signal } = ctx;
    const asOf = this.now().toISOString().slice(0, 10);
    // Each pull re-reads the plugin's limits and grants (an admin may have changed them).
    this.limitsCache = undefined;
    this.bulkUnavailable = false;
    const limits = await this.limits(signal);
    const size = this.pageSize(limits.studentMaxPageSize);
    const count = (
      await this.client.get('/ws/v1/district/student/count', PsResourceCount, {
        params: { q: ACTIVE_STUDENTS_Q },
        signal,
      })
    ).resource.count;
    this.expectedStudents = count;
    const pages = Math.ceil(count / size);
    ctx.logger.info({ count, pageSize: size, pages }, 'PowerSchool roster pull started');
    const sections = this.config.sections ? await this.readSections(ctx) : undefined;

    const seen = new Set<string>();
    const fetchStudents = (page: number) =>
      this.client.get('/ws/v1/district/student', PsStudentsPage, {
        params: { q: ACTIVE_STUDENTS_Q, expansions: STUDENT_EXPANSIONS, page, pagesize: size },
        signal,
      });
    let prefetched: { page: number; body: ReturnType<typeof fetchStudents> } | undefined;
    for (let page = 1; page <= pages; page++) {
      signal.throwIfAborted();
      const body = await (prefetched?.page === page ? prefetched.body : fetchStudents(page));
      prefetched = undefined;
      const { ok, failures } = parseEach(PsStudent, body.students?.student ?? [], ['id']);
      for (const f of failures) {
        // A record we could not parse was still received: count it once (by id if it has one).
        const recordId = f.recordId.startsWith('#') ? `page ${page} ${f.recordId}` : f.recordId;
        seen.add(recordId);
        ctx.reject({ entity: 'student', recordId, reason: f.reason });
      }
      const fresh: PsStudent[] = [];
      for (const s of ok) {
        if (seen.has(s.id)) continue;
        seen.add(s.id);
        fresh.push(s);
      }
      if (fresh.length === 0) continue;

      const { contacts, complete, rejects: contactRejects } = await this.readContacts(fresh, ctx);
      // Bulk reads: ask for the next students page now, so that the SIS prepares it while this
      // chunk is built and handed on (failures still surface in page order). Per-student
      // reads keep one page at a time: their parallel requests would all meet a token that
      // expired meanwhile.
      if (page < pages && this.bulkReads()) {
        const next = fetchStudents(page + 1);
        next.catch(() => undefined); // rejections surface when the page is awaited
        prefetched = { page: page + 1, body: next };
      }
      const { chunk, rejects } = buildPowerSchoolChunk({
        students: fresh,
        contacts,
        policy: this.config.contacts,
        preRegistered: this.preRegistered,
        asOf,
        contactsComplete: complete,
      });
      for (const r of dedupeRejects([...contactRejects, ...rejects])) ctx.reject(r);
      yield sections ? attachSections(chunk, sections) : chunk;
    }

    if (seen.size !== count) {
      throw new IncompleteSnapshotError(
        `PowerSchool students: received ${seen.size} unique students, the count endpoint said ${count}`,
      );
    }
  }

  /**
   * Sections and enrollments of every school (`connector.sections`), read completely before
   * the first chunk so each chunk carries its students' whole enrollment lists.
   */
  private async readSections(ctx: PullContext): Promise<SectionSnapshot> {
    if (!this.schoolIds) await this.readSchools({ ...ctx, reject: () => undefined });
    const limits = await this.limits(ctx.signal);
    const { snapshot, stats } = await readPowerSchoolSections(
      this.client,
      {
        schoolIds: this.schoolIds ?? [],
        pageSize: this.pageSize(limits.sectionMaxPageSize),
        concurrency: this.config.contactsConcurrency,
      },
      ctx,
    );
    ctx.logger.info(stats, 'PowerSchool sections read');
    return snapshot;
  }

  /** True while guardians are read with the bulk PowerQuery. */
  private bulkReads(): boolean {
    const mode = this.config.guardianReads;
    return mode === 'bulk' || (mode === 'auto' && !this.bulkUnavailable);
  }

  /** Contacts of one page's students, by the configured path (with `auto` fallback). */
  private async readContacts(
    students: readonly PsStudent[],
    ctx: PullContext,
  ): Promise<{ contacts: PsContactRecord[]; complete: boolean; rejects: Reject[] }> {
    const mode = this.config.guardianReads;
    if (mode === 'per-student' || (mode === 'auto' && this.bulkUnavailable)) {
      return this.readContactsPerStudent(students, ctx);
    }
    try {
      return await this.readContactsBulk(students, ctx);
    } catch (err) {
      if (
        mode === 'auto' &&
        err instanceof SisHttpError &&
        (err.status === 403 || err.status === 404)
      ) {
        this.bulkUnavailable = true;
        ctx.logger.warn(
          { status: err.status, query: ROSTER_CONTACTS_QUERY },
          'PowerSchool plugin does not grant the roster PowerQuery; using the per-student contacts API',
        );
        return this.readContactsPerStudent(students, ctx);
      }
      throw err;
    }
  }

  /**
   * Bulk path: `POST /ws/schema/query/com.guardiansync.roster.student_contacts?page=&pagesize=`
   * with `{"dcid_min","dcid_max"}` of the page (strings), paged until a short page (page size
   * = `schema_table_query_max_page_size`). Rows of students outside the page are
   * ignored. Throws `SisHttpError` (403/404 when the plugin does not grant the query).
   */
  private async readContactsBulk(
    students: readonly PsStudent[],
    ctx: PullContext,
  ): Promise<{ contacts: PsContactRecord[]; complete: boolean; rejects: Reject[] }> {
    const dcids = new Set(students.map(s => s.id));
    const nums = students.map(s => Number(s.id));
    if (nums.some(n => !Number.isSafeInteger(n))) {
      // A DCID range needs numeric DCIDs; PowerSchool's always are, but never guess.
      return this.readContactsPerStudent(students, ctx);
    }
    const body = { dcid_min: String(Math.min(...nums)), dcid_max: String(Math.max(...nums)) };
    const limits = await this.limits(ctx.signal);
    // Rows, not students: the plugin's query maximum is the only cap (config.pageSize counts students).
    const size = Math.max(1, limits.queryMaxPageSize ?? this.config.pageSize);
    const rejects: Reject[] = [];
    let complete = true;
    const ok: PsRosterContactRow[] = [];
    let parsed = 0; // rows of this page's students parsed so far (`#<index>` of id-less rows)
    const take = (records: readonly unknown[]) => {
      const inPage = records.filter(r => {
        const dcid = rawRecordId(r, ['studentdcid']);
        return dcid === undefined || dcids.has(dcid);
      });
      const res = parseEach(PsRosterContactRow, inPage, ['personid'], parsed);
      parsed += inPage.length;
      for (const row of res.ok) ok.push(row);
      for (const f of res.failures) {
        complete = false;
        rejects.push({
          entity: 'guardian',
          recordId: f.recordId,
          reason: `query row: ${f.reason}`,
        });
      }
    };
    const fetchPage = (page: number) => {
      ctx.signal.throwIfAborted();
      return this.client.post(`/ws/schema/query/${ROSTER_CONTACTS_QUERY}`, PsPowerQueryPage, {
        params: { page, pagesize: size },
        body,
        signal: ctx.signal,
      });
    };
    let previous: unknown[] | undefined;
    let pending = fetchPage(1);
    for (let page = 1; ; page++) {
      const res = await pending;
      if (res.record.length > 0 && previous !== undefined && samePage(previous, res.record)) {
        // A server that ignores `page` would otherwise loop forever.
        throw new IncompleteSnapshotError(
          `PowerSchool query ${ROSTER_CONTACTS_QUERY}: page ${page} repeats page ${page - 1}`,
        );
      }
      // A full page means there may be more: ask for the next one first, then parse this
      // one while the SIS works (still one request at a time; the same requests as before).
      const more = res.record.length >= size;
      if (more) {
        pending = fetchPage(page + 1);
        pending.catch(() => undefined); // rejections surface at the await above
      }
      take(res.record);
      previous = res.record;
      if (!more) break;
    }
    return { contacts: contactsFromRosterRows(ok), complete, rejects };
  }

  /**
   * Per-student path: `GET /ws/contacts/student/{dcid}` for each student (bounded by
   * `contactsConcurrency`); a 204/empty body means no contacts. A contact that does not
   * parse is a reject and marks the page's links incomplete.
   */
  private async readContactsPerStudent(
    students: readonly PsStudent[],
    ctx: PullContext,
  ): Promise<{ contacts: PsContactRecord[]; complete: boolean; rejects: Reject[] }> {
    const lists = await mapPool(students, this.config.contactsConcurrency, async s => {
      ctx.signal.throwIfAborted();
      return this.client.get(`/ws/contacts/student/${encodeURIComponent(s.id)}`, PsContactsList, {
        signal: ctx.signal,
      });
    });
    const contacts: PsContactRecord[] = [];
    const rejects: Reject[] = [];
    let complete = true;
    for (const list of lists) {
      const { ok, failures } = parseEach(PsContact, list, ['contactId']);
      for (const f of failures) {
        complete = false;
        rejects.push({ entity: 'guardian', recordId: f.recordId, reason: f.reason });
      }
      contacts.push(...ok.map(contactFromApi));
    }
    return { contacts, complete, rejects };
  }

  /** HTTP counters since construction, plus the last pull's student count. */
  stats(): PowerSchoolPullStats {
    const s: ClientStats = this.client.stats();
    return {
      httpRequests: s.httpRequests,
      httpByStatus: s.httpByStatus,
      expectedStudents: this.expectedStudents,
      tokenRequests: s.tokenRequests,
    };
  }
}
