/** API token configuration, token verification and role/district checks. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import { TokenVerifier, requireRole, tokenFromHeader, type Principal } from '../../src/api/auth.js';
import { ApiError } from '../../src/api/errors.js';
import { neutralizeCell } from '../../src/api/routes/runs.js';
import {
  ApiTokenList,
  generateToken,
  hashToken,
  loadApiTokens,
} from '../../src/config/api-tokens.js';
import { parseEnv } from '../../src/config/env.js';
import { ConfigError } from '../../src/errors.js';

const A = 'gst_admin-token-for-unit-tests-000000000000000000000';
const V = 'gst_viewer-token-for-unit-tests-00000000000000000000';

describe('API token configuration', () => {
  it('hashes tokens as lower-case hex SHA-256 and generates 256-bit tokens', () => {
    // SHA-256("abc") from FIPS 180-2, appendix B.1
    expect(hashToken('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    const t = generateToken();
    expect(t).toMatch(/^gst_[A-Za-z0-9_-]{43}$/);
    expect(generateToken()).not.toBe(t);
  });

  it('reports bad API_TOKENS entries together with every other bad variable', () => {
    const tokens = JSON.stringify([
      { name: 'ops', sha256: hashToken(A), role: 'root' },
      { name: 'ops', sha256: 'abc', role: 'viewer', extra: 1 },
    ]);
    let err: unknown;
    try {
      parseEnv({ API_TOKENS: tokens, API_PORT: 'eighty', REDIS_URL: 'http://x' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    expect(problems).toMatch(/^API_TOKENS\.0\.role: /m);
    expect(problems).toMatch(/^API_TOKENS\.1\.sha256: /m);
    expect(problems).toMatch(/^API_TOKENS\.1: .*extra/m);
    expect(problems).toMatch(/^API_PORT: /m);
    expect(problems).toMatch(/^REDIS_URL: /m);
  });

  it('rejects API_TOKENS that is not JSON, and duplicate names or hashes', () => {
    expect(() => parseEnv({ API_TOKENS: '[{' })).toThrow(/API_TOKENS: not valid JSON/);
    const dup = ApiTokenList.safeParse([
      { name: 'a', sha256: hashToken(A), role: 'admin' },
      { name: 'a', sha256: hashToken(A), role: 'viewer' },
    ]);
    expect(dup.success).toBe(false);
    expect(dup.error?.issues.map(i => i.message).sort()).toEqual([
      'duplicate name "a"',
      'duplicate token hash',
    ]);
  });

  it('loads the token file, naming the file and entry of each problem', () => {
    const dir = mkdtempSync(join(tmpdir(), 'gsync-tokens-'));
    try {
      const path = join(dir, 'api-tokens.json');
      expect(() => loadApiTokens(undefined, path)).toThrow(/no API tokens configured/);
      writeFileSync(path, JSON.stringify([{ name: 'x', sha256: 'nope', role: 'viewer' }]));
      expect(() => loadApiTokens(undefined, path)).toThrow(
        new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: 0\\.sha256: `),
      );
      writeFileSync(path, JSON.stringify([{ name: 'x', sha256: hashToken(V), role: 'viewer' }]));
      expect(loadApiTokens(undefined, path)).toEqual([
        { name: 'x', sha256: hashToken(V), role: 'viewer' },
      ]);
      const fromEnv = [{ name: 'env', sha256: hashToken(A), role: 'admin' as const }];
      expect(loadApiTokens(fromEnv, path)).toBe(fromEnv);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('token verification', () => {
  const verifier = new TokenVerifier([
    { name: 'ops', sha256: hashToken(A), role: 'admin' },
    { name: 'springfield', sha256: hashToken(V), role: 'viewer', districts: ['springfield'] },
  ]);

  it('finds the principal of a configured token and nothing for others', () => {
    expect(verifier.verify(A)).toEqual({ name: 'ops', role: 'admin', districts: undefined });
    expect(verifier.verify(V)).toEqual({
      name: 'springfield',
      role: 'viewer',
      districts: ['springfield'],
    });
    expect(verifier.verify(`${A}x`)).toBeUndefined();
    expect(verifier.verify(hashToken(A))).toBeUndefined(); // the hash is not the token
    expect(verifier.verify('')).toBeUndefined();
    expect(verifier.unknownDistricts(['shelbyville'])).toEqual(['springfield']);
  });

  it('reads Bearer tokens and Basic passwords', () => {
    expect(tokenFromHeader(`Bearer ${A}`)).toBe(A);
    expect(tokenFromHeader(`bearer  ${A} `)).toBe(A);
    const basic = (s: string) => `Basic ${Buffer.from(s).toString('base64')}`;
    expect(tokenFromHeader(basic(`:${A}`))).toBe(A);
    expect(tokenFromHeader(basic(`anyone:${A}`))).toBe(A);
    expect(tokenFromHeader(basic('anyone:'))).toBeUndefined();
    expect(tokenFromHeader(basic('no-colon'))).toBeUndefined();
    expect(tokenFromHeader(`Token ${A}`)).toBeUndefined();
    expect(tokenFromHeader(undefined)).toBeUndefined();
  });
});

describe('requireRole', () => {
  const req = (principal: Principal | null) => ({ principal }) as FastifyRequest;
  const status = (fn: () => unknown) => {
    try {
      fn();
      return 200;
    } catch (e) {
      if (e instanceof ApiError) return `${e.statusCode} ${e.code}`;
      throw e;
    }
  };
  const admin: Principal = { name: 'a', role: 'admin' };
  const viewer: Principal = { name: 'v', role: 'viewer' };
  const scoped: Principal = { name: 's', role: 'admin', districts: ['springfield'] };

  it('checks role, district scope and all-district routes', () => {
    expect(status(() => requireRole(req(null), 'viewer'))).toBe('401 unauthorized');
    expect(status(() => requireRole(req(viewer), 'viewer', 'x'))).toBe(200);
    expect(status(() => requireRole(req(viewer), 'admin', 'x'))).toBe('403 forbidden');
    expect(status(() => requireRole(req(admin), 'admin', 'x'))).toBe(200);
    expect(status(() => requireRole(req(scoped), 'admin', 'springfield'))).toBe(200);
    expect(status(() => requireRole(req(scoped), 'viewer', 'shelbyville'))).toBe('403 forbidden');
    expect(status(() => requireRole(req(scoped), 'viewer', { allDistricts: true }))).toBe(
      '403 forbidden',
    );
    expect(status(() => requireRole(req(admin), 'admin', { allDistricts: true }))).toBe(200);
  });
});

describe('CSV cells', () => {
  it('neutralises formula-looking cells only', () => {
    expect(neutralizeCell('=1+1')).toBe("'=1+1");
    expect(neutralizeCell('+49 30 1234')).toBe("'+49 30 1234");
    expect(neutralizeCell('-5')).toBe("'-5");
    expect(neutralizeCell('@SUM(A1)')).toBe("'@SUM(A1)");
    expect(neutralizeCell('\tx')).toBe("'\tx");
    expect(neutralizeCell('00123')).toBe('00123');
    expect(neutralizeCell('a=b')).toBe('a=b');
  });
});
