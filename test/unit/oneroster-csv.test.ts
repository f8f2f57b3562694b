/**
 * OneRoster CSV reading (sis-reference §1.5): header aliases and BOM, quoted multi-value
 * cells, `{type:id}` userIds, the manifest, and clear errors naming file and line.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  canonicalColumn,
  csvRows,
  folderPackage,
  parseUserIds,
  readManifest,
  splitList,
  userRowToJson,
} from '../../src/connectors/oneroster/csv.js';
import { OrUser } from '../../src/connectors/oneroster/payloads.js';
import { SisPayloadError } from '../../src/errors.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'gsync-csvunit-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, text: string) => writeFileSync(join(dir, name), text, 'utf8');
const MANIFEST =
  'propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\nfile.users,bulk\nfile.orgs,absent\n';

async function rows(name: string, required: string[] = []) {
  const out: { row: Record<string, string>; line: number }[] = [];
  for await (const r of csvRows(folderPackage(dir), name, required)) out.push(r);
  return out;
}

describe('OneRoster CSV', () => {
  it('resolves header aliases and strips a BOM', () => {
    expect(canonicalColumn('\uFEFFsourcedId')).toBe('sourcedId');
    expect(canonicalColumn('agentSourceIds')).toBe('agentSourcedIds');
    expect(canonicalColumn(' GIVENNAME ')).toBe('givenName');
    expect(canonicalColumn('metadata.ic.legacysourceId')).toBe('metadata.ic.legacysourceId');
  });

  it('reads OneRoster 1.0 header names and a manifest declaring 1.0 (as 1.1)', async () => {
    expect(canonicalColumn('agents')).toBe('agentSourcedIds');
    expect(canonicalColumn('userId')).toBe('userIds');
    write('manifest.csv', 'propertyName,value\noneroster.version,1.0\n');
    write('users.csv', 'sourcedId\n');
    expect((await readManifest(folderPackage(dir))).version).toBe('1.1');
    write('manifest.csv', 'propertyName,value\noneroster.version,0.9\n');
    await expect(readManifest(folderPackage(dir))).rejects.toThrow(
      /"0\.9" is not 1\.0, 1\.1 or 1\.2/,
    );
  });

  it('ignores empty cells at the end of the header; refuses longer rows and values under them', async () => {
    write('roles.csv', 'sourcedId,userSourcedId,role,,\nr1,u1,student\nr2,u2,parent,,\n');
    expect((await rows('roles.csv')).map(r => [r.row, r.line])).toEqual([
      [{ sourcedId: 'r1', userSourcedId: 'u1', role: 'student' }, 2],
      [{ sourcedId: 'r2', userSourcedId: 'u2', role: 'parent' }, 3],
    ]);
    write('roles.csv', 'sourcedId,userSourcedId,role,,\nr1,u1,student,x\n');
    await expect(rows('roles.csv')).rejects.toThrow(
      /roles\.csv line 2: cell 4 has the value "x" but its header cell is empty/,
    );
    write('roles.csv', 'sourcedId,userSourcedId,role\nr1,u1,student,\n');
    await expect(rows('roles.csv')).rejects.toThrow(
      /roles\.csv line 2: the row has 4 cells but the header names 3 columns;/,
    );
    write('roles.csv', 'sourcedId,userSourcedId,role\nr1,u1\n');
    await expect(rows('roles.csv')).rejects.toThrow(/line 2: the row has 2 cells/);
  });

  it('splits quoted multi-value cells and parses {type:id} userIds', () => {
    expect(splitList('s100, s101,,')).toEqual(['s100', 's101']);
    expect(parseUserIds('{Fed:123},{LDAP:ab12}')).toEqual([
      { type: 'Fed', identifier: '123' },
      { type: 'LDAP', identifier: 'ab12' },
    ]);
    expect(parseUserIds('SIS:9')).toEqual([{ type: 'SIS', identifier: '9' }]);
    expect(parseUserIds('')).toEqual([]);
  });

  it('reads a users.csv row like the REST JSON (BOM, quoted lists, TRUE, blank bulk status)', async () => {
    write(
      'users.csv',
      '\uFEFFsourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourceIds,grades,password\n' +
        's1,,,TRUE,"o1,o2",student,ana,"{Fed:1},{LDAP:a1}",Ana,"O\'Brien, Jr",,1001,,,,"g1,g2","04,05",\n',
    );
    const [r] = await rows('users.csv');
    expect(r?.line).toBe(2);
    const u = OrUser.parse(userRowToJson(r!.row));
    expect(u).toMatchObject({
      sourcedId: 's1',
      status: 'active',
      enabledUser: true,
      roles: ['student'],
      orgSourcedIds: ['o1', 'o2'],
      familyName: "O'Brien, Jr",
      agentSourcedIds: ['g1', 'g2'],
      grades: ['04', '05'],
      userIds: [
        { type: 'Fed', identifier: '1' },
        { type: 'LDAP', identifier: 'a1' },
      ],
    });
  });

  it('refuses a file with a missing required column, naming it', async () => {
    write('users.csv', 'sourcedId,givenName\ns1,Ana\n');
    await expect(rows('users.csv', ['sourcedId', 'givenName', 'familyName'])).rejects.toThrow(
      /users\.csv: missing column\(s\) familyName/,
    );
  });

  it('refuses a malformed file naming the file and line', async () => {
    write('users.csv', 'sourcedId,givenName,familyName\ns1,Ana,Lee\ns2,Bo,"open\n');
    let err: unknown;
    try {
      await rows('users.csv');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SisPayloadError);
    expect((err as Error).message).toMatch(/users\.csv line \d+/);
  });

  it('reads the manifest: modes per file, unmentioned files from presence, clear errors', async () => {
    write('manifest.csv', `\uFEFF${MANIFEST}`);
    write('users.csv', 'sourcedId\n');
    write('classes.csv', 'sourcedId\n');
    const m = await readManifest(folderPackage(dir));
    expect(m.version).toBe('1.1');
    expect(m.files).toMatchObject({
      users: 'bulk',
      orgs: 'absent',
      classes: 'bulk',
      enrollments: 'absent',
    });

    write('manifest.csv', `${MANIFEST}file.enrollments,delta\n`);
    await expect(readManifest(folderPackage(dir))).rejects.toThrow(
      /file\.enrollments=delta but enrollments\.csv is missing/,
    );
    write('manifest.csv', `${MANIFEST}file.classes,sometimes\n`);
    await expect(readManifest(folderPackage(dir))).rejects.toThrow(/file\.classes "sometimes"/);
    rmSync(join(dir, 'manifest.csv'));
    await expect(readManifest(folderPackage(dir))).rejects.toThrow(/manifest\.csv is missing/);
  });
});
