/**
 * Admin-grade failure messages (issue 19): what, where, how to fix; no class names.
 */
import { UnrecoverableError } from 'bullmq';
import { toApiError } from '../../src/api/errors.js';
import {
  ConfigError,
  explainError,
  IncompleteSnapshotError,
  RunStateError,
  SisHttpError,
  SisPayloadError,
  SisRateLimitError,
  notJsonMessage,
} from '../../src/errors.js';

const CLASS_NAMES = /[A-Z][a-z]+Error\b/;

describe('explainError', () => {
  it('unwraps the queue wrapper and explains a payload error with what to do', () => {
    const wrapped = new UnrecoverableError('SisPayloadError: x');
    wrapped.cause = new SisPayloadError('/drop/pkg: roles.csv line 2: the row has 12 cells');
    const text = explainError(wrapped);
    expect(text).toMatch(/^the SIS data could not be read: \/drop\/pkg: roles\.csv line 2/);
    expect(text).toMatch(/Nothing was deactivated; Correct the export/);
    expect(text).not.toMatch(CLASS_NAMES);
  });

  it('uses the message of a wrapper that lost its cause, without class-name prefixes', () => {
    const text = explainError(new UnrecoverableError('SisPayloadError: users.csv line 4: bad'));
    expect(text).toBe('users.csv line 4: bad');
  });

  it('gives a hint per kind', () => {
    expect(
      explainError(new SisHttpError('GET', '/ims/oneroster/users', 401, 'unauthorized')),
    ).toMatch(/GET \/ims\/oneroster\/users failed with HTTP 401.*credentials/);
    expect(explainError(new SisRateLimitError('GET', '/users', 7200_000, 0))).toMatch(
      /^the SIS request failed: GET \/users failed with HTTP 429: rate limited; the SIS asks to wait 7200 s\. The SIS is limiting requests/,
    );
    expect(explainError(new SisHttpError('GET', '/users', 503, 'unavailable'))).toMatch(
      /next run tries again/,
    );
    expect(explainError(new ConfigError('district d1: bad key'))).toMatch(
      /^configuration problem: district d1: bad key\. Fix/,
    );
    expect(explainError(new IncompleteSnapshotError('12 of 20 students'))).toMatch(
      /incomplete roster: 12 of 20 students\. Nothing was deactivated/,
    );
    expect(explainError(new RunStateError('run r1 is succeeded'))).toBe('run r1 is succeeded');
    expect(explainError(new TypeError('x is undefined'), { context: 'run' })).toBe(
      'unexpected error: x is undefined (details in the worker log)',
    );
    expect(explainError(new TypeError('x is undefined'))).toBe(
      'unexpected error: x is undefined (LOG_LEVEL=debug shows details)',
    );
    expect(explainError('boom')).toBe('boom');
  });

  it('fits the advice after a configuration problem to what is wrong and where (trial finding 4)', () => {
    // a run failed on its district file: fix it, start the sync again
    expect(explainError(new ConfigError('district d1: bad key'), { context: 'run' })).toMatch(
      /Fix the district file .*then start the sync again\.$/,
    );
    // the same in a command: run the command again (no sync is involved)
    expect(explainError(new ConfigError('district d1: bad key'))).toMatch(
      /then run the command again\.$/,
    );
    const env = explainError(new ConfigError('invalid environment', ['X: bad'], 'environment'));
    expect(env).toMatch(/Fix the environment variable\(s\) named above .*run the command again\.$/);
    expect(explainError(new ConfigError('no SQLite store at x', [], 'store'))).toMatch(
      /Check STORE_URL .*run the command again\.$/,
    );
    expect(explainError(new ConfigError('Redis maxmemory-policy is "lru"', [], 'redis'))).toMatch(
      /Fix REDIS_URL or the Redis server/,
    );
    expect(explainError(new ConfigError('port 18701 is in use', [], 'sandbox'))).toMatch(
      /then start the sandbox again\.$/,
    );
    for (const area of ['environment', 'store', 'redis', 'sandbox', 'tokens'] as const)
      expect(explainError(new ConfigError('x', [], area), { context: 'run' })).not.toMatch(
        /start the sync again/,
      );
  });

  it('explains a non-JSON answer of an API SIS as a wrong URL, a bad file as a bad export (finding 5)', () => {
    const api = explainError(
      new SisPayloadError(
        notJsonMessage(
          'GET',
          '/ws/v1/district/school',
          200,
          'text/html',
          '<!doctype html><title>Sign in',
        ),
      ),
      { context: 'run' },
    );
    expect(api).toMatch(/HTTP 200 body is not JSON \(content-type text\/html, an HTML page\)/);
    expect(api).toMatch(/login page, a portal or a proxy/);
    expect(api).toMatch(/check connector\.baseUrl/);
    expect(api).not.toMatch(/Correct the export/);
    const file = explainError(new SisPayloadError('/drop/REG.csv line 4: 3 cells'), {
      context: 'run',
    });
    expect(file).toMatch(/Correct the export/);
    expect(file).not.toMatch(/baseUrl/);
  });

  it('the API answers a run-state conflict with 409 and the message', () => {
    const e = toApiError(new RunStateError('run r1 is superseded by r2'));
    expect([e.statusCode, e.code, e.message]).toEqual([
      409,
      'conflict',
      'run r1 is superseded by r2',
    ]);
  });
});
