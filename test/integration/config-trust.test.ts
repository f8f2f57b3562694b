/**
 * Trust in the configuration (fresh-user trial, "nothing silent"), with a real worker, Redis,
 * SQLite, a loopback fake PowerSchool and the CLI as a user runs it:
 * 1. a district file naming an unset secret: the worker's reload is refused and it keeps the
 *    previous configuration; `sync` refuses (exit 2) naming the file, the secret and the way
 *    on; `sync --previous-config` warns, and the run records which configuration it used and
 *    the refused file (store, `run`, API);
 * 2. one bad district file: other districts' and read-only commands work with a one-line
 *    warning; only the broken district's commands exit 2 with its problems;
 * 5. a PowerSchool URL that answers with a sign-in page: the run says to check the URL;
 * 6. an unknown district lists the known ones;
 * 7. a Parent Access Code export with blank codes says why and how to issue them.
 */
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jest } from '@jest/globals';
import { z } from 'zod';
import { createApp, type AppContext } from '../../src/app.js';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken } from '../../src/config/api-tokens.js';
import { parseEnv } from '../../src/config/env.js';
import { reloadDistricts } from '../../src/config/reload.js';
import { startPowerSchoolSite, type PowerSchoolSite } from '../../src/dev/powerschool-site.js';
import { createLogger } from '../../src/logger.js';
import type { SyncRun } from '../../src/models/types.js';
import { startWorkers, type RunningWorkers } from '../../src/workers/index.js';
import { runCli } from '../helpers/cli.js';

jest.setTimeout(240_000);

const ADMIN = 'gst_config-trust-admin-0123456789abcdefghijklmnopqrstuv';

const RunConfigJson = z.object({
  config: z.object({
    file: z.string().optional(),
    sha256: z.string().optional(),
    loadedAt: z.string().optional(),
    refused: z
      .object({ file: z.string(), at: z.string(), problems: z.array(z.string()) })
      .optional(),
  }),
});

describe('a district file naming an unset secret (finding 1)', () => {
  let site: PowerSchoolSite;
  let dir: string;
  let file: string;
  let original: string;
  let ctx: AppContext;
  let workers: RunningWorkers;
  let api: ApiServer;
  let base: string;
  let cliEnv: Record<string, string>;
  const id = `ct-${randomUUID().slice(0, 6)}`;

  beforeAll(async () => {
    site = await startPowerSchoolSite(id, { students: 40, seed: 5, pageSize: 50 });
    dir = mkdtempSync(join(tmpdir(), 'gsync-config-trust-'));
    file = join(dir, `${id}.json`);
    original = JSON.stringify(site.config, null, 2);
    writeFileSync(file, original);
    cliEnv = {
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      STORE_URL: `sqlite:${join(dir, 'store.db')}`,
      DISTRICTS_DIR: dir,
      QUEUE_PREFIX: `gsync-ct-${randomUUID().slice(0, 8)}`,
      LOG_LEVEL: 'silent',
      ...site.secrets,
    };
    const env = parseEnv({ ...cliEnv, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent' });
    // the worker: its secrets are the site's, read once (as a process environment would be)
    ctx = await createApp({
      env,
      logger: createLogger(env.LOG_LEVEL),
      secrets: { ...site.secrets },
    });
    workers = startWorkers(ctx);
    api = await buildApiServer(ctx, {
      tokens: [{ name: 'admin', sha256: hashToken(ADMIN), role: 'admin' }],
    });
    base = await api.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await workers?.close();
    await api?.close();
    if (ctx) for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
    await ctx?.close();
    await site?.fake.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the worker refuses the file and keeps its configuration; sync refuses to start, naming file, secret and the way on', async () => {
    const edited = {
      ...site.config,
      connector: { ...site.config.connector, clientSecretEnv: 'CT_ROTATED_SECRET' },
    };
    writeFileSync(file, JSON.stringify(edited, null, 2));
    expect(() => reloadDistricts(ctx)).toThrow(/CT_ROTATED_SECRET/);
    expect(ctx.district(id)).toEqual(site.config); // the worker keeps what it had

    const r = await runCli(['sync', id, '--wait'], cliEnv);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(file);
    expect(r.stderr).toContain('CT_ROTATED_SECRET');
    expect(r.stderr).toMatch(
      /keeps the configuration it loaded before this change, so the sync was not started/,
    );
    expect(r.stderr).toContain(`sync ${id} --previous-config`);
    expect(await ctx.store.listRuns(id, 10)).toEqual([]);
  });

  it('sync --previous-config warns, and the run records the configuration it used and the refused file', async () => {
    const r = await runCli(['sync', id, '--wait', '--previous-config'], cliEnv);
    expect(r.stderr).toMatch(
      new RegExp(
        `warning: the district file ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} cannot be used \\(.*CT_ROTATED_SECRET`,
      ),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/status {3}succeeded/);
    expect(r.stdout).toMatch(/config {3}.*sha256 [0-9a-f]{12}, loaded /);
    expect(r.stdout).toMatch(
      /warning {2}the district file .* on disk could not be used \(.*CT_ROTATED_SECRET.*\): this run uses the configuration loaded /,
    );

    const [run] = await ctx.store.listRuns(id, 1);
    if (!run) throw new Error('no run');
    const sha = createHash('sha256').update(original).digest('hex');
    // the worker recorded what it used: the file as it was loaded before the change
    expect(run.config).toMatchObject({ file, sha256: sha });
    expect(run.config?.refused?.file).toBe(file);
    expect(run.config?.refused?.problems.join('\n')).toMatch(/CT_ROTATED_SECRET is not set/);

    // `run --json` and the API show the same
    const json = await runCli(['run', run.id, '--json'], cliEnv);
    expect(RunConfigJson.parse(JSON.parse(json.stdout)).config.refused?.file).toBe(file);
    const res = await fetch(`${base}/runs/${run.id}`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const body = RunConfigJson.parse(await res.json());
    expect(body.config.sha256).toBe(sha);
    expect(body.config.refused?.problems.join('\n')).toMatch(/CT_ROTATED_SECRET/);
    // `runs` marks it too
    const list = await runCli(['runs', id], cliEnv);
    expect(list.stdout).toMatch(/succeeded \(previous config: file on disk refused\)/);
  });

  it('an API trigger says so in a warning; once the secret is set the reload succeeds and runs are clean', async () => {
    const res = await fetch(`${base}/districts/${id}/syncs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    const body = z
      .object({ started: z.boolean(), run: z.object({ id: z.string() }), warning: z.string() })
      .parse(await res.json());
    expect(body.warning).toMatch(/CT_ROTATED_SECRET/);
    const done = await waitForEnd(ctx, body.run.id);
    expect(done.config?.refused?.problems.join('\n')).toMatch(/CT_ROTATED_SECRET/);

    ctx.secrets.CT_ROTATED_SECRET = site.secrets[`${id.toUpperCase().replaceAll('-', '_')}_SECRET`];
    expect(reloadDistricts(ctx).changed).toEqual([id]);
    const r = await runCli(['sync', id, '--wait'], { ...cliEnv, CT_ROTATED_SECRET: 'x' });
    expect(r.code).toBe(0);
    const [run] = await ctx.store.listRuns(id, 1);
    expect(run?.config?.refused).toBeUndefined();
    expect(run?.config?.sha256).toBe(createHash('sha256').update(readFileSync(file)).digest('hex'));
  });

  it('a codes export with blank codes says why and how to issue them (finding 7)', async () => {
    const on = await runCli(['codes', 'settings', id, '--enable'], {
      ...cliEnv,
      CT_ROTATED_SECRET: 'x',
    });
    expect(on.code).toBe(0);
    const out = join(dir, 'codes.csv');
    const r = await runCli(['codes', 'export', id, '-o', out], {
      ...cliEnv,
      CT_ROTATED_SECRET: 'x',
    });
    expect(r.code).toBe(0);
    const rows = readFileSync(out, 'utf8').trim().split(/\r\n/).slice(1);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every(row => row.endsWith(','))).toBe(true); // every code blank
    expect(r.stderr).toContain(
      `note: ${rows.length} of ${rows.length} student(s) have no code yet, so their Access Code cell is blank`,
    );
    expect(r.stderr).toContain(`codes issue ${id}`);
    const res = await fetch(`${base}/districts/${id}/access-codes.csv`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(res.headers.get('x-access-codes-note')).toMatch(/no Parent Access Code has been issued/);
    await res.arrayBuffer();
  });
});

/** Resolve with the run once it is no longer queued or running (deadline 120 s). */
async function waitForEnd(ctx: AppContext, runId: string): Promise<SyncRun> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    const run = await ctx.store.getRun(runId);
    if (run && run.status !== 'queued' && run.status !== 'running') return run;
    if (Date.now() > deadline) throw new Error(`run ${runId} did not end`);
    await new Promise(r => setTimeout(r, 50));
  }
}

describe('one bad district file (finding 2) and an unknown district (finding 6)', () => {
  let env: Record<string, string>;
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gsync-config-trust-cli-'));
    const district = (id: string, extra: Record<string, unknown> = {}) => ({
      id,
      name: id,
      connector: {
        kind: 'powerschool',
        baseUrl: 'https://ps.example.org',
        clientIdEnv: 'PS_ID',
        clientSecretEnv: 'PS_SECRET',
        ...extra,
      },
    });
    writeFileSync(join(dir, 'good.json'), JSON.stringify(district('good')));
    writeFileSync(join(dir, 'other.json'), JSON.stringify(district('other')));
    writeFileSync(join(dir, 'broken.json'), JSON.stringify(district('broken', { pagesize: 5 })));
    env = {
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      STORE_URL: `sqlite:${join(dir, 's.db')}`,
      DISTRICTS_DIR: dir,
      QUEUE_PREFIX: `gsync-ct-cli-${randomUUID().slice(0, 8)}`,
      PS_ID: 'i',
      PS_SECRET: 's',
    };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('commands for other districts and read-only ones work, with one warning line naming the file', async () => {
    const r = await runCli(['runs', 'good'], env);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('no runs yet');
    const warnings = r.stderr.trim().split('\n');
    expect(warnings).toEqual([
      `warning: district file ${join(dir, 'broken.json')} cannot be used: connector: Unrecognized key: "pagesize"; commands for district broken fail until it is fixed`,
    ]);
    const run = await runCli(['run', 'r-none'], env);
    expect(run.code).toBe(4); // a read-only command runs (and answers "no run")
    expect(run.stderr).toContain('error: no run r-none');
  });

  it("only the broken district's commands exit 2, naming the file and every problem", async () => {
    for (const args of [
      ['runs', 'broken'],
      ['why', 'broken', '1'],
      ['sync', 'broken'],
    ]) {
      const r = await runCli(args, env);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /^error: configuration problem: district broken: its file .*broken\.json cannot be used\n {2}- .*broken\.json: connector: Unrecognized key: "pagesize"\. Fix the district file/,
      );
    }
  });

  it('an unknown district lists the known ones (exit 4)', async () => {
    const r = await runCli(['why', 'goood', '200417'], env);
    expect(r.code).toBe(4);
    expect(r.stderr).toContain('error: unknown district "goood" (known: good, other)');
  });
});

describe('an API SIS URL that points to a login page (finding 5)', () => {
  let dir: string;
  let portal: Server;
  let ctx: AppContext;
  let workers: RunningWorkers;
  let cliEnv: Record<string, string>;

  beforeAll(async () => {
    // A real loopback server playing a district's sign-in portal: 200 with HTML for any path.
    portal = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end('<!doctype html><html><head><title>Sign in</title></head><body>Portal</body></html>');
    });
    await new Promise<void>(resolve => portal.listen(0, '127.0.0.1', resolve));
    const { port } = portal.address() as AddressInfo;
    dir = mkdtempSync(join(tmpdir(), 'gsync-config-trust-portal-'));
    writeFileSync(
      join(dir, 'portal.json'),
      JSON.stringify({
        id: 'portal',
        name: 'Portal',
        connector: {
          kind: 'powerschool',
          baseUrl: `http://127.0.0.1:${port}`,
          clientIdEnv: 'PORTAL_ID',
          clientSecretEnv: 'PORTAL_SECRET',
          retries: 0,
        },
      }),
    );
    cliEnv = {
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      STORE_URL: `sqlite:${join(dir, 'store.db')}`,
      DISTRICTS_DIR: dir,
      QUEUE_PREFIX: `gsync-ct-portal-${randomUUID().slice(0, 8)}`,
      LOG_LEVEL: 'silent',
      PORTAL_ID: 'id',
      PORTAL_SECRET: 'secret',
    };
    const env = parseEnv({ ...cliEnv, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent' });
    ctx = await createApp({
      env,
      logger: createLogger(env.LOG_LEVEL),
      secrets: { PORTAL_ID: 'id', PORTAL_SECRET: 'secret' },
    });
    workers = startWorkers(ctx);
  });
  afterAll(async () => {
    await workers?.close();
    if (ctx) for (const q of Object.values(ctx.queues)) await q.obliterate({ force: true });
    await ctx?.close();
    await new Promise(resolve => portal?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('the failed run says the URL points to a web page and to check baseUrl, not to correct an export', async () => {
    const r = await runCli(['sync', 'portal', '--wait'], cliEnv);
    expect(r.code).toBe(1);
    const [run] = await ctx.store.listRuns('portal', 1);
    expect(run?.status).toBe('failed');
    expect(run?.error).toMatch(
      /^the SIS answered with a web page or other non-JSON content instead of data: POST \/oauth\/access_token\/?: HTTP 200 body is not JSON \(content-type text\/html; charset=utf-8, an HTML page\)/,
    );
    expect(run?.error).toMatch(/login page, a portal or a proxy/);
    expect(run?.error).toMatch(/check connector\.baseUrl .*then start the sync again\.$/);
    expect(run?.error).not.toMatch(/Correct the export/);
    expect(r.stdout).toContain(run?.error ?? '?');
  });
});
