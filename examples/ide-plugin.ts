/**
 * An IDE-plugin-style consumer: no long-lived loop, just typed RPC calls. It reports that a task
 * finished in the conversation it came from, then shows what is waiting in that session.
 *
 *   npm run build && node dist/examples/ide-plugin.js 'agent:main:slack:channel:C123:thread:456'
 */
import { connect, RpcCallError } from '../src/index.js';
import { gatewayFromEnvironment } from './gateway-from-env.js';

const sessionKey = process.argv[2] ?? 'main';
const client = await connect({ ...gatewayFromEnvironment(), timeoutMs: 5_000 });
try {
  const routed = await client.systemEvent({ text: 'Refactoring finished: 12 files changed', mode: 'now', sessionKey });
  console.log(`routed to ${routed.sessionKey} as seq ${routed.queue.seq}; wake: ${routed.wake.status}`);
  const pending = await client.peek({ sessionKey: routed.sessionKey, limit: 10 });
  for (const event of pending.events) console.log(`  #${event.seq} ${event.text}`);
} catch (error) {
  // A gateway error has a stable code and name; a lost connection is a ConnectionError instead.
  if (!(error instanceof RpcCallError)) throw error;
  console.error(`gateway refused (${error.errorName ?? error.code}): ${error.message}`);
  // A plugin's caller (a task runner, a script) must see that nothing was reported.
  process.exitCode = 1;
} finally {
  await client.close();
}
