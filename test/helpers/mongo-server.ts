/**
 * Where MongoDB contract suites get a server, shared by every `*-mongo` suite that uses it.
 *
 * In order of preference:
 * 1. `MONGO_URL` (e.g. the docker-compose service or CI's service container; it must be a
 *    replica set: the store refuses standalone servers);
 * 2. a throwaway single-node replica set from testcontainers — only when a Docker engine
 *    answers a quick `/_ping` on its socket (`DOCKER_HOST` or `/var/run/docker.sock`);
 * 3. otherwise the suite is skipped LOUDLY: `describeMongo` prints one line on stderr and
 *    registers one test that asserts the skip reason is a known one and re-verifies it (the
 *    socket really is missing / mute).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { request, type RequestOptions } from 'node:http';
import { MongoRosterStore } from '../../src/models/mongo/store.js';
import type { StoreContract } from './store-contract.js';

const DEFAULT_SOCKET = '/var/run/docker.sock';

/** Where the Docker engine would answer: from DOCKER_HOST, else the default socket. */
export function dockerEndpoint(): { socketPath: string } | { host: string; port: number } {
  const dh = process.env.DOCKER_HOST;
  if (dh?.startsWith('unix://')) return { socketPath: dh.slice('unix://'.length) };
  if (dh?.startsWith('tcp://')) {
    const u = new URL(dh.replace(/^tcp:/, 'http:'));
    return { host: u.hostname, port: Number(u.port || 2375) };
  }
  return { socketPath: DEFAULT_SOCKET };
}

/** GET /_ping on the engine within `timeoutMs`; true only for `200 OK`. */
export function pingDocker(timeoutMs = 1500): Promise<boolean> {
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

export const MONGO_SKIP_REASONS = ['no-docker-socket', 'docker-not-responding'] as const;
export type MongoSkipReason = (typeof MONGO_SKIP_REASONS)[number];

export type MongoMode =
  { kind: 'url'; url: string } | { kind: 'docker' } | { kind: 'skip'; reason: MongoSkipReason };

/** Pick the server source (see the header). */
export async function decideMongo(): Promise<MongoMode> {
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
export function withDatabase(url: string, db: string): string {
  const q = url.indexOf('?');
  const head = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  const schemeEnd = head.indexOf('://') + 3;
  const slash = head.indexOf('/', schemeEnd);
  const hosts = slash === -1 ? head : head.slice(0, slash);
  return `${hosts}/${db}${query}`;
}

/** The server of a suite: `url(prefix)` gives a fresh database URL on it (after `beforeAll`). */
export interface MongoServer {
  url(dbPrefix: string): string;
}

/**
 * The notice of a skipped MongoDB suite: ONE plain line on stderr, `SKIPPED <title>: <why>;
 * set MONGO_URL=… to run it` (jest's console.warn would add a stack and a code frame).
 */
export function mongoSkipNotice(title: string, why: string): void {
  process.stderr.write(
    `SKIPPED ${title}: ${why}; set MONGO_URL=mongodb://… (a replica set) to run it\n`,
  );
}

/**
 * Register a MongoDB suite. When there is a server, `register(server)` is called inside
 * `describe(title)` (a testcontainers replica set is started in `beforeAll` and stopped in
 * `afterAll`); when there is none, the skip line is printed and the skip test registered.
 */
export function describeMongo(
  title: string,
  mode: MongoMode,
  register: (server: MongoServer) => void,
): void {
  if (mode.kind === 'skip') {
    mongoSkipNotice(title, `no MONGO_URL and no Docker engine (${mode.reason})`);
    describe(title, () => {
      it('is skipped only for a known, re-verified reason', async () => {
        expect(MONGO_SKIP_REASONS).toContain(mode.reason);
        expect(process.env.MONGO_URL?.trim() ?? '').toBe('');
        const endpoint = dockerEndpoint();
        if (mode.reason === 'no-docker-socket') {
          expect('socketPath' in endpoint && existsSync(endpoint.socketPath)).toBe(false);
        } else {
          expect(await pingDocker()).toBe(false);
        }
      });
    });
    return;
  }
  describe(title, () => {
    let baseUrl = mode.kind === 'url' ? mode.url : '';
    let stopContainer: (() => Promise<unknown>) | undefined;
    if (mode.kind === 'docker') {
      beforeAll(async () => {
        const { MongoDBContainer } = await import('@testcontainers/mongodb');
        // MongoDBContainer starts a single-node replica set (transactions work).
        const container = await new MongoDBContainer('mongo:7').start();
        stopContainer = () => container.stop();
        const cs = container.getConnectionString();
        baseUrl = `${cs}${cs.includes('?') ? '&' : '?'}directConnection=true`;
      }, 180_000);
      afterAll(async () => {
        await stopContainer?.();
      });
    }
    register({
      url: prefix => withDatabase(baseUrl, `${prefix}_${randomUUID().slice(0, 8)}`),
    });
  });
}

/**
 * Run a store contract suite (`(name, open, close)`, e.g. `runChangeLogContract`) as
 * `mongodb` on `server`: each store gets a fresh database named from `dbPrefix`, dropped
 * after.
 */
export function onMongoStore(contract: StoreContract, server: MongoServer, dbPrefix: string): void {
  contract(
    'mongodb',
    async () => {
      const store = new MongoRosterStore(server.url(dbPrefix), { serverSelectionTimeoutMS: 5000 });
      await store.init();
      return store;
    },
    async store => {
      if (store instanceof MongoRosterStore) await store.dropDatabase();
      await store.close();
    },
  );
}
