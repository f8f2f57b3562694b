/**
 * Picking up an eSchoolPLUS file set: from a local folder, or from an SFTP drop (downloaded
 * into a private temporary folder with ssh2-sftp-client, removed by `dispose()`). A configured
 * name with `*` matches any characters; the newest match (modification time, then name) is
 * used, since task runs drop date-stamped files (sis-reference §6.3). A name that several
 * configured patterns match belongs to the most specific one (most literal characters), so
 * `REG_*.txt` and `REG_CONTACT_*.txt` can be configured together (docs/eschoolplus.md).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { Logger } from 'pino';
import SftpClient from 'ssh2-sftp-client';
import type { ESchoolPlusConnectorConfig } from '../../config/eschoolplus.js';
import { SisHttpError, SisPayloadError } from '../../errors.js';
import { TABLE_OF, type ESchoolFileKind } from './definitions.js';

/** One file of the set, readable locally. */
export interface ResolvedFile {
  kind: ESchoolFileKind;
  /** The file's name as found (for messages and rejects). */
  name: string;
  /** Local path. */
  path: string;
}

/** A picked-up file set. `dispose()` removes downloaded copies (never the district's files). */
export interface FileSet {
  files: Map<ESchoolFileKind, ResolvedFile>;
  /** Where the files came from, for messages (`folder /x`, `sftp://host/dir`). */
  origin: string;
  dispose(): Promise<void>;
}

/** SFTP credentials resolved from the environment. */
export interface SftpSecrets {
  username: string;
  password?: string | undefined;
  privateKey?: string | undefined;
}

/** The configured files: kind → configured name (studentContacts only when configured). */
export function configuredFiles(config: ESchoolPlusConnectorConfig): [ESchoolFileKind, string][] {
  const f = config.files;
  const out: [ESchoolFileKind, string][] = [
    ['students', f.students.name],
    ['buildings', f.buildings.name],
    ['contacts', f.contacts.name],
    ['contactPhones', f.contactPhones.name],
  ];
  if (f.studentContacts) out.push(['studentContacts', f.studentContacts.name]);
  return out;
}

function matcher(pattern: string): (name: string) => boolean {
  if (!pattern.includes('*')) return name => name === pattern;
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map(p => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return name => re.test(name);
}

/** How specific a pattern is: its literal characters (everything but `*`). */
function specificity(pattern: string): number {
  return pattern.replaceAll('*', '').length;
}

/**
 * The newest entry matching `pattern` (by mtime, then name), or undefined. When `others` (the
 * set's other patterns) are given, a name that a more specific pattern (more literal
 * characters) also matches belongs to that pattern and is skipped here: `REG_*.txt` does not
 * pick `REG_CONTACT_20250115.txt` when `REG_CONTACT_*.txt` is configured. Throws
 * `SisPayloadError` when a name matches `pattern` and another pattern equally specifically
 * (the set cannot be picked up unambiguously: the district file must be fixed).
 */
export function pickFile(
  pattern: string,
  entries: readonly { name: string; mtimeMs: number }[],
  others: readonly string[] = [],
): string | undefined {
  const match = matcher(pattern);
  const mine = specificity(pattern);
  const rivals = others.filter(o => o !== pattern).map(o => ({ o, match: matcher(o) }));
  let best: { name: string; mtimeMs: number } | undefined;
  for (const e of entries) {
    if (!match(e.name)) continue;
    const better = rivals.filter(r => r.match(e.name));
    const tie = better.find(r => specificity(r.o) === mine);
    if (tie)
      throw new SisPayloadError(
        `eSchoolPLUS file set: ${e.name} matches both "${pattern}" and "${tie.o}" equally; ` +
          'make the file names in the district file distinct (nothing was changed)',
      );
    if (better.some(r => specificity(r.o) > mine)) continue;
    if (!best || e.mtimeMs > best.mtimeMs || (e.mtimeMs === best.mtimeMs && e.name > best.name))
      best = e;
  }
  return best?.name;
}

function missing(origin: string, kind: ESchoolFileKind, pattern: string): SisPayloadError {
  return new SisPayloadError(
    `eSchoolPLUS file set (${origin}): the ${TABLE_OF[kind]} file "${pattern}" is missing; ` +
      'nothing was changed',
  );
}

/**
 * Resolve the configured files in a local folder. Throws `SisPayloadError` naming the first
 * missing file (and the folder), or when the folder cannot be read.
 */
export async function openFolderFileSet(
  config: ESchoolPlusConnectorConfig,
  dir: string,
): Promise<FileSet> {
  const origin = `folder ${dir}`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    throw new SisPayloadError(
      `eSchoolPLUS file set (${origin}): cannot read the folder: ${(err as Error).message}`,
    );
  }
  const entries = await Promise.all(
    names.map(async name => {
      const s = await stat(join(dir, name)).catch(() => undefined);
      return s?.isFile() ? { name, mtimeMs: s.mtimeMs } : undefined;
    }),
  );
  const files = new Map<ESchoolFileKind, ResolvedFile>();
  const present = entries.filter((e): e is { name: string; mtimeMs: number } => e !== undefined);
  const patterns = configuredFiles(config).map(([, p]) => p);
  for (const [kind, pattern] of configuredFiles(config)) {
    const name = pickFile(pattern, present, patterns);
    if (!name) throw missing(origin, kind, pattern);
    files.set(kind, { kind, name, path: join(dir, name) });
  }
  return { files, origin, dispose: async () => {} };
}

/** `SHA256:` + base64 without padding, or the bare base64, → bare base64 without padding. */
function normalizeFingerprint(fp: string): string {
  return fp.replace(/^SHA256:/i, '').replace(/=+$/, '');
}

/**
 * Download the configured files from the SFTP drop into a private temporary folder.
 * Verifies the host key when `hostKeySha256` is configured. Throws `SisPayloadError` naming a
 * missing file, `SisHttpError` (retryable, no status) when the server cannot be reached or
 * refuses the login; never includes credentials in messages.
 */
export async function openSftpFileSet(
  config: ESchoolPlusConnectorConfig,
  secrets: SftpSecrets,
  logger: Logger,
): Promise<FileSet> {
  const src = config.source;
  if (src.type !== 'sftp') throw new Error('openSftpFileSet needs an sftp source');
  const origin = `sftp://${src.host}:${src.port}${src.remoteDir.startsWith('/') ? '' : '/'}${src.remoteDir}`;
  const expected = src.hostKeySha256 ? normalizeFingerprint(src.hostKeySha256) : undefined;
  // Connection-level events go to our logger (the library's default is console output).
  const sftp = new SftpClient('eschoolplus', {
    error: (err: unknown) =>
      logger.debug(
        { origin, err: err instanceof Error ? err.message : String(err) },
        'SFTP connection error',
      ),
    end: () => undefined,
    close: () => undefined,
  });
  const dir = await mkdtemp(join(tmpdir(), 'gsync-esp-'));
  const cleanup = () => rm(dir, { recursive: true, force: true });
  try {
    try {
      await sftp.connect({
        host: src.host,
        port: src.port,
        username: secrets.username,
        ...(secrets.password !== undefined ? { password: secrets.password } : {}),
        ...(secrets.privateKey !== undefined ? { privateKey: secrets.privateKey } : {}),
        readyTimeout: src.timeoutMs,
        ...(expected
          ? {
              hostVerifier: (key: Buffer) =>
                normalizeFingerprint(createHash('sha256').update(key).digest('base64')) ===
                expected,
            }
          : {}),
      });
    } catch (err) {
      throw new SisHttpError(
        'SFTP',
        origin,
        undefined,
        `cannot connect or log in (${(err as { code?: string }).code ?? (err as Error).message.split('\n')[0] ?? 'error'})`,
      );
    }
    if (!expected) logger.warn({ origin }, 'SFTP host key not verified: set source.hostKeySha256');
    const listing = await sftp.list(src.remoteDir);
    const entries = listing
      .filter(e => e.type === '-')
      .map(e => ({ name: e.name, mtimeMs: e.modifyTime }));
    const files = new Map<ESchoolFileKind, ResolvedFile>();
    const patterns = configuredFiles(config).map(([, p]) => p);
    for (const [kind, pattern] of configuredFiles(config)) {
      const name = pickFile(pattern, entries, patterns);
      if (!name) throw missing(origin, kind, pattern);
      const local = join(dir, `${kind}-${name}`);
      await sftp.fastGet(posix.join(src.remoteDir, name), local);
      files.set(kind, { kind, name, path: local });
    }
    return { files, origin, dispose: cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  } finally {
    await sftp.end().catch(() => undefined);
  }
}
