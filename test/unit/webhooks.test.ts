/**
 * Pure parts of the change feed and webhooks: signatures, retry delays, cursors, the
 * district-file `webhooks` block, the start-up secret check and the retention variable.
 */
import { createHmac } from 'node:crypto';
import { DistrictConfig, type DistrictConfig as District } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import { ConfigError } from '../../src/errors.js';
import {
  ChangeCursorError,
  cursorSeqFor,
  decodeChangeCursor,
  encodeChangeCursor,
} from '../../src/jobs/change-feed.js';
import {
  checkWebhookSecrets,
  signWebhook,
  urlHost,
  verifyWebhookSignature,
  webhookRetryDelay,
} from '../../src/jobs/webhooks.js';

const SECRET = 'whsec_unit_0123456789abcdef';
const BODY = '{"districtId":"d","entries":[{"seq":1}]}';
const NOW = 1_760_000_000;

describe('webhook signatures', () => {
  it('signs t.<body> with HMAC-SHA256 and verifies it', () => {
    const header = signWebhook(SECRET, BODY, NOW);
    const hex = createHmac('sha256', SECRET).update(`${NOW}.${BODY}`).digest('hex');
    expect(header).toBe(`t=${NOW},v1=${hex}`);
    expect(verifyWebhookSignature(SECRET, header, BODY, 300, NOW)).toBe(true);
    expect(verifyWebhookSignature(SECRET, header, Buffer.from(BODY), 300, NOW + 300)).toBe(true);
  });

  it('refuses another secret, another body, an old or future time, and junk', () => {
    const header = signWebhook(SECRET, BODY, NOW);
    expect(verifyWebhookSignature('another-secret-0123456', header, BODY, 300, NOW)).toBe(false);
    expect(verifyWebhookSignature(SECRET, header, `${BODY} `, 300, NOW)).toBe(false);
    expect(verifyWebhookSignature(SECRET, header, BODY, 300, NOW + 301)).toBe(false);
    expect(verifyWebhookSignature(SECRET, header, BODY, 300, NOW - 301)).toBe(false);
    // The timestamp is signed: moving it breaks the signature.
    const moved = header.replace(`t=${NOW}`, `t=${NOW + 1}`);
    expect(verifyWebhookSignature(SECRET, moved, BODY, 300, NOW)).toBe(false);
    for (const junk of [undefined, null, '', 'v1=abc', `t=${NOW}`, `t=x,v1=${'0'.repeat(64)}`])
      expect(verifyWebhookSignature(SECRET, junk, BODY, 300, NOW)).toBe(false);
  });

  it('accepts a header with several v1 values when one matches (secret rotation)', () => {
    const good = signWebhook(SECRET, BODY, NOW).split(',')[1] ?? '';
    const other = signWebhook('old-secret-0123456789ab', BODY, NOW).split(',')[1] ?? '';
    expect(verifyWebhookSignature(SECRET, `t=${NOW},${other},${good}`, BODY, 300, NOW)).toBe(true);
  });
});

describe('webhook retry delay', () => {
  it('doubles from the base, honours a longer Retry-After, and never exceeds the cap', () => {
    expect([1, 2, 3, 4].map(n => webhookRetryDelay(n, 5000, 600_000))).toEqual([
      5000, 10000, 20000, 40000,
    ]);
    expect(webhookRetryDelay(12, 5000, 600_000)).toBe(600_000);
    expect(webhookRetryDelay(1, 5000, 600_000, 120_000)).toBe(120_000);
    expect(webhookRetryDelay(1, 5000, 600_000, 1000)).toBe(5000);
    expect(webhookRetryDelay(1, 5000, 600_000, 86_400_000)).toBe(600_000);
  });
});

describe('change-feed cursors', () => {
  it('round-trips district and seq, and is opaque-looking but stable', () => {
    const c = encodeChangeCursor('springfield-usd', 1234);
    expect(c).toMatch(/^v1\.springfield-usd\.1234\.[A-Za-z0-9_-]{8}$/);
    expect(encodeChangeCursor('springfield-usd', 1234)).toBe(c);
    expect(decodeChangeCursor(c)).toEqual({ districtId: 'springfield-usd', seq: 1234 });
    expect(cursorSeqFor('springfield-usd', c)).toBe(1234);
    expect(cursorSeqFor('springfield-usd', undefined)).toBe(0);
  });

  it('detects edits and names the district of a foreign cursor', () => {
    const c = encodeChangeCursor('springfield-usd', 1234);
    expect(() => decodeChangeCursor(c.replace('.1234.', '.1235.'))).toThrow(/altered/);
    expect(() => decodeChangeCursor(c.replace('springfield', 'shelbyville'))).toThrow(/altered/);
    expect(() => decodeChangeCursor(`${c}x`)).toThrow(/not a change-feed cursor/);
    expect(() => decodeChangeCursor('v1.d.01.AAAAAAAA')).toThrow(ChangeCursorError);
    try {
      cursorSeqFor('shelbyville', c);
      throw new Error('no error');
    } catch (err) {
      expect(err).toBeInstanceOf(ChangeCursorError);
      expect((err as ChangeCursorError).cursorDistrictId).toBe('springfield-usd');
      expect((err as Error).message).toBe(
        'the cursor belongs to district springfield-usd, not shelbyville',
      );
    }
    expect(() => encodeChangeCursor('d', -1)).toThrow(RangeError);
  });
});

describe('district file: webhooks', () => {
  const district = (webhooks: unknown) => ({
    id: 'd',
    name: 'D',
    connector: {
      kind: 'powerschool',
      baseUrl: 'https://ps.example.org',
      clientIdEnv: 'PS_ID',
      clientSecretEnv: 'PS_SECRET',
    },
    webhooks,
  });

  it('fills defaults', () => {
    const d = DistrictConfig.parse(
      district({ url: 'https://hooks.example.org/gs', secretEnv: 'GS_HOOK_SECRET' }),
    );
    expect(d.webhooks).toEqual({
      url: 'https://hooks.example.org/gs',
      secretEnv: 'GS_HOOK_SECRET',
      timeoutMs: 10000,
      batchSize: 100,
    });
    expect(DistrictConfig.parse(district(undefined)).webhooks).toBeUndefined();
  });

  it.each([
    [{ url: 'http://hooks.example.org/gs', secretEnv: 'S' }, /must be https/],
    [{ url: 'https://user:pw@hooks.example.org/gs', secretEnv: 'S' }, /credentials/],
    [{ url: 'ftp://hooks.example.org', secretEnv: 'S' }, /url/],
    [{ url: 'not a url', secretEnv: 'S' }, /url/i],
    [{ url: 'https://', secretEnv: 'S' }, /url/i],
    [{ url: 'https://hooks.example.org', secretEnv: 'lower' }, /environment variable name/],
    [{ url: 'https://hooks.example.org', secretEnv: 'S', secret: 'x' }, /secret/],
    [{ url: 'https://hooks.example.org', secretEnv: 'S', batchSize: 5000 }, /batchSize|5000|1000/],
  ])('refuses %j', (webhooks, message) => {
    const r = DistrictConfig.safeParse(district(webhooks));
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toMatch(message);
  });

  it('accepts plain http for a receiver on this machine', () => {
    for (const url of ['http://localhost:9000/h', 'http://127.0.0.1:9000/h', 'http://[::1]:9000/h'])
      expect(DistrictConfig.safeParse(district({ url, secretEnv: 'S' })).success).toBe(true);
  });

  it('start-up check names every missing or short secret', () => {
    const mk = (id: string, secretEnv: string): District =>
      DistrictConfig.parse({
        ...district({ url: 'https://hooks.example.org', secretEnv }),
        id,
      });
    const districts = new Map([
      ['a', mk('a', 'A_HOOK')],
      ['b', mk('b', 'B_HOOK')],
      ['c', mk('c', 'C_HOOK')],
      ['plain', DistrictConfig.parse({ ...district(undefined), id: 'plain' })],
    ]);
    const secrets = { A_HOOK: 'long-enough-secret-0123', C_HOOK: 'short' };
    expect(() => checkWebhookSecrets({ districts, secrets })).toThrow(ConfigError);
    try {
      checkWebhookSecrets({ districts, secrets });
    } catch (err) {
      expect((err as ConfigError).problems).toEqual([
        'district b: environment variable B_HOOK is not set',
        'district c: environment variable C_HOOK (webhook secret) must be at least 16 characters',
      ]);
    }
    expect(() =>
      checkWebhookSecrets({
        districts,
        secrets: { ...secrets, B_HOOK: 'x'.repeat(16), C_HOOK: 'y'.repeat(16) },
      }),
    ).not.toThrow();
  });

  it('shows only the host of a receiver URL', () => {
    expect(urlHost('https://hooks.example.org:8443/path?token=abc')).toBe('hooks.example.org:8443');
  });
});

describe('CHANGE_LOG_RETENTION_DAYS', () => {
  it('defaults to 400 days and refuses nonsense by name', () => {
    expect(parseEnv({}).CHANGE_LOG_RETENTION_DAYS).toBe(400);
    expect(parseEnv({ CHANGE_LOG_RETENTION_DAYS: '730' }).CHANGE_LOG_RETENTION_DAYS).toBe(730);
    expect(() => parseEnv({ CHANGE_LOG_RETENTION_DAYS: '0' })).toThrow(/CHANGE_LOG_RETENTION_DAYS/);
  });
});
