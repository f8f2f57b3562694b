/** Display helpers: dates, durations, run statuses and count labels. */

/** `iso` as a local date and time ("—" when absent). */
export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

/** Milliseconds as "1.2 s" / "3 min 4 s". */
export function duration(ms: number | undefined): string {
  if (ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** Badge colour of a run status. */
export function statusColor(status: string): string {
  switch (status) {
    case 'succeeded':
      return 'green';
    case 'failed':
      return 'red';
    case 'needs-approval':
      return 'orange';
    case 'queued':
    case 'running':
      return 'blue';
    default:
      return 'gray';
  }
}

/** Runs still moving (their page polls). */
export function isActive(status: string): boolean {
  return status === 'queued' || status === 'running';
}

/** Count, timing and import labels: one table for the product (src/shared/labels.ts). */
export { actionLabel, entityLabel, importCountLabel, timingLabel } from '../shared/labels';
