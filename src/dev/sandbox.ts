/**
 * The sandbox: a persistent fake SIS to try the worker, the CLI and the API against, after
 * the demo. A seeded synthetic district (`district-generator.ts`) is served by the matching
 * fake server (`*-server.ts`) on a fixed loopback port, or written as files (OneRoster CSV,
 * eSchoolPLUS) into a folder. Its state lives in `<dir>/state.json`: the seed, the size and
 * the list of scripted changes applied since (new guardian, withdrawn student, mass
 * withdrawal). The district is rebuilt from the seed and the changes are replayed in order
 * (the generator and the mutation helpers are deterministic), so a restart serves the same
 * district. A running server polls `state.json` and applies changes added by
 * `applySandboxChange` (another process: `npm run sandbox -- change …`) while it runs, and
 * records how many it serves in `<dir>/served.json`.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { unwatchFile, watchFile } from 'node:fs';
import { join, resolve } from 'node:path';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { startFakeAeries } from './aeries-server.js';
import {
  addGuardian,
  generateDistrict,
  withdrawStudent,
  type PsStudentRow,
  type SyntheticDistrict,
} from './district-generator.js';
import { ESCHOOL_RELATION_CODES } from './eschoolplus-adapter.js';
import { writeESchoolFiles } from './eschoolplus-files.js';
import { OneRosterDistrict } from './oneroster-adapter.js';
import { oneRosterCsvFiles, writeOneRosterCsvFolder } from './oneroster-csv.js';
import { startFakeOneRoster } from './oneroster-server.js';
import { startFakePowerSchool } from './powerschool-server.js';
import { startFakeSkyward } from './skyward-server.js';

/** SIS kinds the sandbox can play. */
export const SandboxSis = z.enum([
  'powerschool',
  'infinite-campus',
  'skyward',
  'aeries',
  'eschoolplus',
  'oneroster-csv',
]);
export type SandboxSis = z.infer<typeof SandboxSis>;

/**
 * Scripted changes: `new-guardian` (a new guardian with an email for one student),
 * `withdraw-student` (one student withdrawn), `mass-withdraw` (a quarter of the active
 * students withdrawn: more than the default 10 % deletion threshold, so the run is held).
 */
export const SandboxChangeKind = z.enum(['new-guardian', 'withdraw-student', 'mass-withdraw']);
export type SandboxChangeKind = z.infer<typeof SandboxChangeKind>;

/** Kinds served over HTTP (the others are files). */
const SERVED: ReadonlySet<SandboxSis> = new Set([
  'powerschool',
  'infinite-campus',
  'skyward',
  'aeries',
]);

/** Default loopback port of each served kind (fixed, so the district file stays valid). */
export const SANDBOX_PORTS: Readonly<Record<SandboxSis, number>> = {
  powerschool: 18701,
  'infinite-campus': 18702,
  skyward: 18703,
  aeries: 18704,
  eschoolplus: 0,
  'oneroster-csv': 0,
};

const SandboxChange = z.strictObject({
  kind: SandboxChangeKind,
  /** ISO date-time the change was scripted. */
  at: z.string(),
  /** What it did, for people (`withdrew 125 students …`). */
  description: z.string(),
});
export type SandboxChange = z.infer<typeof SandboxChange>;

/** `<dir>/state.json`. */
export const SandboxState = z.strictObject({
  format: z.literal(1),
  sis: SandboxSis,
  seed: z.number().int().min(0),
  students: z.number().int().min(1),
  /** Loopback port of a served kind (0 for file kinds, or any free port in tests). */
  port: z.number().int().min(0).max(65535),
  createdAt: z.string(),
  changes: z.array(SandboxChange),
});
export type SandboxState = z.infer<typeof SandboxState>;

const Served = z.object({ changes: z.number().int().min(0), pid: z.number().int() });

/** District id the sandbox writes its district file for. */
export function sandboxDistrictId(sis: SandboxSis): string {
  return `sandbox-${sis}`;
}

/** Read `<dir>/state.json`; undefined when absent. Throws `ConfigError` naming a bad file. */
export function readSandboxState(dir: string): SandboxState | undefined {
  const path = join(dir, 'state.json');
  if (!existsSync(path)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(
      `${path}: not JSON (${(err as Error).message}); --reset starts over`,
      [],
      'sandbox',
    );
  }
  const r = SandboxState.safeParse(raw);
  if (!r.success)
    throw new ConfigError(
      `${path}: not a sandbox state file`,
      r.error.issues.map(i => `${i.path.join('.')}: ${i.message}`),
      'sandbox',
    );
  return r.data;
}

function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, path);
}

const activeStudents = (d: SyntheticDistrict) => d.students.filter(s => s.enroll_status === 'A');
const studentLabel = (s: PsStudentRow) =>
  `${s.first_name} ${s.last_name} (Unique ID ${s.local_id})`;

/** What a scripted change touched: the students' Unique IDs, the new guardian's email. */
export interface ChangeSubjects {
  description: string;
  studentUniqueIds: string[];
  guardianEmail?: string;
}

/**
 * Apply one scripted change to `d` (the `index`-th change of the sandbox: it picks which
 * students, deterministically). Throws `ConfigError` when no active student is left.
 */
function applyTo(d: SyntheticDistrict, kind: SandboxChangeKind, index: number): ChangeSubjects {
  const active = activeStudents(d);
  if (active.length === 0)
    throw new ConfigError(
      'the sandbox district has no active student left; --reset',
      [],
      'sandbox',
    );
  const pick = (step: number) => active[(index * step + 1) % active.length] ?? active[0]!;
  switch (kind) {
    case 'new-guardian': {
      const s = pick(37);
      const c = addGuardian(d, s.id);
      return {
        description: `new guardian ${c.firstName} ${c.lastName} <${c.email ?? 'no email'}> for ${studentLabel(s)}`,
        studentUniqueIds: [String(s.local_id)],
        ...(c.email ? { guardianEmail: c.email.trim().toLowerCase() } : {}),
      };
    }
    case 'withdraw-student': {
      const s = pick(53);
      withdrawStudent(d, s.id);
      return { description: `withdrew ${studentLabel(s)}`, studentUniqueIds: [String(s.local_id)] };
    }
    case 'mass-withdraw': {
      const n = Math.max(1, Math.ceil(active.length / 4));
      const start = (index * 97) % active.length;
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const s = active[(start + i) % active.length];
        if (!s) continue;
        withdrawStudent(d, s.id);
        ids.push(String(s.local_id));
      }
      return {
        description: `withdrew ${n} of ${active.length} active students (more than the 10 % deletion threshold: the next run is held for approval)`,
        studentUniqueIds: ids,
      };
    }
  }
}

/** The district of `state`: generated from the seed, with its changes replayed. */
export function sandboxDistrict(state: SandboxState): SyntheticDistrict {
  const d = generateDistrict({ seed: state.seed, students: state.students });
  state.changes.forEach((c, i) => applyTo(d, c.kind, i));
  return d;
}

async function writeFiles(state: SandboxState, d: SyntheticDistrict, dir: string): Promise<void> {
  const files = join(dir, 'files');
  if (state.sis === 'oneroster-csv') {
    rmSync(files, { recursive: true, force: true });
    const view = new OneRosterDistrict(d, { version: '1.2' }).view();
    writeOneRosterCsvFolder(files, oneRosterCsvFiles(view, { mode: 'bulk' }));
  } else if (state.sis === 'eschoolplus') {
    rmSync(files, { recursive: true, force: true });
    await writeESchoolFiles(d, { dir: files, studentContacts: true });
  }
}

/** The district file (raw JSON) and the secrets it names. */
export interface SandboxDistrict {
  districtId: string;
  district: Record<string, unknown>;
  /** Environment entries the district names (credentials of the fake). */
  env: Record<string, string>;
}

/** A started sandbox (served kinds keep serving until `close`). */
export interface RunningSandbox extends SandboxDistrict {
  sis: SandboxSis;
  dir: string;
  state: SandboxState;
  /** The fake's root URL (served kinds) or the folder of files. */
  location: string;
  /** Counts of the district as served now. */
  counts(): { schools: number; students: number; activeStudents: number; contacts: number };
  /** Scripted changes served so far. */
  changesApplied(): number;
  /** Resolves once `n` changes are served; rejects after `timeoutMs`. */
  waitForChanges(n: number, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface StartSandboxOptions {
  /** State folder, e.g. `./data/sandbox/powerschool`. */
  dir: string;
  sis: SandboxSis;
  /** Size of a new sandbox (default 500); an existing one keeps its own. */
  students?: number;
  /** Seed of a new sandbox (default 7). */
  seed?: number;
  /** Port of a served kind (default `SANDBOX_PORTS[sis]`; 0: any free port). */
  port?: number;
  /** Start over: drop the state and the files. */
  reset?: boolean;
  /** How often a served sandbox looks for new changes (ms, default 250). */
  pollMs?: number;
  /** Where progress lines go (default nowhere). */
  log?: (line: string) => void;
}

/**
 * Start (or resume) the sandbox in `opts.dir`. A new one is seeded; an existing one is
 * rebuilt from its state (its size and seed win: `ConfigError` when `students`/`seed` ask for
 * different ones without `reset`, or when `sis` differs). Served kinds listen on 127.0.0.1;
 * file kinds write `<dir>/files`. Rejects when the port is taken.
 */
export async function startSandbox(opts: StartSandboxOptions): Promise<RunningSandbox> {
  const log = opts.log ?? (() => undefined);
  mkdirSync(opts.dir, { recursive: true });
  if (opts.reset) {
    rmSync(join(opts.dir, 'state.json'), { force: true });
    rmSync(join(opts.dir, 'served.json'), { force: true });
    rmSync(join(opts.dir, 'files'), { recursive: true, force: true });
  }
  let state = readSandboxState(opts.dir);
  if (state) {
    const clash: string[] = [];
    if (state.sis !== opts.sis) clash.push(`sis ${state.sis}, not ${opts.sis}`);
    if (opts.students !== undefined && opts.students !== state.students)
      clash.push(`${state.students} students, not ${opts.students}`);
    if (opts.seed !== undefined && opts.seed !== state.seed)
      clash.push(`seed ${state.seed}, not ${opts.seed}`);
    if (clash.length)
      throw new ConfigError(
        `the sandbox in ${opts.dir} has ${clash.join(', ')}; add --reset to start over (its changes are lost)`,
        [],
        'sandbox',
      );
    if (opts.port !== undefined && opts.port !== state.port) {
      state = { ...state, port: opts.port };
      writeJsonAtomic(join(opts.dir, 'state.json'), state);
    }
  } else {
    state = {
      format: 1,
      sis: opts.sis,
      seed: opts.seed ?? 7,
      students: opts.students ?? 500,
      port: opts.port ?? SANDBOX_PORTS[opts.sis],
      createdAt: new Date().toISOString(),
      changes: [],
    };
    writeJsonAtomic(join(opts.dir, 'state.json'), state);
    log(`new sandbox: ${state.students} students, seed ${state.seed}`);
  }
  const d = sandboxDistrict(state);
  let applied = state.changes.length;
  const districtId = sandboxDistrictId(opts.sis);
  const name = `Sandbox ${opts.sis} district (fake SIS, ${opts.dir})`;
  const waiters = new Set<() => void>();
  const markServed = () => {
    writeJsonAtomic(join(opts.dir, 'served.json'), { changes: applied, pid: process.pid });
    for (const w of [...waiters]) w();
  };

  let server: { url: string; close(): Promise<void> } | undefined;
  let connector: Record<string, unknown>;
  let env: Record<string, string> = {};
  const port = state.port;
  // absolute: the worker reading the district file may run from another folder
  const filesDir = resolve(opts.dir, 'files');
  try {
    switch (opts.sis) {
      case 'powerschool': {
        const fake = await startFakePowerSchool(d, {
          port,
          clientId: 'sandbox-client',
          clientSecret: 'sandbox-secret',
        });
        server = fake;
        connector = {
          kind: 'powerschool',
          baseUrl: fake.url,
          clientIdEnv: 'SANDBOX_PS_CLIENT_ID',
          clientSecretEnv: 'SANDBOX_PS_CLIENT_SECRET',
        };
        env = { SANDBOX_PS_CLIENT_ID: fake.clientId, SANDBOX_PS_CLIENT_SECRET: fake.clientSecret };
        break;
      }
      case 'infinite-campus': {
        const fake = await startFakeOneRoster(d, {
          version: '1.2',
          port,
          clientId: 'sandbox-client',
          clientSecret: 'sandbox-secret',
        });
        server = fake;
        connector = {
          kind: 'infinite-campus',
          version: '1.2',
          baseUrl: fake.baseUrl,
          tokenUrl: fake.tokenUrl,
          clientIdEnv: 'SANDBOX_IC_CLIENT_ID',
          clientSecretEnv: 'SANDBOX_IC_CLIENT_SECRET',
        };
        env = { SANDBOX_IC_CLIENT_ID: fake.clientId, SANDBOX_IC_CLIENT_SECRET: fake.clientSecret };
        break;
      }
      case 'skyward': {
        const fake = await startFakeSkyward(d, {
          port,
          clientId: 'sandbox-client',
          clientSecret: 'sandbox-secret',
          username: 'sandbox-key',
          password: 'sandbox-key-secret',
        });
        server = fake;
        connector = {
          kind: 'skyward',
          api: 'lms',
          baseUrl: fake.baseUrl,
          clientIdEnv: 'SANDBOX_SKYWARD_CLIENT_ID',
          clientSecretEnv: 'SANDBOX_SKYWARD_CLIENT_SECRET',
          usernameEnv: 'SANDBOX_SKYWARD_API_KEY',
          passwordEnv: 'SANDBOX_SKYWARD_API_SECRET',
        };
        env = {
          SANDBOX_SKYWARD_CLIENT_ID: fake.clientId,
          SANDBOX_SKYWARD_CLIENT_SECRET: fake.clientSecret,
          SANDBOX_SKYWARD_API_KEY: fake.username,
          SANDBOX_SKYWARD_API_SECRET: fake.password,
        };
        break;
      }
      case 'aeries': {
        const fake = await startFakeAeries(d, { port });
        server = fake;
        connector = { kind: 'aeries', baseUrl: fake.url, certEnv: 'SANDBOX_AERIES_CERT' };
        env = { SANDBOX_AERIES_CERT: fake.cert };
        break;
      }
      case 'oneroster-csv':
        await writeFiles(state, d, opts.dir);
        connector = { kind: 'oneroster-csv', source: { type: 'folder', path: filesDir } };
        break;
      case 'eschoolplus':
        await writeFiles(state, d, opts.dir);
        connector = {
          kind: 'eschoolplus',
          source: { type: 'folder', path: filesDir },
          files: { studentContacts: { name: 'REG_STU_CONTACT.txt' } },
          format: { endOfRecordMarker: '#!#' },
          links: 'student-contact',
          relationCodes: ESCHOOL_RELATION_CODES,
        };
        break;
    }
  } catch (err) {
    if ((err as { code?: unknown }).code === 'EADDRINUSE')
      throw new ConfigError(
        `port ${port} on 127.0.0.1 is in use: is this sandbox already running? (another port: --port)`,
        [],
        'sandbox',
      );
    throw err;
  }
  const district: Record<string, unknown> = {
    id: districtId,
    name,
    connector,
    ...(opts.sis === 'eschoolplus' ? { accessCodes: { enabled: true } } : {}),
  };
  markServed();

  // Served kinds: pick up changes scripted by other processes while serving.
  const statePath = join(opts.dir, 'state.json');
  const poll = () => {
    let next: SandboxState | undefined;
    try {
      next = readSandboxState(opts.dir);
    } catch (err) {
      log(`sandbox state unreadable, ignored: ${(err as Error).message}`);
      return;
    }
    if (!next || next.changes.length <= applied) {
      if (next && next.changes.length < applied)
        log('the sandbox state was reset while serving: restart the sandbox');
      return;
    }
    for (let i = applied; i < next.changes.length; i++) {
      const c = next.changes[i];
      if (!c) continue;
      applyTo(d, c.kind, i);
      log(`applied change ${i + 1}: ${c.description}`);
    }
    applied = next.changes.length;
    markServed();
  };
  if (server) watchFile(statePath, { interval: opts.pollMs ?? 250, persistent: false }, poll);

  const active = server;
  return {
    sis: opts.sis,
    dir: opts.dir,
    state,
    districtId,
    district,
    env,
    location: active?.url ?? filesDir,
    counts: () => ({
      schools: d.schools.length,
      students: d.students.length,
      activeStudents: activeStudents(d).length,
      contacts: d.contacts.length,
    }),
    changesApplied: () => applied,
    waitForChanges(n, timeoutMs) {
      if (applied >= n) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`the sandbox served ${applied} changes, not ${n}, after ${timeoutMs} ms`),
          );
        }, timeoutMs);
        const check = () => {
          if (applied < n) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
      });
    },
    async close() {
      unwatchFile(statePath, poll);
      await active?.close();
    },
  };
}

/** What `applySandboxChange` did. */
export interface AppliedChange {
  change: SandboxChange;
  subjects: ChangeSubjects;
  /** Changes in the state now. */
  total: number;
  /** File kinds: rewritten now. Served kinds: the running sandbox serves it (or not yet). */
  served: 'files-written' | 'served' | 'not-running';
}

/**
 * Script a change into the sandbox of `dir`: appended to `state.json`; file kinds rewrite
 * their files at once; for served kinds, waits up to `waitMs` (default 5000) for the running
 * sandbox to serve it (`served: 'not-running'` when none did: it is served at the next
 * start). Throws `ConfigError` when there is no sandbox in `dir`.
 */
export async function applySandboxChange(
  dir: string,
  kind: SandboxChangeKind,
  opts: { waitMs?: number } = {},
): Promise<AppliedChange> {
  const state = readSandboxState(dir);
  if (!state)
    throw new ConfigError(`no sandbox in ${dir}: start one first (npm run sandbox)`, [], 'sandbox');
  const d = sandboxDistrict(state);
  const subjects = applyTo(d, kind, state.changes.length);
  const change: SandboxChange = {
    kind,
    at: new Date().toISOString(),
    description: subjects.description,
  };
  const next: SandboxState = { ...state, changes: [...state.changes, change] };
  writeJsonAtomic(join(dir, 'state.json'), next);
  const total = next.changes.length;
  if (!SERVED.has(state.sis)) {
    await writeFiles(next, d, dir);
    return { change, subjects, total, served: 'files-written' };
  }
  const deadline = Date.now() + (opts.waitMs ?? 5000);
  for (;;) {
    try {
      const served = Served.parse(JSON.parse(readFileSync(join(dir, 'served.json'), 'utf8')));
      if (served.changes >= total) return { change, subjects, total, served: 'served' };
    } catch {
      // not written yet, or being replaced: look again
    }
    if (Date.now() >= deadline) return { change, subjects, total, served: 'not-running' };
    await new Promise(resolve => setTimeout(resolve, 100));
  }
}

/** Result of `mergeEnvFile`. */
export interface EnvMerge {
  added: string[];
  /** Already there with the same value. */
  present: string[];
  /** Already there with another value: left alone; the sandbox needs `wanted`. */
  conflicts: { name: string; wanted: string }[];
}

/**
 * Add the missing `entries` to the dotenv file at `path` (created when absent); never
 * changes or removes an existing line. Existing values are read with the dotenv parser.
 */
export function mergeEnvFile(
  path: string,
  entries: Record<string, string>,
  comment: string,
): EnvMerge {
  const text = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const existing = parseDotenv(text);
  const out: EnvMerge = { added: [], present: [], conflicts: [] };
  const lines: string[] = [];
  for (const [name, value] of Object.entries(entries)) {
    const have = existing[name];
    if (have === undefined) {
      out.added.push(name);
      lines.push(`${name}=${value}`);
    } else if (have === value) out.present.push(name);
    else out.conflicts.push({ name, wanted: value });
  }
  if (lines.length) {
    const sep = text === '' || text.endsWith('\n') ? '' : '\n';
    writeFileSync(path, `${text}${sep}# ${comment}\n${lines.join('\n')}\n`);
  }
  return out;
}
