/**
 * Imports over the admin HTTP API (real fastify on loopback, real SQLite, real Redis): upload
 * a file as the request body, preview, read issues and the CSV report, confirm; errors map to
 * stable codes; only admins may preview or confirm.
 */
import { z } from 'zod';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { changeLogRepository } from '../../src/models/changes/index.js';
import {
  csv,
  importDistrict,
  seed,
  sisParent,
  startImportBench,
  student,
  type ImportBench,
} from '../helpers/imports.js';

const ADMIN = 'gst_imports-admin-token-0123456789abcdefghijklmnopqrs';
const VIEWER = 'gst_imports-viewer-token-0123456789abcdefghijklmnopq';
const TOKENS: ApiTokenEntry[] = [
  { name: 'admin', sha256: hashToken(ADMIN), role: 'admin' },
  { name: 'viewer', sha256: hashToken(VIEWER), role: 'viewer' },
];
const D = 'api-d';

const Preview = z.looseObject({
  previewId: z.string(),
  counts: z.record(z.string(), z.number()),
  issueCount: z.object({ errors: z.number(), warnings: z.number() }),
  issues: z.array(z.looseObject({ row: z.number(), column: z.string(), reason: z.string() })),
});
const Err = z.looseObject({ code: z.string(), message: z.string() });

let bench: ImportBench;
let app: ApiServer;
let base: string;

beforeAll(async () => {
  bench = await startImportBench([importDistrict(D)]);
  await seed(bench.store, D, { students: [student(D, 1)], parents: [sisParent(D, 1)] });
  app = await buildApiServer(bench.ctx, { tokens: TOKENS, dashboard: false });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await bench?.close();
});

function call(
  token: string | undefined,
  method: string,
  path: string,
  body?: Buffer,
  type = 'text/csv',
) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body) headers['content-type'] = type;
  return fetch(`${base}${path}`, { method, headers, body });
}

const PARENTS = Buffer.from(
  csv([
    ['First Name', 'Last Name', 'Unique ID', 'Email'],
    ['Ann', 'Ayer', 'N-1', 'ann@example.org'],
    ['Bad', 'Row', 'N-2', 'nope'],
  ]),
);

describe('imports API', () => {
  it('previews an upload, pages issues, serves the CSV report, and confirms', async () => {
    const res = await call(
      ADMIN,
      'POST',
      `/districts/${D}/imports/parents/preview?fileName=parents.csv&dontAllowDuplicates=true`,
      PARENTS,
    );
    expect(res.status).toBe(200);
    const p = Preview.parse(await res.json());
    expect(p.counts).toMatchObject({ create: 1, errorRows: 1 });
    expect(p.issues).toEqual([
      expect.objectContaining({ row: 3, column: 'Email', reason: 'not a valid email address' }),
    ]);

    const viewerGet = await call(VIEWER, 'GET', `/districts/${D}/imports/${p.previewId}`);
    expect(viewerGet.status).toBe(200);
    expect(Preview.parse(await viewerGet.json()).previewId).toBe(p.previewId);
    const issues = await call(
      VIEWER,
      'GET',
      `/districts/${D}/imports/${p.previewId}/issues?limit=10`,
    );
    expect(await issues.json()).toMatchObject({ total: 1, items: [{ row: 3 }] });
    const report = await call(VIEWER, 'GET', `/districts/${D}/imports/${p.previewId}/report.csv`);
    expect(report.headers.get('content-type')).toMatch(/^text\/csv/);
    expect((await report.text()).replace(/^\ufeff/, '')).toBe(
      'file,row,column,value,severity,reason\r\nparents.csv,3,Email,nope,error,not a valid email address\r\n',
    );

    const forbidden = await call(VIEWER, 'POST', `/districts/${D}/imports/${p.previewId}/confirm`);
    expect(forbidden.status).toBe(403);
    const ok = await call(ADMIN, 'POST', `/districts/${D}/imports/${p.previewId}/confirm`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ status: 'applied', counts: { create: 1 } });
    expect((await bench.store.getParents(D)).some(a => a.uniqueId === 'N-1')).toBe(true);
    // logged with the token's name as actor
    const entries = await (
      await changeLogRepository(bench.store)
    ).list(D, { causeIds: [p.previewId], limit: 1000 });
    expect(entries.map(e => [e.entity, e.action, e.actor, e.cause.kind])).toEqual([
      ['parent', 'create', 'api:admin', 'import'],
    ]);
    const again = await call(ADMIN, 'POST', `/districts/${D}/imports/${p.previewId}/confirm`);
    expect(await again.json()).toMatchObject({ status: 'already-applied' });
  });

  it('association upload with switches; a changed store answers status "changed" with the new preview', async () => {
    const file = Buffer.from('P00001;S00001\n');
    const res = await call(
      ADMIN,
      'POST',
      `/districts/${D}/imports/associations/preview?fileName=l.csv&hasHeaders=false&clearExisting=true`,
      file,
    );
    expect(res.status).toBe(200);
    const p = Preview.parse(await res.json());
    expect(p.counts).toMatchObject({ add: 1 });
    await seed(bench.store, D, {
      parents: [sisParent(D, 2)],
      links: [
        {
          districtId: D,
          parentId: 'pa_sis_2',
          studentSourcedId: 'stu-1',
          origin: 'manual',
          status: 'active',
        },
      ],
    });
    const r = await call(ADMIN, 'POST', `/districts/${D}/imports/${p.previewId}/confirm`);
    const body = (await r.json()) as {
      status: string;
      preview: { previewId: string; counts: Record<string, number> };
    };
    expect(body.status).toBe('changed');
    expect(body.preview.counts).toMatchObject({ add: 1, remove: 1 });
    const old = await call(ADMIN, 'POST', `/districts/${D}/imports/${p.previewId}/confirm`);
    expect(old.status).toBe(409);
    expect(Err.parse(await old.json()).code).toBe('preview_superseded');
  });

  it('maps bad files, bad options and unknown previews to stable codes', async () => {
    const xls = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0]);
    const legacy = await call(
      ADMIN,
      'POST',
      `/districts/${D}/imports/parents/preview?fileName=old.xls`,
      xls,
      'application/vnd.ms-excel',
    );
    expect(legacy.status).toBe(422);
    expect(Err.parse(await legacy.json())).toMatchObject({
      code: 'invalid_file',
      message: expect.stringMatching(
        /^old\.xls: this is a legacy Excel 97-2003 workbook/,
      ) as unknown,
    });

    const badRole = await call(
      ADMIN,
      'POST',
      `/districts/${D}/imports/parents/preview?fileName=p.csv&role=Nanny`,
      PARENTS,
    );
    expect(badRole.status).toBe(400);
    expect(await badRole.json()).toMatchObject({
      code: 'invalid_request',
      details: [{ message: expect.stringMatching(/role "Nanny" does not exist/) as unknown }],
    });

    const badJson = await call(
      ADMIN,
      'POST',
      `/districts/${D}/imports/parents/preview?fileName=p.csv&columns={`,
      PARENTS,
    );
    expect(badJson.status).toBe(400);

    const viewer = await call(
      VIEWER,
      'POST',
      `/districts/${D}/imports/parents/preview?fileName=p.csv`,
      PARENTS,
    );
    expect(viewer.status).toBe(403);
    const anon = await call(
      undefined,
      'GET',
      `/districts/${D}/imports/imp_000000000000000000000000`,
    );
    expect(anon.status).toBe(401);
    const missing = await call(
      VIEWER,
      'GET',
      `/districts/${D}/imports/imp_000000000000000000000000`,
    );
    expect(missing.status).toBe(404);
    expect(Err.parse(await missing.json()).code).toBe('preview_not_found');
    const malformed = await call(VIEWER, 'GET', `/districts/${D}/imports/not-an-id/report.csv`);
    expect(malformed.status).toBe(404);
    const unknownDistrict = await call(
      ADMIN,
      'POST',
      `/districts/nope/imports/parents/preview?fileName=p.csv`,
      PARENTS,
    );
    expect(unknownDistrict.status).toBe(404);
  });
});
