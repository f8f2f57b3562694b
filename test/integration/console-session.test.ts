/**
 * Console sessions over real HTTP (src/api/session.ts, ADR 0009): login with a token sets an
 * http-only SameSite=Strict cookie; the cookie works on the API routes with the token's role
 * and district scope; state-changing calls need the CSRF token; bearer clients need none;
 * the session ends when its token is removed from the configuration, and on logout.
 */
import { z } from 'zod';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { waitForRun } from '../../src/jobs/sync.js';
import { startHarness, type Harness } from '../helpers/harness.js';

const TOKENS = {
  admin: 'gst_console-admin-token-0123456789abcdefghijklmnopqrs',
  viewer: 'gst_console-viewer-token-0123456789abcdefghijklmnopq',
  other: 'gst_console-other-admin-0123456789abcdefghijklmnopqrs',
};
const ENTRIES: ApiTokenEntry[] = [
  { name: 'console-admin', sha256: hashToken(TOKENS.admin), role: 'admin' },
  { name: 'console-viewer', sha256: hashToken(TOKENS.viewer), role: 'viewer' },
  {
    name: 'other-admin',
    sha256: hashToken(TOKENS.other),
    role: 'admin',
    districts: ['other-district'],
  },
];
const SECRET = 'console-session-test-secret-0123456789-abcdefgh';

const Session = z.object({
  principal: z.object({
    name: z.string(),
    role: z.string(),
    districts: z.array(z.string()).nullable(),
  }),
  via: z.string(),
  expiresAt: z.string().nullable(),
  csrfToken: z.string().nullable(),
});
const ErrorBody = z.object({ code: z.string(), message: z.string(), requestId: z.string() });
const Trigger = z.object({ started: z.boolean(), run: z.object({ id: z.string() }) });

/** A cookie jar of one browser: cookies from `set-cookie`, sent back on each call. */
class Browser {
  cookies = new Map<string, string>();
  setCookies: string[] = [];
  csrf: string | null = null;
  constructor(private readonly base: () => string) {}
  async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const h: Record<string, string> = { ...headers };
    if (this.cookies.size) h.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    if (body !== undefined) h['content-type'] = 'application/json';
    const res = await fetch(`${this.base()}${path}`, {
      method,
      headers: h,
      body: body === undefined ? null : JSON.stringify(body),
    });
    this.setCookies = res.headers.getSetCookie();
    for (const c of this.setCookies) {
      const [pair] = c.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (!pair || eq < 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (value === '' || /expires=Thu, 01 Jan 1970/i.test(c)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    return res;
  }
  async login(token: string) {
    const res = await this.call('POST', '/session', { token });
    expect(res.status).toBe(200);
    const s = Session.parse(await res.json());
    this.csrf = s.csrfToken;
    return s;
  }
}

describe('console sessions (cookie + CSRF)', () => {
  let h: Harness;
  let app: ApiServer;
  let base = '';

  beforeAll(async () => {
    h = await startHarness({ students: 120, seed: 31 });
    app = await buildApiServer(h.ctx, {
      tokens: ENTRIES,
      dashboard: false,
      session: { secret: SECRET },
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await app?.close();
    await h?.close();
  });

  it('login sets an http-only, SameSite=Strict session cookie; a wrong token is refused', async () => {
    const b = new Browser(() => base);
    const bad = await b.call('POST', '/session', { token: 'gst_wrong' });
    expect(bad.status).toBe(401);
    expect(ErrorBody.parse(await bad.json()).message).toMatch(/not valid/);
    expect(b.cookies.size).toBe(0);

    const s = await b.login(TOKENS.admin);
    expect(s.principal).toEqual({ name: 'console-admin', role: 'admin', districts: null });
    expect(s.csrfToken).toEqual(expect.any(String));
    const session = b.setCookies.find(c => c.startsWith('gs_session='));
    expect(session).toMatch(/HttpOnly/i);
    expect(session).toMatch(/SameSite=Strict/i);
    expect(session).toMatch(/Path=\//);
    expect(session).not.toMatch(/Secure/i); // plain http on loopback
    expect(session).not.toContain(TOKENS.admin);

    const who = await b.call('GET', '/session');
    expect(Session.parse(await who.json()).principal.name).toBe('console-admin');
    const list = await b.call('GET', '/districts');
    expect(list.status).toBe(200);
  });

  it('cookie POST without or with a wrong CSRF token is 403 csrf_failed; with it, it runs', async () => {
    const b = new Browser(() => base);
    await b.login(TOKENS.admin);
    const path = `/districts/${h.districtId}/syncs`;
    const none = await b.call('POST', path, { dryRun: true });
    expect(none.status).toBe(403);
    const e1 = ErrorBody.parse(await none.json());
    expect(e1.code).toBe('csrf_failed');
    expect(e1.message).toMatch(/CSRF token/);
    const wrong = await b.call('POST', path, { dryRun: true }, { 'x-csrf-token': 'nope' });
    expect(wrong.status).toBe(403);
    // another session's token does not fit this session
    const other = new Browser(() => base);
    await other.login(TOKENS.admin);
    const foreign = await b.call(
      'POST',
      path,
      { dryRun: true },
      { 'x-csrf-token': other.csrf ?? '' },
    );
    expect(foreign.status).toBe(403);
    expect((await h.store.listRuns(h.districtId, 10)).length).toBe(0);

    const ok = await b.call('POST', path, { dryRun: true }, { 'x-csrf-token': b.csrf ?? '' });
    expect(ok.status).toBe(202);
    const { run } = Trigger.parse(await ok.json());
    const done = await waitForRun(h.ctx, run.id, { timeoutMs: 60000, intervalMs: 50 });
    expect(done.actor).toBe('api:console-admin');
  });

  it('bearer clients need no CSRF token and ignore cookies', async () => {
    const res = await fetch(`${base}/districts/${h.districtId}/syncs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKENS.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ dryRun: true }),
    });
    expect([200, 202]).toContain(res.status);
    const { run } = Trigger.parse(await res.json());
    await waitForRun(h.ctx, run.id, { timeoutMs: 60000, intervalMs: 50 });
  });

  it('a viewer session reads but is refused state changes, with and without CSRF', async () => {
    const b = new Browser(() => base);
    const s = await b.login(TOKENS.viewer);
    expect(s.principal.role).toBe('viewer');
    expect((await b.call('GET', `/districts/${h.districtId}`)).status).toBe(200);
    const path = `/districts/${h.districtId}/syncs`;
    const noCsrf = await b.call('POST', path, { dryRun: true });
    expect(noCsrf.status).toBe(403);
    expect(ErrorBody.parse(await noCsrf.json()).code).toBe('csrf_failed');
    const withCsrf = await b.call('POST', path, { dryRun: true }, { 'x-csrf-token': b.csrf ?? '' });
    expect(withCsrf.status).toBe(403);
    const e = ErrorBody.parse(await withCsrf.json());
    expect(e.code).toBe('forbidden');
    expect(e.message).toMatch(/read-only/);
  });

  it('a district-scoped session cannot read another district', async () => {
    const b = new Browser(() => base);
    await b.login(TOKENS.other);
    const res = await b.call('GET', `/districts/${h.districtId}`);
    expect(res.status).toBe(403);
    expect(ErrorBody.parse(await res.json()).message).toMatch(/no access to district/);
    const list = z
      .object({ items: z.array(z.unknown()) })
      .parse(await (await b.call('GET', '/districts')).json());
    expect(list.items).toEqual([]);
  });

  it('logout ends the session; a tampered cookie is refused', async () => {
    const b = new Browser(() => base);
    await b.login(TOKENS.admin);
    const saved = new Map(b.cookies);
    const out = await b.call('DELETE', '/session', undefined, { 'x-csrf-token': b.csrf ?? '' });
    expect(out.status).toBe(200);
    expect(b.cookies.has('gs_session')).toBe(false);
    expect((await b.call('GET', '/districts')).status).toBe(401);

    const t = new Browser(() => base);
    const value = saved.get('gs_session') ?? '';
    const [payload, sig] = value.split('.');
    const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as Record<
      string,
      unknown
    >;
    claims.name = 'console-viewer';
    t.cookies.set(
      'gs_session',
      `${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${sig ?? ''}`,
    );
    const res = await t.call('GET', '/districts');
    expect(res.status).toBe(401);
    expect(ErrorBody.parse(await res.json()).message).toMatch(/not valid/);
  });

  it('a session ends when its token is removed from the configuration', async () => {
    const b = new Browser(() => base);
    await b.login(TOKENS.viewer);
    expect((await b.call('GET', '/districts')).status).toBe(200);
    // The API restarts with the same secret and the viewer token removed.
    const app2 = await buildApiServer(h.ctx, {
      tokens: ENTRIES.filter(e => e.name !== 'console-viewer'),
      dashboard: false,
      session: { secret: SECRET },
    });
    const base2 = await app2.listen({ host: '127.0.0.1', port: 0 });
    try {
      const b2 = new Browser(() => base2);
      b2.cookies = new Map(b.cookies);
      const res = await b2.call('GET', '/districts');
      expect(res.status).toBe(401);
      expect(ErrorBody.parse(await res.json()).message).toMatch(/no longer configured/);
      // the admin's session from the first server is still valid on the second
      const a = new Browser(() => base);
      await a.login(TOKENS.admin);
      const a2 = new Browser(() => base2);
      a2.cookies = new Map(a.cookies);
      expect((await a2.call('GET', '/districts')).status).toBe(200);
    } finally {
      await app2.close();
    }
  });

  it('an expired session is refused', async () => {
    const app3 = await buildApiServer(h.ctx, {
      tokens: ENTRIES,
      dashboard: false,
      session: { secret: SECRET, hours: -1 },
    });
    const base3 = await app3.listen({ host: '127.0.0.1', port: 0 });
    try {
      const b = new Browser(() => base3);
      const res = await b.call('POST', '/session', { token: TOKENS.admin });
      expect(res.status).toBe(200);
      // the cookie itself is already expired; send it anyway
      const raw = b.setCookies.find(c => c.startsWith('gs_session='))?.split(';')[0] ?? '';
      const again = await fetch(`${base3}/districts`, { headers: { cookie: raw } });
      expect(again.status).toBe(401);
      expect(ErrorBody.parse(await again.json()).message).toMatch(/expired/);
    } finally {
      await app3.close();
    }
  });
});
