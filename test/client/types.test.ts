/**
 * The client's types refuse at compile time what the gateway always refuses at run time. Checked
 * by the type check this suite is built with (`tsc`): an `@ts-expect-error` over a line that
 * compiles fails the build. The calls are never made.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { AfterFor, SwitchboardClient } from '../../src/index.js';

const test = suite('client/types');

function typeChecks(client: SwitchboardClient): void {
  const onEvent = () => {};
  void client.subscribe({ sessionKey: 'agent:main:main' }, { onEvent, after: 3 });
  void client.subscribe({ agentId: 'main' }, { onEvent, after: { 'agent:main:main': 3 } });
  void client.events({ agentId: 'main' }, { after: { main: 0 } });
  void client.events({ sessionKey: 'main' }, { after: 0 });
  // @ts-expect-error an agent subscription resumes from a seq per session, not one seq
  void client.subscribe({ agentId: 'main' }, { onEvent, after: 1 });
  // @ts-expect-error the same for events()
  void client.events({ agentId: 'main' }, { after: 0 });
  // @ts-expect-error a session subscription resumes from one seq, not a map
  void client.subscribe({ sessionKey: 'agent:main:main' }, { onEvent, after: { 'agent:main:main': 1 } });
  // Neither: the token's own agent, resumed as an agent subscription.
  void client.events({}, { after: { main: 0 } });
  // @ts-expect-error as an agent subscription, from a seq per session
  void client.events({}, { after: 0 });
  // @ts-expect-error one of sessionKey and agentId, not both
  void client.events({ sessionKey: 'main', agentId: 'main' });
}

test('after is a seq for a session subscription and a map for an agent one', () => {
  const seq: AfterFor<{ sessionKey: string }> = 1;
  const map: AfterFor<{ agentId: string }> = { main: 1 };
  assert.equal([seq, map, typeof typeChecks], [1, { main: 1 }, 'function']);
});

test.run();
