/**
 * Benchmark child process: the seeded synthetic district behind a fake PowerSchool server
 * (`src/dev/`). It lives in its own process because the generator's district is large
 * (≈ 520 MB of heap at 500,000 students) and must not count against the worker.
 *
 * Methods (see `bench/ipc.ts`): `start`, `snapshot`, `stats`, `churn`, `eschool`, `close`.
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

let district: SyntheticDistrict | undefined;
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
});
