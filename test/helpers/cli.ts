/**
 * The CLI in-process: `runCli(args, env)` runs the commander program of src/cli/main.ts in
 * the test's own process (no `tsx` start per call) and returns what a user would see: the
 * exit code (src/cli/exit.ts), stdout and stderr. While it runs, `process.env` is exactly
 * PATH, HOME and `env` (as the spawned tests had), and console output plus direct writes to
 * process.stdout / process.stderr are captured. Calls must not overlap (jest runs the tests
 * of a file one at a time). `.env` files are not read.
 */
import { format } from 'node:util';
import { runCli as runProgram } from '../../src/cli/main.js';

/** What a CLI call printed and how it exited. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

type Write = typeof process.stdout.write;

function capture(sink: string[]): Write {
  return (chunk: string | Uint8Array, ...rest: unknown[]) => {
    sink.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    const cb = rest.find(r => typeof r === 'function');
    if (typeof cb === 'function') queueMicrotask(() => void (cb as () => void)());
    return true;
  };
}

function restore(stream: NodeJS.WriteStream, own: PropertyDescriptor | undefined): void {
  if (own) Object.defineProperty(stream, 'write', own);
  else delete (stream as { write?: unknown }).write;
}

/**
 * Node's warning about jest's own `--experimental-vm-modules` (printed once per test process,
 * when a test first imports a module dynamically) is not the CLI's output: removed.
 */
function withoutJestWarnings(stderr: string): string {
  return stderr.replace(
    /\(node:\d+\) ExperimentalWarning: VM Modules[^\n]*\n(\(Use `node --trace-warnings[^\n]*\n)?/g,
    '',
  );
}

/** Run `guardian-sync <args>` in-process with the environment `env` (plus PATH and HOME). */
export async function runCli(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const saved = {
    env: process.env,
    log: console.log,
    info: console.info,
    error: console.error,
    warn: console.warn,
    stdout: Object.getOwnPropertyDescriptor(process.stdout, 'write'),
    stderr: Object.getOwnPropertyDescriptor(process.stderr, 'write'),
  };
  process.env = { PATH: saved.env.PATH ?? '', HOME: saved.env.HOME ?? '', ...env };
  console.log = console.info = (...a: unknown[]) => void out.push(`${format(...a)}\n`);
  console.error = console.warn = (...a: unknown[]) => void err.push(`${format(...a)}\n`);
  process.stdout.write = capture(out);
  process.stderr.write = capture(err);
  try {
    const code = await runProgram(['node', 'guardian-sync', ...args], { loadEnvFile: false });
    return { code, stdout: out.join(''), stderr: withoutJestWarnings(err.join('')) };
  } finally {
    process.env = saved.env;
    console.log = saved.log;
    console.info = saved.info;
    console.error = saved.error;
    console.warn = saved.warn;
    // Back to the stream's own method (an own property only if there was one before).
    restore(process.stdout, saved.stdout);
    restore(process.stderr, saved.stderr);
  }
}
