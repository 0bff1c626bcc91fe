/**
 * `switchboard session watch`: the CLI's long-running consumer. Unlike the one-shot commands it
 * holds a WebSocket through the client library, so it lives apart from them and their start-up.
 */
import { onAbort } from '../client/abort.js';
import { connect, type ReconnectChange, type SwitchboardClient } from '../client/client.js';
import { RpcCallError } from '../client/errors.js';
import { flagOption, integerOption, rawOption } from './argv.js';
import { connectionSettings, explain, gatewayRefused } from './client-commands.js';
import { ExitCode, outputFailed, usageError, type CliError } from './exit-codes.js';
import { printable } from '../protocol/printable.js';
import { formatWatchedEvent, printableStrings } from './format.js';
import type { StoredEvent } from '../protocol/schemas.js';
import { writeLog, writeOut } from './output.js';

type Args = readonly string[];

/**
 * Streams events until interrupted or until no one reads stdout any more; reconnects (and
 * resumes) when the gateway restarts. With --ack an event is acked only once stdout took its
 * line: an event whose line could not be written stays pending for the next watcher.
 */
export async function sessionWatch(args: Args): Promise<ExitCode> {
  const sessionKey = rawOption(args, 'session-key');
  const agentId = rawOption(args, 'agent');
  if (sessionKey !== undefined && agentId !== undefined) throw usageError('give --session-key or --agent, not both');
  const after = integerOption(args, 'after', 0);
  if (after !== undefined && sessionKey === undefined) throw usageError('--after needs --session-key (a seq belongs to one session)');
  // Neither: every session of the token's agent (main for the admin token), as the gateway takes it.
  const target = sessionKey !== undefined ? { sessionKey } : agentId !== undefined ? { agentId } : {};
  const json = flagOption(args, 'json');
  const acking = flagOption(args, 'ack');
  const settings = connectionSettings(args);
  const { url, token, timeoutMs } = settings;
  // From the start, not once connected: a watch stopped by a signal exits 0 (README.md), also
  // while it is still connecting to a gateway that does not answer, or subscribing.
  const interrupted = new AbortController();
  const stop = () => interrupted.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  let client: SwitchboardClient | undefined;
  // The last seq printed of each session: an AFTER_OUT_OF_RANGE past it is the gateway's doing.
  const shown = new Map<string, number>();
  let stopClosing = () => {};
  try {
    client = await connect({
      url,
      token,
      timeoutMs,
      signal: interrupted.signal,
      // A gateway not running is said at once, to a person as to a script: the exit code is 3.
      reconnect: { waitAtStart: false },
      onReconnect: (change) => writeLog(process.stderr, reconnectLine(url, change)),
    });
    // Closed at once on an interrupt: an events() loop ending otherwise waits for its unsubscribe
    // to be answered, as long as --timeout on a gateway that stalled.
    const connected = client;
    stopClosing = onAbort(interrupted.signal, () => void connected.close());
    // For a person at a terminal, whom a quiet watch of an empty session would leave wondering.
    if (process.stderr.isTTY) {
      const watched = sessionKey ?? (agentId !== undefined ? `every session of agent ${agentId}` : "every session of the token's agent");
      writeLog(process.stderr, printable(`switchboard: watching ${watched} at ${url}; Ctrl-C to stop`));
    }
    for await (const event of client.events(target, { signal: interrupted.signal, ...(after === undefined ? {} : { after }) })) {
      const printed = await printEvent(event, json, acking, interrupted.signal);
      if (printed === 'reader gone') {
        // The reader is gone (`| head -1`): as with `yes | head`, that ends the watch, quietly and
        // with exit 0. Closing first ends the subscription with the socket, without the
        // unsubscribe round trip, so nothing more is read, let alone acked.
        await client.close();
        break;
      }
      if (printed === 'interrupted') {
        // Stopped while its reader had stopped reading: the line waits in the pipe, and a
        // process that waited to flush it would never exit. It is not acked, and comes again.
        await client.close();
        writeLog(process.stderr, printable(`switchboard: interrupted while the reader of the output was not reading: event seq ${event.seq} of ${event.sessionKey} was not wholly shown, nor acked; it stays pending`));
        process.exit(ExitCode.OK);
      }
      shown.set(event.sessionKey, event.seq);
      if (acking && !(await ackUnlessInterrupted(client, event.sessionKey, event.seq, interrupted.signal))) {
        writeLog(process.stderr, printable(`switchboard: event seq ${event.seq} of ${event.sessionKey} was shown, and its ack not answered before the interrupt: if the gateway did not take it, the event comes again`));
      }
    }
  } catch (error) {
    if (!interrupted.signal.aborted) throw afterRefusal(error, shown, after) ?? explain(error, settings);
  } finally {
    stopClosing();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await client?.close();
  }
  return ExitCode.OK;
}

/**
 * AFTER_OUT_OF_RANGE in the watch's own words ("resubscribe with after[...]" means nothing to a
 * CLI user): past a seq the watch has shown, the gateway came back with its data dir reset or
 * restored; otherwise the --after given is past the session's last seq.
 */
function afterRefusal(error: unknown, shown: ReadonlyMap<string, number>, givenAfter: number | undefined): CliError | undefined {
  if (!(error instanceof RpcCallError) || error.errorName !== 'AFTER_OUT_OF_RANGE') return undefined;
  const { sessionKey, lastSeq } = (error.data ?? {}) as { sessionKey?: unknown; lastSeq?: unknown };
  if (typeof sessionKey !== 'string' || typeof lastSeq !== 'number') return undefined;
  const session = printable(sessionKey);
  const shownSeq = shown.get(sessionKey);
  if (shownSeq !== undefined) {
    return gatewayRefused(
      error,
      `the gateway came back holding session ${session} only up to seq ${lastSeq}, below seq ${shownSeq} this watch has already shown (its data dir was reset or restored): run the watch again to start from what it holds`,
    );
  }
  if (givenAfter === undefined) return undefined;
  return gatewayRefused(error, `--after ${givenAfter} is past the last seq of session ${session} (${lastSeq}): give --after ${lastSeq} or less, or none for every pending event`);
}

/**
 * Whether stdout took the event's line: false when its reader is gone (EPIPE), which ends the
 * watch quietly. Any other failure (a full disk) loses the line with a reader still waiting for
 * it: exit 4, saying the event was not acked.
 */
async function printEvent(event: StoredEvent, json: boolean, acking: boolean, signal: AbortSignal): Promise<'printed' | 'reader gone' | 'interrupted'> {
  try {
    const written = writeOut(process.stdout, `${json ? JSON.stringify(event) : formatWatchedEvent(printableStrings(event))}\n`);
    // A reader that stopped reading holds the write until it reads again: an interrupt ends the wait.
    let stopListening = () => {};
    const interrupted = new Promise<'interrupted'>((resolve) => {
      if (signal.aborted) resolve('interrupted');
      else stopListening = onAbort(signal, () => resolve('interrupted'));
    });
    const outcome = await Promise.race([written, interrupted]).finally(stopListening);
    return outcome === 'interrupted' ? outcome : outcome ? 'printed' : 'reader gone';
  } catch (error) {
    const pending = acking ? 'it was not acked, and stays pending for the next watcher' : 'it stays pending';
    throw outputFailed(`event seq ${event.seq} of ${printable(event.sessionKey)}`, error, `; ${pending}`);
  }
}

/**
 * Acks what the watch showed. The client waits out an outage it notices, however long, for an
 * ack (it consumes up to its seq: sent again it does the same), as an idle watch waits one out; an
 * ack unanswered on an open connection is the gateway's failure, and ends the watch. False when
 * interrupted first: the event was shown, its ack perhaps not taken.
 */
async function ackUnlessInterrupted(client: SwitchboardClient, sessionKey: string, seq: number, signal: AbortSignal): Promise<boolean> {
  try {
    await client.ack({ sessionKey, seq }, { signal });
    return true;
  } catch (error) {
    if (signal.aborted) return false;
    throw error;
  }
}

/**
 * What the watch says on stderr while the gateway is away, so a quiet watch is not taken for one
 * with nothing to show; stdout stays events only.
 */
export function reconnectLine(url: string, change: ReconnectChange): string {
  // Printable: the URL is as given, and the reason is the close frame's, whatever sent it.
  return printable(
    change.state === 'reconnecting'
      ? `switchboard: connection to ${url} ${change.reason}; reconnecting (events wait in the gateway meanwhile)`
      : `switchboard: reconnected to ${url}; resuming after the last event shown`,
  );
}
