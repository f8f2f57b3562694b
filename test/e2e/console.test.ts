/**
 * The admin console in a real browser (Debian Chromium via playwright-core) against the real
 * API, workers, Redis and a SQLite store seeded from the fake SIS (issue 17): log in with a
 * token, trigger a dry run and see it finish, approve a held run and see the records change,
 * a viewer sees no state-changing controls and the API refuses them anyway, a district-scoped
 * token cannot open another district's pages. Screenshots: test-output/console/*.png.
 */
import type { Page } from 'playwright-core';
import { z } from 'zod';
import { withdrawStudent } from '../../src/dev/district-generator.js';
import { startConsoleStack, UI_TIMEOUT, type ConsoleStack } from '../helpers/console.js';

const T = 300_000;

describe('admin console in the browser', () => {
  let s: ConsoleStack;

  beforeAll(async () => {
    s = await startConsoleStack({ students: 150, seed: 41 });
    expect((await s.h.sync()).run.status).toBe('succeeded');
  }, 300_000);
  afterAll(async () => {
    await s?.close();
  });

  const districtPath = () => `/console/districts/${s.h.districtId}`;

  it(
    'an admin logs in with a token and sees the districts with their last run',
    async () => {
      const page = await s.loginAs('admin');
      await page.getByRole('heading', { name: 'Districts', level: 1 }).waitFor();
      const card = page.getByTestId(`district-card-${s.h.districtId}`);
      await card.getByText('Last run').waitFor();
      await card.getByTestId('run-status').filter({ hasText: 'succeeded' }).waitFor();
      expect(await page.getByTestId('whoami').textContent()).toBe('district-admin');
      await s.screenshot(page, 'districts');
      await page.context().close();
    },
    T,
  );

  it(
    'an admin triggers a dry run and follows it to the end',
    async () => {
      const page = await s.loginAs('admin');
      await page.goto(`${s.base}${districtPath()}`);
      await page.getByRole('button', { name: 'Dry run' }).click();
      await page.waitForURL(/\/runs\/[^/]+$/);
      await page.getByTestId('run-status').filter({ hasText: 'succeeded' }).waitFor();
      await page.getByText('dry run', { exact: true }).waitFor();
      await page.getByRole('table', { name: 'Timings by phase' }).waitFor();
      const runId = page.url().split('/').pop() ?? '';
      const run = await s.h.store.getRun(runId);
      expect(run?.dryRun).toBe(true);
      expect(run?.status).toBe('succeeded');
      expect(run?.actor).toBe('api:district-admin');
      // the queue wait is shown, and every count and timing in words: no raw key on the page
      await page.getByTestId('queue-wait').filter({ hasText: 'before the pull started' }).waitFor();
      const words = (
        await page
          .getByRole('table', { name: /^(Changes by entity and action|Timings by phase)$/ })
          .allInnerTexts()
      ).join('\n');
      expect(words).toContain('Reading the SIS (pull)');
      expect(words).toContain('Chunks waiting to be applied (average)');
      expect(words).not.toMatch(/\b(excluded:|applyWait|finalize\.|[a-z]+[A-Z][a-z]+)/);
      await s.screenshot(page, 'run');
      await page.context().close();
    },
    T,
  );

  it(
    'an admin reviews a held run, sees exactly what it would deactivate, approves it and the students are deactivated',
    async () => {
      const victims = s.h.sis.students.slice(0, 40);
      for (const v of victims) withdrawStudent(s.h.sis, v.id);
      const { run } = await s.h.sync();
      expect(run.status).toBe('needs-approval');
      const page = await s.loginAs('admin');
      await page.getByRole('link', { name: run.id }).first().click();
      await page.getByRole('heading', { name: 'Held for approval' }).waitFor();
      const table = page.getByRole('table', { name: 'Held students' });
      await table.getByRole('row').nth(1).waitFor();
      const stored = new Map(
        (await s.h.store.getStudents(s.h.districtId)).map(x => [x.sourcedId, x]),
      );
      const first = stored.get(String(victims[0]?.id));
      // the list is paged on the server: 40 held, 1–40 shown in one page of 50
      await page.getByText(`1–40 of 40`).first().waitFor();
      await table.getByRole('cell', { name: first?.uniqueId ?? '?', exact: true }).waitFor();
      await s.screenshot(page, 'held-run');

      await page.getByRole('button', { name: 'Approve' }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Approve and apply' }).click();
      await page.getByTestId('run-status').filter({ hasText: 'succeeded' }).waitFor();
      await page.getByTestId('decided').filter({ hasText: 'api:district-admin' }).waitFor();
      const after = await s.h.store.getStudents(s.h.districtId);
      const victimIds = new Set(victims.map(v => String(v.id)));
      const deactivated = after.filter(x => victimIds.has(x.sourcedId));
      expect(deactivated).toHaveLength(40);
      expect(deactivated.every(x => x.status === 'inactive')).toBe(true);
      expect((await s.h.store.getRun(run.id))?.decidedBy).toBe('api:district-admin');
      await page.context().close();
    },
    T,
  );

  it(
    'a viewer sees no state-changing controls, and the API refuses them with and without CSRF',
    async () => {
      // a run held for approval: the approve/discard buttons are what a viewer must not get
      for (const v of s.h.sis.students.slice(40, 80)) withdrawStudent(s.h.sis, v.id);
      const { run } = await s.h.sync();
      expect(run.status).toBe('needs-approval');
      const page = await s.loginAs('viewer');
      await page.goto(`${s.base}${districtPath()}`);
      await page.getByRole('table', { name: 'Recent runs' }).waitFor();
      await page.getByText('read-only', { exact: true }).waitFor();
      expect(await page.getByRole('button', { name: 'Dry run' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Run sync now' }).count()).toBe(0);
      await page.goto(`${s.base}${districtPath()}/runs/${run.id}`);
      await page.getByRole('heading', { name: 'Held for approval' }).waitFor();
      await page.getByRole('table', { name: 'Held students' }).getByRole('row').nth(1).waitFor();
      expect(await page.getByRole('button', { name: 'Approve' }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Discard' }).count()).toBe(0);
      await s.screenshot(page, 'viewer-district');
      const answers = await refusedCalls(page, s.h.districtId);
      expect(answers.noCsrf.status).toBe(403);
      expect(answers.noCsrf.code).toBe('csrf_failed');
      expect(answers.withCsrf.status).toBe(403);
      expect(answers.withCsrf.code).toBe('forbidden');
      expect(answers.withCsrf.message).toMatch(/read-only/);
      await page.context().close();
    },
    T,
  );

  it(
    "a district-scoped token cannot open another district's pages",
    async () => {
      const page = await s.loginAs('other');
      await page.getByText('This token may see no configured district.').waitFor();
      await page.goto(`${s.base}${districtPath()}`);
      const alert = page.getByRole('alert').filter({ hasText: 'no access to district' }).first();
      await alert.waitFor({ timeout: UI_TIMEOUT });
      expect(await page.getByRole('button', { name: 'Dry run' }).count()).toBe(0);
      await s.screenshot(page, 'other-district-refused');
      await page.context().close();
    },
    T,
  );
});

const Answer = z.object({ status: z.number(), code: z.string(), message: z.string() });

/** From the page (its session cookie): trigger a sync without, then with the CSRF token. */
async function refusedCalls(page: Page, districtId: string) {
  const raw = await page.evaluate(async (d: string) => {
    const post = async (headers: Record<string, string>) => {
      const res = await fetch(`/districts/${d}/syncs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: '{"dryRun":true}',
      });
      const body = (await res.json()) as { code: string; message: string };
      return { status: res.status, code: body.code, message: body.message };
    };
    const session = (await (await fetch('/session')).json()) as { csrfToken: string };
    return {
      noCsrf: await post({}),
      withCsrf: await post({ 'x-csrf-token': session.csrfToken }),
    };
  }, districtId);
  return z.object({ noCsrf: Answer, withCsrf: Answer }).parse(raw);
}
