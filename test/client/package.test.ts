/**
 * The package as a consumer loads it, by its name: from ES modules, and from CommonJS (most VS
 * Code extensions are CommonJS), which Node 20.19 and later load ES modules for with require().
 */
import { createRequire } from 'node:module';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('client/package');

test('import and require of "switchboard" give the same library', async () => {
  const imported = await import('switchboard');
  const required = createRequire(import.meta.url)('switchboard') as typeof imported;
  for (const name of ['connect', 'callOverHttp', 'localGatewayUrl', 'localGatewayToken', 'ConnectionError', 'RpcCallError'] as const) {
    assert.type(imported[name], 'function', name);
    assert.is(required[name], imported[name], name);
  }
});

test.run();
