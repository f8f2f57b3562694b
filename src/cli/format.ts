/** Plain-text rendering of runs for the CLI and the demo. */
import { refusedConfigNote } from '../jobs/run-config.js';
import { EXCLUDED_PREFIX, rejectTotal } from '../jobs/rejects.js';
import type { RunDeferredStudent, SyncRun } from '../models/types.js';
import { runQueueWait } from '../shared/api-schemas.js';
import { table } from './audit.js';
import { commandPrefix } from './exit.js';

/** A run summary: status, timings, and a table of counts per entity and action. */
export function formatRun(run: SyncRun, extra: Record<string, string | number> = {}): string {
  const lines: string[] = [];
  lines.push(
    `run ${run.id}  district ${run.districtId}  connector ${run.connector}${run.dryRun ? '  (dry run)' : ''}`,
  );
  lines.push(`status   ${run.status}${run.error ? `  — ${run.error}` : ''}`);
  const wait = waitingLine(run);
  if (wait) lines.push(`waiting  ${wait}`);
  lines.push(`by       ${run.actor ?? run.trigger}${run.actor ? ` (${run.trigger})` : ''}`);
  if (run.config)
    lines.push(
      `config   ${run.config.file ?? '(in code)'} ` +
        (run.config.sha256
          ? `sha256 ${run.config.sha256.slice(0, 12)}, loaded ${run.config.loadedAt ?? '?'}`
          : '(the configuration the worker has loaded; recorded when it starts the run)'),
    );
  const refused = refusedConfigNote(run.config);
  if (refused) lines.push(`warning  ${refused}`);
  if (run.decidedBy)
    lines.push(`decided  by ${run.decidedBy}${run.decidedAt ? ` at ${run.decidedAt}` : ''}`);
  const t = run.timings;
  if (t.total !== undefined)
    lines.push(
      `time     ${(t.total / 1000).toFixed(2)} s total (pull ${((t.pull ?? 0) / 1000).toFixed(2)} s, finalize ${((t.finalize ?? 0) / 1000).toFixed(2)} s)`,
    );
  const queued = queueWaitLine(run);
  if (queued) lines.push(`queued   ${queued}`);
  for (const [k, v] of Object.entries(extra)) lines.push(`${k.padEnd(8)} ${v}`);
  const entities = Object.keys(run.counts).sort();
  if (entities.length === 0) lines.push('changes  none');
  else {
    lines.push('changes');
    for (const e of entities) {
      const acts = run.counts[e] ?? {};
      const parts = Object.keys(acts)
        .sort()
        .map(a => `${a} ${acts[a]}`);
      lines.push(`  ${e.padEnd(8)} ${parts.join(', ')}`);
    }
  }
  const excluded = rejectTotal(run, 'excluded');
  lines.push(
    `rejects  ${run.rejectCount}` +
      (excluded
        ? `  excluded ${excluded} (${commandPrefix()} rejects ${run.id} --kind excluded)`
        : ''),
  );
  if (run.held)
    lines.push(
      `held     ${run.held.students} students, ${run.held.parents} parents, ${run.held.links} links await approval (${commandPrefix()} held ${run.id})`,
    );
  return lines.join('\n');
}

/**
 * How long the run waited in queues: `2.1 s before the pull started; chunks waited 0.3 s on
 * average (longest 1.2 s) to be applied`, or `for 12.0 s so far` while still queued;
 * undefined for a run that never started. `nowMs`: the clock (ms since epoch).
 */
export function queueWaitLine(run: SyncRun, nowMs = Date.now()): string | undefined {
  const w = runQueueWait(run, nowMs);
  if (!w) return undefined;
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  if (w.queued) return `for ${s(w.pullMs)} so far (the pull has not started)`;
  const chunks =
    w.applyAvgMs === undefined
      ? ''
      : `; chunks waited ${s(w.applyAvgMs)} on average (longest ${s(w.applyMaxMs ?? w.applyAvgMs)}) to be applied`;
  return `${s(w.pullMs)} before the pull started${chunks}`;
}

/**
 * `waiting for SIS until <ISO> (<reason>)` while a run's pull is rescheduled for a SIS rate
 * limit; `waited for SIS <n>×` once it resumed; undefined when it never waited.
 * `nowMs`: the clock (ms since epoch).
 */
export function waitingLine(run: SyncRun, nowMs = Date.now()): string | undefined {
  const w = run.waiting;
  if (!w) return undefined;
  const active = run.status === 'queued' || run.status === 'running';
  if (active && Date.parse(w.until) > nowMs)
    return `waiting for SIS until ${w.until} (${w.reason})`;
  return `waited for SIS ${w.reschedules}× (last: ${w.reason})`;
}

/**
 * The runs as a labelled table, newest first: created, run id, status, trigger (`dry-run`
 * marked), the changes made per entity and action (`student create 300, deactivate 2`), what
 * was held, skipped or excluded, and the reject count.
 */
export function formatRunList(runs: SyncRun[]): string {
  if (!runs.length) return 'no runs yet';
  const rows = runs.map(r => {
    // Changes made; held or skipped deactivations and exclusions are shown apart.
    const made: string[] = [];
    let held = 0;
    let skipped = 0;
    let excluded = 0;
    for (const e of Object.keys(r.counts).sort()) {
      const parts: string[] = [];
      for (const [a, k] of Object.entries(r.counts[e] ?? {}).sort(([x], [y]) =>
        x.localeCompare(y),
      )) {
        if (a.startsWith(EXCLUDED_PREFIX)) excluded += k;
        else if (a.endsWith('-held')) held += k;
        else if (a.endsWith('-skipped')) skipped += k;
        else if (k > 0) parts.push(`${a} ${k}`);
      }
      if (parts.length) made.push(`${e} ${parts.join(', ')}`);
    }
    const wait =
      r.waiting && waitingLine(r)?.startsWith('waiting')
        ? ` (waiting for SIS until ${r.waiting.until})`
        : '';
    return [
      r.createdAt,
      r.id,
      // the district file on disk was not used (`run <id>` says why)
      r.status + wait + (r.config?.refused ? ' (previous config: file on disk refused)' : ''),
      r.trigger + (r.dryRun ? ' dry-run' : ''),
      String(held),
      String(skipped),
      String(excluded),
      String(r.rejectCount),
      made.join('; ') || '-',
    ];
  });
  return table(
    ['created', 'run', 'status', 'trigger', 'held', 'skipped', 'excluded', 'rejects', 'changes'],
    rows,
  );
}

/**
 * The remap a held re-key proposes: one line per pair `old → new  name  school(s)  grade`,
 * after a line with the run's status and how many of its new students are paired.
 */
export function formatRemap(
  run: SyncRun,
  totals: { students: number; remapped: number },
  rows: readonly RunDeferredStudent[],
): string {
  const lines = [
    `run ${run.id}  status ${run.status}  new students ${totals.students}, remap proposed for ${totals.remapped}`,
  ];
  for (const r of rows) {
    const s = r.record;
    lines.push(
      `  ${r.remapFrom ?? '?'} → ${s.sourcedId}  ${s.givenName} ${s.familyName}  school ${s.schoolSourcedIds.join(',')}  grade ${s.grade ?? '-'}`,
    );
  }
  if (totals.students > totals.remapped)
    lines.push(
      `  ${totals.students - totals.remapped} new students have no unambiguous match: approving creates them`,
    );
  return lines.join('\n');
}
