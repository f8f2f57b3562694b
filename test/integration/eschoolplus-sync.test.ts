/**
 * End to end: eSchoolPLUS download-definition files (written by the fake writer, Windows-1252,
 * broken rows, priority-99 duplicates) → eSchoolPLUS connector (local folder or a real SFTP
 * server on loopback) → BullMQ (real Redis) → reconcile → SQLite, with the access-code
 * fallback for link-less file sets. Expected values come from the generator's ground truth
 * (`expectedESchoolRoster`), never from the mapper.
 */
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import {
  ESCHOOL_RELATION_CODES,
  eschoolContactId,
  expectedESchoolRoster,
  toCp1252,
  type ESchoolTruthOptions,
} from '../../src/dev/eschoolplus-adapter.js';
import { writeESchoolFiles, type ESchoolFileSet } from '../../src/dev/eschoolplus-files.js';
import {
  EMERGENCY_RELATIONSHIPS,
  generateDistrict,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import { accessCodeRepository } from '../../src/models/access-codes/index.js';
import { changeLogRepository } from '../../src/models/changes/index.js';
import type { RosterStore } from '../../src/models/types.js';
import { startSisHarness, type SisHarness } from '../helpers/sis-harness.js';
import { startTestSftpServer, type TestSftpServer } from '../helpers/sftp-server.js';

type Source = Record<string, unknown>;

function config(source: Source, connector: Record<string, unknown> = {}) {
  return {
    connector: {
      kind: 'eschoolplus',
      source,
      format: { endOfRecordMarker: '#!#' },
      relationCodes: ESCHOOL_RELATION_CODES,
      pageSize: 80,
      ...connector,
    },
    accessCodes: { enabled: true },
    policies: { deletionThresholdPercent: 100 },
  };
}
const WITH_STU = { files: { studentContacts: { name: 'REG_STU_CONTACT.txt' } } };

/** Active accounts as `given|family|email[|students]` lines, and active sis links. */
async function storeLines(store: RosterStore, districtId: string, withStudents: boolean) {
  const parents = (await store.getParents(districtId)).filter(p => p.status === 'active');
  const links = (await store.getLinks(districtId)).filter(
    l => l.status === 'active' && l.origin === 'sis',
  );
  const of = new Map<string, string[]>();
  for (const l of links) of.set(l.parentId, [...(of.get(l.parentId) ?? []), l.studentSourcedId]);
  return {
    parents,
    links: links.length,
    students: (await store.getStudents(districtId))
      .filter(s => s.status === 'active')
      .map(s => s.sourcedId)
      .sort(),
    lines: parents
      .map(
        p =>
          `${p.givenName}|${p.familyName}|${p.emailNormalized ?? ''}` +
          (withStudents ? `|${(of.get(p.id) ?? []).sort().join(',')}` : ''),
      )
      .sort(),
  };
}

function truth(sis: SyntheticDistrict, o: ESchoolTruthOptions, withStudents: boolean) {
  const t = expectedESchoolRoster(sis, o);
  return {
    ...t,
    lines: t.persons
      .map(
        p =>
          `${p.givenName}|${p.familyName}|${p.email ?? ''}` +
          (withStudents ? `|${p.students.join(',')}` : ''),
      )
      .sort(),
  };
}

const victimsOf = (w: ESchoolFileSet) =>
  new Set(w.unrepairable.map(u => Number(u.contactId) - 1_400_000));

describe('eSchoolPLUS default mode without REG_STU_CONTACT: accounts, no links, a code per student', () => {
  let sis: SyntheticDistrict;
  let files: string;
  let w: ESchoolFileSet;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 31, students: 300 });
    files = mkdtempSync(join(tmpdir(), 'gsync-esp-'));
    w = await writeESchoolFiles(sis, {
      dir: files,
      studentContacts: false,
      lineBreaks: 4,
      unrepairable: 2,
    });
    h = await startSisHarness({ district: config({ type: 'folder', path: files }) });
  });
  afterAll(async () => {
    await h?.close();
    rmSync(files, { recursive: true, force: true });
  });

  it('declares guardianLinks: false and creates exactly the guardian accounts, with zero links', async () => {
    expect(h.ctx.connectorFor(h.ctx.district(h.districtId)).capabilities.guardianLinks).toBe(false);
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const t = truth(
      sis,
      {
        studentContacts: false,
        requireWebAccess: false,
        requireCustodialGuardian: false,
        excludeContactIds: victimsOf(w),
      },
      false,
    );
    const got = await storeLines(h.store, h.districtId, false);
    expect(got.students).toEqual(t.students);
    expect(got.lines).toEqual(t.lines);
    expect(got.links).toBe(0);
    expect((await h.store.getLinks(h.districtId)).length).toBe(0);
    // P/M address "contacts" and emergency contacts never became accounts.
    const sources = got.parents.flatMap(p => p.sources.map(s => s.sourcedId));
    expect(sources.some(s => Number(s) >= 9_000_000)).toBe(false);
    const emergencyOnly = sis.contacts.filter(c =>
      c.links.every(l => EMERGENCY_RELATIONSHIPS.includes(l.relationship)),
    );
    expect(emergencyOnly.length).toBeGreaterThan(0);
    for (const c of emergencyOnly) expect(sources).not.toContain(eschoolContactId(c));
  });

  it('every active student has exactly one access code (the fallback)', async () => {
    const repo = await accessCodeRepository(h.store);
    const students = (await h.store.getStudents(h.districtId)).filter(s => s.status === 'active');
    for (const s of students) {
      const codes = (await repo.codesOfStudent(h.districtId, s.sourcedId)).filter(
        c => c.status === 'active',
      );
      expect(codes).toHaveLength(1);
    }
    expect(await repo.countActiveCodes(h.districtId)).toBe(students.length);
    const [run] = await h.store.listRuns(h.districtId, 1);
    expect(run?.counts.code?.issue).toBe(students.length);
  });

  it('a first sync issues the codes with its student chunks (ADR 0018), each logged with the run as cause', async () => {
    const [run] = await h.store.listRuns(h.districtId, 1);
    if (!run) throw new Error('no run');
    const log = await changeLogRepository(h.store);
    const entries = await log.list(h.districtId, { causeIds: [run.id], limit: 10_000 });
    const codes = entries.filter(e => e.entity === 'code');
    const students = entries.filter(e => e.entity === 'student' && e.action === 'create');
    const parents = entries.filter(e => e.entity === 'parent' && e.action === 'create');
    expect(codes).toHaveLength(students.length);
    expect(new Set(codes.map(e => e.studentSourcedId))).toEqual(
      new Set(students.map(e => e.entityId)),
    );
    for (const e of codes) {
      expect(e.action).toBe('create');
      expect(e.cause).toMatchObject({ kind: 'code-issue', id: run.id });
    }
    // Link-less chunks: students first, then the accounts. Codes issued by the apply step sit
    // among the student entries, before the first account; a finalize pass would log them last.
    const firstParent = Math.min(...parents.map(e => e.seq));
    expect(parents.length).toBeGreaterThan(0);
    expect(Math.max(...codes.map(e => e.seq))).toBeLessThan(firstParent);
  });

  it('reports unrepairable rows with their line numbers, and parked priority-99 duplicates', async () => {
    const [run] = await h.store.listRuns(h.districtId, 1);
    if (!run) throw new Error('no run');
    const rejects = await h.store.listRejects(run.id, 0, 1000, { kind: 'rejected' });
    const lines = rejects
      .filter(r => /unrepairable/.test(r.reason))
      .map(r => r.recordId)
      .sort();
    const want = w.unrepairable
      .map(
        u =>
          `${u.file} ${u.firstLine === u.lastLine ? `line ${u.firstLine}` : `lines ${u.firstLine}-${u.lastLine}`}`,
      )
      .sort();
    expect(want).toHaveLength(2);
    expect(lines).toEqual(want);
    const parked = rejects.filter(r => /CONTACT_PRIORITY 99/.test(r.reason));
    expect(w.parkedRows).toBeGreaterThan(0);
    expect(parked).toHaveLength(w.parkedRows);
    expect(run.rejectCount).toBe(rejects.length);
    // guardians without email are listed apart, as exclusions (issue 18 §3)
    const excluded = await h.store.listRejects(run.id, 0, 1000, { kind: 'excluded' });
    expect(excluded.every(r => r.reason === 'no email or username')).toBe(true);
    expect(rejects.length).toBe(2 + w.parkedRows);
  });

  it('decodes Windows-1252: accented names survive', async () => {
    const raw = readFileSync(join(files, 'REG.txt'));
    expect(raw.includes(Buffer.from('ü', 'utf8'))).toBe(false); // not UTF-8 on disk
    const stored = await h.store.getStudents(h.districtId);
    const byId = new Map(stored.map(s => [s.sourcedId, s]));
    let accented = 0;
    for (const s of sis.students) {
      const got = byId.get(String(s.local_id));
      expect(got?.familyName).toBe(toCp1252(s.last_name));
      expect(got?.givenName).toBe(toCp1252(s.first_name));
      if (/[^\x20-\x7e]/.test(got?.familyName ?? '') || /[^\x20-\x7e]/.test(got?.givenName ?? ''))
        accented++;
    }
    expect(accented).toBeGreaterThan(5);
    const parents = await h.store.getParents(h.districtId);
    expect(parents.some(p => /[éèëüöøåçñ]/i.test(`${p.givenName}${p.familyName}`))).toBe(true);
  });

  it('a no-change resync writes nothing and issues no new code', async () => {
    const repo = await accessCodeRepository(h.store);
    const before = await repo.countActiveCodes(h.districtId);
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(writes).toBe(0);
    expect(run.counts.code).toBeUndefined();
    expect(await repo.countActiveCodes(h.districtId)).toBe(before);
  });
});

describe('eSchoolPLUS default mode with REG_STU_CONTACT: the policy picks the accounts, still no links', () => {
  it('creates accounts for guardians whose G rows pass the flags, and no link', async () => {
    const sis = generateDistrict({ seed: 36, students: 200 });
    const files = mkdtempSync(join(tmpdir(), 'gsync-esp-'));
    await writeESchoolFiles(sis, { dir: files, lineBreaks: 2 });
    const h = await startSisHarness({
      district: config({ type: 'folder', path: files }, WITH_STU),
    });
    try {
      expect(h.ctx.connectorFor(h.ctx.district(h.districtId)).capabilities.guardianLinks).toBe(
        false,
      );
      const { run } = await h.sync();
      expect(run.status).toBe('succeeded');
      const t = truth(
        sis,
        { studentContacts: true, requireWebAccess: true, requireCustodialGuardian: false },
        false,
      );
      const all = truth(
        sis,
        { studentContacts: true, requireWebAccess: false, requireCustodialGuardian: false },
        false,
      );
      expect(t.lines.length).toBeLessThan(all.lines.length); // the flags matter here
      const got = await storeLines(h.store, h.districtId, false);
      expect(got.lines).toEqual(t.lines);
      expect((await h.store.getLinks(h.districtId)).length).toBe(0);
      expect(run.counts.code?.issue).toBe(t.students.length);
    } finally {
      await h.close();
      rmSync(files, { recursive: true, force: true });
    }
  });
});

describe('eSchoolPLUS link mode: links from the G rows of REG_STU_CONTACT', () => {
  let sis: SyntheticDistrict;
  let files: string;
  let w: ESchoolFileSet;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 32, students: 300 });
    files = mkdtempSync(join(tmpdir(), 'gsync-esp-'));
    w = await writeESchoolFiles(sis, { dir: files, lineBreaks: 6, delimitersInComments: 4 });
    h = await startSisHarness({
      district: config({ type: 'folder', path: files }, { ...WITH_STU, links: 'student-contact' }),
    });
  });
  afterAll(async () => {
    await h?.close();
    rmSync(files, { recursive: true, force: true });
  });

  it('repairs broken rows and links guardians exactly as the ground truth (G rows only, web access)', async () => {
    expect(w.brokenByLineBreaks).toBeGreaterThan(6);
    expect(w.brokenByDelimiters).toBe(4);
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const t = truth(
      sis,
      { studentContacts: true, requireWebAccess: true, requireCustodialGuardian: false },
      true,
    );
    const got = await storeLines(h.store, h.districtId, true);
    expect(got.students).toEqual(t.students);
    expect(got.lines).toEqual(t.lines);
    expect(got.links).toBe(t.links);
    // Only the parked duplicates were rejected: every broken row was repaired.
    const rejects = await h.store.listRejects(run.id, 0, 1000, { kind: 'rejected' });
    expect(rejects.length).toBe(w.parkedRows);
    expect(rejects.every(r => /CONTACT_PRIORITY 99/.test(r.reason))).toBe(true);
    // Access codes: with links, only students without a guardian link get one.
    const linked = new Set((await h.store.getLinks(h.districtId)).map(l => l.studentSourcedId));
    const unlinked = t.students.filter(s => !linked.has(s));
    expect(run.counts.code?.issue ?? 0).toBe(unlinked.length);
  });

  it('follows the policy flags: CUST_GUARD required', async () => {
    h.reconfigure(
      config(
        { type: 'folder', path: files },
        { ...WITH_STU, links: 'student-contact', contacts: { requireCustodialGuardian: true } },
      ),
    );
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const t = truth(
      sis,
      { studentContacts: true, requireWebAccess: true, requireCustodialGuardian: true },
      true,
    );
    const loose = truth(
      sis,
      { studentContacts: true, requireWebAccess: true, requireCustodialGuardian: false },
      true,
    );
    expect(t.links).toBeLessThan(loose.links);
    const got = await storeLines(h.store, h.districtId, true);
    expect(got.lines).toEqual(t.lines);
    expect(got.links).toBe(t.links);
    expect(run.counts.link?.remove).toBe(loose.links - t.links);
  });

  it('an incomplete file set (unrepairable rows) adds and updates but deactivates nothing', async () => {
    const before = await storeLines(h.store, h.districtId, true);
    const broken = await writeESchoolFiles(sis, { dir: files, lineBreaks: 6, unrepairable: 3 });
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    const after = await storeLines(h.store, h.districtId, true);
    expect(after).toEqual(before); // the 3 unreadable guardians keep their accounts and links
    expect(run.counts.parent?.deactivate).toBeUndefined();
    expect(run.counts.link?.remove).toBeUndefined();
    const rejects = await h.store.listRejects(run.id, 0, 1000);
    for (const u of broken.unrepairable)
      expect(rejects.some(r => r.recordId === `${u.file} line ${u.firstLine}`)).toBe(true);
  });
});

describe('eSchoolPLUS without an end-of-record marker or header row', () => {
  it('rejoins rows by field count and still equals the ground truth', async () => {
    const sis = generateDistrict({ seed: 33, students: 200 });
    const files = mkdtempSync(join(tmpdir(), 'gsync-esp-'));
    const w = await writeESchoolFiles(sis, {
      dir: files,
      marker: null,
      headerRow: false,
      lineBreaks: 5,
      delimitersInComments: 3,
    });
    const { ESCHOOL_COLUMNS } = await import('../../src/dev/eschoolplus-adapter.js');
    const h = await startSisHarness({
      district: config(
        { type: 'folder', path: files },
        {
          format: { endOfRecordMarker: null, headerRow: false },
          links: 'student-contact',
          files: {
            students: { name: 'REG.txt', columns: [...ESCHOOL_COLUMNS.REG] },
            buildings: { name: 'REG_BUILDING.txt', columns: [...ESCHOOL_COLUMNS.REG_BUILDING] },
            contacts: { name: 'REG_CONTACT.txt', columns: [...ESCHOOL_COLUMNS.REG_CONTACT] },
            contactPhones: {
              name: 'REG_CONTACT_PHONE.txt',
              columns: [...ESCHOOL_COLUMNS.REG_CONTACT_PHONE],
            },
            studentContacts: {
              name: 'REG_STU_CONTACT.txt',
              columns: [...ESCHOOL_COLUMNS.REG_STU_CONTACT],
            },
          },
        },
      ),
    });
    try {
      const { run } = await h.sync();
      expect(run.status).toBe('succeeded');
      const t = truth(
        sis,
        { studentContacts: true, requireWebAccess: true, requireCustodialGuardian: false },
        true,
      );
      const got = await storeLines(h.store, h.districtId, true);
      expect(got.lines).toEqual(t.lines);
      expect(got.links).toBe(t.links);
      expect(run.rejectCount).toBe(w.parkedRows);
    } finally {
      await h.close();
      rmSync(files, { recursive: true, force: true });
    }
  });
});

describe('eSchoolPLUS: a bad file set fails the pull and changes nothing', () => {
  let sis: SyntheticDistrict;
  let files: string;
  let h: SisHarness;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 34, students: 120 });
    files = mkdtempSync(join(tmpdir(), 'gsync-esp-'));
    await writeESchoolFiles(sis, { dir: files });
    h = await startSisHarness({
      district: config({ type: 'folder', path: files }, { ...WITH_STU, links: 'student-contact' }),
    });
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
  });
  afterAll(async () => {
    await h?.close();
    rmSync(files, { recursive: true, force: true });
  });

  const check = async (pattern: RegExp) => {
    const before = await storeLines(h.store, h.districtId, true);
    const { run, writes } = await h.sync();
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(pattern);
    expect(writes).toBe(0);
    expect(await storeLines(h.store, h.districtId, true)).toEqual(before);
  };

  it('a header that does not match the definition names the file and the column', async () => {
    const path = join(files, 'REG_STU_CONTACT.txt');
    const text = iconv.decode(readFileSync(path), 'win1252');
    writeFileSync(path, iconv.encode(text.replace('|CONTACT_TYPE|', '|CONTACT_KIND|'), 'win1252'));
    await check(/REG_STU_CONTACT\.txt \(REG_STU_CONTACT\): column CONTACT_TYPE is missing/);
    await writeESchoolFiles(sis, { dir: files });
  });

  it('an end-of-record marker the files do not have is named as such', async () => {
    await writeESchoolFiles(sis, { dir: files, marker: null });
    await check(
      /REG\.txt \(REG\): the end-of-record marker column `#!#` is not in REG\.txt.*format\.endOfRecordMarker/,
    );
    await writeESchoolFiles(sis, { dir: files });
  });

  it('a missing file names the file', async () => {
    unlinkSync(join(files, 'REG_CONTACT_PHONE.txt'));
    await check(/REG_CONTACT_PHONE file "REG_CONTACT_PHONE\.txt" is missing/);
    await writeESchoolFiles(sis, { dir: files });
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
  });
});

describe('eSchoolPLUS SFTP pickup (real ssh2 server on loopback)', () => {
  let sis: SyntheticDistrict;
  let files: string;
  let sftp: TestSftpServer;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 35, students: 150 });
    files = mkdtempSync(join(tmpdir(), 'gsync-esp-'));
    // Date-stamped names, as task runs drop them; the newest match is read.
    await writeESchoolFiles(sis, {
      dir: files,
      lineBreaks: 3,
      names: { REG_STU_CONTACT: 'REG_STU_CONTACT_20250101.txt' },
    });
    await writeESchoolFiles(sis, {
      dir: files,
      lineBreaks: 3,
      names: { REG_STU_CONTACT: 'REG_STU_CONTACT_20250102.txt' },
    });
    sftp = await startTestSftpServer(files);
  });
  afterAll(async () => {
    await sftp?.close();
    rmSync(files, { recursive: true, force: true });
  });

  const source = (hostKeySha256: string) => ({
    type: 'sftp',
    host: sftp.host,
    port: sftp.port,
    usernameEnv: 'ESP_USER',
    passwordEnv: 'ESP_PASSWORD',
    hostKeySha256,
    remoteDir: '/',
    timeoutMs: 5000,
  });
  const secrets = () => ({ ESP_USER: sftp.username, ESP_PASSWORD: sftp.password });

  it('downloads the file set over SFTP (host key verified) and syncs it', async () => {
    const h = await startSisHarness({
      district: config(source(`SHA256:${sftp.hostKeySha256}`), {
        links: 'student-contact',
        files: { studentContacts: { name: 'REG_STU_CONTACT_*.txt' } },
      }),
      secrets: secrets(),
    });
    try {
      const { run } = await h.sync();
      expect(run.error).toBeUndefined();
      expect(run.status).toBe('succeeded');
      const t = truth(
        sis,
        { studentContacts: true, requireWebAccess: true, requireCustodialGuardian: false },
        true,
      );
      const got = await storeLines(h.store, h.districtId, true);
      expect(got.lines).toEqual(t.lines);
      expect(got.links).toBe(t.links);
      expect(sftp.logins).toBeGreaterThan(0);
    } finally {
      await h.close();
    }
  });

  it('refuses a server whose host key does not match', async () => {
    const h = await startSisHarness({
      district: config(source('AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'), WITH_STU),
      secrets: secrets(),
    });
    try {
      const { run, writes } = await h.sync();
      expect(run.status).toBe('failed');
      expect(run.error).toMatch(/SFTP .*cannot connect/);
      expect(writes).toBe(0);
    } finally {
      await h.close();
    }
  });
});

describe('eSchoolPLUS: the example district file picks date-stamped files by the most specific pattern', () => {
  it('syncs REG_X, REG_BUILDING_X, REG_CONTACT_X, REG_CONTACT_PHONE_X and REG_STU_CONTACT_X', async () => {
    const example = JSON.parse(
      readFileSync(
        join(process.cwd(), 'config/districts/example-eschoolplus.example.json'),
        'utf8',
      ),
    ) as { connector: { files: Record<string, { name: string }> } };
    expect(example.connector.files.students?.name).toBe('REG_*.txt');
    const sis = generateDistrict({ seed: 35, students: 60 });
    const files = mkdtempSync(join(tmpdir(), 'gsync-esp-'));
    const stamp = '20250115';
    await writeESchoolFiles(sis, {
      dir: files,
      names: {
        REG: `REG_${stamp}.txt`,
        REG_BUILDING: `REG_BUILDING_${stamp}.txt`,
        REG_CONTACT: `REG_CONTACT_${stamp}.txt`,
        REG_CONTACT_PHONE: `REG_CONTACT_PHONE_${stamp}.txt`,
        REG_STU_CONTACT: `REG_STU_CONTACT_${stamp}.txt`,
      },
    });
    const when = new Date('2025-01-15T05:00:00Z');
    for (const name of readdirSync(files)) utimesSync(join(files, name), when, when);
    const h = await startSisHarness({
      district: config(
        { type: 'folder', path: files },
        { files: example.connector.files, links: 'student-contact' },
      ),
    });
    try {
      const { run } = await h.sync();
      expect(run.error).toBeUndefined();
      expect(run.status).toBe('succeeded');
      const t = truth(
        sis,
        { studentContacts: true, requireWebAccess: true, requireCustodialGuardian: false },
        true,
      );
      const got = await storeLines(h.store, h.districtId, true);
      expect(got.students).toEqual(t.students);
      expect(got.lines).toEqual(t.lines);
      expect(got.links).toBe(t.links);
    } finally {
      await h.close();
      rmSync(files, { recursive: true, force: true });
    }
  });
});
