/** Activation email pieces without I/O: settings, templates, escaping, tokens, SMTP errors. */
import { createHash } from 'node:crypto';
import { DistrictConfig } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
import { NotificationSettings, activationLink } from '../../src/config/notifications.js';
import { ConfigError } from '../../src/errors.js';
import { activationJobId } from '../../src/jobs/notifications.js';
import { nextWindow, rateWindowKeys } from '../../src/notifications/rate-limit.js';
import { classifySmtpError } from '../../src/notifications/smtp.js';
import {
  TOKEN_PATTERN,
  childrenNames,
  escapeHtml,
  hashActivationToken,
  newActivationToken,
  renderActivationEmail,
} from '../../src/notifications/template.js';

const base = {
  activationEmails: true,
  portalBaseUrl: 'https://portal.example.org/activate',
  from: '"Springfield USD" <no-reply@springfield.example>',
};

const district = (notifications: unknown) => ({
  id: 'springfield',
  name: 'Springfield',
  connector: {
    kind: 'powerschool',
    baseUrl: 'https://ps.example.org',
    clientIdEnv: 'PS_ID',
    clientSecretEnv: 'PS_SECRET',
  },
  notifications,
});

function issues(
  schema: {
    safeParse(v: unknown): {
      success: boolean;
      error?: { issues: { path: PropertyKey[]; message: string }[] };
    };
  },
  v: unknown,
): string[] {
  const r = schema.safeParse(v);
  if (r.success) return [];
  return (r.error?.issues ?? []).map(i => `${i.path.map(String).join('.')}: ${i.message}`);
}

describe('notification settings', () => {
  it('applies defaults and is optional in a district', () => {
    expect(NotificationSettings.parse(base).tokenTtlDays).toBe(14);
    expect(DistrictConfig.parse(district(undefined)).notifications).toBeUndefined();
    expect(DistrictConfig.parse(district(base)).notifications?.activationEmails).toBe(true);
  });

  it('names unknown placeholders, unknown keys and bad values', () => {
    expect(
      issues(NotificationSettings, {
        ...base,
        templates: {
          activation: { subject: 'Hi {{parntName}}', text: '{{link}} {{ childrenNames }}' },
        },
      }),
    ).toEqual([
      expect.stringMatching(
        /^templates\.activation\.subject: unknown placeholder \{\{parntName\}\} \(known: parentName,/,
      ),
    ]);
    expect(issues(DistrictConfig, district({ ...base, ratePerHuor: 5 }))).toEqual([
      expect.stringMatching(/^notifications: .*ratePerHuor/),
    ]);
    expect(issues(NotificationSettings, { ...base, portalBaseUrl: 'ftp://x/{token}' })).toEqual([
      expect.stringMatching(/^portalBaseUrl: must be an http\(s\) URL/),
    ]);
    expect(issues(NotificationSettings, { ...base, from: 'a@b.example\r\nBcc: x@y' })).toHaveLength(
      1,
    );
    expect(issues(NotificationSettings, { ...base, tokenTtlDays: 0 })).toHaveLength(1);
    expect(
      issues(NotificationSettings, { ...base, templates: { activation: { subject: 'a\nb' } } }),
    ).toEqual(['templates.activation.subject: a subject is one line']);
  });

  it('SMTP_URL must be smtp:// or smtps://', () => {
    expect(parseEnv({ SMTP_URL: 'smtps://u:p@mail.example.org:465' }).SMTP_URL).toBe(
      'smtps://u:p@mail.example.org:465',
    );
    expect(parseEnv({}).SMTP_URL).toBeUndefined();
    expect(() => parseEnv({ SMTP_URL: 'http://mail.example.org' })).toThrow(ConfigError);
  });
});

describe('activation link and token', () => {
  it('puts the token where {token} is, else in a token query parameter', () => {
    expect(activationLink('https://p.example/a/{token}/go', 'T-1_x')).toBe(
      'https://p.example/a/T-1_x/go',
    );
    expect(activationLink('https://p.example/activate?lang=en', 'abc')).toBe(
      'https://p.example/activate?lang=en&token=abc',
    );
  });

  it('tokens are 256-bit base64url, distinct, and stored as their sha256', () => {
    const a = newActivationToken();
    const b = newActivationToken();
    expect(a.token).toMatch(TOKEN_PATTERN);
    expect(a.token).not.toBe(b.token);
    expect(Buffer.from(a.token, 'base64url')).toHaveLength(32);
    expect(a.hash).toBe(createHash('sha256').update(a.token).digest('hex'));
    expect(hashActivationToken(a.token)).toBe(a.hash);
  });

  it('job ids are keyed on account and generation, BullMQ-safe', () => {
    expect(activationJobId('d1', 'abc_DEF-1', 0)).toBe('activation.d1.abc_DEF-1.g0');
    const odd = activationJobId('d1', 'a:b c', 2);
    expect(odd).toMatch(/^activation\.d1\.h[0-9a-f]{32}\.g2$/);
    expect(odd).toBe(activationJobId('d1', 'a:b c', 2));
    expect(odd).not.toBe(activationJobId('d1', 'a:b d', 2));
  });
});

describe('activation email content', () => {
  const input = {
    districtName: 'Springfield <USD>',
    parent: { givenName: `Ann "Nan"`, familyName: "O'Brien & Co" },
    children: [
      { givenName: 'Zoë', familyName: 'Núñez' },
      { givenName: '<b>Ben</b>', familyName: 'Lee' },
    ],
    link: 'https://p.example/activate?lang=en&token=abc',
    expiresAt: new Date('2030-06-14T10:00:00Z'),
    ttlDays: 14,
  };

  it('escapes every value in HTML, and only there', () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe(
      '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;',
    );
    const m = renderActivationEmail(input);
    expect(m.subject).toBe('Activate your Springfield <USD> parent account');
    expect(m.text).toContain(`Hello Ann "Nan" O'Brien & Co,`);
    expect(m.text).toContain('linked to Zoë Núñez and <b>Ben</b> Lee.');
    expect(m.text).toContain('expires on June 14, 2030 (in 14 days)');
    expect(m.html).toContain('Hello Ann &quot;Nan&quot; O&#39;Brien &amp; Co,');
    expect(m.html).toContain('linked to Zoë Núñez and &lt;b&gt;Ben&lt;/b&gt; Lee.');
    expect(m.html).toContain('href="https://p.example/activate?lang=en&amp;token=abc"');
    expect(m.html).not.toContain('<b>');
  });

  it('uses district templates where set and keeps line breaks out of values', () => {
    const m = renderActivationEmail({
      ...input,
      parent: { givenName: 'Eve\r\nBcc: x@y', familyName: 'Doe' },
      templates: { subject: '{{parentGivenName}}: your link', html: '<p>{{ link }}</p>' },
    });
    expect(m.subject).toBe('Eve Bcc: x@y: your link');
    expect(m.html).toBe('<p>https://p.example/activate?lang=en&amp;token=abc</p>');
    expect(m.text).toContain('open this link:\nhttps://p.example/activate?lang=en&token=abc\n');
  });

  it('lists children naturally', () => {
    const c = (g: string) => ({ givenName: g, familyName: 'X' });
    expect(childrenNames([])).toBe('your child');
    expect(childrenNames([c('A')])).toBe('A X');
    expect(childrenNames([c('A'), c('B')])).toBe('A X and B X');
    expect(childrenNames([c('A'), c('B'), c('C')])).toBe('A X, B X and C X');
  });
});

describe('SMTP failure classification', () => {
  const err = (o: Record<string, unknown>) => Object.assign(new Error('smtp failure'), o);
  it.each([
    [
      '451 at RCPT',
      'temporary',
      { responseCode: 451, response: '451 4.7.1 greylisted', command: 'RCPT TO' },
      false,
    ],
    ['421 closing', 'temporary', { responseCode: 421, code: 'ECONNECTION', command: 'CONN' }, true],
    [
      '550 at RCPT',
      'permanent',
      { responseCode: 550, response: '550 5.1.1 no such user', command: 'RCPT TO' },
      false,
    ],
    ['554 after DATA', 'permanent', { responseCode: 554, code: 'EMESSAGE', command: 'DATA' }, true],
    ['503 bad sequence', 'temporary', { responseCode: 503, command: 'DATA' }, false],
    ['535 auth', 'temporary', { responseCode: 535, code: 'EAUTH', command: 'AUTH PLAIN' }, false],
    [
      'refused',
      'temporary',
      { code: 'ESOCKET', originalCode: 'ECONNREFUSED', command: 'CONN' },
      false,
    ],
    ['dropped before DATA', 'temporary', { code: 'ECONNECTION', command: 'CONN' }, false],
    ['dropped after DATA', 'ambiguous', { code: 'ECONNECTION', command: 'CONN' }, true],
    ['timeout after DATA', 'ambiguous', { code: 'ETIMEDOUT', command: 'CONN' }, true],
    ['no recipients', 'permanent', { code: 'EENVELOPE', command: 'API' }, false],
  ])('%s → %s', (_name, kind, fields, bodyHandedOver) => {
    const e = classifySmtpError(err(fields), bodyHandedOver);
    expect(e.kind).toBe(kind);
    expect(e.retryable).toBe(kind === 'temporary');
  });

  it('keeps the server reply and the command in the reason', () => {
    const e = classifySmtpError(
      err({ responseCode: 550, response: '550 5.1.1 mailbox unavailable', command: 'RCPT TO' }),
      false,
    );
    expect(e.reason).toBe('550 5.1.1 mailbox unavailable (RCPT TO)');
    expect(e.responseCode).toBe(550);
  });
});

describe('rate windows', () => {
  it('are UTC hours and days', () => {
    const t = Date.parse('2030-06-14T10:59:59.999Z');
    expect(new Date(nextWindow(t, 'hour')).toISOString()).toBe('2030-06-14T11:00:00.000Z');
    expect(new Date(nextWindow(t, 'day')).toISOString()).toBe('2030-06-15T00:00:00.000Z');
    const k = rateWindowKeys('p', 'd1', t);
    expect(k.hour).not.toBe(rateWindowKeys('p', 'd1', t + 1).hour);
    expect(k.day).toBe(rateWindowKeys('p', 'd1', t + 1).day);
    expect(k.hour).toContain('d1');
  });
});
