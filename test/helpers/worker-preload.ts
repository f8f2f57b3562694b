/**
 * Preload for worker processes that integration tests keep warm:
 *
 *   node --import tsx --import ./test/helpers/worker-preload.ts src/cli/main.ts worker
 *
 * Loading the product's modules through tsx takes seconds of CPU, which on a loaded machine
 * becomes many seconds of wall time. This preload loads them, then holds the process until
 * the test writes one line to its stdin: a JSON object of environment variables. It adds them
 * to `process.env` and returns; only then does `src/cli/main.ts` run, unchanged, with the
 * command line it was given. A test can so have a new worker process start within a second of
 * asking for it (e.g. right after it killed the previous one).
 *
 * If stdin ends (the test process died), the worker is asked to stop (SIGTERM) so no process
 * is left behind.
 */
const modules = [
  '../../src/app.js',
  '../../src/config/env.js',
  '../../src/config/district.js',
  '../../src/workers/index.js',
  '../../src/jobs/sync.js',
  '../../src/jobs/changes.js',
  '../../src/jobs/notifications.js',
  '../../src/jobs/webhooks.js',
  '../../src/models/index.js',
  '../../src/models/sqlite/store.js',
  '../../src/connectors/index.js',
  '../../src/notifications/smtp.js',
  '../../src/cli/api.js',
  '../../src/cli/audit.js',
  '../../src/cli/codes.js',
  '../../src/cli/demo.js',
  '../../src/cli/imports.js',
  '../../src/cli/notifications.js',
  '../../src/cli/format.js',
];
// Loading is best effort: a module that moved only makes the start slower, never wrong.
await Promise.all(modules.map(m => import(m).catch(() => undefined)));

const line = await new Promise<string>(resolve => {
  let buf = '';
  let started = false;
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    if (started) return;
    buf += d;
    const nl = buf.indexOf('\n');
    if (nl >= 0) {
      started = true;
      resolve(buf.slice(0, nl));
    }
  });
  process.stdin.on('end', () => {
    if (started) process.kill(process.pid, 'SIGTERM');
    else process.exit(0);
  });
});
const env = JSON.parse(line) as Record<string, string>;
for (const [k, v] of Object.entries(env)) process.env[k] = v;

export {};
