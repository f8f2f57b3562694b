/**
 * Read-side indexes over a `SyntheticDistrict` for the fake SIS servers: links per student
 * (compressed sparse rows, sorted by contactId), students per enrollment status, and the
 * row layout of the flattened contact PowerQuery. Rebuilt lazily when the district changes
 * (mutation helpers or `touchDistrict`), so a 500,000-student district answers each page in
 * time proportional to the page, not the district.
 */
import {
  districtVersion,
  type PsContactLink,
  type PsContactRow,
  type PsStudentRow,
  type SyntheticDistrict,
} from './district-generator.js';

/** Indexes for one version of one district. Indices refer to `district.students` etc. */
export interface DistrictIndex {
  /** Links of student i: positions `linkStart[i]` … `linkStart[i+1]-1` of the two arrays below. */
  linkStart: Int32Array;
  /** Index into `district.contacts`. */
  linkContact: Int32Array;
  /** Index into that contact's `links`. */
  linkPos: Int32Array;
  /** PowerQuery rows before student i (each link yields max(1, phone count) rows). */
  rowStart: Float64Array;
  /** Student indices having a given `enroll_status`, built on demand. */
  byStatus: Map<string, Int32Array>;
}

interface Cached {
  version: number;
  students: number;
  contacts: number;
  index: DistrictIndex;
}

const cache = new WeakMap<SyntheticDistrict, Cached>();

/** Index of the first student whose dcid is ≥ `dcid` (students are sorted by dcid). */
export function studentLowerBound(students: readonly PsStudentRow[], dcid: number): number {
  let lo = 0;
  let hi = students.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((students[mid]?.id ?? Infinity) < dcid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the student with DCID `dcid`, or -1. */
export function studentIndex(students: readonly PsStudentRow[], dcid: number): number {
  const i = studentLowerBound(students, dcid);
  return students[i]?.id === dcid ? i : -1;
}

/**
 * The phone values a contact's PowerQuery rows carry, one row each (join with its phones):
 * its non-null phones, or `[null]` (one row without `phonenumber`) when it has none.
 */
export function contactPhones(c: PsContactRow): (string | null)[] {
  if (c.phone === null && c.phone2 === null) return [null];
  const out: string[] = [];
  if (c.phone !== null) out.push(c.phone);
  if (c.phone2 !== null) out.push(c.phone2);
  return out;
}

function phoneRows(c: PsContactRow): number {
  return (c.phone !== null ? 1 : 0) + (c.phone2 !== null ? 1 : 0) || 1;
}

function build(d: SyntheticDistrict): DistrictIndex {
  const n = d.students.length;
  const counts = new Int32Array(n + 1);
  let total = 0;
  // Pass 1: links per student.
  for (const c of d.contacts) {
    for (const l of c.links) {
      const i = studentIndex(d.students, l.studentDcid);
      if (i >= 0) {
        counts[i + 1] = (counts[i + 1] ?? 0) + 1;
        total++;
      }
    }
  }
  const linkStart = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) linkStart[i + 1] = (linkStart[i] ?? 0) + (counts[i + 1] ?? 0);
  const fill = linkStart.slice(0, n);
  const linkContact = new Int32Array(total);
  const linkPos = new Int32Array(total);
  const rowCounts = new Float64Array(n);
  // Pass 2: fill, in contacts order (ascending contactId when the district is well formed).
  for (let ci = 0; ci < d.contacts.length; ci++) {
    const c = d.contacts[ci];
    if (!c) continue;
    const rows = phoneRows(c);
    for (let p = 0; p < c.links.length; p++) {
      const l = c.links[p];
      if (!l) continue;
      const i = studentIndex(d.students, l.studentDcid);
      if (i < 0) continue;
      const at = fill[i] ?? 0;
      fill[i] = at + 1;
      linkContact[at] = ci;
      linkPos[at] = p;
      rowCounts[i] = (rowCounts[i] ?? 0) + rows;
    }
  }
  // Keep each student's links ordered by contactId even for hand-made districts.
  for (let i = 0; i < n; i++) {
    const from = linkStart[i] ?? 0;
    const to = linkStart[i + 1] ?? from;
    for (let a = from + 1; a < to; a++) {
      const ci = linkContact[a] ?? 0;
      const lp = linkPos[a] ?? 0;
      const key = d.contacts[ci]?.contactId ?? 0;
      let b = a - 1;
      while (b >= from && (d.contacts[linkContact[b] ?? 0]?.contactId ?? 0) > key) {
        linkContact[b + 1] = linkContact[b] ?? 0;
        linkPos[b + 1] = linkPos[b] ?? 0;
        b--;
      }
      linkContact[b + 1] = ci;
      linkPos[b + 1] = lp;
    }
  }
  const rowStart = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) rowStart[i + 1] = (rowStart[i] ?? 0) + (rowCounts[i] ?? 0);
  return { linkStart, linkContact, linkPos, rowStart, byStatus: new Map() };
}

/**
 * The index of `d`'s current state (cached; rebuilt when `districtVersion(d)` or the array
 * lengths changed). Edits made without the mutation helpers need `touchDistrict(d)`.
 */
export function districtIndex(d: SyntheticDistrict): DistrictIndex {
  const version = districtVersion(d);
  const hit = cache.get(d);
  if (
    hit &&
    hit.version === version &&
    hit.students === d.students.length &&
    hit.contacts === d.contacts.length
  ) {
    return hit.index;
  }
  const index = build(d);
  cache.set(d, { version, students: d.students.length, contacts: d.contacts.length, index });
  return index;
}

/** Student indices (ascending) with `enroll_status === status`. */
export function studentsWithStatus(d: SyntheticDistrict, status: string): Int32Array {
  const idx = districtIndex(d);
  let list = idx.byStatus.get(status);
  if (!list) {
    let n = 0;
    for (const s of d.students) if (s.enroll_status === status) n++;
    list = new Int32Array(n);
    let k = 0;
    for (let i = 0; i < d.students.length; i++) {
      if (d.students[i]?.enroll_status === status) list[k++] = i;
    }
    idx.byStatus.set(status, list);
  }
  return list;
}

/** One link of a student, with its contact. */
export interface StudentLink {
  contact: PsContactRow;
  link: PsContactLink;
}

/** The links of the student at index `i`, ordered by contactId. */
export function linksOfStudent(d: SyntheticDistrict, i: number): StudentLink[] {
  const idx = districtIndex(d);
  const out: StudentLink[] = [];
  const from = idx.linkStart[i] ?? 0;
  const to = idx.linkStart[i + 1] ?? from;
  for (let k = from; k < to; k++) {
    const contact = d.contacts[idx.linkContact[k] ?? -1];
    const link = contact?.links[idx.linkPos[k] ?? -1];
    if (contact && link) out.push({ contact, link });
  }
  return out;
}
