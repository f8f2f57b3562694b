/**
 * Aeries through its OneRoster 1.1 REST endpoint (`api: "oneroster"`, sis-reference §4.1,
 * §4.3): builds a OneRoster-core connector with Aeries' presets — token at `{baseUrl}/token`
 * (OAuth2 client credentials, form fields, a scope is required), data under
 * `{baseUrl}/ims/oneroster/v1p1`, native sourcedIds. The Aeries certificate is not used.
 */
import type { Logger } from 'pino';
import type { AeriesConnectorConfig } from '../../config/aeries.js';
import { OneRosterConnectorConfig } from '../../config/oneroster.js';
import { ConfigError } from '../../errors.js';
import type { RestClientTuning } from '../oneroster/client.js';
import { createOneRosterConnector } from '../oneroster/factory.js';
import type { SisConnector } from '../types.js';

/**
 * The OneRoster connector for an Aeries district with `api: "oneroster"`. `secret` resolves
 * a variable name (throws `ConfigError` naming it when unset). Throws `ConfigError` when the
 * `oneroster` settings are missing.
 */
export function createAeriesOneRosterConnector(
  cfg: AeriesConnectorConfig,
  secret: (name: string) => string,
  opts: {
    logger: Logger;
    includeRelatives: boolean;
    client?: RestClientTuning | undefined;
    now?: (() => Date) | undefined;
  },
): SisConnector {
  const o = cfg.oneroster;
  if (!o) throw new ConfigError('Aeries api "oneroster" needs the "oneroster" settings');
  const root = cfg.baseUrl.replace(/\/+$/, '');
  const or = OneRosterConnectorConfig.parse({
    kind: 'oneroster',
    version: '1.1',
    baseUrl: o.oneRosterUrl ?? `${root}/ims/oneroster/v1p1`,
    auth: {
      type: 'oauth2',
      tokenUrl: o.tokenUrl ?? `${root}/token`,
      clientIdEnv: o.clientIdEnv,
      clientSecretEnv: o.clientSecretEnv,
      credentials: o.credentials,
      scope: o.scope,
    },
    guardianLinksComplete: o.guardianLinksComplete,
    pageSize: cfg.pageSize,
    timeoutMs: cfg.timeoutMs,
    retries: cfg.retries,
  });
  return createOneRosterConnector(or, {
    clientId: secret(o.clientIdEnv),
    clientSecret: secret(o.clientSecretEnv),
    logger: opts.logger,
    includeRelatives: opts.includeRelatives,
    client: opts.client,
    now: opts.now,
  });
}
