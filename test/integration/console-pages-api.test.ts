/**
 * API additions for the admin console's Associations and Imports pages (real fastify on
 * loopback, real SQLite, real Redis): the parent search (`GET /districts/:id/parents?q=`:
 * exact id / Unique ID / email first, then name prefix, server-paged) and the import file
 * inspection (`POST /districts/:id/imports/:kind/inspect`: header row, column mapping, first
 * rows; nothing stored).
 */
import { z } from 'zod';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import {
  csv,
  importDistrict,
  seed,
  sisParent,
  startImportBench,
  student,
  type ImportBench,
} from '../helpers/imports.js';

const ADMIN = 'gst_consapi-admin-token-0123456789abcdefghijklmnopqrstu';
const VIEWER = 'gst_consapi-viewer-token-0123456789abcdefghijklmnopqrst';
const TOKENS: ApiTokenEntry[] = [
  { name: 'admin', sha256: hashToken(ADMIN), role: 'admin' },
  { name: 'viewer', sha256: hashToken(VIEWER), role: 'viewer' },
];
const D = 'consapi-d';

const Page = z.object({
  total: z.number(),
  offset: z.number(),
  limit: z.number(),
  items: z.array(
    z.looseObject({
      id: z.string(),
      givenName: z.string(),
      familyName: z.string(),
      matchedBy: z.string(),
    }),
  ),
});
const Inspection = z.object({
  kind: z.string(),
  file: z.looseObject({ format: z.string(), headerRow: z.number().optional() }),
  headerRow: z.number().optional(),
  columns: z.array(z.object({ column: z.number(), letter: z.string(), header: z.string() })),
  fields: z.array(
    z.object({
      key: z.string(),
      label: z.string(),
      required: z.boolean(),
      column: z.number().optional(),
      header: z.string().optional(),
    }),
  ),
  mappingError: z.string().optional(),
  rows: z.array(z.object({ row: z.number(), cells: z.array(z.string()) })),
});
const Err = z.looseObject({ code: z.string(), message: z.string() });

let bench: ImportBench;
let app: ApiServer;
let base: string;

beforeAll(async () => {
  bench = await startImportBench([importDistrict(D)]);
  await seed(bench.store, D, {
    students: [student(D, 1)],
    parents: [
      sisParent(D, 1, { givenName: 'Ana', familyName: 'Zapata' }),
      sisParent(D, 2, { givenName: 'Zed', familyName: 'anderson' }),
      sisParent(D, 3, { givenName: 'Bob', familyName: 'Brown', status: 'inactive' }),
      sisParent(D, 4, { givenName: 'Anna', familyName: 'Andrews' }),
      // Unique ID "Ann" is also a name prefix of Anna Andrews and Ann Adams
      sisParent(D, 5, { givenName: 'Ann', familyName: 'Adams', uniqueId: 'ANN' }),
      sisParent(D, 6, {
        givenName: 'Carl',
        familyName: 'Mail',
        email: 'Shared@Example.org',
        emailNormalized: 'shared@example.org',
      }),
    ],
  });
  app = await buildApiServer(bench.ctx, { tokens: TOKENS, dashboard: false });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await bench?.close();
});

async function get(token: string | undefined, path: string) {
  const res = await fetch(`${base}${path}`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.status, body: await res.json() };
}

async function upload(token: string, path: string, body: string) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'text/csv' },
    body,
  });
  return { status: res.status, body: await res.json() };
}

const names = (p: z.infer<typeof Page>) =>
  p.items.map(i => `${i.givenName} ${i.familyName}:${i.matchedBy}`);

describe('parent search (GET /districts/:id/parents)', () => {
  it('finds exact Unique ID first, then first- or last-name prefix case-insensitively, any status', async () => {
    const r = await get(VIEWER, `/districts/${D}/parents?q=ANN`);
    expect(r.status).toBe(200);
    const page = Page.parse(r.body);
    // ANN is Ann Adams' Unique ID (exact, listed first and once); then the name prefixes
    expect(names(page)).toEqual(['Ann Adams:uniqueId', 'Anna Andrews:name']);
    expect(page.total).toBe(2);
    expect(names(Page.parse((await get(VIEWER, `/districts/${D}/parents?q=ann`)).body))).toEqual([
      'Ann Adams:name', // Unique IDs match exactly (case counts); names ignore case
      'Anna Andrews:name',
    ]);
    expect(names(Page.parse((await get(VIEWER, `/districts/${D}/parents?q=BRO`)).body))).toEqual([
      'Bob Brown:name', // inactive accounts are found too (the page shows the status)
    ]);
    expect(
      Page.parse((await get(VIEWER, `/districts/${D}/parents?q=pa_sis_1`)).body).items.map(i => [
        i.id,
        i.matchedBy,
      ]),
    ).toEqual([['pa_sis_1', 'id']]);
    expect(
      names(
        Page.parse((await get(VIEWER, `/districts/${D}/parents?q=%20shared@EXAMPLE.org`)).body),
      ),
    ).toEqual(['Carl Mail:email']);
  });

  it('pages on the server: offset/limit over exact and name matches, total counts all', async () => {
    const p1 = Page.parse((await get(VIEWER, `/districts/${D}/parents?q=an&limit=2`)).body);
    const p2 = Page.parse(
      (await get(VIEWER, `/districts/${D}/parents?q=an&limit=2&offset=2`)).body,
    );
    // Ana Zapata, Ann Adams, Zed anderson, Anna Andrews — by last name
    expect(p1.total).toBe(4);
    expect(p2.total).toBe(4);
    expect([...names(p1), ...names(p2)]).toEqual([
      'Ann Adams:name',
      'Zed anderson:name',
      'Anna Andrews:name',
      'Ana Zapata:name',
    ]);
    const p3 = Page.parse(
      (await get(VIEWER, `/districts/${D}/parents?q=ANN&limit=1&offset=1`)).body,
    );
    expect(names(p3)).toEqual(['Anna Andrews:name']); // after the exact match on page 1
    expect(p3.total).toBe(2);
  });

  it('refuses an empty query, an unknown district, and anonymous callers', async () => {
    expect((await get(VIEWER, `/districts/${D}/parents?q=`)).status).toBe(400);
    const nope = await get(VIEWER, `/districts/nope/parents?q=an`);
    expect(nope.status).toBe(404);
    expect(Err.parse(nope.body).message).toMatch(/no district nope/);
    expect((await get(undefined, `/districts/${D}/parents?q=an`)).status).toBe(401);
  });
});

describe('import inspection (POST /districts/:id/imports/:kind/inspect)', () => {
  const file = csv([
    ['Parent accounts export'],
    ['Given Name', 'Surname', 'Parent ID', 'E-mail', 'Notes'],
    ['Rita', 'Lopez', 'P9001', 'rita@example.org', 'x'],
    ['Sam', 'Ng', 'P9002', '', ''],
    ['Tom', 'Ode', 'P9003', 'tom@example.org', 'y'],
  ]);

  it('finds the header under a title row, maps each field as a preview would, shows the first rows', async () => {
    const r = await upload(
      ADMIN,
      `/districts/${D}/imports/parents/inspect?fileName=p.csv&rows=2`,
      file,
    );
    expect(r.status).toBe(200);
    const i = Inspection.parse(r.body);
    expect(i.headerRow).toBe(2);
    expect(i.mappingError).toBeUndefined();
    expect(i.columns.map(c => `${c.letter}:${c.header}`)).toEqual([
      'A:Given Name',
      'B:Surname',
      'C:Parent ID',
      'D:E-mail',
      'E:Notes',
    ]);
    expect(Object.fromEntries(i.fields.map(f => [f.key, f.column ?? null]))).toEqual({
      firstName: 1,
      lastName: 2,
      uniqueId: 3,
      username: null,
      email: 4,
      role: null,
      school: null,
    });
    expect(i.fields.filter(f => f.required).map(f => f.key)).toEqual([
      'firstName',
      'lastName',
      'uniqueId',
    ]);
    expect(i.rows).toEqual([
      { row: 3, cells: ['Rita', 'Lopez', 'P9001', 'rita@example.org', 'x'] },
      { row: 4, cells: ['Sam', 'Ng', 'P9002', '', ''] },
    ]);
    // nothing was stored: no preview jobs, no accounts
    expect((await bench.store.getParents(D)).some(p => p.uniqueId === 'P9001')).toBe(false);
  });

  it('returns the mapping problem with the rows (not an error), and an explicit mapping fixes it', async () => {
    const noEmail = csv([
      ['First', 'Last', 'Code', 'Contact'],
      ['Rita', 'Lopez', 'P9001', 'rita@example.org'],
    ]);
    const bad = Inspection.parse(
      (await upload(ADMIN, `/districts/${D}/imports/parents/inspect?fileName=p.csv`, noEmail)).body,
    );
    expect(bad.mappingError).toMatch(/missing required column "Unique ID"/);
    expect(bad.rows.map(r => r.cells[0])).toEqual(['Rita']);
    const columns = encodeURIComponent(JSON.stringify({ uniqueId: 'Code', email: 4 }));
    const good = Inspection.parse(
      (
        await upload(
          ADMIN,
          `/districts/${D}/imports/parents/inspect?fileName=p.csv&columns=${columns}`,
          noEmail,
        )
      ).body,
    );
    expect(good.mappingError).toBeUndefined();
    expect(good.fields.find(f => f.key === 'uniqueId')).toMatchObject({
      column: 3,
      header: 'Code',
    });
    expect(good.fields.find(f => f.key === 'email')).toMatchObject({ column: 4 });
  });

  it('associations without headers read columns A and B; viewers and bad files are refused', async () => {
    const rows = csv([
      ['P1', 'S1'],
      ['P2', 'S2'],
    ]);
    const i = Inspection.parse(
      (
        await upload(
          ADMIN,
          `/districts/${D}/imports/associations/inspect?fileName=a.csv&hasHeaders=false`,
          rows,
        )
      ).body,
    );
    expect(i.headerRow).toBeUndefined();
    expect(i.fields.map(f => [f.key, f.column])).toEqual([
      ['parentUniqueId', 1],
      ['studentUniqueId', 2],
    ]);
    expect(i.rows.map(r => r.row)).toEqual([1, 2]);
    expect(
      (await upload(VIEWER, `/districts/${D}/imports/associations/inspect?fileName=a.csv`, rows))
        .status,
    ).toBe(403);
    const legacy = await fetch(`${base}/districts/${D}/imports/parents/inspect?fileName=x.xls`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/vnd.ms-excel' },
      body: Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0]),
    });
    expect(legacy.status).toBe(422);
    expect(Err.parse(await legacy.json()).message).toMatch(/legacy Excel/);
  });
});
