/**
 * Every count, timing and import key the product produces has words of its own in
 * src/shared/labels.ts (the console's one table), so an admin never reads a raw key.
 */
import { ACTIVATION_COUNT } from '../../src/jobs/notifications.js';
import { CHANGE_ACTIONS, CHANGE_ENTITIES } from '../../src/models/changes/types.js';
import { ACCESS_CODES_HOOK_NAME } from '../../src/access-codes/finalize-hook.js';
import { FINALIZE_HOOKS } from '../../src/jobs/finalize-hooks.js';
import { EXCLUDED_PREFIX } from '../../src/jobs/rejects.js';
import {
  EXCLUDED_COUNT_PREFIX,
  IMPORT_COUNT_LABELS,
  TIMING_LABELS,
  actionLabel,
  entityLabel,
  hasCountLabel,
  humanize,
  importCountLabel,
  timingLabel,
} from '../../src/shared/labels.js';
import { APPLY_WAIT_TIMINGS } from '../../src/shared/api-schemas.js';

describe('count and timing labels', () => {
  it('labels every run count key the pipeline writes', () => {
    const keys: [string, string][] = [];
    // change-log counts (links are counted add/remove/reactivate), -held / -skipped variants
    for (const e of CHANGE_ENTITIES) for (const a of CHANGE_ACTIONS) keys.push([e, a]);
    for (const a of ['add', 'remove', 'reactivate', 'remove-held', 'remove-skipped'])
      keys.push(['link', a]);
    for (const e of ['student', 'parent'])
      for (const a of ['deactivate-held', 'deactivate-skipped']) keys.push([e, a]);
    keys.push(['student', 'create-held'], ['student', 'move'], ['code', 'issue']);
    keys.push(['code', 'held']);
    for (const a of Object.values(ACTIVATION_COUNT)) keys.push(['activation', a]);
    for (const a of ['create', 'update']) keys.push(['section', a]);
    for (const a of ['add', 'reactivate', 'remove']) keys.push(['enrollment', a]);
    for (const e of ['guardian', 'relationship', 'student'])
      keys.push([e, `${EXCLUDED_PREFIX}no email or username`]);
    const missing = keys.filter(([e, a]) => !hasCountLabel(e, a)).map(([e, a]) => `${e}.${a}`);
    expect(missing).toEqual([]);
    expect(EXCLUDED_COUNT_PREFIX).toBe(EXCLUDED_PREFIX);
  });

  it('says what happened in words, entity by entity', () => {
    expect(entityLabel('link')).toBe('Parent–student links');
    expect(actionLabel('create', 'code')).toBe('issued');
    expect(actionLabel('create', 'student')).toBe('created');
    expect(actionLabel('excluded:no data access', 'relationship')).toBe('left out: no data access');
    expect(actionLabel('deactivate-held')).toMatch(/^held: would be deactivated/);
    // an unknown key is humanised, never shown raw or dropped
    expect(actionLabel('someNewThing-x')).toBe('some new thing x');
    expect(humanize('notUpdated')).toBe('not updated');
  });

  it('labels every run timing key, finalize steps and hooks included', () => {
    const keys = [
      'pull',
      'finalize',
      'total',
      APPLY_WAIT_TIMINGS.avg,
      APPLY_WAIT_TIMINGS.max,
      ...['read', 'new-students', 'decide', 'deactivate', 'rejects'].map(s => `finalize.${s}`),
      ...FINALIZE_HOOKS.map(h => `finalize.${h.name}`),
    ];
    expect(keys).toContain(`finalize.${ACCESS_CODES_HOOK_NAME}`);
    expect(keys.filter(k => !(k in TIMING_LABELS))).toEqual([]);
    expect(timingLabel('finalize.some-hook')).toBe('Finalize: some hook');
  });

  it('labels every import count key of both kinds', () => {
    const parents = ['create', 'update', 'reactivate', 'unchanged', 'notUpdated'];
    const both = ['merged', 'excluded', 'errorRows'];
    for (const k of [...parents, 'activationEmail', ...both])
      expect(IMPORT_COUNT_LABELS.parents[k]).toBeDefined();
    for (const k of ['add', 'reactivate', 'unchanged', 'remove', 'keptSis', 'notCleared', ...both])
      expect(IMPORT_COUNT_LABELS.associations[k]).toBeDefined();
    expect(importCountLabel('associations', 'reactivate')).toBe('links to reactivate');
    expect(importCountLabel('parents', 'reactivate')).toBe('accounts to reactivate');
  });
});
