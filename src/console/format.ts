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

const ACTIONS: Record<string, string> = {
  create: 'created',
  update: 'updated',
  deactivate: 'deactivated',
  reactivate: 'reactivated',
  link: 'linked',
  unlink: 'unlinked',
  remove: 'removed',
  unchanged: 'unchanged',
  'deactivate-held': 'held: would be deactivated',
  'remove-held': 'held: would be removed',
  'deactivate-skipped': 'not deactivated (add-only)',
  'remove-skipped': 'not removed (add-only)',
};
const ENTITIES: Record<string, string> = {
  student: 'Students',
  parent: 'Parents',
  link: 'Parent–student links',
  school: 'Schools',
  section: 'Sections',
};

/** "Students", "Parents" … for a count's entity. */
export function entityLabel(entity: string): string {
  return ENTITIES[entity] ?? entity;
}
/** "created", "held: would be deactivated" … for a count's action. */
export function actionLabel(action: string): string {
  return ACTIONS[action] ?? action.replace(/-/g, ' ');
}

/** Timing keys ("pullMs", "apply") as words. */
export function timingLabel(key: string): string {
  return key
    .replace(/Ms$/, '')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase();
}
