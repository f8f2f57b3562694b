/**
 * Words for the keys the product counts and times, in one place: run counts (entity → action,
 * e.g. `student.create`, `code.issue`, `guardian["excluded:no email or username"]`), run
 * timings (`pull`, `finalize.read`, `applyWait.avg`) and import preview counts (`notUpdated`,
 * `keptSis`). The admin console shows these labels instead of the raw keys; the API and the
 * CLI's `--json` keep the keys (they are the stable contract, docs/api.md).
 *
 * Browser-safe: no imports. A key without an entry is shown humanised (`notUpdated` → "not
 * updated"), never dropped; test/unit/labels.test.ts checks that every key the pipeline
 * produces has an entry.
 */

/** Count entities of a run: change-log entities, sections, exclusion subjects, emails. */
export const ENTITY_LABELS: Readonly<Record<string, string>> = {
  student: 'Students',
  parent: 'Parent accounts',
  link: 'Parent–student links',
  code: 'Parent Access Codes',
  activation: 'Activation emails',
  section: 'Course sections',
  enrollment: 'Section enrollments',
  school: 'Schools',
  guardian: 'SIS guardians (contacts)',
  relationship: 'SIS guardian relationships',
};

/** Count actions of a run, for any entity. */
export const ACTION_LABELS: Readonly<Record<string, string>> = {
  create: 'created',
  update: 'updated',
  match: 'matched to an existing account (another SIS identity added)',
  reactivate: 'reactivated',
  deactivate: 'deactivated',
  add: 'added',
  remove: 'removed',
  unchanged: 'unchanged',
  move: 'moved to a new SIS id',
  'deactivate-held': 'held: would be deactivated (waiting for approval)',
  'remove-held': 'held: would be removed (waiting for approval)',
  'create-held': 'held: would be created (probable re-key, waiting for approval)',
  'deactivate-skipped': 'not deactivated (add-only or freeze window)',
  'remove-skipped': 'not removed (add-only or freeze window)',
  issue: 'issued',
  held: 'held until the run is approved',
  queued: 'queued for sending',
  planned: 'would be sent',
  'not sent: no email': 'not sent: no email address',
  'already sent or queued': 'already sent or queued before',
};

/** Actions whose words depend on the entity (`entity.action`). */
const ENTITY_ACTION_LABELS: Readonly<Record<string, string>> = {
  'code.create': 'issued',
  'code.deactivate': 'revoked (reset)',
  'code.held': 'not issued yet (the run is held)',
};

/** Prefix of exclusion counts: `counts[entity]['excluded:<rule>']` (src/jobs/rejects.ts). */
export const EXCLUDED_COUNT_PREFIX = 'excluded:';

/** Run timings (ms) by key; `finalize.<hook>` keys are labelled by `timingLabel`. */
export const TIMING_LABELS: Readonly<Record<string, string>> = {
  pull: 'Reading the SIS (pull)',
  finalize: 'Finalize (all steps)',
  total: 'Total (pull start to end)',
  'applyWait.avg': 'Chunks waiting to be applied (average)',
  'applyWait.max': 'Chunks waiting to be applied (longest)',
  'finalize.read': 'Finalize: reading the run and active records',
  'finalize.new-students': 'Finalize: creating new students',
  'finalize.decide': 'Finalize: deletion safeguard decision',
  'finalize.deactivate': 'Finalize: deactivations',
  'finalize.rejects': 'Finalize: storing rejects and exclusions',
  'finalize.access-codes': 'Finalize: Parent Access Codes',
  'finalize.connector-state': 'Finalize: saving the SIS delta state',
};

/** Import preview and confirm counts, per import kind (src/imports/service.ts). */
export const IMPORT_COUNT_LABELS: Readonly<
  Record<'parents' | 'associations', Readonly<Record<string, string>>>
> = {
  parents: {
    create: 'accounts to create',
    update: 'accounts to update',
    reactivate: 'accounts to reactivate',
    unchanged: 'accounts unchanged',
    notUpdated: 'existing accounts not updated (option)',
    activationEmail: 'activation emails',
    merged: 'rows merged into another row',
    excluded: 'rows left out',
    errorRows: 'rows with errors',
  },
  associations: {
    add: 'links to add',
    reactivate: 'links to reactivate',
    unchanged: 'links unchanged',
    remove: 'links to remove',
    keptSis: 'SIS links kept (not cleared)',
    notCleared: 'links not cleared',
    merged: 'rows merged into another row',
    excluded: 'rows left out',
    errorRows: 'rows with errors',
  },
};

/** `someKey-name` / `someKey` → "some key name" (the fallback for a key without an entry). */
export function humanize(key: string): string {
  return key
    .replace(/Ms$/, '')
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/[-_.]+/g, ' ')
    .toLowerCase()
    .trim();
}

/** "Students", "Parent accounts" … for a count's entity. */
export function entityLabel(entity: string): string {
  return ENTITY_LABELS[entity] ?? humanize(entity);
}

/**
 * "created", "held: would be deactivated …", "left out: no email or username" … for a
 * count's action, `entity` giving entity-specific words (a code `create` is "issued").
 */
export function actionLabel(action: string, entity?: string): string {
  if (action.startsWith(EXCLUDED_COUNT_PREFIX))
    return `left out: ${action.slice(EXCLUDED_COUNT_PREFIX.length)}`;
  return (
    (entity !== undefined ? ENTITY_ACTION_LABELS[`${entity}.${action}`] : undefined) ??
    ACTION_LABELS[action] ??
    humanize(action)
  );
}

/** True when `entity.action` has words of its own (not the humanised key). */
export function hasCountLabel(entity: string, action: string): boolean {
  return (
    entity in ENTITY_LABELS &&
    (action.startsWith(EXCLUDED_COUNT_PREFIX) ||
      `${entity}.${action}` in ENTITY_ACTION_LABELS ||
      action in ACTION_LABELS)
  );
}

/** Words for a run timing key: the table above, else `finalize.<step>` → "Finalize: <step>". */
export function timingLabel(key: string): string {
  const known = TIMING_LABELS[key];
  if (known) return known;
  if (key.startsWith('finalize.')) return `Finalize: ${humanize(key.slice('finalize.'.length))}`;
  return humanize(key);
}

/** Words for an import count key of `kind` (`parents` or `associations`). */
export function importCountLabel(kind: string, key: string): string {
  const table =
    kind === 'associations' ? IMPORT_COUNT_LABELS.associations : IMPORT_COUNT_LABELS.parents;
  return table[key] ?? humanize(key);
}
