import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDistricts, secretFromEnv } from '../../src/config/district.js';
import { parseEnv } from '../../src/config/env.js';
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
