/**
 * The examples the README points to, run as a user runs them (`node dist/examples/...`) against a
 * real gateway: they are documentation, and documentation that no longer works is worse than none.
 */
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  cleanup,
  freshAgent,
  openPeer,
  publish,
  resultOf,
  spawnScript,
  startTunedGateway,
  waitUntil,
  type InProcessGateway,
  type Peer,
} from '../helpers/gateway.js';

const example = (name: string) => fileURLToPath(new URL(`../../examples/${name}.js`, import.meta.url));

const test = suite<{ gw: InProcessGateway; publisher: Peer }>('e2e: examples/', {} as never);
test.before(async (context) => {
  context.gw = await startTunedGateway();
  context.publisher = await openPeer(context.gw.url, context.gw.token);
});
test.after(cleanup);

const envOf = (gw: InProcessGateway) => ({ SWITCHBOARD_URL: gw.url, SWITCHBOARD_TOKEN: gw.token });

test('ide-plugin reports to the session it is given and lists what waits there; a refusal is exit 1 with its name', async ({ gw }) => {
  const sessionKey = `agent:${freshAgent('plugin')}:slack:channel:C123:thread:456`;
  const plugin = spawnScript(example('ide-plugin'), [sessionKey], { env: envOf(gw) });
  assert.is(await plugin.exited('the plugin to exit'), 0, plugin.stderr());
  assert.equal(plugin.lines(), [`routed to ${sessionKey} as seq 1; wake: no-agent-connected`, '  #1 Refactoring finished: 12 files changed']);

  const refused = spawnScript(example('ide-plugin'), ['agent:main:slack:thread:456'], { env: envOf(gw) });
  assert.is(await refused.exited('the plugin to exit'), 1, refused.stderr());
  assert.match(refused.stderr(), /^gateway refused \(INVALID_PARAMS\): /);
  assert.equal(refused.lines(), []);
});

test('an example given SWITCHBOARD_URL but no SWITCHBOARD_TOKEN sends the data dir\'s admin token nowhere: it stops, saying to set the token', async ({ gw }) => {
  let connections = 0;
  const listener = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(listener.address() as net.AddressInfo).port}`;
  try {
    const plugin = spawnScript(example('ide-plugin'), ['main'], { env: { SWITCHBOARD_URL: url, SWITCHBOARD_DATA_DIR: gw.dataDir } });
    assert.is(await plugin.exited('the plugin to exit'), 1);
    assert.match(plugin.stderr(), `SWITCHBOARD_URL is set (${url}): set SWITCHBOARD_TOKEN to that gateway's token as well`);
    assert.is(connections, 0);
  } finally {
    listener.close();
  }
});

test('agent prints each event of its agent as it arrives and acks it; Ctrl-C stops it with exit 0', async ({ gw, publisher }) => {
  const agentId = freshAgent('example');
  const agent = spawnScript(example('agent'), [agentId], { env: envOf(gw) });
  assert.equal(await agent.waitForLines(1), [`agent "${agentId}" listening on ${gw.url}; Ctrl-C to stop`]);
  // Subscribed once the gateway counts the agent as connected: the wake then goes to it.
  await waitUntil(async () => (await publish(publisher, { text: 'probe', agentId, mode: 'next-heartbeat' })).wake.status !== 'no-agent-connected', 'the agent to subscribe');
  const routed = await publish(publisher, { text: 'Build 42 passed', sessionKey: `agent:${agentId}:telegram:group:-100:topic:7`, mode: 'now' });
  assert.is(routed.wake.status, 'sent');
  // Two frames, the event and then the wake: each printed as it comes.
  const printed = [`agent:${agentId}:telegram:group:-100:topic:7 #1: Build 42 passed`, `[wake: event] look at agent:${agentId}:telegram:group:-100:topic:7`];
  await waitUntil(() => printed.every((line) => agent.lines().includes(line)), `the event and its wake printed\n${agent.stdout()}`);
  // Acked: nothing of its agent is left pending.
  await waitUntil(async () => {
    const { sessions } = resultOf<{ sessions: { pending: number }[] }>(await publisher.call('session.list', { agentId }));
    return sessions.every((session) => session.pending === 0);
  }, 'every event acked');
  assert.is(await agent.stop('SIGINT'), 0, agent.stderr());
  assert.is(agent.stderr(), '');
});

test.run();
