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
    expect(explainError(new TypeError('x is undefined'))).toBe(
      'unexpected error: x is undefined (details in the worker log)',
    );
    expect(explainError('boom')).toBe('boom');
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
