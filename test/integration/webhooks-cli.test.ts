/**
 * `guardian-sync worker` as a user runs it: a district with `webhooks` whose secret variable
 * is not set (or too short) stops the worker at start, exit 2, naming the variable (the CLI
 * in-process: test/helpers/cli.ts; the check fails before any worker starts).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { runCli } from '../helpers/cli.js';

describe('guardian-sync worker start-up check of webhook secrets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-hook-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 2 naming a missing and a too-short webhook secret', async () => {
    for (const [id, secretEnv] of [
      ['hook-a', 'HOOK_A_SECRET'],
      ['hook-b', 'HOOK_B_SECRET'],
    ] as const)
      writeFileSync(
        join(dir, `${id}.json`),
        JSON.stringify({
          id,
          name: id,
          connector: {
            kind: 'powerschool',
            baseUrl: 'https://ps.example.org',
            clientIdEnv: 'PS_ID',
            clientSecretEnv: 'PS_SECRET',
          },
          webhooks: { url: 'https://hooks.example.org/gs', secretEnv },
        }),
      );
    const r = await runCli(['worker'], {
      DISTRICTS_DIR: dir,
      STORE_URL: `sqlite:${join(dir, 's.db')}`,
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      QUEUE_PREFIX: `gsync-test-${randomUUID().slice(0, 8)}`,
      PS_ID: 'id',
      PS_SECRET: 'secret',
      HOOK_B_SECRET: 'short',
    });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('district hook-a: environment variable HOOK_A_SECRET is not set');
    expect(r.stderr).toContain(
      'district hook-b: environment variable HOOK_B_SECRET (webhook secret) must be at least 16 characters',
    );
  });
});
