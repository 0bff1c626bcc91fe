/**
 * The environment the build makes the CLI's code cache in: its call must reach the gateway the
 * build starts, never one that the developer's SWITCHBOARD_* variables name, and under no V8 flags
 * a plain CLI run would not have.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CODE_CACHE_OUT_ENV } from '../../src/cli/code-cache.js';
import { codeCacheRunEnv } from '../../scripts/code-cache-env.js';

const test = suite('scripts/code-cache-env');

test("the build's call leaves out SWITCHBOARD_URL, SWITCHBOARD_TOKEN, SWITCHBOARD_DATA_DIR and NODE_OPTIONS, keeps the rest, and names the cache", () => {
  const developer = {
    PATH: '/usr/bin',
    HOME: '/home/dev',
    SWITCHBOARD_URL: 'ws://ci-gateway:18790',
    SWITCHBOARD_TOKEN: 'sbt_ci',
    SWITCHBOARD_DATA_DIR: '/srv/sb',
    NODE_OPTIONS: '--max-semi-space-size=64',
  };
  assert.equal(codeCacheRunEnv(developer, '/repo/dist/bin/cli.cjs.cache'), { PATH: '/usr/bin', HOME: '/home/dev', [CODE_CACHE_OUT_ENV]: '/repo/dist/bin/cli.cjs.cache' });
  assert.is(developer.SWITCHBOARD_URL, 'ws://ci-gateway:18790', "the build's own environment is left as it was");
});

test.run();
