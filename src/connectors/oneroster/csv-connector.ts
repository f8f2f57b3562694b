/**
 * The OneRoster CSV connector (`oneroster-csv`, sis-reference §1.5): a package from a
 * folder, a zip (or the newest zip of a folder) or SFTP. Bulk or delta per `manifest.csv`
 * (`file.users`): a delta adds and updates, never removes (`stats().snapshot = 'delta'`).
 *
 * Pull: `roles.csv` (1.2) into a role index, `users.csv` once for guardian-type users
 * (`GuardianIndex`), optionally `classes.csv`/`enrollments.csv`, then `users.csv` again for
 * students in chunks of `pageSize`. The package is read twice rather than held in memory.
 */
import type { Logger } from 'pino';
import type { OneRosterCsvConnectorConfig } from '../../config/oneroster.js';
import { SisPayloadError } from '../../errors.js';
import type { RosterChunk, School } from '../../mapping/canonical.js';
import type { Reject } from '../../models/types.js';
import {
  buildOneRosterChunk,
  guardianRoleOf,
  mapOneRosterSchool,
} from '../../mapping/oneroster.js';
import type { ConnectorCapabilities, PullContext, PullStats, SisConnector } from '../types.js';
import {
  classRowToJson,
  csvRows,
  enrollmentRowToJson,
  folderPackage,
  newestZip,
  orgRowToJson,
  readManifest,
  userRowToJson,
  zipPackage,
  type CsvManifest,
  type CsvPackage,
} from './csv.js';
import { OrClass, OrEnrollment, OrOrg, OrUser, zodReason, type OrUserRecord } from './payloads.js';
import { guardiansOnlyChunk } from './index.js';
import { EnrollmentIndex, freshStudents, GuardianIndex, noGuardianHint } from './roster.js';
import { fetchFromSftp } from './sftp.js';

/**
 * Exclusions for the guardian-type users of a bulk package that no student chunk carried
 * (`included`: canonical guardian sourcedIds of the chunks): they list no student and no
 * student lists them, or their students are not active students of the package. Each is a
 * `Reject` with `kind: 'excluded'`, entity `guardian`, recordId = the guardian's sourcedId.
 */
export function unlinkedGuardians(index: GuardianIndex, included: ReadonlySet<string>): Reject[] {
  const out: Reject[] = [];
  for (const { guardian, agentSourcedIds } of index.entriesWithGuardian()) {
    if (included.has(guardian.sourcedId)) continue;
    out.push({
      entity: 'guardian',
      recordId: guardian.sourcedId,
      kind: 'excluded',
      reason:
        agentSourcedIds.length === 0
          ? 'guardian user linked to no student: its agentSourcedIds (1.0: agents) cell is empty and no ' +
            'student lists it; no parent account is made (check the users.csv agent columns)'
          : `guardian user linked to no student: its students (${agentSourcedIds.slice(0, 5).join(', ')}) ` +
            'are not active students of this package; no parent account is made',
    });
  }
  return out;
}

/** Secrets of an SFTP source (resolved from the variables the district file names). */
export interface CsvSecrets {
  sftpUsername?: string | undefined;
  sftpPassword?: string | undefined;
  sftpPrivateKey?: string | undefined;
}

export interface OneRosterCsvOptions {
  logger: Logger;
  /** District policy `includeRelatives`. */
  includeRelatives: boolean;
  secrets?: CsvSecrets | undefined;
}

export interface OneRosterCsvStats extends PullStats {
  /** Package read by the last pull (local path, or the remote path for SFTP). */
  source?: string | undefined;
  /** `users.csv` rows of the last pull. */
  userRows?: number | undefined;
  deletedStudents?: number | undefined;
}

interface Opened {
  pkg: CsvPackage;
  source: string;
  dispose(): Promise<void>;
}

/** `SisConnector` over OneRoster CSV packages. */
export class OneRosterCsvConnector implements SisConnector {
  readonly kind = 'oneroster-csv' as const;
  readonly capabilities: ConnectorCapabilities;
  private last: OneRosterCsvStats = { httpRequests: 0, httpByStatus: {} };
  private schoolIds: Set<string> | undefined;

  constructor(
    private readonly cfg: OneRosterCsvConnectorConfig,
    private readonly opts: OneRosterCsvOptions,
  ) {
    this.capabilities = {
      guardianLinks: true,
      enrollments: cfg.enrollments,
      delta: true,
      guardianLinksComplete: cfg.guardianLinksComplete,
    };
  }

  /** Open the package and read its manifest. Throws `SisPayloadError`/`ConfigError`/`SisHttpError`. */
  async checkConnection(): Promise<void> {
    const o = await this.openPackage();
    try {
      await readManifest(o.pkg);
    } finally {
      await o.dispose();
    }
  }

  private async openPackage(): Promise<Opened> {
    const src = this.cfg.source;
    if (src.type === 'folder') {
      const pkg = folderPackage(src.path);
      return { pkg, source: src.path, dispose: () => pkg.close() };
    }
    if (src.type === 'zip') {
      const file = newestZip(src.path);
      const pkg = await zipPackage(file);
      return { pkg, source: file, dispose: () => pkg.close() };
    }
    const s = this.opts.secrets ?? {};
    const fetched = await fetchFromSftp({
      host: src.host,
      port: src.port,
      username: s.sftpUsername ?? '',
      password: s.sftpPassword,
      privateKey: s.sftpPrivateKey,
      hostKeySha256: src.hostKeySha256,
      remotePath: src.remotePath,
      timeoutMs: src.timeoutMs,
    });
    try {
      const pkg = await zipPackage(fetched.path);
      return {
        pkg,
        source: `sftp://${src.host}${fetched.remotePath}`,
        dispose: async () => {
          await pkg.close();
          fetched.dispose();
        },
      };
    } catch (err) {
      fetched.dispose();
      throw err;
    }
  }

  /** Schools of `orgs.csv` (type `school`). An absent `orgs.csv` gives no schools. */
  async readSchools(ctx: PullContext): Promise<School[]> {
    const o = await this.openPackage();
    try {
      const manifest = await readManifest(o.pkg);
      return await this.schoolsOf(o.pkg, manifest, ctx);
    } finally {
      await o.dispose();
    }
  }

  private async schoolsOf(
    pkg: CsvPackage,
    manifest: CsvManifest,
    ctx: PullContext,
  ): Promise<School[]> {
    const schools: School[] = [];
    if (manifest.files.orgs === 'absent') return schools;
    const ids = new Set<string>();
    for await (const { row, line } of csvRows(pkg, 'orgs.csv', ['sourcedId'])) {
      ctx.signal.throwIfAborted();
      const r = OrOrg.safeParse(orgRowToJson(row));
      if (!r.success) {
        ctx.reject({
          entity: 'school',
          recordId: `orgs.csv line ${line}`,
          reason: zodReason(r.error),
        });
        continue;
      }
      const m = mapOneRosterSchool(r.data);
      if (!m) continue;
      if (!m.ok)
        ctx.reject({ ...m.reject, recordId: `${m.reject.recordId} (orgs.csv line ${line})` });
      else if (!ids.has(m.school.sourcedId)) {
        ids.add(m.school.sourcedId);
        schools.push(m.school);
      }
    }
    if (manifest.files.orgs === 'bulk') this.schoolIds = ids;
    return schools;
  }

  /**
   * Stream the package's roster (bulk → full snapshot; delta → add/update only). Throws
   * `SisPayloadError` naming the file and line for a malformed file (nothing is applied
   * from an unreadable package: the pull fails before finalize), `ConfigError`/`SisHttpError`
   * for SFTP failures.
   */
  async *readRoster(ctx: PullContext): AsyncGenerator<RosterChunk> {
    const o = await this.openPackage();
    this.last = { httpRequests: 0, httpByStatus: {}, source: o.source, deletedStudents: 0 };
    try {
      const manifest = await readManifest(o.pkg);
      const mode = manifest.files.users;
      if (mode === 'absent')
        throw new SisPayloadError(
          `${o.pkg.description}: manifest.csv says file.users=absent: nothing to sync`,
        );
      if (!this.schoolIds) await this.schoolsOf(o.pkg, manifest, ctx);
      const mapping = {
        version: manifest.version,
        sourcedIds: 'native' as const,
        studentUniqueId: this.cfg.studentUniqueId,
        includeRelatives: this.opts.includeRelatives,
      };
      const roles = manifest.files.roles !== 'absent' ? await this.readRoles(o.pkg) : undefined;
      const users = (ctx2: PullContext) => this.users(o.pkg, roles, ctx2);

      const index = new GuardianIndex(mapping);
      let rows = 0;
      let incomplete = false;
      for await (const u of users(ctx)) {
        rows++;
        if (!u.ok) {
          if (!u.roles.includes('student') && (u.roles.length === 0 || guardianRoleOf(u.roles)))
            incomplete = true;
          continue;
        }
        for (const rej of index.add(u.user)) ctx.reject(rej);
      }
      this.last.userRows = rows;
      const enrollments =
        this.cfg.enrollments && mode === 'bulk' && manifest.files.enrollments !== 'absent'
          ? await this.readEnrollments(o.pkg, manifest, ctx)
          : undefined;
      const delta = mode === 'delta';
      ctx.logger.info(
        { source: o.source, mode, guardians: index.size, userRows: rows },
        'OneRoster CSV: guardian index built; reading students',
      );

      const seen = new Set<string>();
      const included = new Set<string>();
      let batch: OrUserRecord[] = [];
      let students = 0;
      let without = 0;
      const sample: string[] = [];
      const flush = (): RosterChunk | undefined => {
        const r = buildOneRosterChunk({
          students: batch,
          guardian: id => index.get(id),
          guardiansListing: id => index.listingOf(id),
          options: mapping,
          linksComplete: this.cfg.guardianLinksComplete && !incomplete && !delta,
          schoolIds: this.schoolIds,
          enrollments,
        });
        batch = [];
        for (const g of r.chunk.guardians) included.add(g.sourcedId);
        for (const rej of r.rejects) if (!delta || rej.entity !== 'relationship') ctx.reject(rej);
        this.last.deletedStudents = (this.last.deletedStudents ?? 0) + r.deletedStudents.length;
        without += r.studentsWithoutGuardians.length;
        for (const id of r.studentsWithoutGuardians) if (sample.length < 5) sample.push(id);
        students += r.chunk.students.length;
        return r.chunk.students.length > 0 ? r.chunk : undefined;
      };
      for await (const u of users(ctx)) {
        if (!u.ok) {
          if (u.roles.includes('student')) ctx.reject(u.reject);
          else if (!u.roles.length || guardianRoleOf(u.roles))
            ctx.reject({ ...u.reject, entity: 'guardian' });
          continue;
        }
        batch.push(...freshStudents([u.user], seen, false));
        if (batch.length >= this.cfg.pageSize) {
          const c = flush();
          if (c) yield c;
        }
      }
      if (batch.length > 0) {
        const c = flush();
        if (c) yield c;
      }
      if (delta) {
        // Guardians in the delta none of whose students is: their own changes still apply.
        const leftover = guardiansOnlyChunk(index.guardians(), included);
        if (leftover) yield leftover;
      } else {
        // A guardian user no chunk carried gets no account: say so, one by one (invariant 14).
        const unlinked = unlinkedGuardians(index, included);
        for (const r of unlinked) ctx.reject(r);
        if (unlinked.length)
          ctx.logger.warn(
            { guardians: unlinked.length },
            'OneRoster CSV: guardian users linked to no student (excluded, listed with the run)',
          );
      }
      this.last.expectedStudents = seen.size;
      this.last.snapshot = delta ? 'delta' : 'full';
      if (!delta && !this.cfg.guardianLinksComplete) {
        const hint = noGuardianHint(
          'The OneRoster export',
          without,
          sample,
          students,
          index.usableCount(),
        );
        if (hint) ctx.reject(hint);
      }
    } finally {
      await o.dispose();
    }
  }

  /** `roles.csv` (1.2): roles and orgs per user. */
  private async readRoles(
    pkg: CsvPackage,
  ): Promise<Map<string, { roles: string[]; orgs: string[] }>> {
    const map = new Map<string, { roles: string[]; orgs: string[] }>();
    for await (const { row } of csvRows(pkg, 'roles.csv', ['userSourcedId', 'role'])) {
      const status = (row.status ?? '').trim().toLowerCase();
      if (status === 'tobedeleted') continue;
      const user = (row.userSourcedId ?? '').trim();
      const role = (row.role ?? '').trim().toLowerCase();
      if (!user || !role) continue;
      const e = map.get(user) ?? { roles: [], orgs: [] };
      if (!e.roles.includes(role)) e.roles.push(role);
      const org = (row.orgSourcedId ?? '').trim();
      if (org && !e.orgs.includes(org)) e.orgs.push(org);
      map.set(user, e);
    }
    return map;
  }

  /** Parsed `users.csv` rows (roles from `roles.csv` merged in), or failures as rejects. */
  private async *users(
    pkg: CsvPackage,
    roles: Map<string, { roles: string[]; orgs: string[] }> | undefined,
    ctx: PullContext,
  ): AsyncGenerator<
    | { ok: true; user: OrUserRecord }
    | {
        ok: false;
        roles: string[];
        reject: { entity: 'student'; recordId: string; reason: string };
      }
  > {
    for await (const { row, line } of csvRows(pkg, 'users.csv', [
      'sourcedId',
      'givenName',
      'familyName',
    ])) {
      ctx.signal.throwIfAborted();
      const r = OrUser.safeParse(userRowToJson(row));
      const extra = roles?.get((row.sourcedId ?? '').trim());
      if (!r.success) {
        const own = (row.role ?? '').trim().toLowerCase();
        yield {
          ok: false,
          roles: [...(own ? [own] : []), ...(extra?.roles ?? [])],
          reject: {
            entity: 'student',
            recordId: `${(row.sourcedId ?? '').trim() || '?'} (users.csv line ${line})`,
            reason: zodReason(r.error),
          },
        };
        continue;
      }
      const user = r.data;
      if (extra) {
        user.roles = [...new Set([...user.roles, ...extra.roles])];
        user.orgSourcedIds = [...new Set([...user.orgSourcedIds, ...extra.orgs])];
      }
      yield { ok: true, user };
    }
  }

  private async readEnrollments(
    pkg: CsvPackage,
    manifest: CsvManifest,
    ctx: PullContext,
  ): Promise<EnrollmentIndex> {
    const idx = new EnrollmentIndex();
    if (manifest.files.classes !== 'absent') {
      for await (const { row, line } of csvRows(pkg, 'classes.csv', ['sourcedId'])) {
        const r = OrClass.safeParse(classRowToJson(row));
        if (r.success) idx.addClass(r.data);
        else
          ctx.reject({
            entity: 'chunk',
            recordId: `classes.csv line ${line}`,
            reason: zodReason(r.error),
          });
      }
    }
    for await (const { row, line } of csvRows(pkg, 'enrollments.csv', ['sourcedId'])) {
      const r = OrEnrollment.safeParse(enrollmentRowToJson(row));
      if (r.success) idx.addEnrollment(r.data);
      else
        ctx.reject({
          entity: 'chunk',
          recordId: `enrollments.csv line ${line}`,
          reason: zodReason(r.error),
        });
    }
    return idx;
  }

  stats(): OneRosterCsvStats {
    return { ...this.last, httpByStatus: { ...this.last.httpByStatus } };
  }
}
