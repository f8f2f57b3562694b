/**
 * The change feed over real HTTP (fastify on 127.0.0.1:0, fetch) against a real SQLite store
 * filled by a real sync (fake PowerSchool, Redis, BullMQ workers) and by store calls:
 * paging, resuming from saved cursors in any order, writes during paging, bad cursors, token
 * scope, and the page latency over 10,000 entries.
 */
import { z } from 'zod';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { encodeChangeCursor, feedEntry } from '../../src/jobs/change-feed.js';
import { changeLogRepository, type ChangeContext } from '../../src/models/changes/index.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const TOKENS = {
  viewer: 'gst_feed-viewer-token-0123456789abcdefghijklmnopqrstu',
  own: 'gst_feed-own-district-token-0123456789abcdefghijklmno',
  other: 'gst_feed-other-district-token-0123456789abcdefghijklm',
};
type Who = 'none' | keyof typeof TOKENS;
const ENTRIES: ApiTokenEntry[] = [
  { name: 'feed-viewer', sha256: hashToken(TOKENS.viewer), role: 'viewer' },
  {
    name: 'own-viewer',
    sha256: hashToken(TOKENS.own),
    role: 'viewer',
    districts: ['test-district'],
  },
  {
    name: 'other-admin',
    sha256: hashToken(TOKENS.other),
    role: 'admin',
    districts: ['other-district'],
  },
];

const Page = z.strictObject({
  districtId: z.string(),
  entries: z.array(z.looseObject({ seq: z.number().int(), entity: z.string(), at: z.string() })),
  next: z.string(),
  hasMore: z.boolean(),
  lastSeq: z.number().int(),
});
type Page = z.infer<typeof Page>;
const ErrorBody = z.object({ code: z.string(), message: z.string() });

const CHANGE: ChangeContext = { cause: { kind: 'manual' }, actor: 'test:feed' };

/** Deterministic shuffle (mulberry32), so a failure repeats. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  let a = seed >>> 0;
  const rnd = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const range = (from: number, to: number) =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

describe('change feed API', () => {
  let h: Harness;
  let app: ApiServer;
  let base: string;
  let parents = 0;

  async function get(who: Who, path: string): Promise<Response> {
    const headers: Record<string, string> = {};
    if (who !== 'none') headers.authorization = `Bearer ${TOKENS[who]}`;
    return fetch(`${base}${path}`, { headers });
  }

  async function page(after: string | undefined, limit: number): Promise<Page> {
    const q = new URLSearchParams({ limit: String(limit) });
    if (after !== undefined) q.set('after', after);
    const res = await get('viewer', `/districts/${h.districtId}/changes?${q.toString()}`);
    expect(res.status).toBe(200);
    return Page.parse(await res.json());
  }

  /** Read from `after` until `hasMore` is false; returns every seq and every page's cursor. */
  async function readAll(after: string | undefined, limit: number) {
    const seqs: number[] = [];
    const cursors: { cursor: string; seq: number }[] = [];
    let cursor = after;
    let pages = 0;
    for (;;) {
      const p = await page(cursor, limit);
      pages++;
      expect(p.entries.length).toBeLessThanOrEqual(limit);
      seqs.push(...p.entries.map(e => e.seq));
      if (p.entries.length) cursors.push({ cursor: p.next, seq: p.entries.at(-1)?.seq ?? 0 });
      if (p.hasMore) expect(p.entries.length).toBe(limit);
      cursor = p.next;
      if (!p.hasMore) return { seqs, cursors, pages, next: p.next, lastSeq: p.lastSeq };
      if (pages > 100_000) throw new Error('feed does not end');
    }
  }

  /** Log `n` more changes (new manual accounts). */
  async function addParents(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      parents++;
      await h.store.createParent(
        {
          districtId: h.districtId,
          id: `feed-parent-${parents}`,
          givenName: 'Feed',
          familyName: `Parent ${parents}`,
          role: 'Parent',
          status: 'active',
          origin: 'manual',
          sources: [],
          lockedFields: [],
        },
        CHANGE,
      );
    }
  }

  async function lastSeq(): Promise<number> {
    return (await changeLogRepository(h.store)).lastSeq(h.districtId);
  }

  beforeAll(async () => {
    h = await startHarness({ students: 40, seed: 41 });
    app = await buildApiServer(h.ctx, { tokens: ENTRIES, dashboard: false });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    const { run } = await h.sync();
    expect(run.status).toBe('succeeded');
    // Manual links toggled on and off, and manual accounts: entries of every kind of writer.
    for (let i = 0; i < 20; i++) {
      const link = {
        districtId: h.districtId,
        parentId: `feed-manual-${i}`,
        studentSourcedId: `s-${i}`,
        origin: 'manual' as const,
        status: 'active' as const,
      };
      await h.store.addLink(link, CHANGE);
      if (i % 3 === 0) await h.store.addLink({ ...link, status: 'inactive' }, CHANGE);
    }
    await addParents(150);
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  it('returns every entry exactly once, in sequence, for any page size', async () => {
    const total = await lastSeq();
    expect(total).toBeGreaterThan(300);
    const stored = await (await changeLogRepository(h.store)).list(h.districtId, { limit: 10_000 });
    for (const k of [1, 7, 100, 1000]) {
      const all = await readAll(undefined, k);
      expect(all.seqs).toEqual(range(1, total));
      expect(all.lastSeq).toBe(total);
      expect(all.pages).toBe(Math.ceil(total / k)); // a full last page already says hasMore: false
    }
    // Entries are returned as stored (the page names the district once).
    const first = await page(undefined, 1000);
    expect(first.entries).toEqual(stored.slice(0, 1000).map(feedEntry));
    expect(first.districtId).toBe(h.districtId);
  });

  it('resumes from any saved cursor, in any order, without skipping or repeating', async () => {
    const total = await lastSeq();
    const { cursors } = await readAll(undefined, 7);
    for (const [i, { cursor, seq }] of shuffled(cursors, 4242).slice(0, 30).entries()) {
      // The same cursor read twice gives the same page.
      const again = await page(cursor, 13);
      expect(await page(cursor, 13)).toEqual(again);
      const rest = await readAll(cursor, i % 2 ? 13 : 250);
      expect(rest.seqs).toEqual(range(seq + 1, total));
    }
    // A reader that stops, then another that resumes from its cursor: the two halves join.
    const firstHalf = await page(undefined, Math.floor(total / 2));
    const second = await readAll(firstHalf.next, 64);
    expect([...firstHalf.entries.map(e => e.seq), ...second.seqs]).toEqual(range(1, total));
  });

  it('misses nothing written while a reader pages through', async () => {
    const seqs: number[] = [];
    let cursor: string | undefined;
    let writes = 0;
    for (;;) {
      const p = await page(cursor, 50);
      seqs.push(...p.entries.map(e => e.seq));
      cursor = p.next;
      if (writes < 5) {
        await addParents(11); // entries appear after the reader's position
        writes++;
        continue;
      }
      if (!p.hasMore) break;
    }
    expect(seqs).toEqual(range(1, await lastSeq()));
    // From the end: nothing, no more, and the cursor stays put.
    const end = await page(cursor, 50);
    expect(end).toMatchObject({ entries: [], hasMore: false, next: cursor });
  });

  it('changes/latest gives the end of the log and a cursor that reads only new entries', async () => {
    const res = await get('viewer', `/districts/${h.districtId}/changes/latest`);
    expect(res.status).toBe(200);
    const latest = z
      .object({ districtId: z.string(), lastSeq: z.number(), cursor: z.string() })
      .parse(await res.json());
    expect(latest.lastSeq).toBe(await lastSeq());
    expect(await page(latest.cursor, 10)).toMatchObject({ entries: [], hasMore: false });
    await addParents(2);
    const p = await page(latest.cursor, 10);
    expect(p.entries.map(e => e.seq)).toEqual([latest.lastSeq + 1, latest.lastSeq + 2]);
  });

  it('refuses unreadable, altered, foreign and future cursors with 400 and says why', async () => {
    const d = h.districtId;
    const total = await lastSeq();
    const good = encodeChangeCursor(d, 5);
    const parts = good.split('.');
    const altered = [parts[0], parts[1], '6', parts[3]].join('.');
    const cases: [string, RegExp][] = [
      ['garbage', /not a change-feed cursor/],
      ['', /not a change-feed cursor/],
      [good.slice(0, -1), /not a change-feed cursor/],
      [altered, /altered/],
      [
        encodeChangeCursor('other-district', 5),
        /belongs to district other-district, not test-district/,
      ],
      [encodeChangeCursor(d, total + 100), new RegExp(`ends at ${total}`)],
    ];
    for (const [cursor, message] of cases) {
      const res = await get(
        'viewer',
        `/districts/${d}/changes?after=${encodeURIComponent(cursor)}`,
      );
      expect(res.status).toBe(400);
      const body = ErrorBody.parse(await res.json());
      expect(body.code).toBe('invalid_cursor');
      expect(body.message).toMatch(message);
    }
    for (const limit of ['0', '1001', 'ten']) {
      const res = await get('viewer', `/districts/${d}/changes?limit=${limit}`);
      expect(res.status).toBe(400);
      expect(ErrorBody.parse(await res.json()).code).toBe('invalid_request');
    }
  });

  it('lets a district-scoped token read only its districts', async () => {
    const d = h.districtId;
    for (const path of [
      `/districts/${d}/changes`,
      `/districts/${d}/changes/latest`,
      `/districts/${d}/webhook`,
    ]) {
      expect((await get('none', path)).status).toBe(401);
      expect((await get('other', path)).status).toBe(403);
      expect((await get('own', path)).status).toBe(200);
      expect((await get('viewer', path)).status).toBe(200);
    }
    const forbidden = ErrorBody.parse(await (await get('other', `/districts/${d}/changes`)).json());
    expect(forbidden).toMatchObject({ code: 'forbidden' });
    expect((await get('viewer', '/districts/no-such-district/changes')).status).toBe(404);
    // No webhook configured: the state says so, without inventing one.
    const status = (await (await get('viewer', `/districts/${d}/webhook`)).json()) as Record<
      string,
      unknown
    >;
    expect(status).toMatchObject({ configured: false, urlHost: null, deliveredSeq: 0 });
  });

  it('documents the routes and their response schemas in the OpenAPI document', async () => {
    const res = await get('viewer', '/docs/json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    for (const path of [
      '/districts/{id}/changes',
      '/districts/{id}/changes/latest',
      '/districts/{id}/webhook',
    ])
      expect(doc.paths[path]).toBeDefined();
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining(['ChangeEntry', 'ChangeFeedPage', 'WebhookStatus']),
    );
  });

  it('reads 10,000 entries page by page (measured)', async () => {
    const before = await lastSeq();
    const need = Math.max(0, 10_000 - before);
    const t0 = performance.now();
    await addParents(need);
    const writeMs = performance.now() - t0;
    const total = await lastSeq();
    const timings: Record<string, { pages: number; totalMs: number; maxMs: number }> = {};
    for (const k of [100, 1000]) {
      let cursor: string | undefined;
      let n = 0;
      let maxMs = 0;
      const start = performance.now();
      let pages = 0;
      for (;;) {
        const t = performance.now();
        const p = await page(cursor, k);
        maxMs = Math.max(maxMs, performance.now() - t);
        pages++;
        n += p.entries.length;
        cursor = p.next;
        if (!p.hasMore) break;
      }
      expect(n).toBe(total);
      timings[`limit=${k}`] = {
        pages,
        totalMs: Math.round(performance.now() - start),
        maxMs: Math.round(maxMs),
      };
    }
    console.info(
      `change feed over ${total} entries (${need} written in ${Math.round(writeMs)} ms): ${JSON.stringify(timings)}`,
    );
  });
});
