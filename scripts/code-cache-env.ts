/**
 * The environment scripts/bundle.ts runs the bin in to make the CLI's code cache.
 */
import { CODE_CACHE_OUT_ENV } from '../src/cli/code-cache.js';
import { ENV } from '../src/protocol/constants.js';

/**
 * The build's environment, with where the cache goes, and without the CLI's own variables: the
 * call is for the gateway the build starts on a temp data dir, and the developer's
 * SWITCHBOARD_URL and SWITCHBOARD_TOKEN (a CI host set up to post to its gateway, say) would win
 * over that data dir's socket and token, and store the build's event in their gateway. Without
 * NODE_OPTIONS too: V8 takes a cache only under the flags it was made with, so one made under a
 * build's flags (--max-semi-space-size for a gateway, say) would be rejected by a plain CLI run.
 */
export function codeCacheRunEnv(env: NodeJS.ProcessEnv, cache: string): NodeJS.ProcessEnv {
  const run: NodeJS.ProcessEnv = { ...env, [CODE_CACHE_OUT_ENV]: cache };
  for (const name of [...Object.values(ENV), 'NODE_OPTIONS']) delete run[name];
  return run;
}
