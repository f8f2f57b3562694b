/**
 * CLI commands of the admin/status API: `guardian-sync api` (serve until SIGTERM/SIGINT) and
 * `guardian-sync api-token create|hash` (make tokens and the hashes the configuration holds).
 */
import type { Command } from 'commander';
import { createApp } from '../app.js';
import {
  ApiRole,
  generateToken,
  hashToken,
  loadApiTokens,
  type ApiTokenEntry,
} from '../config/api-tokens.js';
import { parseEnv } from '../config/env.js';
import { watchDistrictFiles } from '../config/reload.js';
import { ConfigError, describeError } from '../errors.js';
import { buildApiServer } from '../api/server.js';
import { createLogger } from '../logger.js';

/** In-flight requests get this long to finish on shutdown (ms). */
const SHUTDOWN_TIMEOUT_MS = 30000;

/**
 * Start the API: validate env and tokens (`ConfigError` before anything connects), build the
 * context and the server, listen on `API_HOST:API_PORT`. SIGTERM/SIGINT stop accepting,
 * wait for in-flight requests (up to 30 s), close queues, Redis and the store, exit 0.
 */
export async function runApi(overrides: { port?: number; host?: string } = {}): Promise<void> {
  const env = parseEnv();
  const tokens = loadApiTokens(env.API_TOKENS, env.API_TOKENS_FILE);
  const logger = createLogger(env.LOG_LEVEL, { format: env.LOG_FORMAT });
  const ctx = await createApp({ env, logger });
  const app = await buildApiServer(ctx, {
    tokens,
    bodyLimit: env.API_BODY_LIMIT,
    session: {
      secret: env.CONSOLE_SESSION_SECRET,
      hours: env.CONSOLE_SESSION_HOURS,
      secureCookie: env.CONSOLE_SECURE_COOKIE,
    },
  });
  const watcher = watchDistrictFiles(ctx); // districts added or changed: served without a restart
  const address = await app.listen({
    host: overrides.host ?? env.API_HOST,
    port: overrides.port ?? env.API_PORT,
  });
  logger.info(
    { address, districts: [...ctx.districts.keys()], tokens: tokens.length },
    'API listening',
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'API shutting down');
    const force = setTimeout(() => {
      logger.warn('in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS).unref();
    void (async () => {
      watcher.close();
      try {
        await app.close();
      } catch (err) {
        logger.warn({ err: describeError(err) }, 'closing the server failed');
      }
      await ctx.close();
      clearTimeout(force);
      process.exit(0);
    })();
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').trim();
}

/** Add `api` and `api-token` to the program. */
export function registerApiCommands(program: Command): void {
  program
    .command('api')
    .description('serve the admin/status HTTP API (and queue dashboard) until SIGTERM/SIGINT')
    .option('--port <n>', 'port (default API_PORT, 8080)', v => Number(v))
    .option('--host <addr>', 'address (default API_HOST, 127.0.0.1)')
    .action(async (opts: { port?: number; host?: string }) => {
      await runApi(opts);
    });

  const token = program.command('api-token').description('make API tokens and their hashes');
  token
    .command('create')
    .description('print a new random token and the entry to add to API_TOKENS or the tokens file')
    .requiredOption('--name <name>', 'who holds the token')
    .option('--role <role>', 'admin or viewer', 'viewer')
    .option('--district <id...>', 'limit the token to these districts')
    .action((opts: { name: string; role: string; district?: string[] }) => {
      const role = ApiRole.safeParse(opts.role);
      if (!role.success)
        throw new ConfigError(`--role must be admin or viewer, not "${opts.role}"`, [], 'tokens');
      const t = generateToken();
      const entry: ApiTokenEntry = { name: opts.name, sha256: hashToken(t), role: role.data };
      if (opts.district?.length) entry.districts = opts.district;
      console.log(`token (shown once; give it to ${opts.name}):\n  ${t}`);
      console.log(`entry for API_TOKENS / config/api-tokens.json:\n  ${JSON.stringify(entry)}`);
    });
  token
    .command('hash [token]')
    .description('print the SHA-256 of a token (read from stdin when not given)')
    .action(async (given?: string) => {
      const t = given ?? (await readStdin());
      if (!t) throw new ConfigError('no token given (argument or stdin)', [], 'tokens');
      console.log(hashToken(t));
    });
}
