/** session watch's stderr lines: what it says while the gateway is away, made printable. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { reconnectLine } from '../../src/cli/watch-command.js';

const test = suite('cli/watch-command');

test('reconnectLine: the close reason (the peer\'s to choose) and the URL (as given) cannot drive the terminal', () => {
  assert.is(
    reconnectLine('ws://127.0.0.1:1/sw\u202eitch', { state: 'reconnecting', reason: 'closed (1011: \x1b[2Jgone)' }),
    'switchboard: connection to ws://127.0.0.1:1/sw\\u202eitch closed (1011: \\x1b[2Jgone); reconnecting (events wait in the gateway meanwhile)',
  );
  assert.is(
    reconnectLine('ws://127.0.0.1:18790', { state: 'reconnected' }),
    'switchboard: reconnected to ws://127.0.0.1:18790; resuming after the last event shown',
  );
});

test.run();
