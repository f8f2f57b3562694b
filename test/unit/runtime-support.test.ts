/**
 * The supported Node lines (README: 20.19, 22, 24) are what package.json declares, the locked
 * dependency set accepts each of them (no EBADENGINE warning at `npm ci`), and the image
 * builds on a current LTS. The demo itself runs under Node 24 in CI (.ci/node24-demo.sh).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { z } from 'zod';

const require = createRequire(import.meta.url);
// semver comes with npm's own tree (eslint, jest, …); it has no types here.
const semver = require('semver') as {
  satisfies(version: string, range: string): boolean;
};

const Engines = z.object({ node: z.string().optional() }).optional();
const PackageJson = z.object({ engines: z.object({ node: z.string() }) });
const LockFile = z.object({
  packages: z.record(z.string(), z.object({ engines: z.unknown().optional() })),
});

/** The oldest release of each supported line. */
const LINE_MINIMUMS = ['20.19.0', '22.13.0', '24.0.0'];

const pkg = PackageJson.parse(JSON.parse(readFileSync('package.json', 'utf8')));
const lock = LockFile.parse(JSON.parse(readFileSync('package-lock.json', 'utf8')));

describe('supported Node versions', () => {
  it('package.json accepts 20.19, 22 and 24 and refuses older lines', () => {
    for (const v of LINE_MINIMUMS) expect(semver.satisfies(v, pkg.engines.node)).toBe(true);
    expect(semver.satisfies('26.0.0', pkg.engines.node)).toBe(true);
    expect(semver.satisfies('20.18.0', pkg.engines.node)).toBe(false);
    expect(semver.satisfies('18.20.0', pkg.engines.node)).toBe(false);
  });

  it.each(LINE_MINIMUMS)('every locked package accepts Node %s', version => {
    const refused: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      // engines may also be an array in old packages; only the object form names node
      const parsed = Engines.safeParse(entry.engines);
      const range = parsed.success ? parsed.data?.node : undefined;
      if (range && !semver.satisfies(version, range)) refused.push(`${path} (${range})`);
    }
    expect(refused).toEqual([]);
  });

  it('the image builds on a current LTS, not Node 20', () => {
    const froms = readFileSync('Dockerfile', 'utf8')
      .split('\n')
      .filter(l => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThan(0);
    for (const f of froms) expect(f).toMatch(/^FROM node:(22|24)[-.]/);
  });
});
