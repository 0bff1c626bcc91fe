/**
 * Closed-loop load: `connections` sockets, each keeping `inFlight` system.event calls in flight
 * (a new call as soon as an answer arrives). Counts answers inside the measured window, after a
 * warm-up. Answers are counted, not parsed (beyond spotting errors), so the client costs the same
 * whatever server answers.
 *
 * Config (JSON in argv[2]): { url, token, connections, inFlight, sessions, warmupMs, durationMs }.
 * Replies "result" { calls, seconds, rate, total, errors, firstError }.
 */
import type WebSocket from 'ws';
import { failTo, tell } from '../lib/child.js';
import { closeAll, open, openMany } from '../lib/connect.js';
import { eventText, sessionKeys, systemEventFrame } from '../lib/workload.js';

interface Config {
  url: string;
  token: string;
  connections: number;
  inFlight: number;
  sessions: number;
  warmupMs: number;
  durationMs: number;
}

/** How long in-flight calls get to answer once sending stops. */
const DRAIN_TIMEOUT_MS = 10_000;

async function main(config: Config): Promise<void> {
  const keys = sessionKeys('bench', config.sessions);
  const sockets = await openMany(config.connections, 16, () => open(config.url, { token: config.token }));
  let phase: 'warmup' | 'measure' | 'drain' = 'warmup';
  let measured = 0;
  let total = 0;
  let outstanding = 0;
  let errors = 0;
  let firstError: string | undefined;
  let nextId = 1;
  let onDrained: (() => void) | undefined;

  const sendOne = (socket: WebSocket, connection: number) => {
    const id = nextId++;
    // Sessions are spread so concurrent calls hit different sessions, as real traffic would.
    const key = keys[(id * 7 + connection) % keys.length]!;
    socket.send(systemEventFrame(id, eventText(`call ${id} from connection ${connection}:`), key));
    outstanding++;
  };

  sockets.forEach((socket, connection) => {
    socket.on('message', (data: Buffer) => {
      outstanding--;
      total++;
      if (phase === 'measure') measured++;
      // An answer carries "result" or "error" after its id; an echo carries "method".
      if (data.includes('"error":')) {
        errors++;
        firstError ??= data.toString().slice(0, 300);
      }
      if (phase !== 'drain') sendOne(socket, connection);
      else if (outstanding === 0) onDrained?.();
    });
    for (let i = 0; i < config.inFlight; i++) sendOne(socket, connection);
  });

  await sleep(config.warmupMs);
  phase = 'measure';
  const started = performance.now();
  await sleep(config.durationMs);
  const seconds = (performance.now() - started) / 1000;
  const calls = measured;
  phase = 'drain';
  if (outstanding > 0) {
    await new Promise<void>((resolve) => {
      onDrained = resolve;
      setTimeout(resolve, DRAIN_TIMEOUT_MS);
    });
  }
  await closeAll(sockets);
  tell({ type: 'result', calls, seconds, rate: calls / seconds, total, unanswered: outstanding, errors, firstError: firstError ?? null });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

main(JSON.parse(process.argv[2] ?? '{}') as Config).then(
  () => process.exit(0),
  failTo('bench load throughput'),
);
