/**
 * Console pages 3–6 in a real browser (Debian Chromium via playwright-core) against the real
 * API, workers, Redis and a SQLite store seeded from the fake SIS (issue 17): import a parents
 * file with row issues and confirm it (the accounts appear in the store), turn access codes on,
 * reset a student's code and download the district CSV, link and unlink a parent (manual),
 * why-linked shows the origin of each link, and a viewer sees none of these pages'
 * state-changing controls. Screenshots: test-output/console/page-*.png.
 */
import { readFileSync } from 'node:fs';
import { startConsoleStack, type ConsoleStack } from '../helpers/console.js';

const T = 300_000;

describe('console pages: imports, access codes, associations, why linked', () => {
  let s: ConsoleStack;

  beforeAll(async () => {
    s = await startConsoleStack({ students: 40, seed: 77 });
    expect((await s.h.sync()).run.status).toBe('succeeded');
  }, 300_000);
  afterAll(async () => {
    await s?.close();
  });

  const at = (page: string) => `${s.base}/console/districts/${s.h.districtId}/${page}`;

  it(
    'an admin uploads a parents file, maps columns, previews its row issues and confirms; the accounts are created',
    async () => {
      const page = await s.loginAs('admin');
      await page.goto(at('imports'));
      const file = [
        'Given Name,Surname,Parent ID,E-mail',
        'Nora,Quill,E2E-P1,nora.quill@example.org',
        'Omar,Reyes,E2E-P2,omar.reyes@example.org',
        'Bad,Email,E2E-P3,not-an-email',
        'No,Id,,no.id@example.org',
      ].join('\n');
      await page.locator('input[type=file]').setInputFiles({
        name: 'parents.csv',
        mimeType: 'text/csv',
        buffer: Buffer.from(file),
      });
      // the columns the importer found, with the file's first rows
      const rows = page.getByRole('table', { name: 'First rows of the file' });
      await rows.getByRole('cell', { name: 'nora.quill@example.org' }).waitFor();
      await rows.getByRole('columnheader', { name: 'C: Parent ID' }).waitFor();
      await page.getByLabel("Don't update existing accounts").check();
      await s.screenshot(page, 'page-imports-mapping');
      await page.getByRole('button', { name: 'Preview the import' }).click();
      const issues = page.getByRole('table', { name: 'Row issues' });
      await issues.getByRole('cell', { name: 'not a valid email address' }).waitFor();
      await issues.getByRole('cell', { name: 'Unique ID is blank' }).waitFor();
      expect(await page.getByTestId('count-create').textContent()).toBe('2');
      const report = page.getByRole('link', { name: 'Download the issue report (CSV)' });
      const [download] = await Promise.all([page.waitForEvent('download'), report.click()]);
      const csv = readFileSync((await download.path()) ?? '', 'utf8');
      expect(csv).toMatch(/not a valid email address/);
      await s.screenshot(page, 'page-imports-preview');

      await page.getByRole('button', { name: 'Confirm the import' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Apply the import' }).click();
      await page.getByRole('status').filter({ hasText: 'Import applied' }).waitFor();
      const parents = await s.h.store.getParents(s.h.districtId);
      const made = parents.filter(p => p.uniqueId?.startsWith('E2E-')).map(p => p.uniqueId);
      expect(made.sort()).toEqual(['E2E-P1', 'E2E-P2']);
      await page.context().close();
    },
    T,
  );

  it(
    "an admin turns access codes on, resets one student's code (after a confirmation) and downloads the district CSV",
    async () => {
      const student = (await s.h.store.getStudents(s.h.districtId)).find(
        x => x.status === 'active',
      );
      const uid = student?.uniqueId ?? '?';
      const page = await s.loginAs('admin');
      await page.goto(at('access-codes'));
      await page.getByLabel('Parents can register with access codes').check();
      await page.getByRole('button', { name: 'Save settings' }).click();
      await page.getByText('Access-code settings saved.').waitFor();

      await page.getByLabel('Student Unique ID').fill(uid);
      await page.getByRole('button', { name: "Reset this student's code" }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByText(`The access code of student ${uid} stops working now`).waitFor();
      await s.screenshot(page, 'page-access-codes-reset-dialog');
      await dialog.getByRole('button', { name: 'Reset the code' }).click();
      const codes = page.getByRole('table', { name: "The student's codes" });
      await codes.getByRole('cell', { name: 'active', exact: true }).waitFor();
      const code = (await codes.getByRole('cell').first().textContent()) ?? '';
      expect(code.length).toBeGreaterThan(5);
      await page
        .getByRole('table', { name: 'Recorded resets' })
        .getByText('api:district-admin')
        .waitFor();

      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.getByRole('link', { name: "Download the district's codes (CSV)" }).click(),
      ]);
      const csv = readFileSync((await download.path()) ?? '', 'utf8');
      const line = csv.split(/\r?\n/).find(l => l.includes(uid)) ?? '';
      expect(line).toContain(code);
      await s.screenshot(page, 'page-access-codes');
      await page.context().close();
    },
    T,
  );

  it(
    'an admin links a parent found by Unique ID to a student found by name, sees the manual link, and unlinks it',
    async () => {
      const students = await s.h.store.getStudents(s.h.districtId);
      const links = await s.h.store.getLinks(s.h.districtId);
      const student = students.find(x => x.status === 'active') ?? students[0];
      const parent = (await s.h.store.getParents(s.h.districtId)).find(
        p => p.uniqueId === 'E2E-P1',
      );
      expect(student && parent).toBeTruthy();
      const page = await s.loginAs('admin');
      await page.goto(at('associations'));
      await page.getByLabel('Find a student').fill(student?.familyName ?? '');
      await page
        .getByRole('button', { name: new RegExp(`\\(${student?.uniqueId ?? ''}[,)]`) })
        .click();
      const guardians = page.getByRole('table', {
        name: `Guardians of ${student?.givenName} ${student?.familyName}`,
      });
      const sisLinks = links.filter(
        l => l.studentSourcedId === student?.sourcedId && l.origin === 'sis',
      ).length;
      if (sisLinks > 0) await guardians.getByText('SIS').first().waitFor();
      await page.getByLabel('Find a parent').fill('E2E-P1');
      await page.getByRole('button', { name: /^Link Nora Quill to / }).click();
      await guardians.getByTestId('link-manual').getByText('active').waitFor();
      await s.screenshot(page, 'page-associations');
      expect(
        (await s.h.store.getLinks(s.h.districtId)).filter(
          l => l.parentId === parent?.id && l.studentSourcedId === student?.sourcedId,
        ),
      ).toEqual([expect.objectContaining({ origin: 'manual', status: 'active' })]);

      await guardians.getByRole('button', { name: 'Unlink Nora Quill' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Unlink' }).click();
      await guardians.getByTestId('link-manual').getByText('inactive').waitFor();
      expect(
        (await s.h.store.getLinks(s.h.districtId)).filter(
          l => l.parentId === parent?.id && l.studentSourcedId === student?.sourcedId,
        ),
      ).toEqual([expect.objectContaining({ origin: 'manual', status: 'inactive' })]);

      // link again so why-linked has a manual link next to the SIS ones
      await page.getByRole('button', { name: /^Link Nora Quill to / }).click();
      await guardians.getByTestId('link-manual').getByText('active').waitFor();
      await page.context().close();
    },
    T,
  );

  it(
    'why linked shows every guardian of a student with the origin of each link and how it came to be',
    async () => {
      const links = await s.h.store.getLinks(s.h.districtId);
      const manual = links.find(l => l.origin === 'manual' && l.status === 'active');
      const student = (await s.h.store.getStudents(s.h.districtId)).find(
        x => x.sourcedId === manual?.studentSourcedId,
      );
      const page = await s.loginAs('viewer');
      await page.goto(at('why-linked'));
      await page.getByLabel("Or a student's Unique ID or sourcedId").fill(student?.uniqueId ?? '');
      await page.getByRole('button', { name: 'Show' }).click();
      const table = page.getByRole('table', { name: 'Guardians and how they were linked' });
      const manualRow = table.getByTestId('link-manual');
      await manualRow.getByText('Manual').waitFor();
      await manualRow.getByText(/api:district-admin/).waitFor();
      const sisCount = links.filter(
        l => l.studentSourcedId === student?.sourcedId && l.origin === 'sis',
      ).length;
      expect(await table.getByTestId('link-sis').count()).toBe(sisCount);
      await s.screenshot(page, 'page-why-linked');
      await page.context().close();
    },
    T,
  );

  it(
    "a viewer sees none of these pages' state-changing controls",
    async () => {
      const page = await s.loginAs('viewer');
      await page.goto(at('imports'));
      await page.getByText('Importing files needs an admin token').waitFor();
      expect(await page.locator('input[type=file]').count()).toBe(0);

      await page.goto(at('access-codes'));
      await page.getByLabel('Parents can register with access codes').waitFor();
      expect(await page.getByLabel('Parents can register with access codes').isDisabled()).toBe(
        true,
      );
      for (const name of ['Save settings', "Reset this student's code", 'Reset all codes'])
        expect(await page.getByRole('button', { name }).count()).toBe(0);
      expect(await page.getByRole('link', { name: /Download/ }).count()).toBe(0);
      await s.screenshot(page, 'page-access-codes-viewer');

      await page.goto(at('associations'));
      const student = (await s.h.store.getStudents(s.h.districtId)).find(
        x => x.status === 'active',
      );
      await page.getByLabel('Find a student').fill(student?.familyName ?? '');
      await page
        .getByRole('button', { name: new RegExp(`\\(${student?.uniqueId ?? ''}[,)]`) })
        .click();
      await page.getByLabel('Find a parent').fill('Nora'); // a name prefix (Unique IDs match exactly)
      await page
        .getByRole('table', { name: 'Parents found' })
        .getByRole('cell', { name: 'Nora Quill', exact: true })
        .waitFor();
      expect(await page.getByRole('button', { name: /^Link / }).count()).toBe(0);
      expect(await page.getByRole('button', { name: /^Unlink / }).count()).toBe(0);
      await s.screenshot(page, 'page-associations-viewer');
      await page.context().close();
    },
    T,
  );
});
