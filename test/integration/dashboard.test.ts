/**
 * The queue dashboard (issue 16, point 6): the page loads nothing from other hosts (air-gapped
 * districts), every asset it names is served locally, the notifications queue says that the
 * running workers have no SMTP_URL (instead of a bare "No workers"), and schedule edits are
 * refused (schedules come from the district files).
 */
import { hostname } from 'node:os';
import { z } from 'zod';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken } from '../../src/config/api-tokens.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const ADMIN = 'gst_dashboard-admin-token-0123456789abcdefghijklmnopq';
const basic = `Basic ${Buffer.from(`:${ADMIN}`).toString('base64')}`;

const Queues = z.object({
  queues: z.array(
    z.object({
      name: z.string(),
      description: z.string().optional(),
      readOnlyMode: z.boolean(),
    }),
  ),
});

describe('queue dashboard', () => {
  let h: Harness;
  let app: ApiServer;
  let base: string;
  const get = (path: string) => fetch(`${base}${path}`, { headers: { authorization: basic } });

  beforeAll(async () => {
    // the harness runs the workers in this process, without SMTP_URL
    h = await startHarness({ students: 20, seed: 5 });
    app = await buildApiServer(h.ctx, {
      tokens: [{ name: 'admin', sha256: hashToken(ADMIN), role: 'admin' }],
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  it('the page names no external URL, and every asset it names is served', async () => {
    const res = await get('/admin/queues');
    expect(res.status).toBe(200);
    const html = await res.text();
    const refs = [...html.matchAll(/<(?:link|script)\b[^>]*\b(?:href|src)="([^"]+)"/gi)].map(
      m => m[1] ?? '',
    );
    expect(refs.length).toBeGreaterThan(2);
    const external = refs.filter(r => /^(https?:)?\/\//i.test(r));
    expect(external).toEqual([]);
    expect(html).not.toMatch(/fonts\.googleapis|fonts\.gstatic/);
    for (const r of refs) {
      const asset = await get(`/admin/queues/${r}`);
      expect([r, asset.status]).toEqual([r, 200]);
    }
  });

  it('the notifications queue says its workers have no SMTP_URL', async () => {
    const body = Queues.parse(await (await get('/admin/queues/api/queues')).json());
    const notifications = body.queues.find(q => q.name === 'notifications');
    expect(notifications?.description).toContain('without SMTP_URL');
    expect(notifications?.description).toContain(`${hostname()}:${process.pid}`);
    expect(body.queues.find(q => q.name === 'roster-pull')?.description).toMatch(/SIS/);
  });

  it('refuses schedule edits: the trigger queue is read-only, with the reason', async () => {
    await h.ctx.queues.trigger.upsertJobScheduler(
      `district.${h.districtId}`,
      { pattern: '15 2 * * *' },
      { name: 'trigger', data: { districtId: h.districtId, trigger: 'schedule' } },
    );
    const body = Queues.parse(await (await get('/admin/queues/api/queues')).json());
    const trigger = body.queues.find(q => q.name === 'sync-trigger');
    expect(trigger?.readOnlyMode).toBe(true);
    expect(trigger?.description).toMatch(/district files/);
    const id = encodeURIComponent(`district.${h.districtId}`);
    const edit = await fetch(`${base}/admin/queues/api/queues/sync-trigger/job-schedulers/${id}`, {
      method: 'PATCH',
      headers: { authorization: basic, 'content-type': 'application/json' },
      body: JSON.stringify({ pattern: '0 9 * * *' }),
    });
    expect(edit.status).toBe(405);
    const remove = await fetch(
      `${base}/admin/queues/api/queues/sync-trigger/job-schedulers/${id}/remove`,
      { method: 'PUT', headers: { authorization: basic } },
    );
    expect(remove.status).toBe(405);
    const s = await h.ctx.queues.trigger.getJobScheduler(`district.${h.districtId}`);
    expect(s?.pattern).toBe('15 2 * * *');
  });
});
