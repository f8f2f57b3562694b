/**
 * Infinite Campus preset of the OneRoster core (sis-reference §3):
 *
 * - token URL and base URL are configured separately (IC shows both on the connection's
 *   "Information to Share" screen, §3.2); 1.2 uses OAuth2 client credentials with the client
 *   id/secret as form fields (§3.3), 1.1 OAuth 1.0a signing or OAuth2;
 * - 1.2 ids are GUIDs with the 1.1-era person id in `metadata` (§3.5); `sourcedIds: legacy`
 *   keeps person ids stable across a 1.1 → 1.2 move;
 * - guardians appear only with portal access (§3.4), so by default the connector reports
 *   `guardianLinksComplete: false`: a guardian the feed stops listing is never a reason to
 *   remove a link or an account, and students without guardians get a configuration hint.
 */
import type { Logger } from 'pino';
import type { InfiniteCampusConnectorConfig } from '../../config/oneroster.js';
import { RestClient, type RestAuth, type RestClientTuning } from '../oneroster/client.js';
import { OneRosterConnector } from '../oneroster/index.js';

/** Secrets and code-level options for `createInfiniteCampusConnector`. */
export interface InfiniteCampusOptions {
  clientId: string;
  clientSecret: string;
  logger: Logger;
  /** District policy `includeRelatives` (IC `relative` users). */
  includeRelatives: boolean;
  /** Test/benchmark timing knobs of the HTTP client. */
  client?: RestClientTuning | undefined;
  now?: (() => Date) | undefined;
}

/** The OAuth flavour a config resolves to (see `InfiniteCampusConnectorConfig.oauth`). */
export function infiniteCampusOAuth(cfg: InfiniteCampusConnectorConfig): 'oauth2' | 'oauth1' {
  return cfg.oauth ?? (cfg.version === '1.2' || cfg.tokenUrl ? 'oauth2' : 'oauth1');
}

/**
 * Build the connector of an Infinite Campus OneRoster connection. Throws nothing itself
 * (the config is validated by zod; `tokenUrl` is present whenever OAuth2 is used).
 */
export function createInfiniteCampusConnector(
  cfg: InfiniteCampusConnectorConfig,
  opts: InfiniteCampusOptions,
): OneRosterConnector {
  const oauth = infiniteCampusOAuth(cfg);
  const auth: RestAuth =
    oauth === 'oauth2'
      ? {
          type: 'oauth2-client-credentials',
          tokenUrl: cfg.tokenUrl ?? '',
          clientId: opts.clientId,
          clientSecret: opts.clientSecret,
          credentials: cfg.credentials,
          scope: cfg.scope,
        }
      : {
          type: 'oauth1',
          consumerKey: opts.clientId,
          consumerSecret: opts.clientSecret,
          signatureMethod: cfg.signatureMethod,
        };
  const client = new RestClient({
    baseUrl: cfg.baseUrl,
    auth,
    vendor: 'Infinite Campus',
    timeoutMs: cfg.timeoutMs,
    retries: cfg.retries,
    logger: opts.logger,
    maxRequestsPerSecond: cfg.maxRequestsPerSecond,
    ...opts.client,
  });
  return new OneRosterConnector(
    {
      kind: 'infinite-campus',
      vendor: 'Infinite Campus',
      pageSize: cfg.pageSize,
      enrollments: cfg.enrollments,
      deltas: cfg.deltas,
      guardianLinksComplete: cfg.guardianLinksComplete,
      mapping: {
        version: cfg.version,
        sourcedIds: cfg.sourcedIds,
        studentUniqueId: cfg.studentUniqueId,
        includeRelatives: opts.includeRelatives,
      },
    },
    client,
    opts.logger,
    opts.now,
  );
}
