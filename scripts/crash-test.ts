/**
 * The large crash test: `node dist/scripts/crash-test.js [--events 10000] [--kills 3]`.
 *
 * Clients fire system.event (each with its own idempotency key) into many sessions of a gateway
 * process; the gateway is SIGKILLed at random moments with calls in flight and restarted on the
 * same data dir; after each restart the clients resubmit what got no answer, with the same key,
 * so every event should land exactly once. Once all are answered the gateway is killed once more,
 * right after the last answer, and the store is read on a fresh start and counted against the
 * answers. Exits 1 when anything was lost, duplicated, stored under another id, or stored though
 * refused; 2 on a usage error or when the run overstays its time bound.
 *
 * test/e2e/crash.test.ts is the small version that runs with `npm test`.
 */
import { parseArgs } from 'node:util';
import { CrashWorkload, cleanup, seededRandom, startGatewayProcess, type CrashCounts } from '../test/helpers/gateway.js';

/** The whole run, kills and restarts included, must finish well within two minutes. */
const TIME_BOUND_MS = 115_000;

interface Options {
  events: number;
  kills: number;
  clients: number;
  sessions: number;
  inFlight: number;
  seed: number;
}

function usage(message: string): never {
  process.stderr.write(
    `crash-test: ${message}\nusage: node dist/scripts/crash-test.js [--events 10000] [--kills 3] [--clients 8] [--sessions 40] [--in-flight 16] [--seed N]\n`,
  );
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        events: { type: 'string', default: '10000' },
        kills: { type: 'string', default: '3' },
        clients: { type: 'string', default: '8' },
        // 250 events a session by default: under the default cap of 1000 pending, so none is dropped.
        sessions: { type: 'string', default: '40' },
        'in-flight': { type: 'string', default: '16' },
        seed: { type: 'string' },
      },
      strict: true,
    }));
  } catch (error) {
    usage((error as Error).message);
  }
  const int = (name: string, value: string | undefined, min: number): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer of at least ${min} (got ${JSON.stringify(value)})`);
    return n;
  };
  const options: Options = {
    events: int('events', values.events, 1),
    kills: int('kills', values.kills, 0),
    clients: int('clients', values.clients, 1),
    sessions: int('sessions', values.sessions, 1),
    inFlight: int('in-flight', values['in-flight'], 1),
    seed: values.seed === undefined ? Date.now() % 2_147_483_647 : int('seed', values.seed, 0),
  };
  if (options.events / options.sessions > 1000) usage('more than 1000 events a session would hit the pending cap: add --sessions');
  return options;
}

/**
 * Kill points, in answered calls: one at a random place in each of `kills` equal stretches of the
 * run, so the kills spread over it and each round has calls in flight when it ends.
 */
function killPoints(events: number, kills: number, random: () => number): number[] {
  const stretch = events / (kills + 1);
  return Array.from({ length: kills }, (_, k) => Math.floor((k + 0.5 + 0.8 * random()) * stretch));
}

function table(rows: [string, number][]): string {
  const width = Math.max(...rows.map(([, n]) => String(n).length));
  return rows.map(([name, n]) => `  ${name.padEnd(12)} ${String(n).padStart(width)}`).join('\n');
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2));
  const started = Date.now();
  const overtime = setTimeout(() => {
    process.stderr.write(`crash-test: still running after ${TIME_BOUND_MS / 1000} s; giving up\n`);
    process.exit(2);
  }, TIME_BOUND_MS);
  overtime.unref();

  const random = seededRandom(options.seed);
  const workload = new CrashWorkload({
    events: options.events,
    clients: options.clients,
    sessions: options.sessions,
    inFlightPerClient: options.inFlight,
  });
  process.stdout.write(
    `crash test: ${options.events} events, ${options.clients} clients x ${options.inFlight} in flight, ${options.sessions} sessions, ${options.kills} SIGKILLs (seed ${options.seed})\n`,
  );

  let gw = await startGatewayProcess();
  const { dataDir } = gw;
  let kills = 0;
  for (const killAt of killPoints(options.events, options.kills, random)) {
    const { inFlightAtKill, answeredAtKill } = await workload.round(gw, { resubmit: true, killAtAnswered: killAt });
    if (inFlightAtKill === null) break; // every event was answered before this kill point
    kills++;
    process.stdout.write(
      `  kill ${kills}: SIGKILL after ${answeredAtKill} answers with ${inFlightAtKill} calls in flight; ${workload.remaining} to resubmit or send after the restart\n`,
    );
    gw = await startGatewayProcess({ dataDir });
  }
  await workload.round(gw, { resubmit: true });
  if (workload.remaining > 0) throw new Error(`${workload.remaining} events were never answered although the gateway stayed up`);
  // Answers promise durability: a crash right after the last one must not cost anything.
  await gw.kill9();
  gw = await startGatewayProcess({ dataDir });
  const { counts, problems } = await workload.verify(gw);
  await gw.stop('SIGTERM');
  const seconds = ((Date.now() - started) / 1000).toFixed(1);

  const failed = (c: CrashCounts) => c.lost + c.duplicated + c.mismatched + c.refusedPresent + c.unknown > 0 || problems.length > 0;
  process.stdout.write(
    `${table([
      ['sent', counts.sent],
      ['answered', counts.answered],
      ['present', counts.present],
      ['lost', counts.lost],
      ['duplicated', counts.duplicated],
    ])}\n` +
      `  (${kills} kills, ${counts.duplicateAnswers} resubmissions found their event already stored, ` +
      `${counts.refused} refused, ${counts.mismatched} mismatched, ${counts.unknown} unknown; ${seconds} s)\n`,
  );
  for (const problem of problems.slice(0, 20)) process.stdout.write(`  problem: ${problem}\n`);
  if (problems.length > 20) process.stdout.write(`  ... and ${problems.length - 20} more\n`);
  return failed(counts) ? 1 : 0;
}

main()
  .then(
    async (code) => {
      await cleanup();
      process.exitCode = code;
    },
    async (error: unknown) => {
      process.stderr.write(`crash-test: ${(error as Error)?.stack ?? String(error)}\n`);
      await cleanup();
      process.exitCode = 2;
    },
  );
