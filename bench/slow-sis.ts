/**
 * Issue 15, "A slow, rate-limited SIS": every connector reads the same synthetic district from
 * its fake SIS, which answers each request after `latencyMs` and refuses (429, `Retry-After:
 * 1`) whatever exceeds `maxRequestsPerSecond`. Prints, per connector, the SIS read's wall
 * time against the floor those limits impose (requests ÷ rate), the requests it needed per
 * 1,000 students, and how many were refused. The read is the product's connector
 * (`createConnector`, production retry timing) as the pull job drives it (`readSchools`, then
 * `readRoster` to the end); applying chunks runs beside a pull and is not the tail here.
 *
 * `npx tsx bench/slow-sis.ts [--students 1000] [--latency-ms 50] [--rps 20] [--kinds a,b]`
 * or `npm run bench -- --scenario slow-sis` (docs/performance.md, "Slow, rate-limited SIS").
 */
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { pino, type Logger } from 'pino';
import { DistrictConfig } from '../src/config/district.js';
import { createConnector } from '../src/connectors/index.js';
import { generateDistrict } from '../src/dev/district-generator.js';
import type { SisLimits } from '../src/dev/faults.js';
import { SIS_KINDS, SIS_TITLES, startSis, type SisKind } from './sis-kinds.js';

/** Options of `runSlowSisBench`. */
export interface SlowSisOptions {
  students: number;
  seed: number;
  /** Server latency per request (ms). */
  latencyMs: number;
  /** Server cap and the districts' client-side rate (requests per second). */
  rps: number;
  kinds: readonly SisKind[];
  log: (line: string) => void;
}

/** One connector's figures. */
export interface SlowSisRow {
  kind: SisKind;
  students: number;
  requests: number;
  refused: number;
  wallS: number;
  /** requests ÷ rps (s); 0 for file connectors. */
  floorS: number;
  /** wallS ÷ floorS (undefined without HTTP). */
  ofFloor?: number | undefined;
  /** The same read from the same server without latency or cap (s): the CPU-bound time. */
  unlimitedS: number;
  /** wallS ÷ max(floorS, unlimitedS): how far from the best this read could do. */
  ofBound?: number | undefined;
  requestsPer1000: number;
  status: string;
}

/** Run the scenario; returns one row per connector kind (also printed through `log`). */
export async function runSlowSisBench(o: SlowSisOptions): Promise<SlowSisRow[]> {
  const logger = pino({ level: process.env.BENCH_LOG_LEVEL ?? 'silent' });
  const rows: SlowSisRow[] = [];
  o.log(
    `slow, rate-limited SIS: ${o.students.toLocaleString('en-US')} students, ${o.latencyMs} ms per request, cap ${o.rps} req/s; load average ${loadavg()
      .map(x => x.toFixed(2))
      .join(' ')}`,
  );
  for (const kind of o.kinds) {
    const d = generateDistrict({ seed: o.seed, students: o.students });
    // First without limits (and no client-side rate): the read's own cost.
    const free = await readOnce(kind, d, undefined, logger);
    const sis = await startSis(kind, d, {
      limits: { latencyMs: o.latencyMs, maxRequestsPerSecond: o.rps },
      maxRequestsPerSecond: o.rps,
    });
    let students = 0;
    let status = 'ok';
    const t0 = performance.now();
    try {
      const district = DistrictConfig.parse({
        id: `slow-${kind}`,
        name: SIS_TITLES[kind],
        connector: sis.connector,
      });
      const connector = createConnector(district, sis.secrets, logger);
      let rejects = 0;
      const ctx = {
        logger,
        signal: new AbortController().signal,
        reject: () => void rejects++,
      };
      await connector.readSchools(ctx);
      for await (const chunk of connector.readRoster(ctx)) students += chunk.students.length;
      if (rejects > 0) status = `ok, ${rejects} rejects`;
    } catch (err) {
      status = `failed: ${(err instanceof Error ? err.message : String(err)).split('\n')[0]}`;
    }
    const wallS = (performance.now() - t0) / 1000;
    const requests = sis.requests();
    const floorS = requests / o.rps;
    const row: SlowSisRow = {
      kind,
      students,
      requests,
      refused: sis.refused(),
      wallS,
      floorS,
      ofFloor: requests > 0 ? wallS / floorS : undefined,
      unlimitedS: free.wallS,
      ofBound: requests > 0 ? wallS / Math.max(floorS, free.wallS) : undefined,
      requestsPer1000: students > 0 ? (requests * 1000) / students : 0,
      status,
    };
    rows.push(row);
    await sis.close();
    o.log(
      `  ${SIS_TITLES[kind]}: ${requests} requests, ${wallS.toFixed(1)} s (floor ${floorS.toFixed(1)} s, unlimited ${free.wallS.toFixed(1)} s), ${row.refused} refused, ${status}`,
    );
  }
  o.log(renderSlowSis(o, rows));
  return rows;
}

/** The Markdown table of the scenario. */
export function renderSlowSis(o: SlowSisOptions, rows: readonly SlowSisRow[]): string {
  const f = (n: number, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d });
  const lines = [
    '',
    `Slow, rate-limited SIS (${f(o.students, 0)} students, ${o.latencyMs} ms latency, ${o.rps} req/s cap; floor = requests ÷ ${o.rps}/s; target ≤ 1.1 × floor)`,
    '',
    '| connector | students read | requests | per 1,000 students | 429s | SIS read (s) | floor (s) | read / floor | same read, no limits (s) | read / max(floor, no-limit read) | status |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of rows)
    lines.push(
      `| ${SIS_TITLES[r.kind]} | ${f(r.students, 0)} | ${f(r.requests, 0)} | ${f(r.requestsPer1000)} | ${r.refused} | ${f(r.wallS, 2)} | ${f(r.floorS, 2)} | ${r.ofFloor === undefined ? 'no HTTP' : f(r.ofFloor, 2)} | ${f(r.unlimitedS, 2)} | ${r.ofBound === undefined ? '—' : f(r.ofBound, 2)} | ${r.status} |`,
    );
  return lines.join('\n');
}

/** One read of `d` through `kind`'s connector from a fresh server with `limits`. */
async function readOnce(
  kind: SisKind,
  d: ReturnType<typeof generateDistrict>,
  limits: SisLimits | undefined,
  logger: Logger,
): Promise<{ wallS: number; students: number }> {
  const sis = await startSis(kind, d, { limits, maxRequestsPerSecond: 1000 });
  try {
    const district = DistrictConfig.parse({
      id: `free-${kind}`,
      name: 'x',
      connector: sis.connector,
    });
    const connector = createConnector(district, sis.secrets, logger);
    const ctx = { logger, signal: new AbortController().signal, reject: () => undefined };
    const t0 = performance.now();
    await connector.readSchools(ctx);
    let students = 0;
    for await (const chunk of connector.readRoster(ctx)) students += chunk.students.length;
    return { wallS: (performance.now() - t0) / 1000, students };
  } finally {
    await sis.close();
  }
}

function parseKinds(v: string): SisKind[] {
  const out = v.split(',').map(s => s.trim());
  for (const k of out)
    if (!(SIS_KINDS as readonly string[]).includes(k))
      throw new Error(`unknown kind ${k} (known: ${SIS_KINDS.join(', ')})`);
  return out as SisKind[];
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const p = new Command('slow-sis')
    .option('--students <n>', 'students', v => Number(v), 1000)
    .option('--seed <n>', 'generator seed', v => Number(v), 42)
    .option('--latency-ms <n>', 'server latency per request', v => Number(v), 50)
    .option('--rps <n>', 'server cap and client rate (requests/s)', v => Number(v), 20)
    .option('--kinds <list>', `connectors (${SIS_KINDS.join(', ')})`, parseKinds, [...SIS_KINDS]);
  p.parse(process.argv);
  const a = p.opts<{
    students: number;
    seed: number;
    latencyMs: number;
    rps: number;
    kinds: SisKind[];
  }>();
  runSlowSisBench({ ...a, log: line => process.stdout.write(`${line}\n`) }).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`slow-sis failed: ${String(err)}\n`);
      process.exit(1);
    },
  );
}
