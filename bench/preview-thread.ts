/**
 * `npx tsx bench/preview-thread.ts [--rows 100000]`
 *
 * Import preview cost per 100,000 rows, on the API's event loop (as before ADR 0008) and in
 * a worker thread (now): wall time, the API process's peak RSS, and the longest event-loop
 * stall (what `/healthz` waits at worst while the preview runs). Each mode runs in its own
 * child process so peak RSS is not shared. Prints one line per mode.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp } from '../src/app.js';
import { DistrictConfig } from '../src/config/district.js';
import { parseEnv } from '../src/config/env.js';
import { runPreview } from '../src/imports/preview-runner.js';
import { previewParentImport } from '../src/imports/service.js';
import { createLogger } from '../src/logger.js';
import { SqliteRosterStore } from '../src/models/sqlite/store.js';
import { seed, student } from '../test/helpers/imports.js';

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const rows = Number(arg('rows', '100000'));
const mode = arg('mode', '');
/** `--shape distinct`: one new parent per row, every 50th row with a blank Last Name and a bad Email. */
const shape = arg('shape', 'merged');

function file(n: number): Buffer {
  const lines = ['First Name,Last Name,Unique ID,Email'];
  for (let i = 0; i < n; i++)
    lines.push(
      shape === 'distinct'
        ? i % 50 === 49
          ? `Given${i},,P-${i},not-an-email`
          : `Given${i},Family${i},P-${i},p${i}@example.org`
        : `Given${i},Family${i},N-${(i % 200) + 1},p${i}@example.org`,
    );
  return Buffer.from(lines.join('\n') + '\n');
}

async function child(m: 'event-loop' | 'thread'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-bench-preview-'));
  const storeFile = join(dir, 'store.db');
  const store = new SqliteRosterStore(storeFile);
  await store.init();
  const env = parseEnv({
    STORE_URL: `sqlite:${storeFile}`,
    LOG_LEVEL: 'silent',
    QUEUE_PREFIX: 'gsync-bench-preview',
  });
  const district = DistrictConfig.parse({
    id: 'bench',
    name: 'Bench',
    connector: {
      kind: 'powerschool',
      baseUrl: 'https://ps.example.org',
      clientIdEnv: 'X',
      clientSecretEnv: 'Y',
    },
  });
  const ctx = await createApp({
    env,
    logger: createLogger('silent'),
    districts: [district],
    store,
  });
  // Every row names one of 200 known students (rows are planned, not refused early).
  await seed(store, 'bench', {
    students: Array.from({ length: 200 }, (_, i) => student('bench', i + 1)),
  });
  const data = file(rows);
  let maxStall = 0;
  let last = performance.now();
  const tick = setInterval(() => {
    const now = performance.now();
    maxStall = Math.max(maxStall, now - last - 10);
    last = now;
  }, 10);
  const t0 = performance.now();
  const input = { districtId: 'bench', file: { name: 'bench.csv', data } };
  if (m === 'thread') await runPreview(ctx, { kind: 'parents', input });
  else await previewParentImport(ctx, input);
  const ms = performance.now() - t0;
  clearInterval(tick);
  const per100k = (x: number) => (x * 100_000) / rows;
  console.log(
    `${m.padEnd(10)} ${rows} rows (${(data.length / 1e6).toFixed(1)} MB): ${ms.toFixed(0)} ms ` +
      `(${per100k(ms).toFixed(0)} ms per 100,000 rows); peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB; ` +
      `longest event-loop stall ${maxStall.toFixed(0)} ms`,
  );
  await ctx.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}

if (mode === 'event-loop' || mode === 'thread') await child(mode);
else {
  for (const m of ['event-loop', 'thread'])
    spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        fileURLToPath(import.meta.url),
        '--rows',
        String(rows),
        '--mode',
        m,
        '--shape',
        shape,
      ],
      {
        stdio: 'inherit',
      },
    );
}
