/**
 * Sending mail through SMTP with nodemailer, and deciding what a failure means for
 * exactly-once delivery:
 *
 * - the server answered 4xx (or 503)        → `temporary`: not delivered, retry later;
 * - the server answered 5xx                 → `permanent`: not delivered, never will be;
 * - no answer, and the message body had not been handed to the server yet
 *   (refused/failed connection, TLS, auth, drop during MAIL FROM/RCPT TO) → `temporary`;
 * - no answer after the whole body was handed over (connection dropped or timed out after
 *   DATA, before the server's reply)        → `ambiguous`: the server may have accepted it.
 *
 * "Handed over" is observed with a nodemailer `stream` plugin: a process function on the
 * compiled message notes the moment SMTP's DATA stream has read the last byte; the terminating
 * `.` follows it. Reply codes per RFC 5321 §4.2.1; nodemailer error fields per its
 * `NodemailerError` (responseCode, code, command).
 */
import { createTransport } from 'nodemailer';
import { GuardianSyncError } from '../errors.js';

export type SmtpFailureKind = 'temporary' | 'permanent' | 'ambiguous';

/** A failed send, classified (see the module header). Never carries the SMTP URL. */
export class SmtpSendError extends GuardianSyncError {
  readonly retryable: boolean;
  constructor(
    readonly kind: SmtpFailureKind,
    readonly reason: string,
    readonly responseCode?: number,
  ) {
    super(`SMTP ${kind} failure: ${reason}`);
    this.retryable = kind === 'temporary';
  }
}

/** Errors nodemailer raises before talking to the server about this message's content. */
const LOCAL_MESSAGE_ERRORS = new Set([
  'EENVELOPE',
  'EMESSAGE',
  'ESTREAM',
  'ECONFIG',
  'EMAXRECIPIENTS',
]);

/**
 * Classify a nodemailer error. `bodyHandedOver`: the DATA stream had read the whole message.
 */
export function classifySmtpError(err: unknown, bodyHandedOver: boolean): SmtpSendError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as {
    message?: unknown;
    code?: unknown;
    command?: unknown;
    response?: unknown;
    responseCode?: unknown;
  };
  const rc = typeof e.responseCode === 'number' ? e.responseCode : undefined;
  const code = typeof e.code === 'string' ? e.code : undefined;
  const command = typeof e.command === 'string' ? e.command : undefined;
  const response = typeof e.response === 'string' ? e.response.slice(0, 300) : undefined;
  const message = typeof e.message === 'string' ? e.message : String(err);
  const where = command ? ` (${command})` : '';
  if (rc !== undefined) {
    const reason = `${response ?? `${rc} ${message}`}${where}`;
    // Authentication problems are the configuration's, not this message's: retry, so that a
    // fixed password lets the queued emails go out.
    if (code === 'EAUTH') return new SmtpSendError('temporary', reason, rc);
    if (rc >= 500 && rc !== 503) return new SmtpSendError('permanent', reason, rc);
    return new SmtpSendError('temporary', reason, rc);
  }
  const reason = `${code ? `${code}: ` : ''}${message}${where}`;
  if (bodyHandedOver)
    return new SmtpSendError(
      'ambiguous',
      `connection lost after the message was sent, before the server confirmed it: ${reason}`,
    );
  if (code && LOCAL_MESSAGE_ERRORS.has(code)) return new SmtpSendError('permanent', reason);
  return new SmtpSendError('temporary', reason);
}

export interface OutgoingMail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  /** `<…@…>`; also the key the send is tracked by. */
  messageId: string;
}

export interface Mailer {
  /** Send one message; throws `SmtpSendError`. Resolves with the server's reply. */
  send(mail: OutgoingMail): Promise<{ messageId: string; response: string }>;
  /** Close pooled connections (a no-op for the default one-connection-per-message mode). */
  close(): void;
}

/** Timeouts (ms) bounding one send attempt; the send lease in the store is longer. */
export const SMTP_TIMEOUTS = {
  connectionTimeout: 30_000,
  greetingTimeout: 30_000,
  socketTimeout: 60_000,
} as const;

/**
 * A mailer for `smtpUrl` (`smtp://` / `smtps://`, nodemailer URL options in the query,
 * e.g. `?pool=true&maxConnections=5`). Never logs or returns the URL (it may hold a password).
 */
export function createMailer(smtpUrl: string): Mailer {
  const transport = createTransport({ url: smtpUrl, ...SMTP_TIMEOUTS });
  const onHandedOver = new Map<string, () => void>();
  transport.use('stream', (mail, done) => {
    const id = mail.data.messageId;
    const mark = typeof id === 'string' ? onHandedOver.get(id) : undefined;
    if (mark)
      mail.message.processFunc(input => {
        // 'end' of the last stage: the DATA stream has read the whole message.
        input.once('end', mark);
        return input;
      });
    done();
  });
  return {
    async send(mail) {
      let handedOver = false;
      onHandedOver.set(mail.messageId, () => {
        handedOver = true;
      });
      try {
        const info = (await transport.sendMail({
          from: mail.from,
          to: mail.to,
          subject: mail.subject,
          text: mail.text,
          html: mail.html,
          messageId: mail.messageId,
        })) as { response?: unknown };
        return {
          messageId: mail.messageId,
          response: typeof info.response === 'string' ? info.response : '',
        };
      } catch (err) {
        throw classifySmtpError(err, handedOver);
      } finally {
        onHandedOver.delete(mail.messageId);
      }
    },
    close() {
      transport.close();
    },
  };
}
