/**
 * A real, read-only SFTP server on loopback (ssh2 `Server`) serving one local folder, for
 * tests of SFTP pickups. Password authentication; an ed25519 host key generated per server
 * (its SHA-256 fingerprint is returned for host-key verification). Paths are resolved inside
 * the folder (`/` and `.` are its root); anything outside is refused.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  openSync,
  readSync,
  readdirSync,
  statSync,
  type Stats,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join, posix, resolve, sep } from 'node:path';
import ssh2 from 'ssh2';

const { Server, utils } = ssh2;
const { STATUS_CODE } = utils.sftp;

export interface TestSftpServer {
  host: string;
  port: number;
  username: string;
  password: string;
  /** Base64 SHA-256 of the host key (as `ssh-keygen -l` prints it, without `SHA256:`). */
  hostKeySha256: string;
  /** Successful logins so far. */
  logins: number;
  close(): Promise<void>;
}

function attrsOf(s: Stats) {
  return {
    mode: s.mode,
    uid: s.uid,
    gid: s.gid,
    size: s.size,
    atime: Math.floor(s.atimeMs / 1000),
    mtime: Math.floor(s.mtimeMs / 1000),
  };
}

/** Start the server on 127.0.0.1 (random port) serving `root`. */
export async function startTestSftpServer(
  root: string,
  creds: { username?: string; password?: string } = {},
): Promise<TestSftpServer> {
  const username = creds.username ?? 'district';
  const password = creds.password ?? 'drop-secret';
  const keys = utils.generateKeyPairSync('ed25519');
  const parsed = utils.parseKey(keys.private);
  if (parsed instanceof Error) throw parsed;
  const hostKeySha256 = createHash('sha256')
    .update(parsed.getPublicSSH())
    .digest('base64')
    .replace(/=+$/, '');
  const base = resolve(root);
  const inside = (p: string): string | undefined => {
    const full = resolve(base, `.${posix.resolve('/', p)}`);
    return full === base || full.startsWith(base + sep) ? full : undefined;
  };
  const state = { logins: 0 };

  const server = new Server({ hostKeys: [keys.private] }, client => {
    client
      .on('authentication', ctx => {
        if (ctx.method === 'password' && ctx.username === username && ctx.password === password) {
          state.logins++;
          ctx.accept();
        } else ctx.reject(['password']);
      })
      .on('ready', () => {
        client.on('session', accept => {
          const session = accept();
          session.on('sftp', acceptSftp => {
            const sftp = acceptSftp();
            const files = new Map<number, number>(); // handle → fd
            const dirs = new Map<number, { path: string; done: boolean }>();
            let next = 1;
            const handle = (n: number) => {
              const b = Buffer.alloc(4);
              b.writeUInt32BE(n);
              return b;
            };
            const idOf = (b: Buffer) => (b.length === 4 ? b.readUInt32BE(0) : -1);
            sftp.on('REALPATH', (id, p) => {
              const full = inside(p);
              if (!full) return sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
              const rel = '/' + full.slice(base.length).split(sep).filter(Boolean).join('/');
              sftp.name(id, [{ filename: rel, longname: rel, attrs: attrsOf(statSync(full)) }]);
            });
            const stat = (id: number, p: string) => {
              const full = inside(p);
              try {
                if (!full) throw new Error('outside');
                sftp.attrs(id, attrsOf(statSync(full)));
              } catch {
                sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
              }
            };
            sftp.on('STAT', stat);
            sftp.on('LSTAT', stat);
            sftp.on('OPENDIR', (id, p) => {
              const full = inside(p);
              if (!full) return sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
              const n = next++;
              dirs.set(n, { path: full, done: false });
              sftp.handle(id, handle(n));
            });
            sftp.on('READDIR', (id, h) => {
              const d = dirs.get(idOf(h));
              if (!d) return sftp.status(id, STATUS_CODE.FAILURE);
              if (d.done) return sftp.status(id, STATUS_CODE.EOF);
              d.done = true;
              sftp.name(
                id,
                readdirSync(d.path).map(name => {
                  const st = statSync(join(d.path, name));
                  // `ls -l` style: clients read the entry type from its first character.
                  const type = st.isDirectory() ? 'd' : '-';
                  return {
                    filename: name,
                    longname: `${type}rw-r--r-- 1 district district ${st.size} Jan 1 00:00 ${name}`,
                    attrs: attrsOf(st),
                  };
                }),
              );
            });
            sftp.on('OPEN', (id, p, flags) => {
              const full = inside(p);
              if (!full || flags !== Number(utils.sftp.OPEN_MODE.READ))
                return sftp.status(id, STATUS_CODE.PERMISSION_DENIED);
              try {
                const n = next++;
                files.set(n, openSync(full, 'r'));
                sftp.handle(id, handle(n));
              } catch {
                sftp.status(id, STATUS_CODE.NO_SUCH_FILE);
              }
            });
            sftp.on('FSTAT', (id, h) => {
              const fd = files.get(idOf(h));
              if (fd === undefined) return sftp.status(id, STATUS_CODE.FAILURE);
              sftp.attrs(id, attrsOf(fstatSync(fd)));
            });
            sftp.on('READ', (id, h, offset, length) => {
              const fd = files.get(idOf(h));
              if (fd === undefined) return sftp.status(id, STATUS_CODE.FAILURE);
              const buf = Buffer.alloc(length);
              const n = readSync(fd, buf, 0, length, offset);
              if (n === 0) return sftp.status(id, STATUS_CODE.EOF);
              sftp.data(id, buf.subarray(0, n));
            });
            sftp.on('CLOSE', (id, h) => {
              const k = idOf(h);
              const fd = files.get(k);
              if (fd !== undefined) {
                closeSync(fd);
                files.delete(k);
              }
              dirs.delete(k);
              sftp.status(id, STATUS_CODE.OK);
            });
          });
        });
      })
      .on('error', () => {
        /* a client that disconnects abruptly is not a test failure */
      });
  });
  await new Promise<void>(r => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    host: '127.0.0.1',
    port,
    username,
    password,
    hostKeySha256,
    get logins() {
      return state.logins;
    },
    close: () =>
      new Promise<void>(r => {
        server.close(() => r());
      }),
  };
}
