/**
 * Which district configuration a run uses (docs/decisions/0022): the district file, its
 * sha256 and when this process read it, plus — when the file now on disk could not be used
 * (invalid, a secret it names is not set, a refused reload, or changed and not reloaded
 * yet) — that file and every problem. Stored on the run (`SyncRun.config`) when it is queued
 * and again when a worker starts its pull, so a run never uses an older configuration
 * silently.
 */
import { readFileSync } from 'node:fs';
import type { AppContext } from '../app.js';
import { sha256Hex } from '../config/district.js';
import type { RunConfig } from '../models/types.js';

/**
 * The configuration `ctx` serves for `districtId`, as a run records it. Reads the district's
 * file once to notice a change no reload has picked up yet. Throws like `ctx.district` when
 * the district is not served.
 */
export function runConfigOf(
  ctx: Pick<AppContext, 'district' | 'districtSources' | 'districtProblems'>,
  districtId: string,
): RunConfig {
  const district = ctx.district(districtId);
  const src = ctx.districtSources.get(districtId) ?? {
    sha256: sha256Hex(JSON.stringify(district)),
    loadedAt: new Date().toISOString(),
  };
  const config: RunConfig = { sha256: src.sha256, loadedAt: src.loadedAt };
  if (src.file !== undefined) config.file = src.file;
  const problem = ctx.districtProblems.get(districtId);
  if (problem) {
    config.refused = {
      file: problem.file,
      sha256: problem.sha256,
      at: problem.at,
      problems: [...problem.problems],
    };
    return config;
  }
  if (src.file !== undefined) {
    let now: string | undefined;
    try {
      now = sha256Hex(readFileSync(src.file));
    } catch (err) {
      config.refused = {
        file: src.file,
        at: new Date().toISOString(),
        problems: [`${src.file}: cannot be read now: ${(err as Error).message}`],
      };
      return config;
    }
    if (now !== src.sha256)
      config.refused = {
        file: src.file,
        sha256: now,
        at: new Date().toISOString(),
        problems: [
          `${src.file}: changed on disk after it was loaded and not reloaded yet (a running worker reloads district files within a second; check its log for "district files changed but cannot be used")`,
        ],
      };
  }
  return config;
}

/**
 * One line saying a run did not use the district file on disk, or undefined when it did:
 * `the district file X could not be used (problem; …): this run uses the configuration
 * loaded at T (sha256 abcdef123456)`.
 */
export function refusedConfigNote(config: RunConfig | undefined): string | undefined {
  const r = config?.refused;
  if (!config || !r) return undefined;
  const problems = r.problems.map(p => p.replace(`${r.file}: `, '')).join('; ');
  const used = config.sha256
    ? `the configuration loaded ${config.loadedAt ?? '?'} (sha256 ${config.sha256.slice(0, 12)})`
    : 'the configuration the worker loaded before';
  return `the district file ${r.file} on disk could not be used (${problems}): this run uses ${used}`;
}
