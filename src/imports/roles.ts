/** The parent roles a district has (what an import's Role may name). */
import { mergeSettings } from '../access-codes/service.js';
import type { DistrictConfig } from '../config/district.js';
import { accessCodeRepository } from '../models/access-codes/index.js';
import type { RosterStore } from '../models/types.js';

/** The platform's built-in parent role. */
export const DEFAULT_PARENT_ROLE = 'Parent';

/**
 * Roles of a district: `Parent`, the role sync gives new accounts (`policies.parentRole`),
 * the role of code-registered parents (`accessCodeRole`, default the file's
 * `accessCodes.defaultRole`) and the custom `roles` of the district file; each once
 * (case-insensitively), in that order.
 */
export function districtRoles(
  district: Pick<DistrictConfig, 'policies' | 'accessCodes' | 'roles'>,
  accessCodeRole: string = district.accessCodes.defaultRole,
): string[] {
  const out: string[] = [];
  for (const r of [
    DEFAULT_PARENT_ROLE,
    district.policies.parentRole,
    accessCodeRole,
    ...district.roles,
  ]) {
    const name = r.trim();
    if (name && !out.some(o => o.toLowerCase() === name.toLowerCase())) out.push(name);
  }
  return out;
}

/**
 * `districtRoles` with the effective access-code default role: a role set through
 * `codes settings --role` (stored, wins over the file — docs/access-codes.md) counts too.
 */
export async function effectiveDistrictRoles(
  store: RosterStore,
  district: DistrictConfig,
): Promise<string[]> {
  const override = await (await accessCodeRepository(store)).getSettingsOverride(district.id);
  return districtRoles(district, mergeSettings(district.accessCodes, override).defaultRole);
}
