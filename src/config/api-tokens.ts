/**
 * API token configuration: a list of `{name, sha256, role, districts?}` entries, from the
 * `API_TOKENS` environment variable (JSON) or a file (`API_TOKENS_FILE`, default
 * `config/api-tokens.json`). Only SHA-256 hashes of tokens are configured, never tokens.
 * Tokens are random 256-bit strings (`guardian-sync api-token create`), so a plain SHA-256
 * is enough: there is nothing to brute-force as there would be with a password.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { formatIssues } from './district.js';

/** `admin` may trigger, approve, discard, reset and import; `viewer` reads only. */
export const ApiRole = z.enum(['admin', 'viewer']);
export type ApiRole = z.infer<typeof ApiRole>;

export const ApiTokenEntry = z.strictObject({
  /** Who holds the token (shown in logs instead of the token). */
  name: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/, 'letters, digits, . _ @ - only (at most 64)'),
  /** Lower-case hex SHA-256 of the token (`guardian-sync api-token hash`). */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'must be the 64-character lower-case hex SHA-256 of the token'),
  role: ApiRole,
  /** District ids this token may see; absent means every district. */
  districts: z
    .array(z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a district id'))
    .min(1)
    .optional(),
});
export type ApiTokenEntry = z.infer<typeof ApiTokenEntry>;

/** A list of entries with unique names and unique hashes. */
export const ApiTokenList = z.array(ApiTokenEntry).superRefine((list, c) => {
  const names = new Set<string>();
  const hashes = new Set<string>();
  list.forEach((t, i) => {
    if (names.has(t.name))
      c.addIssue({ code: 'custom', path: [i, 'name'], message: `duplicate name "${t.name}"` });
    if (hashes.has(t.sha256))
      c.addIssue({ code: 'custom', path: [i, 'sha256'], message: 'duplicate token hash' });
    names.add(t.name);
    hashes.add(t.sha256);
  });
});
export type ApiTokenList = z.infer<typeof ApiTokenList>;

/**
 * zod schema for a JSON string holding an `ApiTokenList` (the `API_TOKENS` variable); invalid
 * JSON and invalid entries are reported as issues, so `parseEnv` lists them with the rest.
 */
export const ApiTokensJson = z
  .string()
  .transform((s, c) => {
    try {
      return JSON.parse(s) as unknown;
    } catch {
      c.addIssue({ code: 'custom', message: 'not valid JSON' });
      return z.NEVER;
    }
  })
  .pipe(ApiTokenList);

/** Lower-case hex SHA-256 of a token (what the configuration holds). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A new random token: `gst_` + 43 base64url characters (256 bits from the system CSPRNG). */
export function generateToken(): string {
  return `gst_${randomBytes(32).toString('base64url')}`;
}

/**
 * The configured tokens: `fromEnv` (already validated `API_TOKENS`) when set, else the file
 * `path`. Throws `ConfigError` naming the file and each bad entry, or saying how to create
 * tokens when none is configured.
 */
export function loadApiTokens(fromEnv: ApiTokenList | undefined, path: string): ApiTokenList {
  if (fromEnv) return fromEnv;
  if (!existsSync(path))
    throw new ConfigError(
      `no API tokens configured: set API_TOKENS or create ${path} (see "guardian-sync api-token create")`,
      [],
      'tokens',
    );
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${path}: not valid JSON: ${(err as Error).message}`, [], 'tokens');
  }
  const r = ApiTokenList.safeParse(raw);
  if (!r.success)
    throw new ConfigError('invalid API token file', formatIssues(path, r.error), 'tokens');
  if (r.data.length === 0) throw new ConfigError(`${path}: no tokens listed`, [], 'tokens');
  return r.data;
}
