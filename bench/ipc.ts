/**
 * Child processes of the benchmark and the small request/response protocol between them
 * and the orchestrator (`bench/run.ts`), over Node's IPC channel (`child_process.fork`).
 *
 * Every measured part (fake SIS, our pipeline, the naive baseline, the raw-insert limit)
 * runs in its own process, so one part's memory never counts against another's, and the
 * peak resident set of a part is its own `VmHWM` (Linux `/proc/<pid>/status`).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A request from the orchestrator. */
interface RpcRequest {
  kind: 'call';
  id: number;
  method: string;
  params: unknown;
}

/** A reply, or an event a child sends on its own (progress). */
type RpcMessage =
  | { kind: 'result'; id: number; result: unknown }
  | { kind: 'error'; id: number; message: string }
  | { kind: 'event'; name: string; data: unknown };

/** Handlers a child serves: method name → async function of the params. */
export type Handlers = Record<string, (params: unknown) => Promise<unknown>>;

function isRequest(m: unknown): m is RpcRequest {
  return typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'call';
}

/**
 * In a child: answer the orchestrator's calls with `handlers`. The child exits when its
 * IPC channel closes (the orchestrator went away) so no part outlives a bench run.
 * Throws when the process was not started with an IPC channel.
 */
export function serve(handlers: Handlers): void {
  const send = process.send?.bind(process);
  if (!send) throw new Error('bench child started without an IPC channel (use bench/run.ts)');
  process.on('message', (m: unknown) => {
    if (!isRequest(m)) return;
    const handler = m.method === 'ping' ? () => Promise.resolve('pong') : handlers[m.method];
    const reply = (msg: RpcMessage) => void send(msg);
    if (!handler) {
      reply({ kind: 'error', id: m.id, message: `unknown method ${m.method}` });
      return;
    }
    handler(m.params).then(
      result => reply({ kind: 'result', id: m.id, result }),
      (err: unknown) =>
        reply({
          kind: 'error',
          id: m.id,
          message: err instanceof Error ? (err.stack ?? err.message) : String(err),
        }),
    );
  });
  process.on('disconnect', () => process.exit(0));
}

/** In a child: send an event (e.g. progress) to the orchestrator; dropped when detached. */
export function emit(name: string, data: unknown): void {
  if (process.connected) process.send?.({ kind: 'event', name, data } satisfies RpcMessage);
}

/** Peak resident set (`VmHWM`) and current resident set (`VmRSS`) of a process, in bytes. */
export function memoryOf(pid: number | 'self'): { peakRss: number; rss: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
      return m?.[1] === undefined ? 0 : Number(m[1]) * 1024;
    };
    return { peakRss: kb('VmHWM'), rss: kb('VmRSS') };
  } catch {
    return undefined; // not Linux, or the process is gone
  }
}

/**
 * CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`; with
 * `mainThread`, its main thread's alone (`/proc/<pid>/task/<pid>/stat`: without worker threads,
 * V8's GC helpers and the loader thread).
 */
export function cpuSecondsOf(pid: number | 'self', mainThread = false): number | undefined {
  try {
    const stat = readFileSync(
      mainThread && pid !== 'self' ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`,
      'utf8',
    );
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / 100 : undefined; // USER_HZ is 100 on Linux
  } catch {
    return undefined;
  }
}

/** Options of `BenchChild.start`. */
export interface ChildOptions {
  /** Extra node flags (`--max-old-space-size=…`, `--cpu-prof`, …). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Called for every event the child emits. */
  onEvent?: (name: string, data: unknown) => void;
}

/**
 * A benchmark part running in its own Node process (TypeScript run through tsx), with
 * `call()` for requests and a sampler of its peak resident set.
 */
export class BenchChild {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private sampledPeak = 0;
  private readonly sampler: NodeJS.Timeout;
  private exited: Promise<number | null>;

  private constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
    onEvent?: (name: string, data: unknown) => void,
  ) {
    proc.on('message', (m: RpcMessage) => {
      if (m.kind === 'event') {
        onEvent?.(m.name, m.data);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.kind === 'result') p.resolve(m.result);
      else p.reject(new Error(`${this.name}: ${m.message}`));
    });
    this.exited = new Promise(resolve => {
      proc.on('exit', code => {
        clearInterval(this.sampler);
        for (const p of this.pending.values())
          p.reject(new Error(`${this.name} exited (code ${String(code)}) during a call`));
        this.pending.clear();
        resolve(code);
      });
    });
    // Fallback sampling of VmRSS (VmHWM is read at the end when the kernel provides it).
    this.sampler = setInterval(() => {
      const m = proc.pid === undefined ? undefined : memoryOf(proc.pid);
      if (m) this.sampledPeak = Math.max(this.sampledPeak, m.peakRss || m.rss);
    }, 200);
    this.sampler.unref();
  }

  /** Fork `bench/<script>` (relative to this folder) with tsx. */
  static start(name: string, script: string, opts: ChildOptions = {}): BenchChild {
    const file = fileURLToPath(new URL(script, import.meta.url));
    const proc = fork(file, [], {
      execArgv: ['--import', 'tsx', ...(opts.nodeArgs ?? [])],
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new BenchChild(name, proc, opts.onEvent);
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Call `method` in the child; rejects with the child's error (stack included). */
  call<T>(method: string, params: unknown = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: v => resolve(v as T), reject });
      this.proc.send({ kind: 'call', id, method, params } satisfies RpcRequest);
    });
  }

  /** Peak resident set so far, bytes: the kernel's VmHWM, or the sampled maximum. */
  peakRss(): number {
    const m = this.proc.pid === undefined ? undefined : memoryOf(this.proc.pid);
    return Math.max(this.sampledPeak, m?.peakRss ?? 0);
  }

  /** CPU seconds the child has used so far (undefined where /proc is missing). */
  cpuSeconds(): number | undefined {
    return this.proc.pid === undefined ? undefined : cpuSecondsOf(this.proc.pid);
  }

  /** CPU seconds the child's main thread has used so far (undefined where /proc is missing). */
  mainThreadCpuSeconds(): number | undefined {
    return this.proc.pid === undefined ? undefined : cpuSecondsOf(this.proc.pid, true);
  }

  /** Disconnect (the child exits on its own) and wait for the exit; kill after `ms`. */
  async stop(ms = 30000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    if (this.proc.connected) this.proc.disconnect();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), ms);
    await this.exited;
    clearTimeout(timer);
  }
}
