/**
 * bench/cpu-profile.ts (issue 15 bench hygiene): a `--cpu-prof` profile of TypeScript run
 * through tsx is rewritten with .ts positions, and the summary names the hot function with
 * its file and line. Runs a real child process (`node --import tsx --cpu-prof`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, remapProfiles, summarizeProfile } from '../../bench/cpu-profile.js';

describe('CPU profiles with TypeScript positions', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'gsync-prof-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('maps call frames to .ts lines and summarizes self time by file:line', () => {
    execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--cpu-prof',
        `--cpu-prof-dir=${dir}`,
        join('test', 'fixtures', 'cpu-profile', 'main.ts'),
        '300',
      ],
      { stdio: 'inherit' },
    );
    expect(readdirSync(dir).some(f => /^sourcemaps-\d+\.json$/.test(f))).toBe(true);
    const before = readdirSync(dir).filter(f => f.endsWith('.cpuprofile'));
    expect(before.length).toBeGreaterThan(0);

    const first = remapProfiles(dir);
    expect(first.profiles).toBe(before.length);
    expect(first.frames).toBeGreaterThan(0);
    // a second call leaves remapped profiles alone
    expect(remapProfiles(dir)).toEqual({ profiles: 0, frames: 0 });

    const main = before.map(f => join(dir, f)).find(isMainThread);
    if (!main) throw new Error('no profile of the main thread');
    expect((JSON.parse(readFileSync(main, 'utf8')) as { tsPositions?: boolean }).tsPositions).toBe(
      true,
    );
    const { rows } = summarizeProfile(main, 5);
    // `spin` is declared on line 2 of busy.ts (tsx's generated code puts it elsewhere)
    expect(rows.map(r => `${r.fn} ${r.where}`)).toContain(
      'spin test/fixtures/cpu-profile/busy.ts:2',
    );
  });
});
