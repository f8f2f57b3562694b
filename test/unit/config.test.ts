import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDistricts, secretFromEnv } from '../../src/config/district.js';
import { EnvSchema, parseEnv } from '../../src/config/env.js';
import { ConfigError } from '../../src/errors.js';

const good = {
  id: 'springfield',
  name: 'Springfield',
  connector: {
    kind: 'powerschool',
    baseUrl: 'https://ps.example.org',
    clientIdEnv: 'PS_ID',
    clientSecretEnv: 'PS_SECRET',
  },
};

function dirWith(files: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'gsync-cfg-'));
  for (const [name, body] of Object.entries(files))
    writeFileSync(join(dir, name), typeof body === 'string' ? body : JSON.stringify(body));
  return dir;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('environment', () => {
  it('applies defaults', () => {
    const env = parseEnv({});
    expect(env.REDIS_URL).toBe('redis://127.0.0.1:6379');
    expect(env.storeUrl).toBe('sqlite:./data/guardian-sync.db');
    expect(env.LOG_LEVEL).toBe('info');
  });

  it('selects MongoDB when MONGO_URL is set', () => {
    expect(parseEnv({ MONGO_URL: 'mongodb://db:27017/gs' }).storeUrl).toBe('mongodb://db:27017/gs');
  });

  it('reports every invalid variable at once, by name', () => {
    const problems = problemsOf(() =>
      parseEnv({
        REDIS_URL: 'http://nope',
        STORE_URL: 'postgres://x',
        LOG_LEVEL: 'loud',
        WORKER_CONCURRENCY: 'many',
      }),
    );
    expect(problems.map(p => p.split(':')[0]).sort()).toEqual([
      'LOG_LEVEL',
      'REDIS_URL',
      'STORE_URL',
      'WORKER_CONCURRENCY',
    ]);
  });

  it('names the value given (secrets masked) and the allowed range of each bad variable (finding 3)', () => {
    const problems = problemsOf(() =>
      parseEnv({
        WORKER_CONCURRENCY: '500',
        API_PORT: 'abc',
        WORKER_LOCK_MS: '1.5',
        LOG_LEVEL: 'loud',
        REDIS_URL: 'http://user:hunter2@redis.example:6379',
        CONSOLE_SESSION_SECRET: 'short-secret-value',
      }),
    );
    const line = (name: string) => problems.find(p => p.startsWith(`${name}:`)) ?? '';
    expect(line('WORKER_CONCURRENCY')).toBe(
      'WORKER_CONCURRENCY: out of range, got "500" (allowed: a whole number from 1 to 64; default 2)',
    );
    expect(line('API_PORT')).toBe(
      'API_PORT: not a number, got "abc" (allowed: a whole number from 0 to 65,535; default 8080)',
    );
    expect(line('WORKER_LOCK_MS')).toMatch(
      /^WORKER_LOCK_MS: not a whole number, got "1\.5" \(allowed: a whole number from 1,000 to 3,600,000\)$/,
    );
    expect(line('LOG_LEVEL')).toMatch(/got "loud" \(allowed: one of fatal, error, warn, info/);
    // a URL's password and a secret's value never appear
    expect(line('REDIS_URL')).toContain('got "http://user:***@redis.example:6379"');
    expect(line('CONSOLE_SESSION_SECRET')).toBe(
      'CONSOLE_SESSION_SECRET: must be at least 32 characters, got (18 characters, hidden)',
    );
    expect(problems.join('\n')).not.toMatch(/hunter2|short-secret-value/);
  });
});

describe('README environment table', () => {
  it('lists every variable, and each number variable with the range the schema enforces', () => {
    const rows = readFileSync('README.md', 'utf8')
      .split('\n')
      .filter(l => l.startsWith('| `'));
    for (const [name, schema] of Object.entries(EnvSchema.shape)) {
      const row = rows.find(r => r.includes(`\`${name}\``));
      expect([name, row !== undefined]).toEqual([name, true]);
      let inner: unknown = schema;
      for (;;) {
        const def = (inner as { def?: { type?: string; innerType?: unknown } }).def;
        if (def?.type !== 'default' && def?.type !== 'optional') break;
        inner = def.innerType;
      }
      const n = inner as { def?: { type?: string }; minValue?: unknown; maxValue?: unknown };
      if (n.def?.type === 'number')
        expect([name, row?.includes(`${String(n.minValue)}–${String(n.maxValue)}`)]).toEqual([
          name,
          true,
        ]);
    }
  });
});

describe('district files', () => {
  it('loads valid files with defaults and skips examples', () => {
    const dir = dirWith({ 'a.json': good, 'b.example.json': { nonsense: true } });
    const [d] = loadDistricts(dir);
    expect(d?.connector.kind).toBe('powerschool');
    expect(d?.policies.deletionThresholdPercent).toBe(10);
    if (d?.connector.kind === 'powerschool')
      expect(d.connector.contacts.requireDataAccess).toBe(true);
  });

  it('names the file and key of an unknown key, a bad URL and a missing field', () => {
    const dir = dirWith({
      'a.json': { ...good, colour: 'blue' },
      'b.json': { ...good, id: 'b', connector: { ...good.connector, baseUrl: 'not a url' } },
      'c.json': { id: 'c', name: 'C' },
    });
    const problems = problemsOf(() => loadDistricts(dir));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/a\.json: .*colour/),
        expect.stringMatching(/b\.json: connector\.baseUrl/),
        expect.stringMatching(/c\.json: connector/),
      ]),
    );
  });

  it('reports invalid JSON and duplicate ids', () => {
    const dir = dirWith({ 'a.json': good, 'b.json': good, 'c.json': '{ nope' });
    const problems = problemsOf(() => loadDistricts(dir));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/b\.json: id: duplicate/),
        expect.stringMatching(/c\.json: not valid JSON/),
      ]),
    );
  });

  it('names a missing secret variable', () => {
    expect(() => secretFromEnv({}, 'springfield', 'PS_SECRET')).toThrow(/PS_SECRET is not set/);
  });
});

describe('district schedules', () => {
  it('names a bad cron pattern and an unknown time zone', () => {
    const dir = dirWith({
      'a.json': { ...good, schedule: { cron: '0 3 * * eve' } },
      'b.json': { ...good, id: 'b', schedule: { cron: '0 3 * * *', timezone: 'Mars/Olympus' } },
    });
    const problems = problemsOf(() => loadDistricts(dir));
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/a\.json: schedule\.cron: not a valid cron pattern/),
        expect.stringMatching(/b\.json: schedule\.timezone: not a known IANA time zone/),
      ]),
    );
  });

  it('accepts a valid cron pattern and time zone', () => {
    const dir = dirWith({
      'a.json': { ...good, schedule: { cron: '15 2 * * 1-5', timezone: 'America/Chicago' } },
    });
    expect(loadDistricts(dir)[0]?.schedule).toEqual({
      cron: '15 2 * * 1-5',
      timezone: 'America/Chicago',
    });
  });
});
