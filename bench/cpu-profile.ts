/**
 * CPU profiles of the benchmark's worker processes, with TypeScript positions (issue 15).
 *
 * The workers run TypeScript through tsx, which compiles each file with esbuild into a few
 * long lines (whitespace minified) before V8 sees it: the `lineNumber`/`columnNumber` of a
 * `--cpu-prof` call frame are positions in that generated code, useless to a reader. tsx
 * enables Node's source-map support, so the maps of every loaded module are known to the
 * worker (`node:module` `findSourceMap`):
 *
 * 1. `dumpSourceMaps` (in the worker, before it exits): the source maps of the repository's
 *    loaded `.ts` modules → `<profile dir>/sourcemaps-<pid>.json` (`{ [fileUrl]: payload }`).
 * 2. `remapProfiles` (in the orchestrator, after the workers exited): every `*.cpuprofile`
 *    of the folder is rewritten in place with each call frame of a mapped file moved to its
 *    `.ts` line and column (0-based, as in the format); per-line ticks of those frames
 *    (`positionTicks`: lines of the generated code) are dropped, as they cannot be mapped
 *    without columns. A rewritten profile carries `"tsPositions": true` and is left alone by
 *    a second call.
 * 3. `summarizeProfile`: self time per function, `file:line` (1-based), for the printout.
 *
 * Uses Node's own `SourceMap` (node:module, Node ≥ 20), no extra dependency. Standalone:
 * `npx tsx bench/cpu-profile.ts <dir> [--top N]` remaps and summarizes a folder.
 */
import { findSourceMap, SourceMap, type SourceMapPayload } from 'node:module';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The part of a V8 `.cpuprofile` (Chrome DevTools Protocol `Profiler.Profile`) used here. */
interface CpuProfile {
  nodes: {
    id: number;
    callFrame: {
      functionName: string;
      url: string;
      lineNumber: number;
      columnNumber: number;
      scriptId?: string;
    };
    positionTicks?: { line: number; ticks: number }[];
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
  tsPositions?: boolean;
}

/** The profile folder this process writes to (`--cpu-prof-dir=`), or undefined. */
export function cpuProfileDir(): string | undefined {
  if (!process.execArgv.includes('--cpu-prof')) return undefined;
  const flag = process.execArgv.find(a => a.startsWith('--cpu-prof-dir='));
  return flag ? resolve(flag.slice('--cpu-prof-dir='.length)) : process.cwd();
}

function tsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) tsFiles(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/**
 * In a worker started with `--cpu-prof`: write the source maps of the loaded TypeScript
 * modules under `roots` (default: the repository's src/ and bench/) next to its profile, as
 * `sourcemaps-<pid>.json`.
 * Returns the number of maps written (0, and no file, without `--cpu-prof`). Throws when the
 * file cannot be written.
 */
export function dumpSourceMaps(
  dir = cpuProfileDir(),
  roots: readonly string[] = [join(repoRoot, 'src'), join(repoRoot, 'bench')],
): number {
  if (!dir) return 0;
  const maps: Record<string, SourceMapPayload> = {};
  for (const root of roots) {
    for (const file of tsFiles(root)) {
      const url = pathToFileURL(file).href;
      const map = findSourceMap(url) ?? findSourceMap(file);
      if (map) maps[url] = map.payload;
    }
  }
  const n = Object.keys(maps).length;
  if (!n) return 0;
  mkdirSync(dir, { recursive: true }); // V8 creates it only when it writes the profile, at exit
  writeFileSync(join(dir, `sourcemaps-${process.pid}.json`), JSON.stringify(maps));
  return n;
}

function filesNamed(dir: string, test: (name: string) => boolean, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) filesNamed(p, test, out);
    else if (test(name)) out.push(p);
  }
  return out;
}

/** The pid in a V8 profile name `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`. */
const pidOf = (file: string): string | undefined => basename(file).split('.')[3];

/** True for the profile of a process's main thread (thread id 0 in its name). */
export const isMainThread = (file: string): boolean => basename(file).split('.')[4] === '0';

/**
 * Rewrite every `.cpuprofile` under `dir` with TypeScript positions, using the
 * `sourcemaps-<pid>.json` its process wrote (`dumpSourceMaps`). Returns how many profiles
 * were rewritten and how many call frames moved. Throws on an unreadable profile.
 */
export function remapProfiles(dir: string): { profiles: number; frames: number } {
  let profiles = 0;
  let frames = 0;
  const mapsByPid = new Map<string, Map<string, SourceMap>>();
  for (const f of filesNamed(dir, n => /^sourcemaps-\d+\.json$/.test(n))) {
    const raw = JSON.parse(readFileSync(f, 'utf8')) as Record<string, SourceMapPayload>;
    const pid = /sourcemaps-(\d+)\.json$/.exec(f)?.[1] ?? '';
    mapsByPid.set(pid, new Map(Object.entries(raw).map(([u, p]) => [u, new SourceMap(p)])));
  }
  // A profile whose own process wrote no maps (tsx's loader thread shares the pid; a process
  // that died) uses any map of the run: tsx compiles a file the same way every time.
  const anyMaps = new Map<string, SourceMap>();
  for (const m of mapsByPid.values()) for (const [u, s] of m) anyMaps.set(u, s);
  for (const file of filesNamed(dir, n => n.endsWith('.cpuprofile'))) {
    const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    if (p.tsPositions) continue;
    const maps = mapsByPid.get(pidOf(file) ?? '') ?? anyMaps;
    let moved = 0;
    for (const node of p.nodes) {
      const cf = node.callFrame;
      const map = maps.get(cf.url);
      if (!map || cf.lineNumber < 0) continue;
      const e = map.findEntry(cf.lineNumber, cf.columnNumber);
      if (!('originalLine' in e)) continue;
      cf.lineNumber = e.originalLine;
      cf.columnNumber = e.originalColumn;
      delete node.positionTicks;
      moved++;
    }
    p.tsPositions = true;
    writeFileSync(file, JSON.stringify(p));
    profiles++;
    frames += moved;
  }
  return { profiles, frames };
}

/** One row of `summarizeProfile`. */
export interface ProfileRow {
  /** Function name (`(anonymous)` when none). */
  fn: string;
  /** `path:line` (1-based, path relative to the repository), `node:…` or a pseudo-frame. */
  where: string;
  /** Self time, ms. */
  selfMs: number;
  /** Share of the process's busy time (all samples but `(idle)`), %. */
  sharePercent: number;
}

/**
 * Self time per function of one profile, highest first: the `top` rows, the busy time
 * (ms, samples that are not `(idle)`) and the profile's duration (ms).
 */
export function summarizeProfile(
  file: string,
  top = 15,
): { busyMs: number; durationMs: number; rows: ProfileRow[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byNode = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] ?? 0;
    byNode.set(id, (byNode.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const byFn = new Map<string, { fn: string; where: string; us: number }>();
  let busyUs = 0;
  for (const node of p.nodes) {
    const us = byNode.get(node.id);
    if (!us) continue;
    const cf = node.callFrame;
    if (cf.functionName === '(idle)') continue;
    busyUs += us;
    const fn = cf.functionName || '(anonymous)';
    let where = cf.url;
    if (where.startsWith('file://')) where = relative(repoRoot, fileURLToPath(where));
    const nm = where.lastIndexOf('node_modules/');
    if (nm >= 0) where = where.slice(nm + 'node_modules/'.length);
    if (where && cf.lineNumber >= 0) where += `:${cf.lineNumber + 1}`;
    const key = `${fn}\u0000${where}`;
    const row = byFn.get(key) ?? { fn, where, us: 0 };
    row.us += us;
    byFn.set(key, row);
  }
  const rows = [...byFn.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map(r => ({
      fn: r.fn,
      where: r.where,
      selfMs: Math.round(r.us / 1000),
      sharePercent: busyUs ? Math.round((r.us / busyUs) * 1000) / 10 : 0,
    }));
  return { busyMs: Math.round(busyUs / 1000), durationMs: (p.endTime - p.startTime) / 1000, rows };
}

/**
 * Remap the profiles under `dir` and render, for the main thread of each process (one
 * folder per process), the top self-time functions as text lines.
 */
export function profileReport(dir: string, top = 12): string[] {
  const { profiles, frames } = remapProfiles(dir);
  const lines = [
    `CPU profiles in ${dir}: ${profiles} remapped to .ts positions (${frames} frames)`,
  ];
  // The main thread's profile (thread id 0 in the name; tsx's loader thread is another).
  const byFolder = new Map<string, string>();
  for (const f of filesNamed(dir, n => n.endsWith('.cpuprofile'))) {
    const best = byFolder.get(dirname(f));
    if (!best || (isMainThread(f) && !isMainThread(best))) byFolder.set(dirname(f), f);
  }
  for (const [folder, file] of [...byFolder].sort()) {
    const s = summarizeProfile(file, top);
    lines.push(
      `  ${relative(dir, folder) || '.'} (${basename(file)}): busy ${(s.busyMs / 1000).toFixed(2)} s of ${(s.durationMs / 1000).toFixed(2)} s`,
    );
    for (const r of s.rows)
      lines.push(
        `    ${r.sharePercent.toFixed(1).padStart(5)} %  ${String(r.selfMs).padStart(6)} ms  ${r.fn}  ${r.where}`,
      );
  }
  return lines;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [dir, flag, n] = process.argv.slice(2);
  if (!dir) {
    process.stderr.write('usage: npx tsx bench/cpu-profile.ts <dir> [--top N]\n');
    process.exit(2);
  }
  const top = flag === '--top' && n ? Number(n) : 12;
  process.stdout.write(`${profileReport(resolve(dir), top).join('\n')}\n`);
}
