/**
 * A local SMTP catcher for tests and the demo: a real `smtp-server` on loopback that keeps
 * every accepted message (decoded enough to assert on: recipients, subject, text and HTML
 * bodies) and can inject faults: a 4xx/5xx reply at RCPT TO or after DATA, or a connection
 * dropped after the whole message arrived (the "maybe sent" case).
 *
 * `smtp-server` is a devDependency: import this module dynamically from non-test code.
 * The MIME reader below only understands what nodemailer produces (multipart/alternative,
 * quoted-printable/base64 bodies, RFC 2047 encoded words): it is a test aid, not a parser.
 */
import { EventEmitter, once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerSession } from 'smtp-server';

/** What the catcher does instead of accepting: reply with an SMTP error, or drop the connection. */
export type SmtpFault = { reply: number; message?: string } | 'drop';

export interface CaughtMessage {
  from: string;
  recipients: string[];
  raw: string;
  headers: Map<string, string>;
  subject: string;
  text: string;
  html: string;
}

export interface SmtpCatcherOptions {
  /** Decide per recipient (RCPT TO); undefined accepts. */
  onRcpt?: (address: string) => SmtpFault | undefined;
  /** Decide after the whole message arrived; undefined accepts. */
  onData?: (message: CaughtMessage) => SmtpFault | undefined;
  /** Keep messages in `messages` (default true; the demo only counts). */
  keepMessages?: boolean;
}

export interface SmtpCatcher {
  /** `smtp://127.0.0.1:<port>` */
  url: string;
  /** Accepted messages, in arrival order. */
  messages: CaughtMessage[];
  /** Accepted / refused / dropped deliveries so far. */
  stats: { accepted: number; refused: number; dropped: number };
  /** Resolve once `n` messages were accepted in total; rejects after `timeoutMs`. */
  waitForAccepted(n: number, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function smtpError(f: { reply: number; message?: string }): Error & { responseCode: number } {
  const e = new Error(f.message ?? `fault injected by the test (${f.reply})`) as Error & {
    responseCode: number;
  };
  e.responseCode = f.reply;
  return e;
}

/** Start a catcher on a free loopback port. */
export async function startSmtpCatcher(opts: SmtpCatcherOptions = {}): Promise<SmtpCatcher> {
  const events = new EventEmitter();
  const messages: CaughtMessage[] = [];
  const stats = { accepted: 0, refused: 0, dropped: 0 };
  const dropSession = (session: SMTPServerSession) => {
    for (const c of server.connections) if (c.session.id === session.id) c._socket.destroy();
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    disableReverseLookup: true,
    onRcptTo(address, session, callback) {
      const f = opts.onRcpt?.(address.address);
      if (f === 'drop') {
        stats.dropped++;
        dropSession(session);
        return;
      }
      if (f) {
        stats.refused++;
        return callback(smtpError(f));
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        const msg = readMessage(
          raw,
          session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          session.envelope.rcptTo.map(r => r.address),
        );
        const f = opts.onData?.(msg);
        if (f === 'drop') {
          stats.dropped++;
          dropSession(session);
          return;
        }
        if (f) {
          stats.refused++;
          return callback(smtpError(f));
        }
        stats.accepted++;
        if (opts.keepMessages !== false) messages.push(msg);
        events.emit('accepted');
        callback();
      });
    },
  });
  server.listen(0, '127.0.0.1');
  await once(server.server, 'listening');
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}`,
    messages,
    stats,
    async waitForAccepted(n, timeoutMs = 15000) {
      if (stats.accepted >= n) return;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          events.off('accepted', check);
          reject(
            new Error(`SMTP catcher: ${stats.accepted} of ${n} messages within ${timeoutMs} ms`),
          );
        }, timeoutMs);
        function check() {
          if (stats.accepted < n) return;
          clearTimeout(timer);
          events.off('accepted', check);
          resolve();
        }
        events.on('accepted', check);
      });
    },
    close() {
      return new Promise<void>(resolve => server.close(() => resolve()));
    },
  };
}

// --- a minimal MIME reader for what nodemailer writes ----------------------------------

function splitHead(raw: string): { headers: Map<string, string>; body: string } {
  const at = raw.indexOf('\r\n\r\n');
  const head = at === -1 ? raw : raw.slice(0, at);
  const body = at === -1 ? '' : raw.slice(at + 4);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r\n[ \t]+/g, ' ').split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return { headers, body };
}

/** RFC 2047 encoded words (B and Q), UTF-8. */
export function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_m, _cs: string, enc: string, data: string) =>
      enc.toUpperCase() === 'B'
        ? Buffer.from(data, 'base64').toString('utf8')
        : qpBytes(data.replace(/_/g, ' ')).toString('utf8'),
    );
}

/** Quoted-printable (and Q-word) bytes; the input is 7-bit ASCII by definition. */
function qpBytes(s: string): Buffer {
  return Buffer.from(
    s.replace(/=([0-9A-Fa-f]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16))),
    'latin1',
  );
}

function decodeBody(body: string, encoding: string | undefined): string {
  const enc = (encoding ?? '7bit').toLowerCase();
  if (enc === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (enc === 'quoted-printable') return qpBytes(body.replace(/=\r\n/g, '')).toString('utf8');
  return body;
}

function collectParts(
  headers: Map<string, string>,
  body: string,
  into: { text: string; html: string },
): void {
  const type = (headers.get('content-type') ?? 'text/plain').toLowerCase();
  if (type.startsWith('multipart/')) {
    const boundary = /boundary="?([^";]+)"?/i.exec(headers.get('content-type') ?? '')?.[1];
    if (!boundary) return;
    for (const part of body.split(`--${boundary}`).slice(1)) {
      if (part.startsWith('--')) break;
      const p = splitHead(part.replace(/^\r\n/, ''));
      collectParts(p.headers, p.body.replace(/\r\n$/, ''), into);
    }
    return;
  }
  const content = decodeBody(body, headers.get('content-transfer-encoding'));
  if (type.startsWith('text/html')) into.html += content;
  else if (type.startsWith('text/plain')) into.text += content;
}

/** Decode a raw message into headers, subject and the text/HTML bodies. */
export function readMessage(raw: string, from: string, recipients: string[]): CaughtMessage {
  const { headers, body } = splitHead(raw);
  const parts = { text: '', html: '' };
  collectParts(headers, body, parts);
  return {
    from,
    recipients,
    raw,
    headers,
    subject: decodeWords(headers.get('subject') ?? ''),
    text: parts.text,
    html: parts.html,
  };
}
