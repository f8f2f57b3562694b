/**
 * Benchmark child process: the seeded synthetic district behind a fake PowerSchool server
 * (`src/dev/`). It lives in its own process because the generator's district is large
 * (≈ 520 MB of heap at 500,000 students) and must not count against the worker.
 *
 * Methods (see `bench/ipc.ts`): `start`, `snapshot`, `stats`, `churn`, `eschool`, `close`;
 * `sites` / `closeSites` serve several districts at once, one fake server each (the fairness
 * bench, `bench/fairness.ts`).
 */
import { generateDistrict, type SyntheticDistrict } from '../src/dev/district-generator.js';
import { expectedESchoolRoster } from '../src/dev/eschoolplus-adapter.js';
import { writeESchoolFiles } from '../src/dev/eschoolplus-files.js';
import { startFakePowerSchool, type FakePowerSchool } from '../src/dev/powerschool-server.js';
import { applyChurn, snapshotFigures } from './churn.js';
import { serve } from './ipc.js';

/** What `start` returns. */
export interface SisStarted {
  url: string;
  clientId: string;
  clientSecret: string;
  schools: number;
  contacts: number;
  generateMs: number;
}

/** One district of `sites`: its id, students and generator seed. */
export interface SiteSpec {
  id: string;
  students: number;
  seed: number;
}

/** What `sites` returns per district: how to reach its fake PowerSchool. */
export interface SiteStarted {
  id: string;
  url: string;
  clientId: string;
  clientSecret: string;
}

let district: SyntheticDistrict | undefined;
const sites = new Map<string, FakePowerSchool>();
let server: FakePowerSchool | undefined;

function need(): { d: SyntheticDistrict; s: FakePowerSchool } {
  if (!district || !server) throw new Error('call start first');
  return { d: district, s: server };
}

serve({
  async start(params) {
    const p = params as { students: number; seed: number; maxPageSize: number };
    const t0 = performance.now();
    district = generateDistrict({ seed: p.seed, students: p.students });
    const generateMs = performance.now() - t0;
    server = await startFakePowerSchool(district, { maxPageSize: p.maxPageSize });
    return {
      url: server.url,
      clientId: server.clientId,
      clientSecret: server.clientSecret,
      schools: district.schools.length,
      contacts: district.contacts.length,
      generateMs,
    } satisfies SisStarted;
  },
  /** Records the SIS currently delivers (see `snapshotFigures`). */
  snapshot() {
    return Promise.resolve(snapshotFigures(need().d));
  },
  /** HTTP requests received so far (token requests included). */
  stats() {
    return Promise.resolve({ requests: need().s.stats.requests });
  },
  churn(params) {
    const p = params as { percent: number; seed: number };
    return Promise.resolve(applyChurn(need().d, p.percent, p.seed));
  },
  /**
   * Write the district as an eSchoolPLUS download-definition file set without
   * REG_STU_CONTACT (a link-less SIS) into `dir`; returns its rows and the ground truth.
   */
  async eschool(params) {
    const { dir } = params as { dir: string };
    const w = await writeESchoolFiles(need().d, { dir, studentContacts: false });
    const t = expectedESchoolRoster(need().d, {
      studentContacts: false,
      requireWebAccess: false,
      requireCustodialGuardian: false,
    });
    return {
      rows: w.rows,
      expected: { students: t.students.length, accounts: t.persons.length, links: t.links },
    };
  },
  async close() {
    await server?.close();
    server = undefined;
    return {};
  },
  /**
   * Generate each district of `sites` (`SiteSpec[]`) and serve it from its own fake
   * PowerSchool (pages of at most `maxPageSize`); returns `SiteStarted[]` in the same order.
   * Throws when an id is already served.
   */
  async sites(params) {
    const p = params as { sites: SiteSpec[]; maxPageSize: number };
    const out: SiteStarted[] = [];
    for (const spec of p.sites) {
      if (sites.has(spec.id)) throw new Error(`site ${spec.id} already started`);
      const fake = await startFakePowerSchool(
        generateDistrict({ seed: spec.seed, students: spec.students }),
        { maxPageSize: p.maxPageSize },
      );
      sites.set(spec.id, fake);
      out.push({
        id: spec.id,
        url: fake.url,
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
      });
    }
    return out;
  },
  async closeSites() {
    for (const fake of sites.values()) await fake.close();
    sites.clear();
    return {};
  },
});
