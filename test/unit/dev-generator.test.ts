import {
  EMERGENCY_RELATIONSHIPS,
  addGuardian,
  addStudent,
  changeEmail,
  expectedRoster,
  generateDistrict,
  removeRelationship,
  restoreStudent,
  withdrawStudent,
  type PsContactRow,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import { mulberry32 } from '../../src/dev/prng.js';

const ALL = { requireDataAccess: false, requireCustodial: false };
const DATA = { requireDataAccess: true, requireCustodial: false };

function snapshot(d: SyntheticDistrict): string {
  return JSON.stringify({ schools: d.schools, students: d.students, contacts: d.contacts });
}

const isEmergencyOnly = (c: PsContactRow): boolean =>
  c.links.length > 0 && c.links.every(l => EMERGENCY_RELATIONSHIPS.includes(l.relationship));

describe('mulberry32', () => {
  it('repeats per seed and stays in range', () => {
    const a = mulberry32(5);
    const b = mulberry32(5);
    const xs = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(xs);
    expect(xs.every(x => x >= 0 && x < 1)).toBe(true);
    const c = mulberry32(6);
    expect(c.next()).not.toBe(xs[0]);
    const r = mulberry32(1);
    const ints = Array.from({ length: 1000 }, () => r.int(3, 5));
    expect(new Set(ints)).toEqual(new Set([3, 4, 5]));
  });
});

describe('generateDistrict', () => {
  const d = generateDistrict({ seed: 12345, students: 2000 });
  const guardians = d.contacts.filter(c => !isEmergencyOnly(c));
  const emergency = d.contacts.filter(isEmergencyOnly);

  it('is deterministic for a seed and differs across seeds', () => {
    expect(snapshot(generateDistrict({ seed: 12345, students: 2000 }))).toBe(snapshot(d));
    expect(snapshot(generateDistrict({ seed: 12346, students: 2000 }))).not.toBe(snapshot(d));
  });

  it('produces the requested counts, default school count, sorted ids, active students', () => {
    expect(d.students).toHaveLength(2000);
    expect(d.schools).toHaveLength(20);
    expect(generateDistrict({ seed: 1, students: 60 }).schools).toHaveLength(3);
    expect(generateDistrict({ seed: 1, students: 60, schools: 5 }).schools).toHaveLength(5);
    const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > (xs[i - 1] ?? 0));
    expect(increasing(d.students.map(s => s.id))).toBe(true);
    expect(increasing(d.contacts.map(c => c.contactId))).toBe(true);
    expect(new Set(d.students.map(s => s.local_id)).size).toBe(2000);
    expect(d.students.every(s => s.enroll_status === 'A')).toBe(true);
    const schoolIds = new Set(d.schools.map(s => s.id));
    expect(d.students.every(s => schoolIds.has(s.school_id))).toBe(true);
    const dcids = new Set(d.students.map(s => s.id));
    expect(d.contacts.every(c => c.links.every(l => dcids.has(l.studentDcid)))).toBe(true);
    // nextId() is above every id used so far.
    const maxUsed = Math.max(
      ...d.contacts.flatMap(c => [c.contactId, ...c.links.map(l => l.studentContactId)]),
    );
    expect(d.nextId()).toBeGreaterThan(maxUsed);
  });

  it('roughly holds the documented ratios', () => {
    expect(guardians.length / d.students.length).toBeGreaterThan(1.45);
    expect(guardians.length / d.students.length).toBeLessThan(1.75);
    const shared = guardians.filter(c => new Set(c.links.map(l => l.studentDcid)).size >= 2);
    expect(shared.length / guardians.length).toBeGreaterThan(0.2);
    expect(shared.length / guardians.length).toBeLessThan(0.4);
    // Shared guardians link siblings: 2–3 students.
    expect(shared.every(c => c.links.length <= 3)).toBe(true);
    const noEmail = guardians.filter(c => c.email === null).length / guardians.length;
    expect(noEmail).toBeGreaterThan(0.02);
    expect(noEmail).toBeLessThan(0.09);
    const withEmergency = new Set(emergency.flatMap(c => c.links.map(l => l.studentDcid)));
    expect(withEmergency.size / d.students.length).toBeGreaterThan(0.06);
    expect(withEmergency.size / d.students.length).toBeLessThan(0.14);
    const perPerson = new Map<string, number>();
    for (const c of guardians) perPerson.set(c.personKey, (perPerson.get(c.personKey) ?? 0) + 1);
    const dupPersons = [...perPerson.values()].filter(n => n === 2).length;
    expect(dupPersons / perPerson.size).toBeGreaterThan(0.005);
    expect(dupPersons / perPerson.size).toBeLessThan(0.04);
    expect([...perPerson.values()].every(n => n <= 2)).toBe(true);
    const twoPhones = d.contacts.filter(c => c.phone2 !== null);
    expect(twoPhones.length / d.contacts.length).toBeGreaterThan(0.05);
    expect(twoPhones.every(c => c.phone !== null)).toBe(true);
  });

  it('marks emergency-only contacts as having no data access and no custody', () => {
    expect(emergency.length).toBeGreaterThan(0);
    for (const c of emergency) {
      expect(c.links).toHaveLength(1);
      expect(c.links[0]).toMatchObject({ canAccessData: false, custodial: false });
      expect(c.account).toBeNull();
    }
  });

  it('uses accented and apostrophe names', () => {
    const names = [
      ...d.students.flatMap(s => [s.first_name, s.last_name]),
      ...d.contacts.flatMap(c => [c.firstName, c.lastName]),
    ];
    // eslint-disable-next-line no-control-regex
    expect(names.some(n => /[^\x00-\x7f]/.test(n))).toBe(true);
    expect(names.some(n => n.includes("'"))).toBe(true);
    expect(names).toContain('Nguyễn');
  });

  it('gives each person one valid, unique mailbox; duplicates differ only in case/space', () => {
    const byMailbox = new Map<string, Set<string>>();
    const byPerson = new Map<string, PsContactRow[]>();
    for (const c of d.contacts) {
      byPerson.set(c.personKey, [...(byPerson.get(c.personKey) ?? []), c]);
      if (c.email === null) continue;
      const norm = c.email.trim().toLowerCase();
      expect(norm).toMatch(/^[a-z0-9.]+@[a-z0-9.-]+\.[a-z]{2,}$/);
      byMailbox.set(norm, (byMailbox.get(norm) ?? new Set()).add(c.personKey));
    }
    expect([...byMailbox.values()].every(keys => keys.size === 1)).toBe(true);
    const dups = [...byPerson.values()].filter(cs => cs.length > 1);
    expect(dups.length).toBeGreaterThan(0);
    let rawDiffers = 0;
    for (const [a, b] of dups.map(cs => [cs[0], cs[1]] as const)) {
      expect(a?.email).not.toBeNull();
      expect(b?.email?.trim().toLowerCase()).toBe(a?.email?.trim().toLowerCase());
      expect(b?.contactId).not.toBe(a?.contactId);
      expect(b?.lastName).toBe(a?.lastName);
      if (b?.email !== a?.email) rawDiffers++;
      // Every copy is linked to at least one of the family's children.
      expect(a?.links.length).toBeGreaterThan(0);
      expect(b?.links.length).toBeGreaterThan(0);
    }
    expect(rawDiffers).toBeGreaterThan(0);
  });
});

describe('expectedRoster', () => {
  it('excludes emergency-only contacts when data access is required', () => {
    const d = generateDistrict({ seed: 77, students: 2000 });
    const emergencyKeys = new Set(d.contacts.filter(isEmergencyOnly).map(c => c.personKey));
    const strict = expectedRoster(d, DATA);
    expect(strict.students).toHaveLength(2000);
    expect(strict.accounts.some(a => emergencyKeys.has(a.personKey))).toBe(false);
    expect(strict.links.some(l => emergencyKeys.has(l.personKey))).toBe(false);
    // Without the policy they do count, so the filter above is doing the work.
    const loose = expectedRoster(d, ALL);
    expect(loose.accounts.some(a => emergencyKeys.has(a.personKey))).toBe(true);
    const custodial = expectedRoster(d, { requireDataAccess: true, requireCustodial: true });
    expect(custodial.links.length).toBeLessThan(strict.links.length);
  });

  it('merges duplicate copies into one account with a normalized email', () => {
    const d = generateDistrict({ seed: 3, students: 2000 });
    const r = expectedRoster(d, ALL);
    expect(new Set(r.accounts.map(a => a.personKey)).size).toBe(r.accounts.length);
    const merged = r.accounts.filter(a => a.contactIds.length === 2);
    expect(merged.length).toBeGreaterThan(0);
    for (const a of merged) expect(a.email).toBe(a.email?.trim().toLowerCase());
    const pairs = r.links.map(l => `${l.personKey}/${l.studentDcid}`);
    expect(new Set(pairs).size).toBe(pairs.length);
  });

  it('follows the mutation helpers', () => {
    const d = generateDistrict({ seed: 9, students: 300 });
    const student = d.students[10];
    if (!student) throw new Error('no student');
    const before = expectedRoster(d, DATA);

    withdrawStudent(d, student.id);
    const withdrawn = expectedRoster(d, DATA);
    expect(withdrawn.students.map(s => s.dcid)).not.toContain(student.id);
    expect(withdrawn.links.some(l => l.studentDcid === student.id)).toBe(false);
    restoreStudent(d, student.id);
    expect(expectedRoster(d, DATA)).toEqual(before);

    const g = addGuardian(d, student.id);
    expect(g.email).not.toBeNull();
    expect(g.links).toEqual([
      expect.objectContaining({ studentDcid: student.id, canAccessData: true }),
    ]);
    const added = expectedRoster(d, DATA);
    expect(added.accounts).toContainEqual({
      personKey: g.personKey,
      contactIds: [g.contactId],
      email: g.email,
    });

    changeEmail(d, g.contactId, '  New.Mail@Example.org ');
    expect(expectedRoster(d, DATA).accounts.find(a => a.personKey === g.personKey)?.email).toBe(
      'new.mail@example.org',
    );

    removeRelationship(d, g.contactId, student.id);
    expect(expectedRoster(d, DATA).accounts.some(a => a.personKey === g.personKey)).toBe(false);
    expect(() => removeRelationship(d, g.contactId, student.id)).toThrow(RangeError);

    const school = d.schools[0];
    if (!school) throw new Error('no school');
    const lastId = d.students.at(-1)?.id ?? 0;
    const s = addStudent(d, school.id);
    expect(s.id).toBeGreaterThan(lastId);
    expect(d.students.at(-1)).toBe(s);
    expect(s).toMatchObject({ enroll_status: 'A', school_id: school.id });
    expect(expectedRoster(d, DATA).students.at(-1)).toEqual({
      dcid: s.id,
      uniqueId: String(s.local_id),
    });
    expect(() => addStudent(d, 999_999_999)).toThrow(RangeError);
    expect(() => withdrawStudent(d, -1)).toThrow(RangeError);
  });

  it('makes mutations deterministic too', () => {
    const run = () => {
      const d = generateDistrict({ seed: 4, students: 50 });
      addGuardian(d, d.students[0]?.id ?? 0);
      addStudent(d, d.schools[0]?.id ?? 0);
      return snapshot(d);
    };
    expect(run()).toBe(run());
  });
});
