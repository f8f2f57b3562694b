/**
 * Manual associations over the admin HTTP API (real fastify on loopback, real SQLite, real
 * Redis): search students by name prefix, associate (link origin `manual`), remove (the manual
 * link is deactivated, other origins untouched), clear errors, and roles.
 */
import { z } from 'zod';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { changeLogRepository, linkRef } from '../../src/models/changes/index.js';
import {
  importDistrict,
  seed,
  sisParent,
  startImportBench,
  student,
  type ImportBench,
} from '../helpers/imports.js';

const ADMIN = 'gst_manual-admin-token-0123456789abcdefghijklmnopqrstu';
const VIEWER = 'gst_manual-viewer-token-0123456789abcdefghijklmnopqrst';
const TOKENS: ApiTokenEntry[] = [
  { name: 'admin', sha256: hashToken(ADMIN), role: 'admin' },
  { name: 'viewer', sha256: hashToken(VIEWER), role: 'viewer' },
];
const D = 'manual-d';

const Hits = z.object({
  students: z.array(
    z.object({
      sourcedId: z.string(),
      uniqueId: z.string(),
      givenName: z.string(),
      familyName: z.string(),
      grade: z.string().optional(),
      schoolSourcedIds: z.array(z.string()),
    }),
  ),
});
const Result = z.object({
  status: z.string(),
  parentId: z.string(),
  studentSourcedId: z.string(),
  studentUniqueId: z.string(),
  otherActiveOrigins: z.array(z.string()),
});
const Err = z.looseObject({ code: z.string(), message: z.string() });

let bench: ImportBench;
let app: ApiServer;
let base: string;

beforeAll(async () => {
  bench = await startImportBench([importDistrict(D)]);
  await seed(bench.store, D, {
    students: [
      student(D, 1, { givenName: 'José', familyName: 'García', grade: '3' }),
      student(D, 2, { givenName: 'Zoë', familyName: "O'Brien" }),
      student(D, 3, { givenName: 'Mary Ann', familyName: 'Josefsson' }),
      student(D, 4, { givenName: 'Old', familyName: 'Graduate', status: 'inactive' }),
      student(D, 5, { givenName: 'Sam', familyName: 'Sis' }),
    ],
    parents: [sisParent(D, 1), sisParent(D, 2, { status: 'inactive' })],
    links: [
      {
        districtId: D,
        parentId: 'pa_sis_1',
        studentSourcedId: 'stu-5',
        origin: 'sis',
        status: 'active',
      },
    ],
  });
  app = await buildApiServer(bench.ctx, { tokens: TOKENS, dashboard: false });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await bench?.close();
});

async function call(token: string | undefined, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: await res.json() };
}

const search = async (q: string) => {
  const r = await call(VIEWER, 'GET', `/districts/${D}/students?q=${encodeURIComponent(q)}`);
  expect(r.status).toBe(200);
  return Hits.parse(r.body).students.map(s => `${s.givenName} ${s.familyName}`);
};

const linksOf = async (studentSourcedId: string) =>
  (await bench.store.getLinks(D))
    .filter(l => l.studentSourcedId === studentSourcedId)
    .map(l => `${l.parentId}:${l.origin}:${l.status}`)
    .sort();

describe('manual associations API', () => {
  it('searches active students by first- or last-name prefix, ignoring case, accents and punctuation', async () => {
    expect(await search('jose')).toEqual(['José García', 'Mary Ann Josefsson']);
    expect(await search('JOSÉ')).toEqual(['José García', 'Mary Ann Josefsson']);
    expect(await search('obr')).toEqual(["Zoë O'Brien"]);
    expect(await search('ann')).toEqual(['Mary Ann Josefsson']); // a word of a two-word name
    expect(await search('gra')).toEqual([]); // "Graduate" is inactive
    const full = Hits.parse(
      (await call(VIEWER, 'GET', `/districts/${D}/students?q=garc&limit=5`)).body,
    );
    expect(full.students).toEqual([
      {
        sourcedId: 'stu-1',
        uniqueId: 'S00001',
        givenName: 'José',
        familyName: 'García',
        grade: '3',
        schoolSourcedIds: ['sch-1'],
      },
    ]);
    const bad = await call(VIEWER, 'GET', `/districts/${D}/students?q=${encodeURIComponent("'-")}`);
    expect(bad.status).toBe(400);
    expect(Err.parse(bad.body).message).toMatch(/no letter or digit/);
    expect((await call(VIEWER, 'GET', `/districts/nope/students?q=jo`)).status).toBe(404);
    expect((await call(undefined, 'GET', `/districts/${D}/students?q=jo`)).status).toBe(401);
  });

  it('associates (origin manual), is idempotent, removes by deactivating, and reactivates', async () => {
    const path = `/districts/${D}/parents/pa_sis_1/associations`;
    const a = await call(ADMIN, 'POST', path, { studentUniqueId: 'S00002' });
    expect(a.status).toBe(200);
    expect(Result.parse(a.body)).toEqual({
      status: 'created',
      parentId: 'pa_sis_1',
      studentSourcedId: 'stu-2',
      studentUniqueId: 'S00002',
      otherActiveOrigins: [],
    });
    expect(await linksOf('stu-2')).toEqual(['pa_sis_1:manual:active']);
    expect(
      Result.parse((await call(ADMIN, 'POST', path, { studentUniqueId: 'S00002' })).body).status,
    ).toBe('unchanged');

    const del = await call(ADMIN, 'DELETE', `${path}/S00002`);
    expect(del.status).toBe(200);
    expect(Result.parse(del.body).status).toBe('deactivated');
    expect(await linksOf('stu-2')).toEqual(['pa_sis_1:manual:inactive']); // kept, not deleted
    expect(Result.parse((await call(ADMIN, 'DELETE', `${path}/S00002`)).body).status).toBe(
      'already-inactive',
    );

    const again = await call(ADMIN, 'POST', path, { studentSourcedId: 'stu-2' });
    expect(Result.parse(again.body).status).toBe('reactivated');
    expect(await linksOf('stu-2')).toEqual(['pa_sis_1:manual:active']);

    // Every change is in the change log with cause manual and the token as actor; the
    // idempotent calls (unchanged, already-inactive) logged nothing.
    const entries = await (
      await changeLogRepository(bench.store)
    ).list(D, { studentSourcedId: 'stu-2', entity: 'link', limit: 1000 });
    expect(
      entries.map(e => [e.action, e.entityId, e.origin, e.cause.kind, e.actor, e.after]),
    ).toEqual([
      [
        'create',
        linkRef('manual', 'pa_sis_1', 'stu-2'),
        'manual',
        'manual',
        'api:admin',
        { status: 'active' },
      ],
      [
        'deactivate',
        linkRef('manual', 'pa_sis_1', 'stu-2'),
        'manual',
        'manual',
        'api:admin',
        { status: 'inactive' },
      ],
      [
        'reactivate',
        linkRef('manual', 'pa_sis_1', 'stu-2'),
        'manual',
        'manual',
        'api:admin',
        { status: 'active' },
      ],
    ]);
  });

  it('a manual link next to a sis link: remove touches only the manual one; sis-only is refused with the reason', async () => {
    const path = `/districts/${D}/parents/pa_sis_1/associations`;
    const refused = await call(ADMIN, 'DELETE', `${path}/S00005`);
    expect(refused.status).toBe(409);
    expect(Err.parse(refused.body)).toMatchObject({ code: 'not_manual' });
    expect(Err.parse(refused.body).message).toMatch(
      /comes from sis.*remove the relationship in the SIS/,
    );
    expect(await linksOf('stu-5')).toEqual(['pa_sis_1:sis:active']);

    const a = Result.parse((await call(ADMIN, 'POST', path, { studentUniqueId: 'S00005' })).body);
    expect(a).toMatchObject({ status: 'created', otherActiveOrigins: ['sis'] });
    expect(await linksOf('stu-5')).toEqual(['pa_sis_1:manual:active', 'pa_sis_1:sis:active']);
    const del = Result.parse((await call(ADMIN, 'DELETE', `${path}/S00005`)).body);
    expect(del).toMatchObject({ status: 'deactivated', otherActiveOrigins: ['sis'] });
    expect(await linksOf('stu-5')).toEqual(['pa_sis_1:manual:inactive', 'pa_sis_1:sis:active']);
  });

  it('unknown or inactive parents and students are clear errors that change nothing', async () => {
    const before = await bench.store.getLinks(D);
    const cases: [string, string, unknown, number, string, RegExp][] = [
      [
        'POST',
        '/parents/pa_nope/associations',
        { studentUniqueId: 'S00001' },
        404,
        'parent_not_found',
        /no parent account pa_nope/,
      ],
      [
        'POST',
        '/parents/pa_sis_1/associations',
        { studentUniqueId: 'S99999' },
        404,
        'student_not_found',
        /no student with Unique ID S99999/,
      ],
      [
        'POST',
        '/parents/pa_sis_2/associations',
        { studentUniqueId: 'S00001' },
        409,
        'parent_inactive',
        /pa_sis_2 is inactive/,
      ],
      [
        'POST',
        '/parents/pa_sis_1/associations',
        { studentUniqueId: 'S00004' },
        409,
        'student_inactive',
        /S00004 \(stu-4\) is inactive/,
      ],
      [
        'POST',
        '/parents/pa_sis_1/associations',
        {},
        400,
        'invalid_request',
        /exactly one of studentUniqueId and studentSourcedId/,
      ],
      [
        'DELETE',
        '/parents/pa_sis_1/associations/S00001',
        undefined,
        404,
        'association_not_found',
        /are not associated/,
      ],
      [
        'DELETE',
        '/parents/pa_sis_1/associations/S99999',
        undefined,
        404,
        'student_not_found',
        /S99999/,
      ],
    ];
    for (const [method, path, body, status, code, message] of cases) {
      const r = await call(ADMIN, method, `/districts/${D}${path}`, body);
      expect({ path, status: r.status }).toEqual({ path, status });
      const e = Err.parse(r.body);
      expect(e.code).toBe(code);
      expect(`${e.message} ${JSON.stringify(e.details ?? '')}`).toMatch(message);
    }
    expect(await bench.store.getLinks(D)).toEqual(before);
  });

  it('a viewer cannot associate or remove (403); nothing changes', async () => {
    const before = await bench.store.getLinks(D);
    const post = await call(VIEWER, 'POST', `/districts/${D}/parents/pa_sis_1/associations`, {
      studentUniqueId: 'S00001',
    });
    expect(post.status).toBe(403);
    const del = await call(
      VIEWER,
      'DELETE',
      `/districts/${D}/parents/pa_sis_1/associations/S00002`,
    );
    expect(del.status).toBe(403);
    expect(await bench.store.getLinks(D)).toEqual(before);
  });
});
