/** Plain-text rendering of runs for the CLI and the demo. */
import { EXCLUDED_PREFIX, rejectTotal } from '../jobs/rejects.js';
import type { SyncRun } from '../models/types.js';

/** A run summary: status, timings, and a table of counts per entity and action. */
export function formatRun(run: SyncRun, extra: Record<string, string | number> = {}): string {
  const lines: string[] = [];
  lines.push(
    `run ${run.id}  district ${run.districtId}  connector ${run.connector}${run.dryRun ? '  (dry run)' : ''}`,
  );
  lines.push(`status   ${run.status}${run.error ? `  — ${run.error}` : ''}`);
  lines.push(`by       ${run.actor ?? run.trigger}${run.actor ? ` (${run.trigger})` : ''}`);
  if (run.decidedBy)
    lines.push(`decided  by ${run.decidedBy}${run.decidedAt ? ` at ${run.decidedAt}` : ''}`);
  const t = run.timings;
  if (t.total !== undefined)
    lines.push(
      `time     ${(t.total / 1000).toFixed(2)} s total (pull ${((t.pull ?? 0) / 1000).toFixed(2)} s, finalize ${((t.finalize ?? 0) / 1000).toFixed(2)} s)`,
    );
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
      (excluded ? `  excluded ${excluded} (guardian-sync rejects ${run.id} --kind excluded)` : ''),
  );
  if (run.held)
    lines.push(
      `held     ${run.held.studentSourcedIds.length} students, ${run.held.parentIds.length} parents, ${run.held.links.length} links await approval`,
    );
  return lines.join('\n');
}

/** One line per run, newest first. */
export function formatRunList(runs: SyncRun[]): string {
  if (!runs.length) return 'no runs yet';
  return runs
    .map(r => {
      // Changes made; held or skipped deactivations and exclusions are shown apart.
      const made: string[] = [];
      let held = 0;
      let skipped = 0;
      let excluded = 0;
      for (const [e, actions] of Object.entries(r.counts)) {
        let n = 0;
        for (const [a, k] of Object.entries(actions)) {
          if (a.startsWith(EXCLUDED_PREFIX)) excluded += k;
          else if (a.endsWith('-held')) held += k;
          else if (a.endsWith('-skipped')) skipped += k;
          else n += k;
        }
        if (n > 0) made.push(`${e}:${n}`);
      }
      if (held) made.push(`held:${held}`);
      if (skipped) made.push(`skipped:${skipped}`);
      if (excluded) made.push(`excluded:${excluded}`);
      const c = made.join(' ');
      return `${r.createdAt}  ${r.id}  ${r.status.padEnd(14)} ${r.trigger.padEnd(8)}${r.dryRun ? ' dry-run' : ''} ${c || '-'}  rejects:${r.rejectCount}`;
    })
    .join('\n');
}
