/** `switchboard gateway`: run the service in the foreground until SIGINT/SIGTERM. */
import { DataDirError, resolveDataDir, TokenFileError, tokenPath } from '../config/data-dir.js';
import { DEFAULT_MAX_PENDING_PER_SESSION, ENV } from '../protocol/constants.js';
import { startGateway } from '../server/gateway.js';
import { StoreLockedError, StoreOpenError } from '../store/errors.js';
import { SCHEMA_VERSION } from '../store/migrations.js';
import { VERSION } from '../version.js';
import { dataDirOption, integerOption, rawOption } from './argv.js';
import { CliError, ExitCode } from './exit-codes.js';
import { writeLog } from './output.js';
import { STOP_SIGNALS, takeHeldSignals } from './stop-signals.js';

/** Under npm, a SIGINT this soon after another is the same Ctrl-C, forwarded (see the gateway's onSignal). */
export const SIGINT_ECHO_MS = 250;

export async function gateway(args: readonly string[]): Promise<ExitCode> {
  const port = integerOption(args, 'port', 0, 65_535);
  const maxPendingPerSession = integerOption(args, 'max-pending', 1, 1_000_000);
  const heartbeatSeconds = integerOption(args, 'heartbeat-interval', 1, 86_400);
  const retentionHours = integerOption(args, 'idempotency-retention', 1, 24 * 365);
  const maxConnectionsPerAddress = integerOption(args, 'max-connections-per-address', 1, 1_000_000);
  const maxConnectionsPerToken = integerOption(args, 'max-connections-per-token', 1, 1_000_000);
  const maxUnauthenticatedSockets = integerOption(args, 'max-unauthenticated-sockets', 1, 1_000_000);
  const minFreeDiskMiB = integerOption(args, 'min-free-disk', 0, 1_048_576);
  const chosen = dataDirOption(args);
  const dataDir = resolveDataDir(chosen?.value);
  const host = rawOption(args, 'host');
  // Best effort, all of it: once a pipe's reader is gone (`gateway 2>&1 | tee log`, then Ctrl-C),
  // a line that cannot be written must not stop the gateway, least of all its shutdown. Every
  // line names who wrote it, as in a log shared with other services.
  // Each line stamped with its time, in UTC: a log appended to a file (`2>> gateway.log`) has no
  // other clock, and the store's once-a-minute summaries mean little without one (QA).
  const log = (line: string) => writeLog(process.stderr, `${new Date().toISOString()} switchboard gateway: ${line}`);
  // Before the start, not after: a supervisor may signal while the gateway starts (a slow disk, a
  // loaded machine: QA saw starts of 9-17 s), and Node's default action ended it with 143, unsaid.
  // Each stop signal stops the gateway, and after the first, any of them forces the stop (a second
  // SIGHUP once killed the process unsaid, and a SIGHUP after a SIGINT or SIGTERM was ignored).
  let started = false;
  let signals = 0;
  let stop!: (received: NodeJS.Signals) => void;
  const signal = new Promise<NodeJS.Signals>((resolve) => (stop = resolve));
  // One listener per signal for the whole run, never swapped: signals that come while the event
  // loop is busy (a slow start) are dispatched later, to the listeners there are then, and a second
  // one went to a listener already removed, and was lost (review).
  // One Ctrl-C reaches a gateway run by npm (`npm start`, which sets npm_lifecycle_event) twice:
  // from the terminal, npm exec'ing it in its own process group, and again from npm, which forwards
  // what it gets (QA: every Ctrl-C forced the stop, exit 1). So there, the one SIGINT that follows
  // another within SIGINT_ECHO_MS is taken for it; a person presses again later to force the stop.
  // Run alone, two are two, however close (review: after a stalled start they come together).
  const forwardedByNpm = process.env['npm_lifecycle_event'] !== undefined;
  let echoUntil = Number.NEGATIVE_INFINITY;
  const onSignal = (received: NodeJS.Signals) => {
    if (received === 'SIGINT' && forwardedByNpm) {
      const now = performance.now();
      if (now < echoUntil) {
        echoUntil = Number.NEGATIVE_INFINITY;
        return;
      }
      echoUntil = now + SIGINT_ECHO_MS;
    }
    signals++;
    if (signals > 1) {
      // The operator will not wait: everything answered is already on disk.
      log(`${received} received while shutting down: stopped at once (exit ${ExitCode.GATEWAY_ERROR}), without waiting for the connections to close; every event answered is stored`);
      process.exit(ExitCode.GATEWAY_ERROR);
    }
    const why = received === 'SIGHUP' ? ' for a restart: clients are told 1012 and reconnect to the next gateway' : ': clients are told 1001';
    log(started ? `${received} received, shutting down${why} (again to force)` : `${received} received while starting: stopping once started (again to force)`);
    stop(received);
  };
  for (const name of STOP_SIGNALS) process.on(name, onSignal);
  for (const received of takeHeldSignals()) onSignal(received);
  let running;
  try {
    running = await startGateway({
      dataDir,
      log,
      ...(host === undefined ? {} : { host }),
      ...(port === undefined ? {} : { port }),
      ...(maxPendingPerSession === undefined ? {} : { maxPendingPerSession }),
      ...(heartbeatSeconds === undefined ? {} : { heartbeatIntervalMs: heartbeatSeconds * 1000 }),
      ...(retentionHours === undefined ? {} : { idempotencyRetentionMs: retentionHours * 3_600_000 }),
      ...(maxConnectionsPerAddress === undefined ? {} : { maxConnectionsPerAddress }),
      ...(maxConnectionsPerToken === undefined ? {} : { maxConnectionsPerToken }),
      ...(maxUnauthenticatedSockets === undefined ? {} : { maxUnauthenticatedSockets }),
      ...(minFreeDiskMiB === undefined ? {} : { minFreeDiskBytes: minFreeDiskMiB * 1_048_576 }),
    });
  } catch (error) {
    throw new CliError(ExitCode.GATEWAY_ERROR, startFailure(error, dataDir, chosen?.from));
  }
  started = true;
  // In the log too, with its time: a log read after a restart, or a kill -9 that left no "stopped"
  // line, showed no start at all (soak QA); and the settings an operator asks about first.
  log(`started: version ${VERSION} (store schema ${SCHEMA_VERSION}), pid ${process.pid}, ${running.url}, data dir ${dataDir}, max pending ${maxPendingPerSession ?? DEFAULT_MAX_PENDING_PER_SESSION} per session`);
  // On stdout, apart from the log on stderr: it is the answer a script waits for (the port that
  // --port 0 picked), and README.md says so. Not for a gateway already told to stop.
  const socket = running.socketPath === undefined ? '' : `, socket ${running.socketPath}`;
  if (signals === 0) writeLog(process.stdout, `switchboard gateway listening on ${running.url} (data dir ${dataDir}, token in ${tokenPath(dataDir)}${socket})`);
  const received = await signal;
  const restarting = received === 'SIGHUP';
  await running.close({ restarting });
  log(restarting ? `stopped for a restart (exit ${ExitCode.RESTART})` : 'stopped');
  return restarting ? ExitCode.RESTART : ExitCode.OK;
}

/** What to do about a data dir whose disk refused a write, by errno: Node's message names neither. */
const DISK_REFUSALS: Readonly<Record<string, string>> = {
  EROFS: 'its file system is mounted read-only: give a data dir on a writable one',
  ENOSPC: 'its disk is full: free some space, or give a data dir on another disk',
  EDQUOT: "its owner's disk quota is used up: free some space, or give a data dir on another disk",
  EFBIG: 'a file there would pass the largest file this process may write (ulimit -f): raise the limit',
  EACCES: 'this user may not write there: give the gateway a data dir of its own',
  EPERM: 'this user may not write there: give the gateway a data dir of its own',
};

/** `from`: the option or variable that chose the data dir; undefined for the default. */
export function startFailure(error: unknown, dataDir: string, from: string | undefined): string {
  const errno = error as NodeJS.ErrnoException;
  if (errno.code === 'EADDRINUSE') return `cannot listen: the port is already in use (${errno.message}); pick another with --port, or --port 0 for a free one`;
  // Not an address of this machine (a typo, another host's IP): only --host chooses it.
  if (errno.code === 'ENOTFOUND' || errno.code === 'EADDRNOTAVAIL') {
    return `cannot listen: --host is not an address of this machine (${errno.message}); give one of its addresses, 127.0.0.1 (the default) or 0.0.0.0 for all`;
  }
  // A name server that did not answer says nothing about the name: it may be right.
  if (errno.code === 'EAI_AGAIN') {
    return `cannot listen: --host could not be resolved now (${errno.message}); retry, or give an address (127.0.0.1, the default, or 0.0.0.0 for all)`;
  }
  // Refused a port (one below 1024 takes root); any other refusal is the data dir's (operator QA:
  // a mkdir refused named --port as well).
  if ((errno.code === 'EACCES' || errno.code === 'EPERM') && (errno.syscall === 'listen' || errno.syscall === 'bind')) {
    return `cannot listen: permission denied (${errno.message}); a port below 1024 takes root or CAP_NET_BIND_SERVICE: pick --port 1024 or above, or --port 0 for a free one`;
  }
  // A data dir that cannot be used: only here is it known how it was chosen, so how to choose another.
  const chosenBy = `(${from === undefined ? `the default data dir: choose another with --data-dir or ${ENV.dataDir}` : `the data dir was given by ${from}`})`;
  const diskRefusal = errno.code === undefined ? undefined : DISK_REFUSALS[errno.code];
  if (diskRefusal !== undefined) return `cannot start: the data dir ${dataDir} cannot be written (${errno.message}): ${diskRefusal} ${chosenBy}`;
  const message = `cannot start: ${errno.message ?? String(error)}`;
  if (!(error instanceof StoreLockedError || error instanceof StoreOpenError || error instanceof DataDirError || error instanceof TokenFileError)) {
    return message;
  }
  return `${message} ${chosenBy}`;
}
