/**
 * Jest global set-up (runs once, before any test worker): the browser tests serve the
 * console from dist/console, so build it when it is missing or older than its sources
 * (src/console). Once here rather than in each browser test file, so that two test workers
 * never build into the same folder at the same time.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import process from 'node:process';

/** Newest modification time (ms) of the files under `dir`. */
function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

export default function globalSetup() {
  const index = join('dist', 'console', 'index.html');
  if (existsSync(index) && statSync(index).mtimeMs >= newest(join('src', 'console'))) return;
  process.stdout.write(
    '\n(building the admin console for the browser tests: dist/console is missing or stale)\n',
  );
  execFileSync(
    'npx',
    ['vite', 'build', '--config', 'src/console/vite.config.ts', '--logLevel', 'warn'],
    { stdio: 'inherit' },
  );
}
