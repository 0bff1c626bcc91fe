/**
 * Push latency: subscribers and a publisher in one process, so send and receive times come from
 * the same clock (performance.now()). The publisher paces system.event calls at `rate` per second
 * over `sessions` sessions, writing its send time into the event text; each subscriber computes
 * now - sent when it parses the pushed frame. Send time is taken just before the frame is handed
 * to the socket, so the figure covers publisher -> server -> (durable commit) -> subscriber.
 *
 * Config (JSON in argv[2]): { server: 'switchboard' | 'relay', url, token, sessions, subscribers,
 * target: 'session' | 'agent', agentId, rate, publishers, warmupMs, durationMs }.
 * With target 'session', subscriber i follows session i % sessions; with 'agent', every subscriber
 * follows the whole agent (fan-out). Replies "result" { samples (ms, one per push sent after the
 * warm-up), expected, ... }.
 */
import WebSocket from 'ws';
import { failTo, tell } from '../lib/child.js';
import { closeAll, open, openMany } from '../lib/connect.js';
import { eventText, sessionKeys, systemEventFrame } from '../lib/workload.js';

/** The load's shape: what the latency part varies between its figures. */
export interface LatencyShape {
  sessions: number;
  subscribers: number;
  target: 'session' | 'agent';
  agentId: string;
  rate: number;
  publishers: number;
}

interface Config extends LatencyShape {
  server: 'switchboard' | 'relay';
  url: string;
  token: string;
  warmupMs: number;
  durationMs: number;
}

/** Pacing tick: the publisher catches up to `rate * elapsed` every tick, so bursts stay tiny. */
const TICK_MS = 1;
/** Time for the last pushes to arrive once publishing stops. */
const SETTLE_MS = 1_000;
const STAMP_RE = /^sent=(\d+\.\d+) /;

async function main(config: Config): Promise<void> {
  const keys = sessionKeys(config.agentId, config.sessions);
  const samples: number[] = [];
  let measureFrom = Number.POSITIVE_INFINITY;
  let received = 0;
  let unexpected = 0;
  let firstUnexpected: string | undefined;

  const onPush = (data: Buffer) => {
    const now = performance.now();
    const message = JSON.parse(data.toString()) as {
      method?: string;
      params?: { text?: string; event?: { text?: string } };
    };
    // switchboard pushes session.event { event: { text } }; the relay forwards the request itself.
    const text = message.method === 'session.event' ? message.params?.event?.text : message.method === 'system.event' ? message.params?.text : undefined;
    const stamp = text === undefined ? null : STAMP_RE.exec(text);
    if (!stamp) {
      unexpected++;
      firstUnexpected ??= data.toString().slice(0, 300);
      return;
    }
    received++;
    const sent = Number(stamp[1]);
    if (sent >= measureFrom) samples.push(Math.round((now - sent) * 1000) / 1000);
  };

  const subscribers = await openMany(config.subscribers, 16, async (index) => {
    const key = config.target === 'agent' ? config.agentId : keys[index % keys.length]!;
    const socket =
      config.server === 'relay'
        ? await open(`${config.url}/sub/${encodeURIComponent(key)}`, { token: config.token })
        : await open(config.url, { token: config.token });
    if (config.server === 'switchboard') await subscribe(socket, config.target === 'agent' ? { agentId: key } : { sessionKey: key });
    socket.on('message', onPush);
    return socket;
  });

  const publishers = await openMany(config.publishers, 4, () => open(config.url, { token: config.token }));
  let answers = 0;
  let publishErrors = 0;
  let firstPublishError: string | undefined;
  for (const publisher of publishers) {
    publisher.on('message', (data: Buffer) => {
      answers++;
      if (data.includes('"error":')) {
        publishErrors++;
        firstPublishError ??= data.toString().slice(0, 300);
      }
    });
  }

  let sent = 0;
  let sentMeasured = 0;
  const started = performance.now();
  measureFrom = started + config.warmupMs;
  const stopAt = measureFrom + config.durationMs;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.min(Math.floor(((now - started) * config.rate) / 1000), Math.floor(((stopAt - started) * config.rate) / 1000));
      while (sent < due) {
        const id = ++sent;
        const publisher = publishers[id % publishers.length]!;
        const key = keys[id % keys.length]!;
        const at = performance.now();
        if (at >= measureFrom) sentMeasured++;
        publisher.send(systemEventFrame(id, eventText(`sent=${at.toFixed(4)} event ${id}:`), key));
      }
      if (now >= stopAt) resolve();
      else setTimeout(tick, TICK_MS);
    };
    tick();
  });
  await sleep(SETTLE_MS);

  const perEvent = config.target === 'agent' ? config.subscribers : config.subscribers / config.sessions;
  tell({
    type: 'result',
    samples,
    sent,
    sentMeasured,
    expected: sentMeasured * perEvent,
    received,
    answers,
    publishErrors,
    firstPublishError: firstPublishError ?? null,
    unexpected,
    firstUnexpected: firstUnexpected ?? null,
    seconds: config.durationMs / 1000,
  });
  await closeAll([...publishers, ...subscribers]);
}

/** session.subscribe on a raw socket; resolves once the gateway answers with a result. */
function subscribe(socket: WebSocket, params: { sessionKey: string } | { agentId: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session.subscribe', params }));
    const onMessage = (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number; error?: unknown };
      if (message.id !== 1) return;
      socket.off('message', onMessage);
      if (message.error) reject(new Error(`session.subscribe failed: ${JSON.stringify(message.error)}`));
      else resolve();
    };
    socket.on('message', onMessage);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main(JSON.parse(process.argv[2] ?? '{}') as Config).then(
  () => process.exit(0),
  failTo('bench load latency'),
);
