/**
 * Issue 14.2: a large import preview must not freeze the API. The preview runs in a worker
 * thread; `/healthz` answers while it runs (latency printed, no timing assertion), the
 * preview's progress is visible (`GET …/imports/preview-jobs`), and a file over the row limit
 * is refused with a clear 422.
 */
import { z } from 'zod';
import { buildApiServer } from '../../src/api/server.js';
import type { ApiServer } from '../../src/api/routes/index.js';
import { hashToken, type ApiTokenEntry } from '../../src/config/api-tokens.js';
import { parseEnv } from '../../src/config/env.js';
import {
  csv,
  importDistrict,
  seed,
  startImportBench,
  student,
  type ImportBench,
} from '../helpers/imports.js';

const ADMIN = 'gst_preview-admin-token-0123456789abcdefghijklmnopqr';
const TOKENS: ApiTokenEntry[] = [{ name: 'admin', sha256: hashToken(ADMIN), role: 'admin' }];
const D = 'preview-d';
const ROWS = 120_000;

const Jobs = z.object({
  items: z.array(z.looseObject({ status: z.string(), rowsRead: z.number(), fileName: z.string() })),
});

let bench: ImportBench;
let app: ApiServer;
let base: string;

beforeAll(async () => {
  bench = await startImportBench([importDistrict(D)]);
  await seed(bench.store, D, {
    students: Array.from({ length: 200 }, (_, i) => student(D, i + 1)),
  });
  app = await buildApiServer(bench.ctx, { tokens: TOKENS, dashboard: false });
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  await bench?.close();
});

const auth = { authorization: `Bearer ${ADMIN}` };

function bigFile(rows: number): Buffer {
  const out: string[][] = [['First Name', 'Last Name', 'Unique ID', 'Email']];
  for (let i = 0; i < rows; i++)
    out.push([`Given${i}`, `Family${i}`, `N-${(i % 200) + 1}`, `p${i}@example.org`]);
  return Buffer.from(csv(out));
}

describe('import preview off the event loop', () => {
  it('the API answers /healthz and shows progress while a large preview runs', async () => {
    const file = bigFile(ROWS);
    let finished = false;
    const started = Date.now();
    const preview = fetch(`${base}/districts/${D}/imports/parents/preview?fileName=big.csv`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/csv' },
      body: file,
    }).then(async res => {
      finished = true;
      await res.arrayBuffer();
      return { status: res.status };
    });
    const latencies: number[] = [];
    let progressSeen = 0;
    while (!finished) {
      const t = performance.now();
      const h = await fetch(`${base}/healthz`);
      await h.arrayBuffer();
      const ms = performance.now() - t;
      expect(h.status).toBe(200);
      const jobs = Jobs.parse(
        await (
          await fetch(`${base}/districts/${D}/imports/preview-jobs`, { headers: auth })
        ).json(),
      );
      const running = jobs.items.find(j => j.fileName === 'big.csv' && j.status === 'running');
      // Counted only when the preview was still running after both answers came back.
      if (running && running.rowsRead > 0 && !finished) {
        latencies.push(ms);
        progressSeen = Math.max(progressSeen, running.rowsRead);
      }
    }
    const done = await preview;
    expect(done.status).toBe(200);
    latencies.sort((a, b) => a - b);
    console.log(
      `preview of ${ROWS} rows (${(file.length / 1e6).toFixed(1)} MB): ${Date.now() - started} ms; ` +
        `/healthz answered ${latencies.length} times while it read rows (up to row ${progressSeen}); ` +
        `latency median ${latencies[Math.floor(latencies.length / 2)]?.toFixed(1)} ms, ` +
        `max ${latencies.at(-1)?.toFixed(1)} ms`,
    );
    expect(latencies.length).toBeGreaterThan(0);
    expect(progressSeen).toBeGreaterThan(0);
    expect(progressSeen).toBeLessThanOrEqual(ROWS + 1); // rows read, header included
  });

  it('refuses a file over the row limit with a clear 422', async () => {
    const limited = await buildApiServer(
      {
        ...bench.ctx,
        env: parseEnv({
          ...process.env,
          ...{ STORE_URL: bench.ctx.env.storeUrl, IMPORT_PREVIEW_MAX_ROWS: '1500' },
        }),
      },
      { tokens: TOKENS, dashboard: false },
    );
    const url = await limited.listen({ host: '127.0.0.1', port: 0 });
    try {
      const res = await fetch(`${url}/districts/${D}/imports/parents/preview?fileName=rows.csv`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'text/csv' },
        body: bigFile(3000),
      });
      expect(res.status).toBe(422);
      const body = (await res.json()) as { code: string; message: string };
      expect(body.code).toBe('invalid_file');
      expect(body.message).toMatch(
        /rows\.csv: .*more than 1500 data rows.*IMPORT_PREVIEW_MAX_ROWS/,
      );
    } finally {
      await limited.close();
    }
  });
});
