/**
 * Connector conformance suite: what every `SisConnector` must do, checked against its fake
 * SIS (real servers on loopback, or real files) fed by the seeded district generator. Each
 * connector runs it from a one-line test file:
 *
 *     runConnectorConformance(powerSchoolFactory);
 *
 * The checks: paging to completion (exactly the ground truth, every chunk
 * self-contained), an empty district, 429 honoured (Retry-After), 401 re-authentication,
 * 5xx retried then a typed error, malformed records become rejects, an interrupted pull
 * never ends as a complete snapshot, capabilities reported honestly. HTTP checks do not
 * apply to file connectors; the suite says so in the test name and checks the connector
 * does not claim HTTP traffic.
 */
import { pino } from 'pino';
import type { PullContext, SisConnector } from '../../src/connectors/types.js';
import {
  expectedRoster,
  generateDistrict,
  touchDistrict,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import { GuardianSyncError, SisHttpError } from '../../src/errors.js';
import type { RosterChunk } from '../../src/mapping/canonical.js';
import type { Reject } from '../../src/models/types.js';

export const conformanceLogger = pino({ level: 'silent' });

/** HTTP fault switches of a fake SIS (the subset every fake server offers). */
export interface HttpFaults {
  rateLimit(n: number, retryAfter: number | string): void;
  serverError(n: number): void;
  /** Invalidate issued tokens (token auth only). */
  expireTokens(): void;
  /** Student pages after `p` fail with 500 (null clears). */
  failStudentsAfterPage(p: number | null): void;
}

/** One connector wired to its fake SIS for one district. */
export interface ConformanceSubject {
  connector: SisConnector;
  /** Fake-SIS ids → generator ids. */
  dcidOf(studentSourcedId: string): number | undefined;
  contactIdOf(guardianSourcedId: string): number | undefined;
  /** HTTP connectors: the fake's fault switches. */
  faults?: HttpFaults | undefined;
  /** File connectors: damage the source so that the next pull fails part way. */
  interrupt?: (() => Promise<void>) | undefined;
  /** Token requests made so far (token-auth connectors). */
  tokenRequests?: (() => number) | undefined;
  /** A connector for the same fake with a wrong secret (HTTP connectors). */
  withWrongSecret?: (() => SisConnector) | undefined;
  close(): Promise<void>;
}

export interface ConformanceFactory {
  name: string;
  /** `token`: OAuth2-style tokens; `signed`: OAuth 1.0a; `none`: files. */
  auth: 'token' | 'signed' | 'none';
  /**
   * Build a subject: the fake SIS for `district` and a connector with page size
   * `pageSize`, `retries` retries and fast backoff.
   */
  create(
    district: SyntheticDistrict,
    opts: { pageSize: number; retries: number },
  ): Promise<ConformanceSubject>;
  /** The capabilities the connector must report with this factory's config. */
  capabilities: {
    guardianLinks: boolean;
    enrollments: boolean;
    delta: boolean;
    guardianLinksComplete: boolean;
  };
}

export function pullContext(
  rejects: Reject[] = [],
  signal = new AbortController().signal,
): PullContext {
  // records refused only: exclusions (valid records left out by policy) are tested apart
  return {
    logger: conformanceLogger,
    signal,
    reject: r => void (r.kind !== 'excluded' && rejects.push(r)),
  };
}

/** All chunks of one pull, and its rejects. Throws what the connector throws. */
export async function pullAll(
  c: SisConnector,
): Promise<{ chunks: RosterChunk[]; rejects: Reject[] }> {
  const rejects: Reject[] = [];
  const chunks: RosterChunk[] = [];
  for await (const chunk of c.readRoster(pullContext(rejects))) chunks.push(chunk);
  return { chunks, rejects };
}

// Connector output: a guardian without email is still delivered (the planner excludes it).
const POLICY = { requireDataAccess: true, requireCustodial: false, requireLogin: false };

/** Register the suite for one connector factory. */
export function runConnectorConformance(factory: ConformanceFactory): void {
  describe(`connector conformance: ${factory.name}`, () => {
    const open: ConformanceSubject[] = [];
    const make = async (
      d: SyntheticDistrict,
      o: Partial<{ pageSize: number; retries: number }> = {},
    ) => {
      const s = await factory.create(d, { pageSize: o.pageSize ?? 40, retries: o.retries ?? 3 });
      open.push(s);
      return s;
    };
    afterAll(async () => {
      await Promise.all(open.map(s => s.close()));
    });

    it('pages to completion: exactly the ground-truth students and links, each chunk self-contained', async () => {
      const d = generateDistrict({ seed: 41, students: 230 });
      const s = await make(d, { pageSize: 40 });
      const { chunks, rejects } = await pullAll(s.connector);
      expect(rejects.filter(r => r.entity !== 'run')).toEqual([]);
      expect(chunks.length).toBeGreaterThanOrEqual(Math.ceil(230 / 40));
      const truth = expectedRoster(d, POLICY);
      const students = chunks.flatMap(c => c.students.map(x => s.dcidOf(x.sourcedId)));
      expect([...students].sort()).toEqual(truth.students.map(x => x.dcid).sort());
      expect(new Set(students).size).toBe(students.length); // no student twice
      const person = new Map(d.contacts.map(c => [c.contactId, c.personKey]));
      const links = new Set(
        chunks.flatMap(c =>
          c.relationships.map(
            r =>
              `${person.get(s.contactIdOf(r.guardianSourcedId) ?? -1)}>${s.dcidOf(r.studentSourcedId)}`,
          ),
        ),
      );
      expect(links).toEqual(new Set(truth.links.map(l => `${l.personKey}>${l.studentDcid}`)));
      for (const c of chunks) {
        const g = new Set(c.guardians.map(x => x.sourcedId));
        const st = new Set(c.students.map(x => x.sourcedId));
        for (const r of c.relationships) {
          expect(g.has(r.guardianSourcedId)).toBe(true);
          expect(st.has(r.studentSourcedId)).toBe(true);
        }
      }
      // uniqueIds are the students' numbers
      const byDcid = new Map(d.students.map(x => [x.id, String(x.local_id)]));
      for (const c of chunks)
        for (const x of c.students)
          expect(x.uniqueId).toBe(byDcid.get(s.dcidOf(x.sourcedId) ?? -1));
    });

    it('an empty district completes with no students', async () => {
      const s = await make(generateDistrict({ seed: 42, students: 0 }));
      const rejects: Reject[] = [];
      await s.connector.readSchools(pullContext(rejects));
      const { chunks } = await pullAll(s.connector);
      expect(chunks.flatMap(c => c.students)).toEqual([]);
      expect(rejects).toEqual([]);
    });

    if (factory.auth === 'none') {
      it('429 / 401 / 5xx: not applicable to a file source (and the connector reports no HTTP traffic)', async () => {
        const s = await make(generateDistrict({ seed: 43, students: 20 }));
        await pullAll(s.connector);
        expect(s.connector.stats().httpRequests).toBe(0);
        expect(s.faults).toBeUndefined();
      });
    } else {
      it('honours 429 Retry-After (seconds) and then completes', async () => {
        const d = generateDistrict({ seed: 43, students: 60 });
        const s = await make(d);
        const faults = s.faults!;
        faults.rateLimit(1, 1);
        const t0 = Date.now();
        const schools = await s.connector.readSchools(pullContext());
        expect(Date.now() - t0).toBeGreaterThanOrEqual(950);
        expect(schools.length).toBe(d.schools.length);
        expect(s.connector.stats().httpByStatus['429']).toBe(1);
        const { chunks } = await pullAll(s.connector);
        expect(chunks.flatMap(c => c.students)).toHaveLength(60);
      });

      if (factory.auth === 'token') {
        it('re-authenticates once on 401 (expired token) and goes on', async () => {
          const s = await make(generateDistrict({ seed: 44, students: 60 }));
          await pullAll(s.connector);
          const before = s.tokenRequests!();
          s.faults!.expireTokens();
          const { chunks } = await pullAll(s.connector);
          expect(chunks.flatMap(c => c.students)).toHaveLength(60);
          expect(s.tokenRequests!() - before).toBe(1);
          expect(s.connector.stats().httpByStatus['401']).toBe(1);
        });
      } else {
        it('a refused signature (401) fails at once with a typed error, without a retry loop', async () => {
          const s = await make(generateDistrict({ seed: 44, students: 10 }));
          const bad = s.withWrongSecret!();
          await expect(bad.readSchools(pullContext())).rejects.toMatchObject({
            name: 'SisHttpError',
            status: 401,
          });
          expect(bad.stats().httpByStatus['401']).toBe(1);
          expect(bad.stats().httpRequests).toBe(1);
        });
      }

      it('retries a 5xx, then fails with a typed, retryable error when it persists', async () => {
        const s = await make(generateDistrict({ seed: 45, students: 30 }), { retries: 2 });
        s.faults!.serverError(1);
        expect((await s.connector.readSchools(pullContext())).length).toBeGreaterThan(0);
        s.faults!.serverError(1000);
        const before = s.connector.stats().httpByStatus['500'] ?? 0;
        let err: unknown;
        try {
          await s.connector.readSchools(pullContext());
        } catch (e) {
          err = e;
        }
        s.faults!.serverError(0);
        expect(err).toBeInstanceOf(SisHttpError);
        expect((err as SisHttpError).status).toBe(500);
        expect((err as SisHttpError).retryable).toBe(true);
        expect((s.connector.stats().httpByStatus['500'] ?? 0) - before).toBe(3); // 1 + 2 retries
      });
    }

    it('a malformed record becomes a reject naming it; the pull goes on', async () => {
      const d = generateDistrict({ seed: 46, students: 80 });
      const victim = d.students[17]!;
      victim.last_name = '';
      touchDistrict(d);
      const s = await make(d);
      const { chunks, rejects } = await pullAll(s.connector);
      const delivered = chunks.flatMap(c => c.students.map(x => s.dcidOf(x.sourcedId)));
      expect(delivered).toHaveLength(79);
      expect(delivered).not.toContain(victim.id);
      const r = rejects.filter(x => x.entity === 'student');
      expect(r).toHaveLength(1);
      expect(s.dcidOf(r[0]!.recordId.split(' ')[0]!)).toBe(victim.id);
      expect(r[0]!.reason).toMatch(/last|family/i);
    });

    it('an interrupted pull never ends as a complete snapshot', async () => {
      const s = await make(generateDistrict({ seed: 47, students: 160 }), {
        pageSize: 40,
        retries: 1,
      });
      if (s.faults) s.faults.failStudentsAfterPage(1);
      else await s.interrupt!();
      const chunks: RosterChunk[] = [];
      let err: unknown;
      try {
        for await (const c of s.connector.readRoster(pullContext())) chunks.push(c);
      } catch (e) {
        err = e;
      }
      s.faults?.failStudentsAfterPage(null);
      expect(err).toBeInstanceOf(GuardianSyncError);
      expect(chunks.flatMap(c => c.students).length).toBeLessThan(160);
      // an aborted pull (shutdown) stops too, with the abort reason
      const ac = new AbortController();
      const it = s.connector.readRoster(pullContext([], ac.signal))[Symbol.asyncIterator]();
      ac.abort(new Error('shutdown'));
      await expect(it.next()).rejects.toThrow();
    });

    it('reports its capabilities honestly', async () => {
      const s = await make(generateDistrict({ seed: 48, students: 90 }));
      const caps = s.connector.capabilities;
      expect({
        guardianLinks: caps.guardianLinks,
        enrollments: caps.enrollments,
        delta: caps.delta,
        guardianLinksComplete: caps.guardianLinksComplete ?? true,
      }).toEqual(factory.capabilities);
      const { chunks } = await pullAll(s.connector);
      const rels = chunks.flatMap(c => c.relationships);
      if (caps.guardianLinks) expect(rels.length).toBeGreaterThan(0);
      for (const c of chunks) {
        expect(c.relationshipsSupplied).toBe(
          caps.guardianLinks && (caps.guardianLinksComplete ?? true),
        );
        if (caps.enrollments) {
          expect(Array.isArray(c.sections) && Array.isArray(c.enrollments)).toBe(true);
        } else {
          expect(c.sections).toBeUndefined();
          expect(c.enrollments).toBeUndefined();
        }
      }
      if (caps.enrollments)
        expect(chunks.flatMap(c => c.enrollments ?? []).length).toBeGreaterThan(0);
      const snap = s.connector.stats().snapshot;
      if (!caps.delta) expect(snap === undefined || snap === 'full').toBe(true);
      else expect(snap).toBe('full'); // no saved watermark: a first pull is always full
    });
  });
}
