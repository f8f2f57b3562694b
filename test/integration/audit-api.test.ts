/**
 * The audit over the admin HTTP API and the CLI, end to end (real fake PowerSchool, real
 * BullMQ workers on real Redis, real SQLite, real fastify on loopback, the CLI as a child
 * process): links made each way — a sync run, a manual association, an association import,
 * a Parent Access Code registration and Add Child — and the audit naming the cause of each
 * (run id and trigger, actor, preview id, redemption without the code's value).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { normalizeAccessCode } from '../../src/access-codes/code.js';
import type { ParentHistory, StudentGuardians } from '../../src/audit/service.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { codeRef } from '../../src/models/changes/index.js';
import type { GuardianLink, StoredStudent, SyncRun } from '../../src/models/types.js';
import { startHarness, type Harness } from '../helpers/harness.js';
import { csv } from '../helpers/imports.js';

const ADMIN = 'gst_audit-admin-token-0123456789abcdefghijklmnopqrstuvw';
const VIEWER = 'gst_audit-viewer-token-0123456789abcdefghijklmnopqrstuv';
const OTHER = 'gst_audit-other-token-0123456789abcdefghijklmnopqrstuvwx';
const TOKENS: ApiTokenEntry[] = [
  { name: 'admin', sha256: hashToken(ADMIN), role: 'admin' },
  { name: 'viewer', sha256: hashToken(VIEWER), role: 'viewer' },
  { name: 'other', sha256: hashToken(OTHER), role: 'viewer', districts: ['other-district'] },
];

let h: Harness;
let app: ApiServer;
let base: string;
let D: string;
let run: SyncRun;

async function call(token: string | undefined, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: string | undefined;
  if (typeof body === 'string') {
    headers['content-type'] = 'text/csv';
    payload = body;
  } else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const res = await fetch(`${base}${path}`, {
    method,
    headers,
    ...(payload !== undefined ? { body: payload } : {}),
  });
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) as Record<string, unknown> };
}

async function guardians(student: string, query = '') {
  const r = await call(
    VIEWER,
    'GET',
    `/districts/${D}/students/${encodeURIComponent(student)}/guardians${query}`,
  );
  expect(r.status).toBe(200);
  return { ...r, answer: r.body as unknown as StudentGuardians };
}

async function history(parent: string, query = '') {
  const r = await call(
    VIEWER,
    'GET',
    `/districts/${D}/parents/${encodeURIComponent(parent)}${query}`,
  );
  expect(r.status).toBe(200);
  return { ...r, answer: r.body as unknown as ParentHistory };
}

const linkOf = (a: StudentGuardians, parentId: string, origin: string) => {
  const g = a.guardians.find(x => x.parent.id === parentId && x.origin === origin);
  if (!g) throw new Error(`no ${origin} link of ${parentId} in ${JSON.stringify(a.guardians)}`);
  return g;
};

/** The formatted active code of a student (admin route), and its canonical form. */
async function codeOf(uniqueId: string): Promise<{ formatted: string; canonical: string }> {
  const r = await call(ADMIN, 'GET', `/districts/${D}/students/${uniqueId}/access-codes`);
  expect(r.status).toBe(200);
  const codes = (r.body as { codes: { formatted: string; status: string }[] }).codes;
  const active = codes.find(c => c.status === 'active');
  if (!active) throw new Error(`student ${uniqueId} has no active code`);
  const canonical = normalizeAccessCode(active.formatted);
  if (!canonical) throw new Error(`unreadable code for ${uniqueId}`);
  return { formatted: active.formatted, canonical };
}

/** Everything a response could leak a code through: the code with and without dashes. */
const expectNoCode = (text: string, code: { formatted: string; canonical: string }) => {
  expect(text).not.toContain(code.formatted);
  expect(text).not.toContain(code.canonical);
  expect(text.toUpperCase()).not.toContain(code.formatted.replace(/-/g, ''));
};

// Cast of the story: one student (S) with a SIS guardian, linked four more ways.
let S: StoredStudent; // the student audited
let T: StoredStudent; // a second student (Add Child)
let sisParentId: string; // S's guardian from the SIS
let manualParentId: string; // another SIS account, associated with S by hand
let importParentId = ''; // an account made by a parent import, associated by an import
let previewId = ''; // the association import's preview
let registeredParentId = ''; // registered with S's code
let codeS: { formatted: string; canonical: string };
let codeT: { formatted: string; canonical: string };

beforeAll(async () => {
  h = await startHarness({
    students: 40,
    seed: 1313,
    district: { accessCodes: { enabled: true, issueTo: 'all' } },
  });
  D = h.districtId;
  app = await buildApiServer(h.ctx, { tokens: TOKENS, dashboard: false });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
  ({ run } = await h.sync());
  expect(run.status).toBe('succeeded');

  const students = (await h.store.getStudents(D)).filter(s => s.status === 'active');
  const links = (await h.store.getLinks(D)).filter(l => l.status === 'active');
  const linked = (sid: string) => links.filter(l => l.studentSourcedId === sid);
  const s = students.find(x => linked(x.sourcedId).length >= 1);
  if (!s) throw new Error('the generated district has no linked student');
  S = s;
  sisParentId = (linked(S.sourcedId)[0] as GuardianLink).parentId;
  const parents = (await h.store.getParents(D)).filter(p => p.status === 'active');
  const other = parents.find(p => !linked(S.sourcedId).some(l => l.parentId === p.id));
  if (!other) throw new Error('no second parent account');
  manualParentId = other.id;
  const t = students.find(
    x =>
      x.sourcedId !== S.sourcedId && !linked(x.sourcedId).some(l => l.parentId === manualParentId),
  );
  if (!t) throw new Error('no second student');
  T = t;
}, 120_000);

afterAll(async () => {
  await app?.close();
  await h?.close();
});

describe('audit: who is linked to this student and why', () => {
  it('a sync link names the run (id, trigger, status)', async () => {
    const { answer } = await guardians(S.uniqueId);
    expect(answer.student).toMatchObject({ sourcedId: S.sourcedId, uniqueId: S.uniqueId });
    const g = linkOf(answer, sisParentId, 'sis');
    expect(g.status).toBe('active');
    expect(g.how?.cause).toEqual({ kind: 'sync', id: run.id, trigger: 'test' });
    expect(g.how?.run).toMatchObject({ id: run.id, status: 'succeeded', trigger: 'test' });
    expect(g.since).toBe(g.how?.at);
    expect(g.explanation).toBe(
      `linked by sync run ${run.id} (trigger test; run succeeded) on ${g.how?.at.slice(0, 10)} ${g.how?.at.slice(11, 16)} UTC`,
    );
    // The same answer by sourcedId, and with the kind of reference said explicitly.
    expect((await guardians(S.sourcedId)).answer).toEqual(answer);
    expect((await guardians(S.sourcedId, '?by=sourcedId')).answer).toEqual(answer);
    expect((await guardians(S.uniqueId, '?by=uniqueId')).answer).toEqual(answer);
  });

  it('a manual association names the admin who made it', async () => {
    const a = await call(ADMIN, 'POST', `/districts/${D}/parents/${manualParentId}/associations`, {
      studentUniqueId: S.uniqueId,
    });
    expect(a.status).toBe(200);
    const g = linkOf((await guardians(S.uniqueId)).answer, manualParentId, 'manual');
    expect(g).toMatchObject({
      status: 'active',
      how: { cause: { kind: 'manual' }, actor: 'api:admin' },
    });
    expect(g.explanation).toMatch(
      /^associated by hand by api:admin on \d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
    );
  });

  it('an association import names its preview and the admin who confirmed it', async () => {
    const parentFile = csv([
      ['First Name', 'Last Name', 'Unique ID', 'Email'],
      ['Imogen', 'Porter', 'PAUDIT1', 'imogen.porter@example.org'],
    ]);
    const pp = await call(
      ADMIN,
      'POST',
      `/districts/${D}/imports/parents/preview?fileName=parents.csv`,
      parentFile,
    );
    expect(pp.status).toBe(200);
    const pc = await call(
      ADMIN,
      'POST',
      `/districts/${D}/imports/${String(pp.body.previewId)}/confirm`,
    );
    expect(pc.body.status).toBe('applied');
    importParentId = (await history('PAUDIT1')).answer.account.id;

    const linkFile = csv([
      ['Parent Unique ID', 'Student Unique ID'],
      ['PAUDIT1', S.uniqueId],
    ]);
    const ap = await call(
      ADMIN,
      'POST',
      `/districts/${D}/imports/associations/preview?fileName=links.csv`,
      linkFile,
    );
    expect(ap.status).toBe(200);
    previewId = String(ap.body.previewId);
    const ac = await call(ADMIN, 'POST', `/districts/${D}/imports/${previewId}/confirm`);
    expect(ac.body.status).toBe('applied');

    const g = linkOf((await guardians(S.uniqueId)).answer, importParentId, 'import');
    expect(g.how?.cause).toMatchObject({ kind: 'import', id: previewId });
    expect(g.how?.actor).toBe('api:admin');
    expect(g.explanation).toMatch(
      new RegExp(
        `^imported from preview ${previewId} by api:admin on \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC$`,
      ),
    );
  });

  it('a code registration is a redemption, named by code ref; the code never appears', async () => {
    codeS = await codeOf(S.uniqueId);
    const r = await call(ADMIN, 'POST', '/access-codes/register', {
      code: codeS.formatted,
      givenName: 'Robin',
      familyName: 'Redeemer',
      email: 'robin.redeemer@example.org',
      client: 'audit-test',
    });
    expect(r.status).toBe(200);
    registeredParentId = String(r.body.parentId);

    const { answer, text } = await guardians(S.uniqueId);
    const g = linkOf(answer, registeredParentId, 'access-code');
    expect(g.how?.cause).toEqual({
      kind: 'redemption',
      id: codeRef(codeS.canonical),
      trigger: 'register',
    });
    expect(g.explanation).toMatch(
      /^registered with the student's Parent Access Code on \d{4}-\d\d-\d\d \d\d:\d\d UTC$/,
    );
    expect(g.parent).toMatchObject({ name: 'Robin Redeemer', email: 'robin.redeemer@example.org' });
    expectNoCode(text, codeS);
    expectNoCode((await history(registeredParentId)).text, codeS);
  });

  it('Add Child is a redemption with trigger add-child; the code never appears', async () => {
    codeT = await codeOf(T.uniqueId);
    const r = await call(ADMIN, 'POST', `/districts/${D}/parents/${manualParentId}/children`, {
      code: codeT.formatted,
      client: 'audit-test',
    });
    expect(r.status).toBe(200);
    const { answer, text } = await guardians(T.uniqueId);
    const g = linkOf(answer, manualParentId, 'access-code');
    expect(g.how?.cause).toEqual({
      kind: 'redemption',
      id: codeRef(codeT.canonical),
      trigger: 'add-child',
    });
    expect(g.explanation).toMatch(/^added with the student's Parent Access Code \(Add Child\) on /);
    expectNoCode(text, codeT);
  });

  it('lists inactive links after the active ones, with what removed them', async () => {
    const del = await call(
      ADMIN,
      'DELETE',
      `/districts/${D}/parents/${manualParentId}/associations/${S.uniqueId}`,
    );
    expect(del.status).toBe(200);
    const { answer } = await guardians(S.uniqueId);
    const statuses = answer.guardians.map(g => g.status);
    expect(statuses).toEqual([...statuses].sort()); // 'active' < 'inactive'
    expect(answer.counts).toEqual({
      active: statuses.filter(s => s === 'active').length,
      inactive: 1,
    });
    const g = linkOf(answer, manualParentId, 'manual');
    expect(g.status).toBe('inactive');
    expect(g.how).toMatchObject({
      cause: { kind: 'manual' },
      actor: 'api:admin',
      action: 'create',
    });
    expect(g.ended).toMatchObject({
      cause: { kind: 'manual' },
      actor: 'api:admin',
      action: 'deactivate',
    });
    expect(g.until).toBe(g.ended?.at);
    expect(g.explanation).toMatch(
      /^associated by hand by api:admin on .*; removed by hand by api:admin on /,
    );
    // every origin is there, each with its cause
    expect(
      answer.guardians.map(x => `${x.origin}:${x.status}:${x.how?.cause.kind ?? 'none'}`).sort(),
    ).toEqual(
      expect.arrayContaining([
        'sis:active:sync',
        'import:active:import',
        'access-code:active:redemption',
        'manual:inactive:manual',
      ]),
    );
  });

  it('unknown students are 404 with the reference; roles and district scope hold', async () => {
    const r = await call(VIEWER, 'GET', `/districts/${D}/students/NOPE-1/guardians`);
    expect(r.status).toBe(404);
    expect(r.body).toMatchObject({
      code: 'student_not_found',
      message: `district ${D} has no student with sourcedId or Unique ID NOPE-1`,
    });
    const byKind = await call(
      VIEWER,
      'GET',
      `/districts/${D}/students/${S.uniqueId}/guardians?by=sourcedId`,
    );
    expect(byKind.status).toBe(S.uniqueId === S.sourcedId ? 200 : 404);
    expect((await call(VIEWER, 'GET', `/districts/nope/students/x/guardians`)).status).toBe(404);
    expect((await call(VIEWER, 'GET', `/districts/${D}/students/x/guardians?by=name`)).status).toBe(
      400,
    );
    expect((await call(undefined, 'GET', `/districts/${D}/students/x/guardians`)).status).toBe(401);
    const scoped = await call(OTHER, 'GET', `/districts/${D}/students/${S.uniqueId}/guardians`);
    expect(scoped.status).toBe(403);
    expect(scoped.body.code).toBe('forbidden');
    const scopedParent = await call(OTHER, 'GET', `/districts/${D}/parents/${sisParentId}`);
    expect(scopedParent.status).toBe(403);
    // Both routes are in the OpenAPI document, with their response schemas.
    const doc = await call(VIEWER, 'GET', '/docs/json');
    expect(doc.status).toBe(200);
    const paths = doc.body.paths as Record<string, unknown>;
    expect(Object.keys(paths)).toEqual(
      expect.arrayContaining([
        '/districts/{id}/students/{student}/guardians',
        '/districts/{id}/parents/{parent}',
      ]),
    );
  });
});

describe('audit: what happened to this parent account', () => {
  it('shows the account, its children with their causes, and its history in order', async () => {
    const { answer } = await history(manualParentId);
    const acc = answer.account;
    expect(acc).toMatchObject({ id: manualParentId, origin: 'sis', status: 'active' });
    expect(acc.sources.length).toBeGreaterThanOrEqual(1);
    expect(acc.created?.cause).toEqual({ kind: 'sync', id: run.id, trigger: 'test' });
    expect(acc.explanation).toMatch(
      new RegExp(`^account created by sync run ${run.id} \\(trigger test; run succeeded\\)`),
    );

    const child = (sid: string, origin: string) =>
      answer.children.find(c => c.student.sourcedId === sid && c.origin === origin);
    expect(child(S.sourcedId, 'manual')).toMatchObject({
      status: 'inactive',
      how: { actor: 'api:admin' },
      ended: { actor: 'api:admin' },
    });
    expect(child(T.sourcedId, 'access-code')?.how?.cause.trigger).toBe('add-child');
    const statuses = answer.children.map(c => c.status);
    expect(statuses).toEqual([...statuses].sort());

    const entries = answer.history.entries;
    expect(answer.history.nextAfter).toBeNull();
    expect(entries.map(e => e.seq)).toEqual([...entries.map(e => e.seq)].sort((a, b) => a - b));
    expect(entries[0]).toMatchObject({
      entity: 'parent',
      action: 'create',
      cause: { kind: 'sync', id: run.id },
    });
    const manual = entries.filter(e => e.entity === 'link' && e.origin === 'manual');
    expect(manual.map(e => [e.action, e.actor, e.cause.kind])).toEqual([
      ['create', 'api:admin', 'manual'],
      ['deactivate', 'api:admin', 'manual'],
    ]);
    expect(manual[0]?.sentence).toBe(
      `linked to student ${S.uniqueId} ${S.givenName} ${S.familyName} (manual) by hand by api:admin`,
    );
    const addChild = entries.find(e => e.origin === 'access-code');
    expect(addChild?.cause).toEqual({
      kind: 'redemption',
      id: codeRef(codeT.canonical),
      trigger: 'add-child',
    });
  });

  it('finds the account by Unique ID and by email (any case, spaces), and pages the history', async () => {
    const byId = (await history(importParentId)).answer;
    expect(byId.account).toMatchObject({ uniqueId: 'PAUDIT1', origin: 'import' });
    expect(byId.account.created?.cause).toMatchObject({ kind: 'import', trigger: 'parents' });
    expect(byId.children.map(c => [c.student.sourcedId, c.origin, c.how?.cause.id])).toEqual([
      [S.sourcedId, 'import', previewId],
    ]);
    expect((await history('PAUDIT1')).answer).toEqual(byId);
    expect((await history('  Imogen.Porter@EXAMPLE.org ')).answer).toEqual(byId);
    expect((await history('imogen.porter@example.org', '?by=email')).answer).toEqual(byId);

    const all = byId.history.entries;
    expect(all.length).toBeGreaterThanOrEqual(2);
    const first = (await history(importParentId, '?limit=1')).answer.history;
    expect(first.entries).toEqual([all[0]]);
    expect(first.nextAfter).toBe(all[0]?.seq);
    const second = (await history(importParentId, `?limit=1&after=${first.nextAfter}`)).answer
      .history;
    expect(second.entries).toEqual([all[1]]);
    expect(second.afterSeq).toBe(first.nextAfter);
  });

  it('an email shared by several accounts is 409 naming them; unknown parents are 404', async () => {
    for (const n of [1, 2])
      await h.store.createParent({
        districtId: D,
        id: `pa_shared_${n}`,
        givenName: `Shared${n}`,
        familyName: 'Mailbox',
        email: 'family@example.org',
        emailNormalized: 'family@example.org',
        role: 'Parent',
        status: 'active',
        origin: 'manual',
        sources: [],
        lockedFields: [],
      });
    const r = await call(VIEWER, 'GET', `/districts/${D}/parents/Family%40Example.org`);
    expect(r.status).toBe(409);
    expect(r.body.code).toBe('parent_ambiguous');
    expect(r.body.message).toMatch(
      /^email family@example\.org belongs to 2 parent accounts: pa_shared_1 \(.*Shared1 Mailbox.*\); pa_shared_2 \(/,
    );
    expect(r.body.message).toMatch(/ask again with its account id/);
    expect((r.body.details as { message: string }[]).map(d => d.message.split(' ')[0])).toEqual([
      'pa_shared_1',
      'pa_shared_2',
    ]);
    expect((await history('pa_shared_2')).answer.account.email).toBe('family@example.org');

    const none = await call(VIEWER, 'GET', `/districts/${D}/parents/nobody%40example.org`);
    expect(none.status).toBe(404);
    expect(none.body).toMatchObject({
      code: 'parent_not_found',
      message: `district ${D} has no parent account with account id, Unique ID or email nobody@example.org`,
    });
    expect((await call(VIEWER, 'GET', `/districts/${D}/parents/x?limit=0`)).status).toBe(400);
  });
});

describe('audit from the CLI', () => {
  function runCli(args: string[], env: Record<string, string>) {
    return new Promise<{ code: number | null; stdout: string; stderr: string }>(
      (resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], {
          env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
          cwd: process.cwd(),
        });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        child.on('error', reject);
        child.on('close', code => resolve({ code, stdout, stderr }));
      },
    );
  }

  it('why and parent print labelled tables, --json the same answer as the API', async () => {
    const storeUrl = h.ctx.env.storeUrl;
    const districts = join(storeUrl.slice('sqlite:'.length), '..', 'cli-districts');
    mkdirSync(districts, { recursive: true });
    writeFileSync(
      join(districts, `${D}.json`),
      JSON.stringify({
        id: D,
        name: 'Test District',
        connector: {
          kind: 'powerschool',
          baseUrl: h.fake.url,
          clientIdEnv: 'PS_ID',
          clientSecretEnv: 'PS_SECRET',
        },
        accessCodes: { enabled: true, issueTo: 'all' },
      }),
    );
    const env = {
      STORE_URL: storeUrl,
      DISTRICTS_DIR: districts,
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      QUEUE_PREFIX: `gsync-audit-cli-${randomUUID().slice(0, 8)}`,
      LOG_LEVEL: 'silent',
    };
    const [why, whyJson, parent, unknown] = await Promise.all([
      runCli(['why', D, S.uniqueId], env),
      runCli(['why', D, S.sourcedId, '--json'], env),
      runCli(['parent', D, manualParentId, '--limit', '2'], env),
      runCli(['why', D, 'NOPE-1'], env),
    ]);
    expect(why.stderr).toBe('');
    expect(why.code).toBe(0);
    expect(why.stdout).toMatch(
      new RegExp(`^student +${S.uniqueId}  ${S.givenName} ${S.familyName}$`, 'm'),
    );
    expect(why.stdout).toMatch(/^PARENT +UNIQUE ID +NAME +EMAIL +STATUS +ORIGIN +ACTOR +WHY$/m);
    expect(why.stdout).toContain(`linked by sync run ${run.id} (trigger test; run succeeded)`);
    expect(why.stdout).toContain(`imported from preview ${previewId} by api:admin`);
    expect(why.stdout).toContain("registered with the student's Parent Access Code");
    expect(why.stdout).toMatch(
      /associated by hand by api:admin on .*; removed by hand by api:admin/,
    );
    expectNoCode(why.stdout, codeS);

    expect(whyJson.code).toBe(0);
    expect(JSON.parse(whyJson.stdout)).toEqual((await guardians(S.uniqueId)).answer);

    expect(parent.code).toBe(0);
    expect(parent.stdout).toMatch(new RegExp(`^account +${manualParentId}$`, 'm'));
    expect(parent.stdout).toMatch(/^STUDENT +UNIQUE ID +NAME +STATUS +ORIGIN +ACTOR +WHY$/m);
    expect(parent.stdout).toMatch(/^SEQ +AT +ACTOR +WHAT$/m);
    expect(parent.stdout).toMatch(/^more: --after \d+$/m);
    expectNoCode(parent.stdout, codeT);

    expect(unknown.code).toBe(4); // not found (src/cli/exit.ts)
    expect(unknown.stderr).toContain(
      `district ${D} has no student with sourcedId or Unique ID NOPE-1`,
    );
  }, 120_000);
});
