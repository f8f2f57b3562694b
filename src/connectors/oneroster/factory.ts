/**
 * Factory of the generic `oneroster` connector kind (any vendor's OneRoster REST API).
 */
import type { Logger } from 'pino';
import type { OneRosterConnectorConfig } from '../../config/oneroster.js';
import { RestClient, type RestAuth, type RestClientTuning } from './client.js';
import { OneRosterConnector } from './index.js';

export interface OneRosterFactoryOptions {
  clientId: string;
  clientSecret: string;
  logger: Logger;
  /** District policy `includeRelatives`. */
  includeRelatives: boolean;
  client?: RestClientTuning | undefined;
  now?: (() => Date) | undefined;
}

/** Build the connector of a generic OneRoster REST connection (config validated by zod). */
export function createOneRosterConnector(
  cfg: OneRosterConnectorConfig,
  opts: OneRosterFactoryOptions,
): OneRosterConnector {
  const a = cfg.auth;
  const auth: RestAuth =
    a.type === 'oauth2'
      ? {
          type: 'oauth2-client-credentials',
          tokenUrl: a.tokenUrl,
          clientId: opts.clientId,
          clientSecret: opts.clientSecret,
          credentials: a.credentials,
          scope: a.scope,
        }
      : {
          type: 'oauth1',
          consumerKey: opts.clientId,
          consumerSecret: opts.clientSecret,
          signatureMethod: a.signatureMethod,
        };
  const client = new RestClient({
    baseUrl: cfg.baseUrl,
    auth,
    vendor: 'OneRoster',
    timeoutMs: cfg.timeoutMs,
    retries: cfg.retries,
    logger: opts.logger,
    maxRequestsPerSecond: cfg.maxRequestsPerSecond,
    ...opts.client,
  });
  return new OneRosterConnector(
    {
      kind: 'oneroster',
      vendor: 'OneRoster',
      pageSize: cfg.pageSize,
      enrollments: cfg.enrollments,
      deltas: cfg.deltas,
      guardianLinksComplete: cfg.guardianLinksComplete,
      mapping: {
        version: cfg.version,
        sourcedIds: 'native',
        studentUniqueId: cfg.studentUniqueId,
        includeRelatives: opts.includeRelatives,
      },
    },
    client,
    opts.logger,
    opts.now,
  );
}
