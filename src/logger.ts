/** One pino root logger; callers bind scope with `logger.child({...})`, never by string. */
import { pino, type Logger } from 'pino';

/** Paths redacted from every log line: secrets and personal data never reach logs. */
export const REDACT_PATHS = [
  'password',
  'clientSecret',
  'token',
  'access_token',
  'authorization',
  'headers.authorization',
  '*.password',
  '*.clientSecret',
  '*.email',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
}
