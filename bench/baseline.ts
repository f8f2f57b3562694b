/**
 * Benchmark child process: the naive baseline, i.e. what a quick script would do with the
 * same data. It pulls the same snapshot from the same fake SIS with the same connector
 * (HTTP, parsing and mapping are shared, so the comparison is about the sync itself), then
 * for every record does one store read by key and one unconditional write, each statement
 * in its own autocommit transaction: no queue, no batching, no change detection, no
 * identity matching beyond the SIS id, no deactivation.
 *
 * It writes into the same SQLite schema with the same connection settings as the real
 * store (`SqliteRosterStore`: WAL, synchronous=NORMAL), so only the method differs.
 */
import type { Statement } from 'better-sqlite3';
import { createConnector } from '../src/connectors/index.js';
import { createLogger } from '../src/logger.js';
import { normalizeEmail } from '../src/mapping/canonical.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import { parentAccountId } from '../src/reconcile/plan.js';
import { generateAccessCode } from '../src/access-codes/code.js';
import { accessCodeRepository } from '../src/models/access-codes/index.js';
import {
  BENCH_DISTRICT_ID,
  benchSecrets,
  districtFor,
  type BenchSource,
  type PartResult,
  type Progress,
  type SisAccess,
} from './common.js';
import { emit, memoryOf, serve } from './ipc.js';

/** Parameters of `sync`. */
export interface BaselineParams {
  sis: SisAccess;
  /** Default: the PowerSchool district. */
  source?: BenchSource;
  /** Also give every student without one an access code (one read + one write each). */
  codes?: boolean;
  storeFile: string;
  pageSize: number;
  students: number;
  phase: string;
}

const SQL = {
  readStudent: `SELECT * FROM students WHERE district_id = ? AND sourced_id = ?`,
  writeStudent: `INSERT INTO students (district_id, sourced_id, unique_id, given_name,
      family_name, email, school_sourced_ids, grade, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (district_id, sourced_id) DO UPDATE SET unique_id = excluded.unique_id,
      given_name = excluded.given_name, family_name = excluded.family_name,
      email = excluded.email, school_sourced_ids = excluded.school_sourced_ids,
      grade = excluded.grade, status = excluded.status`,
  readParent: `SELECT parent_id FROM parent_sources
    WHERE district_id = ? AND connector = ? AND sourced_id = ?`,
  updateParent: `UPDATE parent_accounts SET given_name = ?, family_name = ?, email = ?,
      email_normalized = ?, phone = ?, sis_role = ?, status = 'active'
    WHERE district_id = ? AND id = ?`,
  insertParent: `INSERT INTO parent_accounts (district_id, id, given_name, family_name, email,
      email_normalized, phone, role, sis_role, status, origin)
    VALUES (?, ?, ?, ?, ?, ?, ?, 'Parent', ?, 'active', 'sis')`,
  insertSource: `INSERT INTO parent_sources (district_id, connector, sourced_id, parent_id)
    VALUES (?, ?, ?, ?)`,
  readLink: `SELECT * FROM guardian_links WHERE district_id = ? AND parent_id = ?
    AND student_sourced_id = ? AND origin = 'sis'`,
  writeLink: `INSERT INTO guardian_links (district_id, parent_id, student_sourced_id, origin,
      relationship, status) VALUES (?, ?, ?, 'sis', ?, 'active')
    ON CONFLICT (district_id, parent_id, student_sourced_id, origin) DO UPDATE SET
      relationship = excluded.relationship, status = excluded.status`,
} as const;

async function sync(params: unknown): Promise<PartResult> {
  const p = params as BaselineParams;
  const store = new SqliteRosterStore(p.storeFile);
  await store.init();
  const h = store.handle();
  if (h.kind !== 'sqlite') throw new Error('baseline store must be SQLite');
  const db = h.db;
  // The naive script matches guardians by SIS id only, so the same mailbox under two SIS
  // ids becomes two accounts; invariant 7's unique index (ADR 0011) would refuse the second.
  // Its store is thrown away, so the index goes rather than the naive method changing.
  db.exec('DROP INDEX IF EXISTS parent_accounts_sis_email');
  const st = Object.fromEntries(
    Object.entries(SQL).map(([k, sql]) => [k, db.prepare(sql)]),
  ) as Record<keyof typeof SQL, Statement<unknown[]>>;
  const logger = createLogger(process.env.BENCH_LOG_LEVEL ?? 'warn');
  const district = districtFor(p.source ?? { kind: 'powerschool' }, p.sis, p.pageSize);
  const connector = createConnector(district, benchSecrets(p.sis), logger);
  if (p.codes) await accessCodeRepository(store); // creates its tables
  const connectorKind = district.connector.kind;
  const d = BENCH_DISTRICT_ID;
  const nul = <T>(v: T | undefined): T | null => (v === undefined ? null : v);

  let writes = 0;
  let reads = 0;
  let done = 0;
  const studentIds: string[] = [];
  const progress = setInterval(
    () => emit('progress', { phase: p.phase, done, total: p.students } satisfies Progress),
    250,
  );
  try {
    const t0 = performance.now();
    const ctx = {
      logger,
      signal: new AbortController().signal,
      reject: () => undefined,
    };
    await connector.readSchools(ctx); // fetched like ours; schools are not roster records
    for await (const chunk of connector.readRoster(ctx)) {
      for (const s of chunk.students) {
        st.readStudent.get(d, s.sourcedId);
        reads++;
        writes += st.writeStudent.run(
          d,
          s.sourcedId,
          s.uniqueId,
          s.givenName,
          s.familyName,
          nul(s.email),
          JSON.stringify(s.schoolSourcedIds),
          nul(s.grade),
          s.status,
        ).changes;
        if (p.codes) studentIds.push(s.sourcedId);
        done++;
      }
      const accountOf = new Map<string, string>();
      for (const g of chunk.guardians) {
        const found = st.readParent.pluck().get(d, connectorKind, g.sourcedId) as
          string | undefined;
        reads++;
        const email = normalizeEmail(g.email);
        if (found !== undefined) {
          accountOf.set(g.sourcedId, found);
          writes += st.updateParent.run(
            g.givenName,
            g.familyName,
            nul(g.email),
            nul(email),
            nul(g.phone),
            g.role,
            d,
            found,
          ).changes;
        } else {
          const id = parentAccountId(d, connectorKind, g.sourcedId);
          accountOf.set(g.sourcedId, id);
          writes += st.insertParent.run(
            d,
            id,
            g.givenName,
            g.familyName,
            nul(g.email),
            nul(email),
            nul(g.phone),
            g.role,
          ).changes;
          writes += st.insertSource.run(d, connectorKind, g.sourcedId, id).changes;
        }
      }
      for (const r of chunk.relationships) {
        const parentId = accountOf.get(r.guardianSourcedId);
        if (parentId === undefined) continue;
        st.readLink.get(d, parentId, r.studentSourcedId);
        reads++;
        writes += st.writeLink.run(d, parentId, r.studentSourcedId, nul(r.relationship)).changes;
      }
    }
    let codes = 0;
    if (p.codes) {
      const readCode = db.prepare(`SELECT code FROM access_codes WHERE district_id = ?
        AND student_sourced_id = ? AND status = 'active'`);
      const writeCode = db.prepare(`INSERT INTO access_codes (code, district_id,
        student_sourced_id, status, created_at) VALUES (?, ?, ?, 'active', ?)`);
      for (const id of studentIds) {
        reads++;
        if (readCode.get(d, id) !== undefined) continue;
        codes += writeCode.run(generateAccessCode(), d, id, new Date().toISOString()).changes;
      }
    }
    const wallMs = performance.now() - t0;
    const peakRss = memoryOf('self')?.peakRss ?? process.memoryUsage().rss;
    return {
      wallMs,
      writes: writes + codes,
      peakRss,
      details: { reads, codes, httpRequests: connector.stats().httpRequests },
    };
  } finally {
    clearInterval(progress);
    await store.close();
  }
}

/**
 * The SIS read alone: the same connector pulls the same snapshot and drops it (no store,
 * no queue). No sync of this snapshot can take less than this on one core.
 */
async function pullOnly(params: unknown): Promise<PartResult> {
  const p = params as BaselineParams;
  const logger = createLogger(process.env.BENCH_LOG_LEVEL ?? 'warn');
  const connector = createConnector(
    districtFor(p.source ?? { kind: 'powerschool' }, p.sis, p.pageSize),
    benchSecrets(p.sis),
    logger,
  );
  let done = 0;
  const progress = setInterval(
    () => emit('progress', { phase: p.phase, done, total: p.students } satisfies Progress),
    250,
  );
  try {
    const t0 = performance.now();
    const ctx = { logger, signal: new AbortController().signal, reject: () => undefined };
    await connector.readSchools(ctx);
    let records = 0;
    for await (const chunk of connector.readRoster(ctx)) {
      done += chunk.students.length;
      records += chunk.students.length + chunk.guardians.length + chunk.relationships.length;
    }
    const wallMs = performance.now() - t0;
    const peakRss = memoryOf('self')?.peakRss ?? process.memoryUsage().rss;
    return {
      wallMs,
      writes: 0,
      peakRss,
      details: { records, httpRequests: connector.stats().httpRequests },
    };
  } finally {
    clearInterval(progress);
  }
}

serve({ sync, pullOnly });
