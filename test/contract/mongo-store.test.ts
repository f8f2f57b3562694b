/**
 * The store contract on MongoDB.
 *
 * Server, in order of preference:
 * 1. `MONGO_URL` (e.g. the docker-compose service or CI's service container);
 * 2. a throwaway replica set from testcontainers — only when a Docker engine answers a
 *    quick `/_ping` on its socket (`DOCKER_HOST` or `/var/run/docker.sock`);
 * 3. otherwise the suite is skipped LOUDLY: a banner on stderr and one test that asserts the
 *    skip reason is a known one and re-verifies it (the socket really is missing / mute).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { request, type RequestOptions } from 'node:http';
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import { runStoreContract } from './store.contract.js';

const DEFAULT_SOCKET = '/var/run/docker.sock';

/** Where the Docker engine would answer: from DOCKER_HOST, else the default socket. */
function dockerEndpoint(): { socketPath: string } | { host: string; port: number } {
  const dh = process.env.DOCKER_HOST;
  if (dh?.startsWith('unix://')) return { socketPath: dh.slice('unix://'.length) };
  if (dh?.startsWith('tcp://')) {
    const u = new URL(dh.replace(/^tcp:/, 'http:'));
    return { host: u.hostname, port: Number(u.port || 2375) };
  }
  return { socketPath: DEFAULT_SOCKET };
}

/** GET /_ping on the engine within `timeoutMs`; true only for `200 OK`. */
function pingDocker(timeoutMs = 1500): Promise<boolean> {
  const endpoint = dockerEndpoint();
  if ('socketPath' in endpoint && !existsSync(endpoint.socketPath)) return Promise.resolve(false);
  return new Promise(resolve => {
    const options: RequestOptions = {
      ...endpoint,
      path: '/_ping',
      method: 'GET',
      timeout: timeoutMs,
    };
    const req = request(options, res => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'OK'));
    });
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

const SKIP_REASONS = ['no-docker-socket', 'docker-not-responding'] as const;
type SkipReason = (typeof SKIP_REASONS)[number];

type Mode =
  { kind: 'url'; url: string } | { kind: 'docker' } | { kind: 'skip'; reason: SkipReason };

async function decide(): Promise<Mode> {
  const url = process.env.MONGO_URL?.trim();
  if (url) return { kind: 'url', url };
  const endpoint = dockerEndpoint();
  if ('socketPath' in endpoint && !existsSync(endpoint.socketPath)) {
    return { kind: 'skip', reason: 'no-docker-socket' };
  }
  return (await pingDocker())
    ? { kind: 'docker' }
    : { kind: 'skip', reason: 'docker-not-responding' };
}

/** `url` with its database path replaced by `db` (works for multi-host and +srv URLs). */
function withDatabase(url: string, db: string): string {
  const q = url.indexOf('?');
  const head = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const schemeEnd = head.indexOf('://') + 3;
  const slash = head.indexOf('/', schemeEnd);
  const hosts = slash === -1 ? head : head.slice(0, slash);
  return `${hosts}/${db}${query}`;
}

const mode = await decide();

if (mode.kind === 'skip') {
  const banner = '*'.repeat(78);
  console.warn(
    `\n${banner}\n*** MongoDB store contract SKIPPED: no MONGO_URL and no Docker engine ***\n` +
      `*** reason: ${mode.reason} — set MONGO_URL=mongodb://… to run it\n${banner}\n`,
  );

  describe('RosterStore contract: mongodb', () => {
    it('is skipped only for a known, re-verified reason', async () => {
      expect(SKIP_REASONS).toContain(mode.reason);
      expect(process.env.MONGO_URL?.trim() ?? '').toBe('');
      const endpoint = dockerEndpoint();
      if (mode.reason === 'no-docker-socket') {
        expect('socketPath' in endpoint && existsSync(endpoint.socketPath)).toBe(false);
      } else {
        expect(await pingDocker()).toBe(false);
      }
    });
  });
} else {
  let baseUrl = mode.kind === 'url' ? mode.url : '';
  let stopContainer: (() => Promise<unknown>) | undefined;

  if (mode.kind === 'docker') {
    beforeAll(async () => {
      const { MongoDBContainer } = await import('@testcontainers/mongodb');
      const container = await new MongoDBContainer('mongo:7').start();
      stopContainer = () => container.stop();
      const cs = container.getConnectionString();
      baseUrl = `${cs}${cs.includes('?') ? '&' : '?'}directConnection=true`;
    }, 180_000);
    afterAll(async () => {
      await stopContainer?.();
    });
  }

  runStoreContract(
    'mongodb',
    async () => {
      const url = withDatabase(baseUrl, `gs_contract_${randomUUID().slice(0, 8)}`);
      const store = new MongoRosterStore(url, { serverSelectionTimeoutMS: 5000 });
      await store.init();
      return store;
    },
    async store => {
      if (store instanceof MongoRosterStore) await store.dropDatabase();
      await store.close();
    },
  );

  describe('MongoRosterStore specifics', () => {
    it('init is idempotent (indexes already in place)', async () => {
      const store = new MongoRosterStore(
        withDatabase(baseUrl, `gs_idx_${randomUUID().slice(0, 8)}`),
      );
      await store.init();
      await store.init();
      await store.ping();
      await store.dropDatabase();
      await store.close();
    });
  });
}
