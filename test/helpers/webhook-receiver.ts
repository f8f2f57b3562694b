/**
 * A real webhook receiver for tests (node:http on 127.0.0.1:0) whose behaviour the test
 * switches: answer 200 (`ok`), 503 (`fail`), or never answer (`hang`). It keeps every request
 * (raw body, headers, what it answered) and emits `request` and `answered`, so tests wait for
 * events with deadlines instead of sleeping (`until`).
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type ReceiverMode = 'ok' | 'fail' | 'hang';

export interface ReceivedRequest {
  headers: IncomingHttpHeaders;
  raw: Buffer;
  /** Sequence numbers of the entries in the body, in body order. */
  seqs: number[];
  /** What the receiver answered; `hung` until it answers (never, in `hang` mode). */
  answered: 200 | 503 | 'hung';
  /** The connection closed before an answer (the sender timed out or aborted). */
  abandoned: boolean;
}

export interface WebhookReceiver {
  url: string;
  mode: ReceiverMode;
  requests: ReceivedRequest[];
  events: EventEmitter;
  /** Requests being held open right now (`hang` mode, sender still waiting). */
  hanging(): number;
  close(): Promise<void>;
}

/** Start a receiver listening on 127.0.0.1 (random port), in `mode`. */
export async function startWebhookReceiver(mode: ReceiverMode): Promise<WebhookReceiver> {
  const events = new EventEmitter();
  const requests: ReceivedRequest[] = [];
  const held = new Set<ServerResponse>();
  const r: WebhookReceiver = {
    url: '',
    mode,
    requests,
    events,
    hanging: () => held.size,
    async close() {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>(resolve => server.close(() => resolve()));
    },
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      let seqs: number[];
      try {
        const body = JSON.parse(raw.toString('utf8')) as { entries?: { seq: number }[] };
        seqs = (body.entries ?? []).map(e => e.seq);
      } catch {
        seqs = [];
      }
      const rec: ReceivedRequest = {
        headers: req.headers,
        raw,
        seqs,
        answered: 'hung',
        abandoned: false,
      };
      requests.push(rec);
      const mode = r.mode;
      if (mode === 'hang') {
        held.add(res);
        res.on('close', () => {
          held.delete(res);
          rec.abandoned = true;
          events.emit('abandoned', rec);
        });
        events.emit('request', rec);
        return;
      }
      rec.answered = mode === 'ok' ? 200 : 503;
      events.emit('request', rec);
      res.writeHead(rec.answered, { 'content-type': 'text/plain' });
      res.end(mode === 'ok' ? 'ok' : 'unavailable', () => events.emit('answered', rec));
    });
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/guardian-sync`;
  return r;
}

/**
 * Resolve when `check()` is true: checked now and after each of `events` on `emitter`.
 * Rejects with `what` when `timeoutMs` passes first, or when `check` throws.
 */
export function until(
  emitter: EventEmitter,
  events: readonly string[],
  check: () => boolean,
  what: string,
  timeoutMs = 20000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: unknown) => {
      clearTimeout(timer);
      for (const e of events) emitter.off(e, onEvent);
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error('check failed'));
    };
    const onEvent = () => {
      try {
        if (check()) done();
      } catch (err) {
        done(err);
      }
    };
    const timer = setTimeout(
      () => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
    for (const e of events) emitter.on(e, onEvent);
    onEvent();
  });
}
