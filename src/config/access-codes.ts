/**
 * Parent Access Code settings of a district (`accessCodes` in a district file; issue 5).
 * Values stored through the API/CLI (`codes settings`) override these per field; see
 * docs/access-codes.md "Settings and precedence".
 */
import { z } from 'zod';

export const AccessCodeSettings = z.strictObject({
  /** Codes are issued, exported and redeemable only when true. Default false (opt in). */
  enabled: z.boolean().default(false),
  /** Platform role of a parent account created by registering with a code. */
  defaultRole: z.string().trim().min(1).default('Parent'),
  /**
   * `unlinked`: codes go only to active students without an active guardian link (default);
   * `all`: to every active student. Connectors without guardian links always mean `all`.
   */
  issueTo: z.enum(['unlinked', 'all']).default('unlinked'),
});
export type AccessCodeSettings = z.infer<typeof AccessCodeSettings>;

/** The defaults, as a parsed value. */
export const DEFAULT_ACCESS_CODE_SETTINGS: AccessCodeSettings = {
  enabled: false,
  defaultRole: 'Parent',
  issueTo: 'unlinked',
};
