/**
 * A small long-lived agent: subscribes to every session of its agent id, prints each event,
 * acks it, and keeps going across gateway restarts (the client reconnects and resumes).
 *
 *   npm run build && node dist/examples/agent.js [agentId]
 *
 * Finds the gateway as the CLI does (see gateway-from-env.ts): SWITCHBOARD_URL with SWITCHBOARD_TOKEN, else
 * the gateway's socket and the token file in the default data dir (or SWITCHBOARD_DATA_DIR).
 */
import { connect } from '../src/index.js';
import { gatewayFromEnvironment } from './gateway-from-env.js';

const agentId = process.argv[2] ?? 'main';
const client = await connect({ ...gatewayFromEnvironment(), reconnect: true });
const stop = new AbortController();
// Closing ends at once what waits on the gateway (an ack, the loop's unsubscribe), however long it is away.
process.once('SIGINT', () => {
  stop.abort();
  void client.close();
});

client.onWake((wake) => console.log(`[wake: ${wake.reason}] look at ${wake.sessions.join(', ') || 'nothing new'}`));
console.log(`agent "${agentId}" listening on ${client.url}; Ctrl-C to stop`);

for await (const event of client.events({ agentId }, { signal: stop.signal })) {
  console.log(`${event.sessionKey} #${event.seq}: ${event.text}`);
  // Handle the event here. Acking consumes it: it is never replayed, to this agent or another. An
  // ack waits for a gateway that is away, however long: Ctrl-C ends that wait too, the event
  // shown but not acked (it comes again to the next subscription).
  const acked = await client.ack({ sessionKey: event.sessionKey, seq: event.seq }).then(
    () => true,
    (error: unknown) => {
      if (stop.signal.aborted) return false;
      throw error;
    },
  );
  if (!acked) break;
}
await client.close();
