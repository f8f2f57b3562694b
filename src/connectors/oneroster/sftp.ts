/**
 * Fetch a OneRoster CSV zip from an SFTP server (ssh2-sftp-client) into a local temporary
 * file. The server's host key is checked against the configured SHA-256 fingerprint when one
 * is given (what `ssh-keygen -lf` prints: base64, with or without `SHA256:`).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import SftpClient from 'ssh2-sftp-client';
import { ConfigError, SisHttpError } from '../../errors.js';

export interface SftpFetchOptions {
  host: string;
  port: number;
  username: string;
  password?: string | undefined;
  privateKey?: string | undefined;
  hostKeySha256?: string | undefined;
  /** A zip file, or a folder (the newest `*.zip` there is fetched). */
  remotePath: string;
  timeoutMs: number;
}

/** A downloaded file; `dispose()` removes it. */
export interface FetchedFile {
  path: string;
  /** Remote path it came from. */
  remotePath: string;
  dispose(): void;
}

/** OpenSSH-style SHA-256 fingerprint of a raw host key (base64, no padding). */
export function hostKeyFingerprint(key: Buffer): string {
  return createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

function normalizeFingerprint(f: string): string {
  return f
    .trim()
    .replace(/^SHA256:/i, '')
    .replace(/=+$/, '');
}

/**
 * Download the zip. Throws `ConfigError` when authentication or the host key check fails
 * (never retried), `SisHttpError` (retryable, status undefined) for connection and transfer
 * failures, naming the host and path but never the credentials.
 */
export async function fetchFromSftp(opts: SftpFetchOptions): Promise<FetchedFile> {
  const sftp = new SftpClient('guardian-sync');
  const where = `sftp://${opts.host}:${opts.port}${opts.remotePath}`;
  let hostKeyMismatch = false;
  const expected = opts.hostKeySha256 ? normalizeFingerprint(opts.hostKeySha256) : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'gsync-sftp-'));
  const dispose = () => rmSync(dir, { recursive: true, force: true });
  try {
    try {
      await sftp.connect({
        host: opts.host,
        port: opts.port,
        username: opts.username,
        ...(opts.password !== undefined ? { password: opts.password } : {}),
        ...(opts.privateKey !== undefined ? { privateKey: opts.privateKey } : {}),
        readyTimeout: opts.timeoutMs,
        retries: 0,
        ...(expected !== undefined
          ? {
              hostVerifier: (key: Buffer): boolean => {
                const ok = hostKeyFingerprint(key) === expected;
                if (!ok) hostKeyMismatch = true;
                return ok;
              },
            }
          : {}),
      });
    } catch (err) {
      if (hostKeyMismatch)
        throw new ConfigError(`${where}: the server's host key does not match hostKeySha256`);
      const msg = (err as Error).message;
      if (/authentication|auth methods/i.test(msg))
        throw new ConfigError(
          `${where}: authentication failed (check the SFTP username/password/key variables)`,
        );
      throw new SisHttpError('SFTP', where, undefined, `cannot connect: ${msg}`);
    }
    let remote = opts.remotePath;
    try {
      const st = await sftp.stat(remote);
      if (st.isDirectory) {
        const zips = (
          await sftp.list(remote, f => f.type === '-' && f.name.toLowerCase().endsWith('.zip'))
        ).sort((a, b) => b.modifyTime - a.modifyTime || b.name.localeCompare(a.name));
        const newest = zips[0];
        if (!newest) throw new SisHttpError('SFTP', where, 404, 'no *.zip file in the folder');
        remote = posix.join(remote, newest.name);
      }
      const local = join(dir, 'oneroster.zip');
      await sftp.fastGet(remote, local);
      return { path: local, remotePath: remote, dispose };
    } catch (err) {
      if (err instanceof SisHttpError) throw err;
      throw new SisHttpError(
        'SFTP',
        where,
        undefined,
        `download failed: ${(err as Error).message}`,
      );
    }
  } catch (err) {
    dispose();
    throw err;
  } finally {
    await sftp.end().catch(() => undefined);
  }
}
