/**
 * Smoke test of the benchmark harness (`npm run bench`): a tiny district through every part
 * (guardian-sync in two worker processes, the naive baseline, the SIS read alone, the
 * raw-insert limit), checking the report's structure and invariant 1 (a no-change resync
 * writes nothing). No timing is asserted: figures depend on the machine.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBench } from '../../bench/run.js';
import type { BenchReport } from '../../bench/report.js';

describe('bench harness (300 students)', () => {
  let out: string;
  let report: BenchReport;
  let files: string[];

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'gsync-bench-test-'));
    ({ report, files } = await runBench({
      students: 300,
      scenarios: ['nochange'],
      seed: 7,
      pageSize: 100,
      concurrency: 2,
      churnPercent: 1,
      baseline: true,
      limit: true,
      pullOnly: true,
      importRows: 1000,
      importBaselineRows: 1000,
      nodeArgs: [],
      workerProcs: 2,
      redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      out,
      keep: false,
      progress: false,
      machine: 'jest',
    }));
  }, 120000);

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it('runs the initial sync before the resync and measures every part', () => {
    expect(report.scenarios.map(s => s.name)).toEqual(['initial', 'nochange']);
    const initial = report.scenarios[0];
    expect(initial?.parts.map(p => p.part)).toEqual(['ours', 'baseline', 'pull', 'limit']);
    const nochange = report.scenarios[1];
    expect(nochange?.parts.map(p => p.part)).toEqual(['ours', 'baseline', 'limit']);
    for (const s of report.scenarios) {
      expect(s.measurable).toBe(true);
      expect(s.correct).toBe(true);
      expect(s.snapshot?.students).toBe(300);
      expect(s.ratios.oursOverBaseline).toBeGreaterThan(0);
      expect(s.ratios.oursOverLimit).toBeGreaterThan(0);
      for (const p of s.parts) {
        expect(p.wallS).toBeGreaterThan(0);
        expect(p.peakRssMiB).toBeGreaterThan(0);
      }
    }
  });

  it('writes every roster row on the initial sync and nothing on the no-change resync', () => {
    const [initial, nochange] = report.scenarios;
    const ours = (s: typeof initial) => s?.parts.find(p => p.part === 'ours');
    const snapshot = initial?.snapshot;
    expect(snapshot).toBeDefined();
    // students + accounts + their sources + links, at least one row each
    expect(ours(initial)?.writes).toBeGreaterThanOrEqual(
      (snapshot?.expected.students ?? 0) +
        (snapshot?.expected.accounts ?? 0) +
        (snapshot?.expected.links ?? 0),
    );
    expect(ours(nochange)?.writes).toBe(0);
    // the naive baseline writes every record again; the limit writes the final rows
    expect(nochange?.parts.find(p => p.part === 'baseline')?.writes).toBeGreaterThan(0);
    expect(nochange?.parts.find(p => p.part === 'limit')?.writes).toBe(ours(initial)?.writes);
    // the limit also writes the change-log entries of the scenario's own run: all of the
    // initial sync's, none for the no-change resync (which appended none)
    const logOf = (s: typeof initial) =>
      (s?.parts.find(p => p.part === 'ours')?.details.changeLog as { entries: number }).entries;
    const limitLog = (s: typeof initial) =>
      s?.parts.find(p => p.part === 'limit')?.details.change_log;
    expect(logOf(initial)).toBeGreaterThan(0);
    expect(limitLog(initial)).toBe(logOf(initial));
    expect(logOf(nochange)).toBe(0);
    expect(limitLog(nochange)).toBe(0);
    // every part that reads the SIS made requests; the limit made none
    for (const p of initial?.parts ?? [])
      if (p.part === 'limit') expect(p.sisRequests).toBe(0);
      else expect(p.sisRequests).toBeGreaterThan(0);
    const target = report.targets.find(t => t.target.includes('writes exactly 0'));
    expect(target?.met).toBe(true);
  });

  it('writes the JSON and Markdown results', () => {
    expect(files).toHaveLength(2);
    const json = JSON.parse(readFileSync(files[0] ?? '', 'utf8')) as BenchReport;
    expect(json.options.students).toBe(300);
    const md = readFileSync(files[1] ?? '', 'utf8');
    expect(md).toContain('| no-change resync | guardian-sync |');
    expect(md).toContain('raw-insert limit');
  });
});

describe('bench harness: link-less codes and the association import preview (300 students)', () => {
  let out: string;
  let report: BenchReport;

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), 'gsync-bench-test-'));
    ({ report } = await runBench({
      students: 300,
      scenarios: ['codes', 'import-preview'],
      seed: 9,
      pageSize: 100,
      concurrency: 2,
      churnPercent: 1,
      baseline: true,
      limit: true,
      pullOnly: false,
      importRows: 1000,
      importBaselineRows: 250,
      nodeArgs: [],
      workerProcs: 2,
      redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      out,
      keep: false,
      progress: false,
      machine: 'jest',
    }));
  }, 180000);

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  const scenario = (name: string) => report.scenarios.find(s => s.name === name);

  it('issues a code per student with no links, and counts the codes among the writes', () => {
    expect(report.scenarios.map(s => s.name)).toEqual(['initial', 'codes', 'import-preview']);
    const codes = scenario('codes');
    expect(codes?.measurable).toBe(true);
    expect(codes?.correct).toBe(true);
    const ours = codes?.parts.find(p => p.part === 'ours');
    const active = ours?.details.active as { students: number; codes: number; links: number };
    expect(active.links).toBe(0);
    expect(active.codes).toBe(active.students);
    // the raw insert writes the same final rows, codes included
    expect(ours?.writes).toBe(codes?.parts.find(p => p.part === 'limit')?.writes);
  });

  it('projects the naive import baseline from its first rows and plans what the limit wrote', () => {
    const imp = scenario('import-preview');
    expect(imp?.measurable).toBe(true);
    expect(imp?.correct).toBe(true);
    const base = imp?.parts.find(p => p.part === 'baseline');
    expect(base?.details).toMatchObject({ rows: 1000, projected: true, sampledRows: 250 });
    const measuredS = Number(base?.details.measuredMs) / 1000;
    // the sample's row work ×4; reading the file counts once (wallS has 2 decimals)
    expect(base?.wallS).toBeGreaterThan(measuredS);
    expect(base?.wallS).toBeLessThanOrEqual(measuredS * 4 + 0.01);
    expect(imp?.ratios.oursOverBaseline).toBeGreaterThan(0);
  });
});
