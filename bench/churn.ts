/**
 * Snapshot figures and the "1 % churn" mutation of a synthetic district, built on the
 * generator's own mutation helpers (`src/dev/district-generator.ts`). Runs inside the
 * fake-SIS child process (`bench/sis-server.ts`).
 */
import {
  addGuardian,
  changeEmail,
  expectedRoster,
  removeRelationship,
  withdrawStudent,
  type PsContactRow,
  type SyntheticDistrict,
} from '../src/dev/district-generator.js';
import { mulberry32 } from '../src/dev/prng.js';

/** The district policy the benchmark syncs with (the connector's default). */
export const BENCH_POLICY = { requireDataAccess: true, requireCustodial: false } as const;

/** What the SIS delivers now, and what a correct store holds after syncing it. */
export interface SnapshotFigures {
  /** Active (`enroll_status` A) students. */
  students: number;
  /** Contacts with at least one link that passes the policy (canonical guardians). */
  guardians: number;
  /** Contact ↔ student links that pass the policy (canonical relationships). */
  relationships: number;
  /** `students + guardians + relationships`: the records one full sync handles. */
  records: number;
  /** Ground truth (generator `expectedRoster`): accounts and links after a correct sync. */
  expected: { students: number; accounts: number; links: number };
}

/** Count the records the SIS delivers under `BENCH_POLICY` (same rules as `expectedRoster`). */
export function snapshotFigures(d: SyntheticDistrict): SnapshotFigures {
  let maxDcid = 0;
  for (const s of d.students) maxDcid = Math.max(maxDcid, s.id);
  const active = new Uint8Array(maxDcid + 1);
  let students = 0;
  for (const s of d.students) {
    if (s.enroll_status !== 'A') continue;
    active[s.id] = 1;
    students++;
  }
  let guardians = 0;
  let relationships = 0;
  for (const c of d.contacts) {
    const linked = new Set<number>();
    for (const l of c.links) {
      if (active[l.studentDcid] !== 1 || !l.detailActive || !l.canAccessData) continue;
      linked.add(l.studentDcid);
    }
    if (linked.size > 0) guardians++;
    relationships += linked.size;
  }
  const truth = expectedRoster(d, BENCH_POLICY);
  return {
    students,
    guardians,
    relationships,
    records: students + guardians + relationships,
    expected: {
      students: truth.students.length,
      accounts: truth.accounts.length,
      links: truth.links.length,
    },
  };
}

/** How many of each change `applyChurn` made. */
export interface ChurnSummary {
  /** Total changes: `round(activeStudents × percent / 100)`. */
  units: number;
  withdrawnStudents: number;
  newGuardians: number;
  changedGuardians: number;
  removedRelationships: number;
  removedGuardians: number;
}

/**
 * Change `percent` % of the district (one unit per percent of active students), split
 * 20 % withdrawn students, 20 % new guardians, 25 % guardians with a changed email, 20 %
 * removed relationships, 15 % removed guardians (every link dropped). Deterministic for a
 * given `seed` and district. Throws `RangeError` when `percent` is outside 0–100.
 */
export function applyChurn(d: SyntheticDistrict, percent: number, seed: number): ChurnSummary {
  if (!(percent >= 0 && percent <= 100)) throw new RangeError(`churn percent ${percent}`);
  const rng = mulberry32(seed);
  const activeIdx: number[] = [];
  d.students.forEach((s, i) => {
    if (s.enroll_status === 'A') activeIdx.push(i);
  });
  const units = Math.round((activeIdx.length * percent) / 100);
  const split = (share: number) => Math.round(units * share);
  const plan = {
    withdraw: split(0.2),
    add: split(0.2),
    change: split(0.25),
    removeLink: split(0.2),
    removeGuardian: 0,
  };
  plan.removeGuardian = Math.max(
    0,
    units - plan.withdraw - plan.add - plan.change - plan.removeLink,
  );

  const touchedStudents = new Set<number>();
  const pickStudent = (): number | undefined => {
    for (let tries = 0; tries < 100; tries++) {
      const i = activeIdx[rng.int(0, activeIdx.length - 1)];
      const s = i === undefined ? undefined : d.students[i];
      if (s && s.enroll_status === 'A' && !touchedStudents.has(s.id)) {
        touchedStudents.add(s.id);
        return s.id;
      }
    }
    return undefined;
  };
  const touchedContacts = new Set<number>();
  const pickContact = (ok: (c: PsContactRow) => boolean): PsContactRow | undefined => {
    for (let tries = 0; tries < 100; tries++) {
      const c = d.contacts[rng.int(0, d.contacts.length - 1)];
      if (c && !touchedContacts.has(c.contactId) && c.links.length > 0 && ok(c)) {
        touchedContacts.add(c.contactId);
        return c;
      }
    }
    return undefined;
  };

  const out: ChurnSummary = {
    units,
    withdrawnStudents: 0,
    newGuardians: 0,
    changedGuardians: 0,
    removedRelationships: 0,
    removedGuardians: 0,
  };
  if (activeIdx.length === 0) return out;
  // Contacts changed first, so that a picked contact's links still point at active students.
  for (let k = 0; k < plan.change; k++) {
    const c = pickContact(x => x.email !== null);
    if (!c) break;
    changeEmail(d, c.contactId, `changed.${c.contactId}@example.net`);
    out.changedGuardians++;
  }
  for (let k = 0; k < plan.removeLink; k++) {
    const c = pickContact(() => true);
    const l = c?.links[rng.int(0, (c?.links.length ?? 1) - 1)];
    if (!c || !l) break;
    removeRelationship(d, c.contactId, l.studentDcid);
    out.removedRelationships++;
  }
  for (let k = 0; k < plan.removeGuardian; k++) {
    const c = pickContact(() => true);
    if (!c) break;
    for (const dcid of [...new Set(c.links.map(l => l.studentDcid))])
      removeRelationship(d, c.contactId, dcid);
    out.removedGuardians++;
  }
  for (let k = 0; k < plan.add; k++) {
    const dcid = pickStudent();
    if (dcid === undefined) break;
    addGuardian(d, dcid);
    out.newGuardians++;
  }
  for (let k = 0; k < plan.withdraw; k++) {
    const dcid = pickStudent();
    if (dcid === undefined) break;
    withdrawStudent(d, dcid);
    out.withdrawnStudents++;
  }
  return out;
}
