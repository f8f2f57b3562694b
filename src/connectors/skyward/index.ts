/**
 * The Skyward SMS 2.0 connector (sis-reference §5): the LMS API (default), or — chosen in
 * config with `api: "oneroster"` — Skyward's OneRoster API through the OneRoster core.
 *
 * LMS API: password-grant token with Basic client auth (`POST {base}/token`); cursor paging
 * of `/v1/schools` and `/v1/students` through the `Link` header (the header carries
 * `cursor=`, the request needs `paging.cursor=`: the client rewrites it); then, per student,
 * `GET /v1/guardians?studentNameId=` with bounded concurrency under the district's request
 * rate (`maxRequestsPerSecond`, default 20).
 */
import type { Logger } from 'pino';
import type { SkywardConnectorConfig } from '../../config/oneroster.js';
import { IncompleteSnapshotError, SisHttpError, SisPayloadError } from '../../errors.js';
import type { RosterChunk, School } from '../../mapping/canonical.js';
import { buildSkywardChunk, mapSkywardSchool } from '../../mapping/skyward.js';
import type { Reject } from '../../models/types.js';
import type { ConnectorCapabilities, PullContext, PullStats, SisConnector } from '../types.js';
import {
  parseLinkHeader,
  RestClient,
  type RestAuth,
  type RestClientTuning,
} from '../oneroster/client.js';
import { OneRosterConnector } from '../oneroster/index.js';
import { parseRecords } from '../oneroster/payloads.js';
import { SkyEnrollment, SkyGuardian, SkySchool, SkyStudent, skywardRecords } from './payloads.js';

/** Default request rate of the LMS API (requests per second; Skyward publishes none). */
export const SKYWARD_DEFAULT_RPS = 20;

export interface SkywardOptions {
  clientId: string;
  clientSecret: string;
  /** LMS API key and secret (password grant). */
  username?: string | undefined;
  password?: string | undefined;
  logger: Logger;
  /** District policy `includeRelatives` (OneRoster API only). */
  includeRelatives: boolean;
  client?: RestClientTuning | undefined;
  now?: (() => Date) | undefined;
}

export interface SkywardPullStats extends PullStats {
  tokenRequests: number;
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
      try {
        results[i] = await fn(items[i] as T);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(concurrency, items.length)) }, () => worker()),
  );
  return results;
}

/**
 * The next-page URL from a Skyward `Link` header, with `cursor=` rewritten to
 * `paging.cursor=` (§5.3), or undefined on the last page (no `Link`, or no `rel="next"`).
 */
export function skywardNextUrl(link: string | undefined, requestUrl: string): string | undefined {
  const next = parseLinkHeader(link).next;
  if (!next) return undefined;
  const u = new URL(next, requestUrl);
  const cursor = u.searchParams.get('cursor');
  if (cursor !== null && !u.searchParams.has('paging.cursor')) {
    u.searchParams.delete('cursor');
    u.searchParams.set('paging.cursor', cursor);
  }
  return u.href;
}

/**
 * Page an LMS collection by cursor. Yields raw records per page. A page identical to the
 * previous one is asked again once, then the pull fails (`IncompleteSnapshotError`): a
 * server ignoring the cursor would loop forever.
 */
export async function* skywardPages(
  client: RestClient,
  path: string,
  idKey: string,
  limit: number,
  signal: AbortSignal | undefined,
): AsyncGenerator<{ records: unknown[]; total?: number | undefined }> {
  let url: string | undefined;
  let previous: string | undefined;
  let repeats = 0;
  for (;;) {
    signal?.throwIfAborted();
    const res =
      url === undefined
        ? await client.get(path, { 'paging.limit': limit }, signal)
        : await client.get(url, undefined, signal);
    let records: unknown[];
    try {
      records = skywardRecords(res.body);
    } catch (err) {
      throw new SisPayloadError(`Skyward GET ${path}: ${(err as Error).message}`);
    }
    if (records.length === 0) return;
    const idOf = (r: unknown) =>
      typeof r === 'object' && r !== null ? String((r as Record<string, unknown>)[idKey]) : '';
    const fp = `${records.length}|${idOf(records[0])}|${idOf(records[records.length - 1])}`;
    if (fp === previous) {
      if (++repeats > 1)
        throw new IncompleteSnapshotError(`Skyward GET ${path}: a page repeats (cursor ignored?)`);
      continue;
    }
    repeats = 0;
    previous = fp;
    yield { records, total: res.totalCount };
    const next = skywardNextUrl(res.link, res.url);
    if (next === undefined) return;
    url = next;
  }
}

/** `SisConnector` over the Skyward SMS 2.0 LMS API. */
export class SkywardLmsConnector implements SisConnector {
  readonly kind = 'skyward' as const;
  readonly capabilities: ConnectorCapabilities;
  private expectedStudents: number | undefined;

  constructor(
    private readonly cfg: SkywardConnectorConfig,
    private readonly client: RestClient,
    private readonly logger: Logger,
  ) {
    this.capabilities = {
      guardianLinks: true,
      enrollments: cfg.enrollments,
      delta: false,
      guardianLinksComplete: cfg.guardianLinksComplete,
    };
  }

  /** Token, then `GET /v1/schools?paging.limit=1`. */
  async checkConnection(): Promise<void> {
    await this.client.accessToken();
    await this.client.get('/v1/schools', { 'paging.limit': 1 });
  }

  /** All schools (`/v1/schools`, cursor-paged). A school without a name is a reject. */
  async readSchools(ctx: PullContext): Promise<School[]> {
    const out: School[] = [];
    const seen = new Set<string>();
    for await (const page of skywardPages(
      this.client,
      '/v1/schools',
      'SchoolId',
      1000,
      ctx.signal,
    )) {
      const { ok, failures } = parseRecords(SkySchool, page.records);
      for (const f of failures)
        ctx.reject({ entity: 'school', recordId: f.recordId, reason: f.reason });
      for (const s of ok) {
        if (seen.has(s.SchoolId)) continue;
        seen.add(s.SchoolId);
        const m = mapSkywardSchool(s);
        if (m.ok) out.push(m.school);
        else ctx.reject(m.reject);
      }
    }
    return out;
  }

  /**
   * Stream the roster: one chunk per `/v1/students` page with each student's guardians
   * (`/v1/guardians?studentNameId=`) and, when enabled, enrollments. Throws
   * `IncompleteSnapshotError` when fewer unique students arrived than `X-Total-Count` said
   * (when sent) or a page repeats; HTTP/config errors as `RestClient.get`.
   */
  async *readRoster(ctx: PullContext): AsyncGenerator<RosterChunk> {
    const { signal } = ctx;
    const seen = new Set<string>();
    let total: number | undefined;
    for await (const page of skywardPages(
      this.client,
      '/v1/students',
      'NameId',
      this.cfg.pageSize,
      signal,
    )) {
      total = page.total ?? total;
      const { ok, failures } = parseRecords(SkyStudent, page.records);
      for (const f of failures) {
        seen.add(f.recordId);
        ctx.reject({ entity: 'student', recordId: f.recordId, reason: f.reason });
      }
      const fresh = ok.filter(s => {
        if (seen.has(s.NameId)) return false;
        seen.add(s.NameId);
        return true;
      });
      if (fresh.length === 0) continue;
      const rejects: Reject[] = [];
      let complete = true;
      const guardianLists = await mapPool(fresh, this.cfg.guardianConcurrency, async s => {
        const body = await this.getOrEmpty('/v1/guardians', { studentNameId: s.NameId }, signal);
        const { ok: gs, failures: gf } = parseRecords(SkyGuardian, skywardRecords(body));
        for (const f of gf) {
          complete = false;
          rejects.push({ entity: 'guardian', recordId: f.recordId, reason: f.reason });
        }
        return gs;
      });
      const byStudent = new Map(fresh.map((s, i) => [s.NameId, guardianLists[i] ?? []]));
      let enrollmentsOf: ((id: string) => readonly SkyEnrollment[]) | undefined;
      if (this.cfg.enrollments) {
        const lists = await mapPool(fresh, this.cfg.guardianConcurrency, async s => {
          const body = await this.getOrEmpty(
            `/v1/students/${encodeURIComponent(s.NameId)}/enrollments`,
            undefined,
            signal,
          );
          const { ok: es, failures: ef } = parseRecords(SkyEnrollment, skywardRecords(body));
          for (const f of ef)
            rejects.push({
              entity: 'chunk',
              recordId: `enrollment ${f.recordId}`,
              reason: f.reason,
            });
          return es;
        });
        const map = new Map(fresh.map((s, i) => [s.NameId, lists[i] ?? []]));
        enrollmentsOf = id => map.get(id) ?? [];
      }
      const r = buildSkywardChunk({
        students: fresh,
        guardiansOf: id => byStudent.get(id) ?? [],
        uniqueIdField:
          this.cfg.studentUniqueId === 'username' ? 'identifier' : this.cfg.studentUniqueId,
        complete: complete && this.cfg.guardianLinksComplete,
        enrollmentsOf,
      });
      for (const rej of [...rejects, ...r.rejects]) ctx.reject(rej);
      if (r.chunk.students.length > 0) yield r.chunk;
    }
    this.expectedStudents = total;
    if (total !== undefined && seen.size !== total) {
      throw new IncompleteSnapshotError(
        `Skyward students: received ${seen.size} unique students, X-Total-Count said ${total}`,
      );
    }
  }

  /** GET a list; 404 (unknown student) and 204 read as an empty list. */
  private async getOrEmpty(
    path: string,
    params: Record<string, string> | undefined,
    signal: AbortSignal,
  ): Promise<unknown> {
    try {
      return (await this.client.get(path, params, signal)).body;
    } catch (err) {
      if (err instanceof SisHttpError && err.status === 404) return undefined;
      throw err;
    }
  }

  stats(): SkywardPullStats {
    const s = this.client.stats();
    return {
      httpRequests: s.httpRequests,
      httpByStatus: s.httpByStatus,
      tokenRequests: s.tokenRequests,
      expectedStudents: this.expectedStudents,
    };
  }
}

/**
 * Build the Skyward connector a config asks for: `SkywardLmsConnector`, or a
 * `OneRosterConnector` (kind `skyward`) for `api: "oneroster"`.
 */
export function createSkywardConnector(
  cfg: SkywardConnectorConfig,
  opts: SkywardOptions,
): SisConnector {
  if (cfg.api === 'oneroster') {
    const auth: RestAuth = cfg.tokenUrl
      ? {
          type: 'oauth2-client-credentials',
          tokenUrl: cfg.tokenUrl,
          clientId: opts.clientId,
          clientSecret: opts.clientSecret,
          credentials: cfg.credentials,
        }
      : {
          type: 'oauth1',
          consumerKey: opts.clientId,
          consumerSecret: opts.clientSecret,
          signatureMethod: cfg.signatureMethod,
        };
    const client = new RestClient({
      baseUrl: cfg.baseUrl,
      auth,
      vendor: 'Skyward',
      timeoutMs: cfg.timeoutMs,
      retries: cfg.retries,
      logger: opts.logger,
      maxRequestsPerSecond: cfg.maxRequestsPerSecond,
      ...opts.client,
    });
    return new OneRosterConnector(
      {
        kind: 'skyward',
        vendor: 'Skyward',
        pageSize: cfg.pageSize,
        enrollments: cfg.enrollments,
        deltas: cfg.deltas,
        guardianLinksComplete: cfg.guardianLinksComplete,
        mapping: {
          version: cfg.version,
          sourcedIds: 'native',
          studentUniqueId: cfg.studentUniqueId,
          includeRelatives: opts.includeRelatives,
        },
      },
      client,
      opts.logger,
      opts.now,
    );
  }
  const base = cfg.baseUrl.replace(/\/+$/, '');
  const client = new RestClient({
    baseUrl: base,
    auth: {
      type: 'oauth2-password',
      tokenUrl: `${base}/token`,
      clientId: opts.clientId,
      clientSecret: opts.clientSecret,
      username: opts.username ?? '',
      password: opts.password ?? '',
    },
    vendor: 'Skyward',
    accept: 'application/json;charset=UTF-8',
    timeoutMs: cfg.timeoutMs,
    retries: cfg.retries,
    logger: opts.logger,
    maxRequestsPerSecond: cfg.maxRequestsPerSecond ?? SKYWARD_DEFAULT_RPS,
    ...opts.client,
  });
  return new SkywardLmsConnector(cfg, client, opts.logger);
}
