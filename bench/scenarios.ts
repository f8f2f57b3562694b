/**
 * Scenarios whose features are built by other issues: measured once the feature has landed
 * in this checkout, otherwise reported as "not yet measurable" with the reason.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { FINALIZE_HOOKS } from '../src/jobs/finalize-hooks.js';

const src = (path: string) => fileURLToPath(new URL(`../src/${path}`, import.meta.url));

/** Why `scenario` cannot be measured yet, or undefined when it can. */
export function pendingScenario(scenario: string): string | undefined {
  if (scenario === 'codes' && !FINALIZE_HOOKS.some(h => h.name === 'access-codes'))
    return 'issue #5 (access codes) has not landed: no finalize hook "access-codes"';
  if (scenario === 'import-preview' && !existsSync(src('imports')))
    return 'issue #6 (association import) has not landed: no src/imports/';
  return undefined;
}
