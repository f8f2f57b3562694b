/**
 * OneRoster CSV packages as vendors really write them (issue 19), synced end to end from a
 * folder through real BullMQ workers into SQLite: a 1.2 `roles.csv` whose header ends with
 * empty cells, OneRoster 1.0 header names (`agents`, `userId`), a guardian linked to no
 * student (listed as an exclusion), and a package that fails after `orgs.csv` was read
 * (nothing written, not even schools; the run error reads like an admin message).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { OneRosterCsvConnectorConfig } from '../../src/config/oneroster.js';
import { OneRosterCsvConnector } from '../../src/connectors/oneroster/csv-connector.js';
import type { Reject } from '../../src/models/types.js';
import { startSisHarness, type SisHarness } from '../helpers/sis-harness.js';

const ORGS =
  'sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\nsch1,,,Lincoln Elementary,school,101,\n';
const USERS_12 =
  'sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,middleName,identifier,email,sms,phone,agentSourcedIds,grades,password,userMasterIdentifier,preferredGivenName,preferredMiddleName,preferredFamilyName,primaryOrgSourcedId\n' +
  'stu1,,,true,ana.lee,,Ana,Lee,,1001,,,,par1,03,,,,,,sch1\n' +
  'par1,,,true,maria.lee,,Maria,Lee,,,maria.lee@example.org,,,,,,,,,,\n';
const ROLES_HEADER =
  'sourcedId,status,dateLastModified,userSourcedId,roleType,role,beginDate,endDate,orgSourcedId,,';

describe('OneRoster CSV vendor quirks (folder packages)', () => {
  let h: SisHarness;
  let n = 0;
  /** Write a package into a new folder and point the district at it. */
  const usePackage = (files: Record<string, string>) => {
    const dir = join(h.dir, `pkg-${++n}`);
    mkdirSync(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    h.reconfigure({ connector: { kind: 'oneroster-csv', source: { type: 'folder', path: dir } } });
  };
  const schoolRows = () => {
    const db = new Database(join(h.dir, 'store.db'), { readonly: true });
    try {
      return (db.prepare('SELECT count(*) AS n FROM schools').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };
  beforeAll(async () => {
    h = await startSisHarness({
      district: {
        connector: { kind: 'oneroster-csv', source: { type: 'folder', path: '/placeholder' } },
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a package that fails after orgs.csv was read writes nothing, and says what to fix', async () => {
    usePackage({
      'manifest.csv': 'propertyName,value\noneroster.version,1.2\n',
      'orgs.csv': ORGS,
      'users.csv': USERS_12,
      // a row with a value under an unnamed header cell and more cells than the header
      'roles.csv': `${ROLES_HEADER}\nr1,,,stu1,primary,student,,,sch1,,,extra\n`,
    });
    const { run, writes } = await h.sync();
    expect(run.status).toBe('failed');
    expect(writes).toBe(0);
    expect(schoolRows()).toBe(0);
    expect(run.error).toMatch(/roles\.csv line 2/);
    expect(run.error).toMatch(/12 cells/);
    expect(run.error).not.toMatch(/UnrecoverableError|SisPayloadError/);
  });

  it('a 1.2 roles.csv whose header ends with empty cells is read', async () => {
    usePackage({
      'manifest.csv': 'propertyName,value\noneroster.version,1.2\n',
      'orgs.csv': ORGS,
      'users.csv': USERS_12,
      'roles.csv':
        `${ROLES_HEADER}\n` +
        'r1,,,stu1,primary,student,,,sch1\n' +
        // a row as long as the whole header (empty cells under the unnamed columns)
        'r2,,,par1,primary,parent,,,sch1,,\n',
    });
    const { run } = await h.sync();
    expect(run.error).toBeUndefined();
    expect(run.status).toBe('succeeded');
    expect(run.counts.student).toEqual({ create: 1 });
    expect(run.counts.parent).toEqual({ create: 1 });
    expect(run.counts.link).toEqual({ add: 1 });
    expect(schoolRows()).toBe(1);
  });

  it('OneRoster 1.0 header names (agents, userId) link guardians; an unlinked guardian is listed', async () => {
    usePackage({
      // a 1.1 package written with the 1.0 header names (a manifest saying 1.0 is read alike)
      'manifest.csv': 'propertyName,value\noneroster.version,1.1\n',
      'orgs.csv': ORGS,
      'users.csv':
        'sourcedId,status,dateLastModified,orgSourcedIds,role,username,userId,givenName,familyName,identifier,email,sms,phone,agents\n' +
        'stu1,,,sch1,student,ana.lee,{SIS:1001},Ana,Lee,1001,,,,par1\n' +
        'par1,,,sch1,parent,maria.lee,,Maria,Lee,,maria.lee@example.org,,,\n' +
        'stu2,,,sch1,student,bo.diaz,{SIS:2002},Bo,Diaz,2002,,,,par2\n' +
        'par2,,,sch1,parent,rosa.diaz,{SIS:P2},Rosa,Diaz,,rosa.diaz@example.org,,,stu2\n' +
        'par9,,,sch1,guardian,tom.ray,,Tom,Ray,,tom.ray@example.org,,,\n',
    });
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    expect(run.counts.parent).toEqual({ create: 1 });
    expect(run.counts.link).toEqual({ add: 1 });
    // an exclusion, not a refused record: counted by reason, listed with the run
    expect(run.rejectCount).toBe(0);
    const excluded = Object.entries(run.counts.guardian ?? {}).filter(([a]) =>
      a.startsWith('excluded:'),
    );
    expect(excluded).toEqual([[expect.stringMatching(/linked to no student/) as unknown, 1]]);
    expect(await h.store.listRejects(run.id, 0, 100, { kind: 'excluded' })).toEqual([
      expect.objectContaining({
        entity: 'guardian',
        recordId: 'par9',
        kind: 'excluded',
        reason: expect.stringMatching(/linked to no student/) as unknown,
      }),
    ]);
  });

  it('the connector emits the unlinked guardian as an exclusion through the pull channel', async () => {
    const dir = join(h.dir, `pkg-${n}`); // the 1.0 package of the test above
    const connector = new OneRosterCsvConnector(
      OneRosterCsvConnectorConfig.parse({
        kind: 'oneroster-csv',
        source: { type: 'folder', path: dir },
      }),
      { logger: h.ctx.logger, includeRelatives: false },
    );
    const rejects: Reject[] = [];
    const ctx = {
      logger: h.ctx.logger,
      signal: new AbortController().signal,
      reject: (r: Reject) => void rejects.push(r),
    };
    const guardians: string[] = [];
    for await (const c of connector.readRoster(ctx))
      guardians.push(...c.guardians.map(g => g.sourcedId));
    expect(guardians.sort()).toEqual(['par1', 'par2']);
    expect(rejects).toEqual([
      {
        entity: 'guardian',
        recordId: 'par9',
        kind: 'excluded',
        reason: expect.stringMatching(/agents/) as unknown,
      },
    ]);
  });
});
