/**
 * Reloading the district files while the worker or the API runs: a district added, changed or
 * removed in `DISTRICTS_DIR` takes effect without a restart. The new set is validated first
 * (every file, every secret it names); when anything is wrong the process keeps the
 * configuration it has and says so loudly (error log, 422 from the reload route), naming each
 * problem. Triggered by a watch on the folder (`watchDistrictFiles`) or by
 * `POST /admin/districts/reload`.
 */
import { watch, type FSWatcher } from 'node:fs';
import { config as loadDotenv } from 'dotenv';
import type { AppContext } from '../app.js';
import { ConfigError, describeError } from '../errors.js';
import { checkWebhookSecrets } from '../jobs/webhooks.js';
import { readDistrictFiles, type DistrictConfig, type DistrictFileProblem } from './district.js';

/** What a reload changed (district ids). */
export interface DistrictReload {
  added: string[];
  changed: string[];
  removed: string[];
  unchanged: string[];
}

export interface ReloadOptions {
  /** Folder to read; default `ctx.env.DISTRICTS_DIR`. */
  dir?: string;
  /**
   * Called first to re-read secrets. Default: when the secrets are the process environment,
   * `.env` (of the working folder) is read again, adding variables that were not set; a
   * variable already set is never changed.
   */
  refreshSecrets?: () => void;
}

/**
 * Read the district files again and make `ctx.districts` (and `ctx.districtSources`) match
 * them. Throws `ConfigError` (listing every problem) and changes no district when a file is
 * invalid or a new or changed district names a secret that is not set; the problems are then
 * kept per district in `ctx.districtProblems` (each of that district's runs records them,
 * `SyncRun.config.refused`) until a reload succeeds. Runs in flight read the new settings in their
 * remaining steps; a run of a removed district fails ("unknown district").
 */
export function reloadDistricts(ctx: AppContext, opts: ReloadOptions = {}): DistrictReload {
  const refresh =
    opts.refreshSecrets ??
    (ctx.secrets === process.env ? () => void loadDotenv({ quiet: true }) : undefined);
  refresh?.();
  const files = readDistrictFiles(opts.dir ?? ctx.env.DISTRICTS_DIR);
  const next = files.districts;
  const result: DistrictReload = { added: [], changed: [], removed: [], unchanged: [] };
  const incoming = new Map(next.map(d => [d.id, d]));
  const touched: DistrictConfig[] = [];
  for (const d of next) {
    const old = ctx.districts.get(d.id);
    if (!old) result.added.push(d.id);
    else if (JSON.stringify(old) !== JSON.stringify(d)) result.changed.push(d.id);
    else {
      result.unchanged.push(d.id);
      continue;
    }
    touched.push(d);
  }
  for (const id of ctx.districts.keys()) if (!incoming.has(id)) result.removed.push(id);

  // Fail now, not at 2 a.m.: the secrets of every new or changed district must be set.
  // Problems are kept per district, so each district's runs can say why its file on disk was
  // not used (`SyncRun.config.refused`).
  const byDistrict = new Map<string, DistrictFileProblem>(
    files.broken.map(b => [b.districtId, { ...b, problems: [...b.problems] }]),
  );
  const add = (id: string, problem: string) => {
    const known = byDistrict.get(id);
    if (known) known.problems.push(problem);
    else {
      const src = files.sources.get(id);
      byDistrict.set(id, {
        file: src?.file ?? '(unknown file)',
        districtId: id,
        sha256: src?.sha256,
        problems: [problem],
        at: src?.loadedAt ?? new Date().toISOString(),
      });
    }
  };
  for (const d of touched) for (const p of districtSecretProblems(ctx, d)) add(d.id, p);
  if (byDistrict.size) {
    const problems = [...byDistrict.values()].flatMap(p => p.problems);
    // A reload is all-or-nothing: the other new or changed districts wait too, and say so.
    const culprits = [...byDistrict.values()].map(p => p.file).join(', ');
    for (const d of touched)
      if (!byDistrict.has(d.id))
        add(
          d.id,
          `${files.sources.get(d.id)?.file ?? d.id}: not applied yet: the reload was refused because of ${culprits} (a reload is all-or-nothing)`,
        );
    ctx.districtProblems.clear();
    for (const [id, p] of byDistrict) ctx.districtProblems.set(id, p);
    throw new ConfigError('district reload refused; the previous configuration stays', problems);
  }

  for (const id of result.removed) {
    ctx.districts.delete(id);
    ctx.districtSources.delete(id);
  }
  for (const d of touched) {
    ctx.districts.set(d.id, d);
    const src = files.sources.get(d.id);
    if (src) ctx.districtSources.set(d.id, src);
  }
  ctx.districtProblems.clear();
  return result;
}

/**
 * What keeps a district's configuration from being used in this process: each secret
 * (environment variable) it names that is not set, connector or webhook, one line each
 * naming the district and the variable. Empty when the district can run.
 */
export function districtSecretProblems(
  ctx: Pick<AppContext, 'connectorFor' | 'secrets'>,
  d: DistrictConfig,
): string[] {
  const problems: string[] = [];
  try {
    ctx.connectorFor(d);
  } catch (err) {
    problems.push(err instanceof ConfigError ? err.message : describeError(err));
  }
  try {
    checkWebhookSecrets({ districts: new Map([[d.id, d]]), secrets: ctx.secrets });
  } catch (err) {
    if (err instanceof ConfigError) problems.push(...err.problems);
    else throw err;
  }
  return problems;
}

export interface WatchOptions extends ReloadOptions {
  /** After a reload that changed something (e.g. the worker updates its cron schedules). */
  onReload?: (r: DistrictReload) => Promise<void> | void;
  /** Quiet period after the last file event before reloading (ms, default 300). */
  debounceMs?: number;
}

/**
 * Watch the districts folder and reload on changes (debounced). Logs every reload at info
 * and every refused one at error, naming the problems. Returns the watcher (unref'd: it does
 * not keep the process alive); close it on shutdown.
 */
export function watchDistrictFiles(ctx: AppContext, opts: WatchOptions = {}): FSWatcher {
  const dir = opts.dir ?? ctx.env.DISTRICTS_DIR;
  const log = ctx.logger.child({ component: 'districts' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const reload = () => {
    running = running.then(async () => {
      try {
        const r = reloadDistricts(ctx, opts);
        if (r.added.length + r.changed.length + r.removed.length === 0) return;
        await opts.onReload?.(r); // logged after it: the line means everything follows the files
        log.info(
          { dir, added: r.added, changed: r.changed, removed: r.removed },
          'district files reloaded',
        );
      } catch (err) {
        log.error(
          {
            dir,
            err: describeError(err),
            problems: err instanceof ConfigError ? err.problems : undefined,
          },
          'district files changed but cannot be used; still serving the previous configuration',
        );
      }
    });
  };
  const watcher = watch(dir, { persistent: false }, (_event, file) => {
    if (file && !String(file).endsWith('.json')) return;
    clearTimeout(timer);
    timer = setTimeout(reload, opts.debounceMs ?? 300);
  });
  watcher.on('error', err =>
    log.error({ dir, err: describeError(err) }, 'watching the district files failed'),
  );
  return watcher;
}
