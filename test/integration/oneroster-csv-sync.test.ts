/**
 * End to end: OneRoster CSV packages (zips in a drop folder, and over SFTP from a real ssh2
 * server on loopback) → connector → BullMQ (real Redis) → reconcile → SQLite, checked
 * against the generator's ground truth. Bulk, then delta (adds/updates only), then bulk.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  addGuardian,
  changeEmail,
  generateDistrict,
  withdrawStudent,
  type SyntheticDistrict,
} from '../../src/dev/district-generator.js';
import { OneRosterDistrict } from '../../src/dev/oneroster-adapter.js';
import { oneRosterCsvFiles, writeOneRosterCsvZip } from '../../src/dev/oneroster-csv.js';
import { storeRoster, truthRoster } from '../helpers/roster-truth.js';
import { startTestSftpServer, type TestSftpServer } from '../helpers/sftp-server.js';
import { startSisHarness, type SisHarness } from '../helpers/sis-harness.js';

describe('OneRoster CSV zip drop: bulk, then delta, then bulk', () => {
  let sis: SyntheticDistrict;
  let roster: OneRosterDistrict;
  let h: SisHarness;
  let drop: string;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 61, students: 260 });
    roster = new OneRosterDistrict(sis, { version: '1.1', enabledUser: 'upper' });
    h = await startSisHarness({
      district: {
        connector: {
          kind: 'oneroster-csv',
          source: { type: 'zip', path: '/placeholder' },
          pageSize: 100,
          enrollments: true,
        },
      },
    });
    drop = join(h.dir, 'drop');
    mkdirSync(drop);
    h.reconfigure({
      connector: {
        kind: 'oneroster-csv',
        source: { type: 'zip', path: drop },
        pageSize: 100,
        enrollments: true,
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a bulk zip (BOM, misspelled agentSourceIds header, TRUE) syncs the ground truth', async () => {
    const files = oneRosterCsvFiles(roster.view(), {
      mode: 'bulk',
      misspelledAgentHeader: true,
      upperCaseBooleans: true,
    });
    expect(files['users.csv']?.startsWith('\uFEFF')).toBe(true);
    expect(files['users.csv']).toContain('agentSourceIds');
    await writeOneRosterCsvZip(join(drop, '01-bulk.zip'), files);
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    const truth = truthRoster(sis);
    expect(await storeRoster(h.store, h.districtId, sis, roster.ids)).toEqual(truth);
    expect(run.counts.pull).toEqual({ full: 1 });
    process.stdout.write(
      `OneRoster CSV bulk sync: ${truth.students.length} students, ${truth.persons.length} parent accounts, ${truth.links.length} links, ${writes} writes\n`,
    );
  });

  it('a delta zip adds and updates, and removes nothing', async () => {
    const since = new Date(Date.now() - 1).toISOString();
    const student = sis.students[3]!;
    const g = addGuardian(sis, student.id);
    const entries = new Map<string, number>();
    for (const c of sis.contacts) entries.set(c.personKey, (entries.get(c.personKey) ?? 0) + 1);
    const emailed = sis.contacts.find(
      c =>
        c.email &&
        entries.get(c.personKey) === 1 &&
        c.links.some(l => l.canAccessData && l.detailActive),
    )!;
    changeEmail(sis, emailed.contactId, `delta.${emailed.contactId}@example.com`);
    const withdrawn = sis.students[90]!;
    withdrawStudent(sis, withdrawn.id);
    const files = oneRosterCsvFiles(roster.view(), { mode: 'delta', since });
    const deltaRows = (files['users.csv'] ?? '').trim().split('\n').length - 1;
    expect(deltaRows).toBeGreaterThanOrEqual(4); // new guardian, its student, the emailed one, the withdrawn
    expect(deltaRows).toBeLessThan(20);
    await writeOneRosterCsvZip(join(drop, '02-delta.zip'), files);

    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(run.counts.pull).toEqual({ delta: 1 });
    expect(run.counts.student?.deactivate).toBeUndefined();
    expect(run.counts.parent?.create).toBe(1);
    const got = await storeRoster(h.store, h.districtId, sis, roster.ids);
    expect(got.students).toContain(withdrawn.id);
    expect(got.links).toContain(`${g.personKey}>${student.id}`);
    const account = (await h.store.getParents(h.districtId)).find(p =>
      p.sources.some(s => s.sourcedId === roster.ids.guardian(emailed.contactId)),
    );
    expect(account?.email).toBe(`delta.${emailed.contactId}@example.com`);
  });

  it('the next bulk zip removes what the delta could not', async () => {
    await writeOneRosterCsvZip(
      join(drop, '03-bulk.zip'),
      oneRosterCsvFiles(roster.view(), { mode: 'bulk' }),
    );
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(run.counts.pull).toEqual({ full: 1 });
    expect(run.counts.student).toEqual({ deactivate: 1 });
    expect(await storeRoster(h.store, h.districtId, sis, roster.ids)).toEqual(truthRoster(sis));
  });

  it('a damaged package fails the run with the file and line, and changes nothing', async () => {
    const files = oneRosterCsvFiles(roster.view(), { mode: 'bulk' });
    const users = files['users.csv'] ?? '';
    await writeOneRosterCsvZip(join(drop, '04-broken.zip'), {
      ...files,
      'users.csv': `${users.slice(0, Math.floor(users.length / 2))}\n"never closed,`,
    });
    const before = await storeRoster(h.store, h.districtId, sis, roster.ids);
    const { run, writes } = await h.sync();
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/users\.csv/);
    expect(writes).toBe(0);
    expect(await storeRoster(h.store, h.districtId, sis, roster.ids)).toEqual(before);
  });
});

describe('OneRoster CSV over SFTP (1.2 zip, real ssh2 server on loopback)', () => {
  let sis: SyntheticDistrict;
  let roster: OneRosterDistrict;
  let h: SisHarness;
  let sftp: TestSftpServer;
  let connector: Record<string, unknown>;
  beforeAll(async () => {
    sis = generateDistrict({ seed: 62, students: 200 });
    roster = new OneRosterDistrict(sis, { version: '1.2' });
    h = await startSisHarness({
      district: {
        connector: { kind: 'oneroster-csv', source: { type: 'folder', path: '/placeholder' } },
      },
      secrets: { DROP_USER: 'district-7', DROP_PASSWORD: 'drop-secret-7' },
    });
    const root = join(h.dir, 'sftp-root');
    mkdirSync(join(root, 'outbound'), { recursive: true });
    await writeOneRosterCsvZip(
      join(root, 'outbound', 'oneroster-20250115.zip'),
      oneRosterCsvFiles(roster.view(), { mode: 'bulk' }),
    );
    sftp = await startTestSftpServer(root, { username: 'district-7', password: 'drop-secret-7' });
    connector = {
      kind: 'oneroster-csv',
      source: {
        type: 'sftp',
        host: sftp.host,
        port: sftp.port,
        usernameEnv: 'DROP_USER',
        passwordEnv: 'DROP_PASSWORD',
        hostKeySha256: `SHA256:${sftp.hostKeySha256}`,
        remotePath: '/outbound',
        timeoutMs: 5000,
      },
      pageSize: 80,
    };
    h.reconfigure({ connector });
  });
  afterAll(async () => {
    await h?.close();
    await sftp?.close();
  });

  it('fetches the newest zip and syncs the ground truth', async () => {
    const { run, writes } = await h.sync();
    expect(run.status).toBe('succeeded');
    const truth = truthRoster(sis);
    expect(await storeRoster(h.store, h.districtId, sis, roster.ids)).toEqual(truth);
    expect(sftp.logins).toBe(2); // schools and roster each fetch the package
    process.stdout.write(
      `OneRoster CSV over SFTP: ${truth.students.length} students, ${truth.persons.length} parent accounts, ${truth.links.length} links, ${writes} writes\n`,
    );
  });

  it('refuses a server whose host key does not match, changing nothing', async () => {
    const source = connector.source as Record<string, unknown>;
    h.reconfigure({
      connector: {
        ...connector,
        source: { ...source, hostKeySha256: 'AAAAC3NzaC1lZDI1NTE5AAAAIBogusBogusBogus' },
      },
    });
    const { run, writes } = await h.sync();
    expect(run.status).toBe('failed');
    expect(run.error).toMatch(/host key does not match/);
    expect(writes).toBe(0);
    h.reconfigure({ connector });
  });
});
