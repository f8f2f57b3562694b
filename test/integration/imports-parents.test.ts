/**
 * Parent account import end to end through the service functions: real files (bytes written
 * here), real SQLite store, real Redis. Preview writes nothing; confirm applies exactly the
 * preview (invariant 12) or reports that the data changed; bad files lose nothing.
 */
import { readFileSync } from 'node:fs';
import ExcelJS from 'exceljs';
import iconv from 'iconv-lite';
import { updateAccessCodeSettings } from '../../src/access-codes/service.js';
import { ImportFileError, ImportPreviewError } from '../../src/imports/errors.js';
import { changesJobId, consumeChanges } from '../../src/jobs/changes.js';
import { changeLogRepository } from '../../src/models/changes/index.js';
import {
  ImportOptionsError,
  confirmImport,
  getImportPreview,
  importReportCsv,
  listImportIssues,
  previewParentImport,
} from '../../src/imports/service.js';
import type { PlannedParentCreate, PlannedParentUpdate } from '../../src/reconcile/import-plan.js';
import { importParentAccountId } from '../../src/reconcile/import-plan.js';
import {
  csv,
  importDistrict,
  seed,
  sisParent,
  snapshot,
  startImportBench,
  student,
  type ImportBench,
} from '../helpers/imports.js';

const IDS = Array.from({ length: 15 }, (_, i) => `d-${i + 1}`);
let bench: ImportBench;

beforeAll(async () => {
  bench = await startImportBench([
    ...IDS.map(id => importDistrict(id)),
    importDistrict('no-mail', { notifications: undefined }),
  ]);
});
afterAll(() => bench.close());

const HEADER = ['First Name', 'Last Name', 'Unique ID', 'Email', 'Username'];

async function seedBasic(d: string) {
  await bench.store.upsertSchools(d, [
    { sourcedId: 'sch-1', name: 'Lincoln Elementary' },
    { sourcedId: 'sch-2', name: 'Washington Middle' },
  ]);
  await seed(bench.store, d, {
    students: [student(d, 1), student(d, 2)],
    parents: [
      sisParent(d, 1),
      sisParent(d, 2, { status: 'inactive' }),
      sisParent(d, 3, {
        uniqueId: undefined,
        email: 'shared@example.org',
        emailNormalized: 'shared@example.org',
      }),
    ],
  });
}

const file = (name: string, text: string | Buffer) => ({
  name,
  data: typeof text === 'string' ? Buffer.from(text, 'utf8') : text,
});

/** Every stored plan item of a preview. */
async function storedPlan(previewId: string) {
  return {
    creates: (await bench.repo.getPreviewPart(previewId, 'plan.creates')) as PlannedParentCreate[],
    updates: (await bench.repo.getPreviewPart(previewId, 'plan.updates')) as PlannedParentUpdate[],
  };
}

describe('parent import: preview, then confirm', () => {
  it('a messy Windows-1252 semicolon file previews without writing, and confirm applies exactly the preview', async () => {
    const d = 'd-1';
    await seedBasic(d);
    const text =
      'Prénom;NOM;unique_id;E-mail;User Name\r\n' + // aliases? Prénom/NOM are not: mapped explicitly
      'José;Núñez;P00001;PARENT1@example.org;\r\n' + // sis account P1: name changes
      'Zoë;"Dupont\r\nMartin";N-1;zoe@example.org;zoe\r\n' + // new; Excel quoted newline
      'Zoë;"Dupont\r\nMartin";N-1;zoe@example.org;zoe\r\n' + // same person again (second child)
      'Bad;Email;N-2;not-an-email;\r\n' + // row error
      ';Blank;N-3;b@example.org;\r\n' + // row error: blank first name
      'Anne;Ayer;N-4;;anne\r\n' + // username only
      'Wes;Shared;N-5;Shared@Example.org;\r\n' + // matches the account without Unique ID by email
      'Ina;Active;P00002;parent2@example.org;\r\n' + // inactive sis account → reactivate
      ';;;;\r\n\r\n\r\n'; // trailing empty rows
    const before = await snapshot(bench, d);
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file('messy.csv', iconv.encode(text, 'windows-1252')),
      options: { columns: { firstName: 'Prénom', lastName: 'nom' } },
    });
    expect(p.file).toMatchObject({ format: 'csv', encoding: 'windows-1252', delimiter: ';' });
    expect(p.columns).toEqual({
      firstName: 'Prénom',
      lastName: 'NOM',
      uniqueId: 'unique_id',
      email: 'E-mail',
      username: 'User Name',
    });
    expect(p.counts).toMatchObject({
      create: 2,
      update: 2,
      reactivate: 1,
      unchanged: 0,
      errorRows: 2,
    });
    expect(p.rows).toEqual({ data: 8, used: 6, withErrors: 2, withWarnings: 2 });
    expect(p.issues.map(i => [i.row, i.column, i.severity, i.reason])).toEqual([
      [4, 'unique_id', 'warning', 'same person as row 3; the rows are collapsed into one account'],
      [5, 'E-mail', 'error', 'not a valid email address'],
      [6, 'Prénom', 'error', 'First Name is blank'],
      [
        8,
        'E-mail',
        'warning',
        'matched by email to the existing account of Parent3 Family; its name will change to Wes Shared',
      ],
    ]);
    expect(await snapshot(bench, d)).toEqual(before); // preview writes nothing

    const planned = await storedPlan(p.previewId);
    const r = await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(r).toMatchObject({ status: 'applied', counts: { create: 2, update: 2, reactivate: 1 } });
    const after = await snapshot(bench, d);

    // Preview equals apply: exactly the planned accounts changed, with the planned values.
    const changedIds = after.parents
      .filter(a => JSON.stringify(a) !== JSON.stringify(before.parents.find(b => b.id === a.id)))
      .map(a => a.id)
      .sort();
    expect(changedIds).toEqual(
      [...planned.creates.map(c => c.account.id), ...planned.updates.map(u => u.parentId)].sort(),
    );
    for (const c of planned.creates)
      expect(after.parents.find(a => a.id === c.account.id)).toEqual(c.account);
    for (const u of planned.updates)
      expect(after.parents.find(a => a.id === u.parentId)).toMatchObject(u.set);
    expect(after.parents.find(a => a.id === 'pa_sis_1')).toMatchObject({
      givenName: 'José',
      familyName: 'Núñez',
      lockedFields: ['familyName', 'givenName'], // sync will not overwrite the admin's edit
    });
    expect(after.parents.find(a => a.id === 'pa_sis_2')?.status).toBe('active');
    expect(after.parents.find(a => a.id === 'pa_sis_3')).toMatchObject({
      uniqueId: 'N-5',
      origin: 'sis',
    });
    const zoe = after.parents.find(a => a.uniqueId === 'N-1');
    expect(zoe).toMatchObject({ givenName: 'Zoë', familyName: 'Dupont Martin', origin: 'import' });
    expect(after.profiles.map(x => [x.parentId, x.username])).toEqual(
      [
        [importParentAccountId(d, 'N-1'), 'zoe'],
        [importParentAccountId(d, 'N-4'), 'anne'],
      ].sort(),
    );

    // Confirming again writes nothing.
    const again = await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(again).toMatchObject({ status: 'already-applied', result: { counts: { create: 2 } } });
    expect(await snapshot(bench, d)).toEqual(after);
    // A fresh preview of the same file now finds nothing to do.
    const second = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file('messy.csv', iconv.encode(text, 'windows-1252')),
      options: { columns: { firstName: 'Prénom', lastName: 'nom' } },
    });
    expect(second.counts).toMatchObject({ create: 0, update: 0, reactivate: 0, unchanged: 5 });
  });

  it('confirm refuses to apply when the data changed since the preview, and offers a new preview', async () => {
    const d = 'd-2';
    await seedBasic(d);
    const f = file(
      'p.csv',
      csv([
        HEADER,
        ['Ann', 'New', 'N-1', 'ann@example.org', ''],
        ['Bo', 'B', 'P00001', 'parent1@example.org', ''],
      ]),
    );
    const p = await previewParentImport(bench.ctx, { districtId: d, file: f });
    expect(p.counts).toMatchObject({ create: 1, update: 1 });
    // Meanwhile someone else creates an account with Ann's email.
    await seed(bench.store, d, {
      parents: [
        sisParent(d, 9, {
          uniqueId: 'X-9',
          email: 'ann@example.org',
          emailNormalized: 'ann@example.org',
        }),
      ],
    });
    const before = await snapshot(bench, d);
    const r = await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(r.status).toBe('changed');
    if (r.status !== 'changed') return;
    // nothing applied, nothing logged
    expect(
      await (
        await changeLogRepository(bench.store)
      ).list(d, {
        causeIds: [p.previewId],
        limit: 1000,
      }),
    ).toEqual([]);
    expect(r.message).toMatch(
      new RegExp(`the data changed since preview ${p.previewId}; nothing was applied`),
    );
    expect(await snapshot(bench, d)).toEqual(before);
    expect(r.preview.supersedes).toBe(p.previewId);
    expect(r.preview.counts).toMatchObject({ create: 0, update: 2 }); // Ann now merges by email
    expect(r.preview.issues[0]).toMatchObject({ row: 2, severity: 'warning' });
    await expect(
      confirmImport(bench.ctx, { districtId: d, previewId: p.previewId }),
    ).rejects.toThrow(ImportPreviewError);
    expect(
      (await getImportPreview(bench.ctx, { districtId: d, previewId: p.previewId })).status,
    ).toBe('superseded');
    const ok = await confirmImport(bench.ctx, { districtId: d, previewId: r.preview.previewId });
    expect(ok).toMatchObject({ status: 'applied', counts: { create: 0, update: 2 } });
  });

  it('confirm logs every change it makes in the change log: cause import + preview id, actor, before/after', async () => {
    const d = 'd-15';
    await seedBasic(d);
    const f = file(
      'p.csv',
      csv([
        [...HEADER, 'Role'],
        ['José', 'Family', 'P00001', 'parent1@example.org', '', 'Guardian'], // name + role change
        ['Ann', 'Able', 'N-1', 'ann@example.org', 'ann', 'Parent'], // new
        ['Ina', 'Active', 'P00002', 'parent2@example.org', '', 'Parent'], // inactive → reactivate
      ]),
    );
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { roleFromFile: true },
    });
    expect(p.counts).toMatchObject({ create: 1, update: 1, reactivate: 1 });
    const log = await changeLogRepository(bench.store);
    const seq = await log.lastSeq(d);
    const r = await confirmImport(
      bench.ctx,
      { districtId: d, previewId: p.previewId },
      { actor: 'cli:alice' },
    );
    expect(r).toMatchObject({ status: 'applied' });
    const entries = await log.list(d, { afterSeq: seq, limit: 1000 });
    // Everything after the confirm's first entry is the confirm's (nothing else wrote).
    expect(entries.map(e => [e.entity, e.action, e.entityId])).toEqual([
      ['parent', 'create', importParentAccountId(d, 'N-1')],
      ['parent', 'update', 'pa_sis_1'],
      ['parent', 'reactivate', 'pa_sis_2'],
    ]);
    for (const e of entries)
      expect(e).toMatchObject({
        cause: { kind: 'import', id: p.previewId, trigger: 'parents', notify: false },
        actor: 'cli:alice',
      });
    expect(entries[0]?.after).toMatchObject({
      uniqueId: 'N-1',
      givenName: 'Ann',
      familyName: 'Able',
      email: 'ann@example.org',
      role: 'Parent',
      origin: 'import',
      status: 'active',
      username: 'ann',
    });
    // before/after of exactly the fields that changed (the admin's edit locks them for sync)
    expect(entries[1]).toMatchObject({
      parentId: 'pa_sis_1',
      before: { givenName: 'Parent1', role: 'Parent', lockedFields: [] },
      after: { givenName: 'José', role: 'Guardian', lockedFields: ['givenName'] },
    });
    expect(Object.keys(entries[1]?.after ?? {}).sort()).toEqual([
      'givenName',
      'lockedFields',
      'role',
    ]);
    expect(entries[2]).toMatchObject({
      before: { status: 'inactive' },
      after: { status: 'active' },
    });
    // The run-count style query by cause finds the same entries.
    expect(await log.countByCause(d, [p.previewId])).toEqual({
      parent: { create: 1, update: 1, reactivate: 1 },
    });

    // Confirming again writes and logs nothing; an unchanged re-import logs nothing either.
    await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    const again = await previewParentImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { roleFromFile: true },
    });
    expect(again.counts).toMatchObject({ create: 0, update: 0, reactivate: 0 });
    const last = await log.lastSeq(d);
    const r2 = await confirmImport(bench.ctx, { districtId: d, previewId: again.previewId });
    expect(r2).toMatchObject({ status: 'applied', writes: 0 });
    expect(await log.lastSeq(d)).toBe(last);
  });

  it('a preview expires; another district cannot confirm it', async () => {
    const d = 'd-3';
    await seedBasic(d);
    const t0 = new Date('2030-01-01T00:00:00Z');
    const p = await previewParentImport(
      bench.ctx,
      {
        districtId: d,
        file: file('p.csv', csv([HEADER, ['A', 'B', 'N-1', 'a@example.org', '']])),
        expiresInMinutes: 5,
      },
      { now: () => t0 },
    );
    await expect(
      confirmImport(bench.ctx, { districtId: 'd-4', previewId: p.previewId }),
    ).rejects.toMatchObject({
      problem: 'not-found',
    });
    await expect(
      confirmImport(
        bench.ctx,
        { districtId: d, previewId: p.previewId },
        { now: () => new Date(t0.getTime() + 6 * 60_000) },
      ),
    ).rejects.toMatchObject({ problem: 'expired' });
    expect((await bench.store.getParents(d)).some(a => a.uniqueId === 'N-1')).toBe(false);
  });

  it('confirm checks that the file is the previewed one', async () => {
    const d = 'd-4';
    await seedBasic(d);
    const f = file('p.csv', csv([HEADER, ['A', 'B', 'N-1', 'a@example.org', '']]));
    const p = await previewParentImport(bench.ctx, { districtId: d, file: f });
    const other = file('p.csv', csv([HEADER, ['A', 'B', 'N-2', 'a@example.org', '']]));
    await expect(
      confirmImport(
        bench.ctx,
        { districtId: d, previewId: p.previewId },
        { expect: { file: other } },
      ),
    ).rejects.toMatchObject({ problem: 'input-mismatch' });
    await expect(
      confirmImport(
        bench.ctx,
        { districtId: d, previewId: p.previewId },
        { expect: { file: f, options: { dontUpdateExisting: true } } },
      ),
    ).rejects.toMatchObject({ problem: 'input-mismatch' });
    const r = await confirmImport(
      bench.ctx,
      { districtId: d, previewId: p.previewId },
      { expect: { file: f } },
    );
    expect(r.status).toBe('applied');
  });
});

describe('parent import options', () => {
  it("don't update existing records: matched accounts stay exactly as they were", async () => {
    const d = 'd-5';
    await seedBasic(d);
    const before = await bench.store.getParents(d);
    const f = file(
      'p.csv',
      csv([
        HEADER,
        ['Changed', 'Name', 'P00001', 'parent1@example.org', ''],
        ['New', 'One', 'N-1', 'n1@example.org', ''],
      ]),
    );
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { dontUpdateExisting: true },
    });
    expect(p.counts).toMatchObject({ create: 1, update: 0, notUpdated: 1 });
    expect(p.samples.notUpdated).toEqual([
      { rows: [2], uniqueId: 'P00001', parentId: 'pa_sis_1', changes: ['familyName', 'givenName'] },
    ]);
    await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    const after = await bench.store.getParents(d);
    expect(after.find(a => a.id === 'pa_sis_1')).toEqual(before.find(a => a.id === 'pa_sis_1'));
    expect(after).toHaveLength(before.length + 1);
  });

  it("don't allow duplicates: a row whose email belongs to another Unique ID is rejected, never merged", async () => {
    const d = 'd-6';
    await seedBasic(d);
    const rows = [HEADER, ['Dup', 'Row', 'N-7', 'parent1@example.org', '']];
    const lenient = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file('p.csv', csv(rows)),
    });
    expect(lenient.counts).toMatchObject({ update: 1, errorRows: 0 }); // merged into P00001's account
    const strict = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file('p.csv', csv(rows)),
      options: { dontAllowDuplicates: true },
    });
    expect(strict.counts).toMatchObject({ create: 0, update: 0, errorRows: 1 });
    expect(strict.issues).toEqual([
      expect.objectContaining({
        row: 2,
        column: 'Email',
        reason: 'email belongs to Unique ID P00001; duplicates are not allowed',
      }),
    ]);
    const before = await snapshot(bench, d);
    await confirmImport(bench.ctx, { districtId: d, previewId: strict.previewId });
    expect(await snapshot(bench, d)).toEqual(before);
  });

  it('send activation email: confirm logs the creates; the change-log consumer queues one per new account with an email', async () => {
    const d = 'd-7';
    await seedBasic(d);
    const f = file(
      'p.csv',
      csv([
        HEADER,
        ['Ann', 'A', 'N-1', 'ann@example.org', ''],
        ['Bo', 'B', 'N-2', '', 'bo'],
        ['Old', 'One', 'P00001', 'parent1@example.org', ''],
      ]),
    );
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { sendActivationEmail: true },
    });
    expect(p.counts.activationEmail).toBe(1);
    expect(p.issues).toEqual([
      expect.objectContaining({
        row: 3,
        severity: 'warning',
        reason: 'no email: activation email not sent',
      }),
    ]);
    const r = await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    if (r.status !== 'applied') throw new Error(`expected applied, got ${r.status}`);
    expect(r.activationEmails).toEqual({
      requested: 1,
      noEmail: [importParentAccountId(d, 'N-2')],
    });
    // Confirm queues no email itself: it kicks the change-log consumers…
    expect(
      await bench.ctx.queues.notifications.getJobCountByTypes(
        'waiting',
        'delayed',
        'prioritized',
        'active',
      ),
    ).toBe(0);
    expect(await bench.ctx.queues.changes.getJob(changesJobId(d))).toBeDefined();
    // …whose run queues them from the log's `parent create` entries (cause import, notify).
    const consumed = await consumeChanges(bench.ctx, d);
    expect(consumed.activation).toEqual({ queued: 1, held: 0, noEmail: 1 });
    expect((await consumeChanges(bench.ctx, d)).activation.queued).toBe(0); // exactly once
    const jobs = await bench.ctx.queues.notifications.getJobs([
      'waiting',
      'delayed',
      'prioritized',
      'active',
    ]);
    expect(jobs.map(j => (j.data as { parentId: string }).parentId)).toEqual([
      importParentAccountId(d, 'N-1'),
    ]);

    const none = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file('p.csv', csv([HEADER, ['C', 'C', 'N-3', 'c@example.org', '']])),
    });
    const noneResult = await confirmImport(bench.ctx, { districtId: d, previewId: none.previewId });
    expect(noneResult).toMatchObject({ status: 'applied' });
    expect(noneResult).not.toHaveProperty('activationEmails');
    expect((await consumeChanges(bench.ctx, d)).activation.queued).toBe(0);
    expect(
      await bench.ctx.queues.notifications.getJobCountByTypes(
        'waiting',
        'delayed',
        'prioritized',
        'active',
      ),
    ).toBe(1);

    await expect(
      previewParentImport(bench.ctx, {
        districtId: 'no-mail',
        file: f,
        options: { sendActivationEmail: true },
      }),
    ).rejects.toThrow(/district no-mail has no notifications settings/);
  });

  it('roles from the file must exist in the district; a fixed role must exist', async () => {
    const d = 'd-8';
    await seedBasic(d);
    const f = file(
      'p.csv',
      csv([
        [...HEADER, 'Role'],
        ['A', 'A', 'N-1', 'a@example.org', '', 'grandparent'],
        ['B', 'B', 'N-2', 'b@example.org', '', 'Nanny'],
      ]),
    );
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { roleFromFile: true },
    });
    expect(p.samples.create).toEqual([
      expect.objectContaining({ uniqueId: 'N-1', role: 'Grandparent' }),
    ]);
    expect(p.issues).toEqual([
      expect.objectContaining({
        row: 3,
        column: 'Role',
        reason:
          'role "Nanny" does not exist in this district (roles: Parent, Guardian, Grandparent)',
      }),
    ]);
    await expect(
      previewParentImport(bench.ctx, { districtId: d, file: f, options: { role: 'Nanny' } }),
    ).rejects.toThrow(ImportOptionsError);
    // A setting cannot invent a role: `codes settings --role Nanny` is refused, so an
    // import still cannot name it.
    await expect(
      updateAccessCodeSettings(bench.ctx, { districtId: d, defaultRole: 'Nanny', actor: 'test' }),
    ).rejects.toThrow(/defaultRole: "Nanny" is not a role of district/);
    await expect(
      previewParentImport(bench.ctx, { districtId: d, file: f, options: { role: 'nanny' } }),
    ).rejects.toThrow(ImportOptionsError);
    // a role the district file defines may become the default
    await updateAccessCodeSettings(bench.ctx, {
      districtId: d,
      defaultRole: 'Grandparent',
      actor: 'test',
    });
    await expect(
      previewParentImport(bench.ctx, {
        districtId: d,
        file: file('p.csv', csv([HEADER, ['A', 'A', 'N-1', 'a@example.org', '']])),
        options: { roleFromFile: true },
      }),
    ).rejects.toThrow('p.csv: missing required column "Role"');
  });

  it('schools: fixed, or from the file through the value table; unknown values are row errors', async () => {
    const d = 'd-9';
    await seedBasic(d);
    const f = file(
      'p.csv',
      csv([
        [...HEADER, 'Building'],
        ['A', 'A', 'N-1', 'a@example.org', '', 'LES'],
        ['B', 'B', 'N-2', 'b@example.org', '', 'Washington Middle'],
        ['C', 'C', 'N-3', 'c@example.org', '', 'Hogwarts'],
      ]),
    );
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: f,
      options: { schoolFromFile: true, schoolValues: { LES: 'sch-1' } },
    });
    expect(p.issues).toEqual([
      expect.objectContaining({ row: 4, column: 'Building', value: 'Hogwarts' }),
    ]);
    await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    const profiles = await bench.repo.getProfiles(d);
    expect(profiles.map(x => x.schoolSourcedIds).sort()).toEqual([['sch-1'], ['sch-2']]);

    const fixed = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file('p.csv', csv([HEADER, ['D', 'D', 'N-4', 'd@example.org', '']])),
      options: { school: 'Lincoln Elementary' },
    });
    expect(fixed.samples.create).toEqual([expect.objectContaining({ schools: ['sch-1'] })]);
    await expect(
      previewParentImport(bench.ctx, {
        districtId: d,
        file: f,
        options: { schoolFromFile: true, schoolValues: { X: 'nope' } },
      }),
    ).rejects.toThrow(/value table: "X" maps to "nope", which is not a school id of district d-9/);
  });
});

describe('bad files lose nothing', () => {
  it('refused files and bad options store nothing and change nothing', async () => {
    const d = 'd-10';
    await seedBasic(d);
    const before = await snapshot(bench, d);
    const ole = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0]);
    await expect(
      previewParentImport(bench.ctx, { districtId: d, file: file('old.xls', ole) }),
    ).rejects.toThrow(ImportFileError);
    await expect(
      previewParentImport(bench.ctx, {
        districtId: d,
        file: file('p.csv', 'Name,Mail\nA,a@b.org\n'),
      }),
    ).rejects.toThrow('p.csv: missing required columns "First Name", "Last Name", "Unique ID"');
    await expect(
      previewParentImport(bench.ctx, { districtId: d, file: file('p.csv', csv([HEADER])) }),
    ).rejects.toThrow('p.csv: the file has no data rows (only a header)');
    await expect(
      previewParentImport(bench.ctx, {
        districtId: d,
        file: file('p.csv', csv([HEADER, ['A']])),
        options: { colums: {} } as never,
      }),
    ).rejects.toThrow(/invalid parent import request[\s\S]*options: Unrecognized key: "colums"/);
    expect(await snapshot(bench, d)).toEqual(before);
  });

  it('a file where every row is bad previews (with the report) and confirm changes nothing', async () => {
    const d = 'd-11';
    await seedBasic(d);
    const before = await snapshot(bench, d);
    const f = file(
      'p.csv',
      csv([
        HEADER,
        ['A', 'B', '1.23457E+19', 'a@example.org', ''],
        ['C', 'D', 'N-2', '=cmd|calc', ''],
      ]),
    );
    const p = await previewParentImport(bench.ctx, { districtId: d, file: f });
    expect(p.rows).toMatchObject({ data: 2, used: 0, withErrors: 2 });
    const report = await importReportCsv(bench.ctx, { districtId: d, previewId: p.previewId });
    const lines = report
      .replace(/^\ufeff/, '')
      .trimEnd()
      .split('\r\n');
    expect(lines[0]).toBe('file,row,column,value,severity,reason');
    expect(lines[1]).toMatch(
      /^p\.csv,2,Unique ID,1\.23457E\+19,error,identifier is in scientific notation/,
    );
    expect(lines[2]).toBe("p.csv,3,Email,'=cmd|calc,error,not a valid email address"); // formula neutralised
    const page = await listImportIssues(bench.ctx, {
      districtId: d,
      previewId: p.previewId,
      offset: 1,
      limit: 1,
    });
    expect(page).toMatchObject({
      total: 2,
      offset: 1,
      limit: 1,
      items: [expect.objectContaining({ row: 3 })],
    });
    await confirmImport(bench.ctx, { districtId: d, previewId: p.previewId });
    expect(await snapshot(bench, d)).toEqual(before);
  });
});

describe('file formats through the service', () => {
  it('XLSX with rich text, hyperlinks, formulas and a date in the id column', async () => {
    const d = 'd-12';
    await seedBasic(d);
    const wb = new ExcelJS.Workbook();
    const ws = wb.addWorksheet('Parents');
    ws.addRow(['FIRST NAME', 'last-name', 'Unique Id', 'Email Address']);
    ws.addRow([
      { richText: [{ text: 'Zo' }, { text: 'ë' }] },
      'Ng',
      '007',
      { text: 'zoe@example.org', hyperlink: 'mailto:zoe@example.org' },
    ]);
    ws.addRow(['Al', 'Bo', 42, { formula: 'LOWER("AL@EXAMPLE.ORG")', result: 'al@example.org' }]);
    ws.addRow(['Cy', 'Do', new Date(Date.UTC(2024, 0, 5)), 'cy@example.org']);
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file('p.xlsx', Buffer.from(await wb.xlsx.writeBuffer())),
    });
    expect(p.file).toMatchObject({ format: 'xlsx', sheet: 'Parents' });
    expect(p.samples.create?.map(c => [c.uniqueId, c.givenName, c.email])).toEqual([
      ['007', 'Zoë', 'zoe@example.org'],
    ]);
    expect(p.issues).toEqual([
      // a General number in a column whose other ids have leading zeros is never used as is
      expect.objectContaining({
        row: 3,
        column: 'Unique Id',
        value: '42',
        reason: expect.stringMatching(
          /as the number 42, but the other ids of the column have leading zeros \(e\.g\. 007\); probably 042\?/,
        ) as unknown,
      }),
      expect.objectContaining({
        row: 4,
        column: 'Unique Id',
        value: '2024-01-05',
        reason: expect.stringMatching(/^Excel turned this identifier into the date/) as unknown,
      }),
    ]);
  });

  it('UTF-16 LE ("Unicode text", tab-separated) with BOM: the real fixture file', async () => {
    const d = 'd-13';
    await seedBasic(d);
    const bytes = readFileSync('test/fixtures/imports/parents-unicode.txt');
    expect([...bytes.subarray(0, 2)]).toEqual([0xff, 0xfe]);
    const p = await previewParentImport(bench.ctx, {
      districtId: d,
      file: file('parents-unicode.txt', bytes),
    });
    expect(p.file).toMatchObject({ encoding: 'utf-16le', delimiter: '\t' });
    expect(p.samples.create?.map(c => [c.givenName, c.familyName])).toEqual([
      ['Renée', 'Ørsted'],
      ['Łukasz', 'Grüß'],
    ]);
  });

  it('a 10 MB file previews in one pass', async () => {
    const d = 'd-14';
    await seedBasic(d);
    const rows: string[][] = [[...HEADER, 'Notes']];
    const note = 'x'.repeat(160);
    for (let i = 0; rows.length < 52_000; i++)
      rows.push([`F${i}`, `L${i}`, `U${i}`, `u${i}@example.org`, '', note]);
    const data = Buffer.from(csv(rows));
    expect(data.length).toBeGreaterThan(10 * 1024 * 1024);
    const t = Date.now();
    const p = await previewParentImport(bench.ctx, { districtId: d, file: file('big.csv', data) });
    const ms = Date.now() - t;
    expect(p.counts.create).toBe(51_999);
    expect(p.rows.withErrors).toBe(0);
    console.log(`10 MB parent file (${rows.length - 1} rows): preview ${ms} ms`);
  });
});
