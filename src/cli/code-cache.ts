/**
 * The CLI bundle compiled with a V8 code cache. Node 20 keeps no compile cache of its own
 * (module.enableCompileCache came in 22), and a one-shot command compiles the whole bundle, then
 * each function it runs, on every start: ~1.4 ms of its ~25, against ~17 for `node -e 0` (60
 * interleaved runs of `system event`, with and without the cache, twice). The build makes the
 * cache once (scripts/bundle.ts), from a real `system event` call, so it holds the functions such a
 * call compiles, not only the top level.
 *
 * V8 checks a cache against its own version and flags, and compiles as usual when it does not fit
 * (another Node.js than the build's). Of the source it checks only the length, so a cache older
 * than its bundle (edited after the build) is not used either: a cache can make a start faster,
 * never wrong.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Script } from 'node:vm';

/** Set by the build to the file the cache goes to, written once the command has run. */
export const CODE_CACHE_OUT_ENV = 'SWITCHBOARD_WRITE_CODE_CACHE';

export function codeCachePath(bundle: string): string {
  return `${bundle}.cache`;
}

/**
 * The bundle as a function of Node's CommonJS module parameters (exports, require, module,
 * __filename, __dirname), compiled with its cache when there is one. `cachedDataRejected` on the
 * script says whether V8 took the cache.
 */
export function compileBundle(bundle: string): Script {
  const source = readFileSync(bundle, 'utf8');
  const cachedData = readCache(codeCachePath(bundle), statSync(bundle).mtimeMs);
  return new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: scriptName(bundle),
    ...(cachedData === undefined ? {} : { cachedData }),
  });
}

/**
 * The name stack traces and profiles give the bundle's code: the same wherever the package is, as
 * V8 keeps the name a cache was made under. Under its own path, every stack trace named the dir
 * the build made the cache in (dist.next, gone once built), and a packed package would have named
 * the packer's checkout.
 */
function scriptName(bundle: string): string {
  return `switchboard/dist/bin/${basename(bundle)}`;
}

/** With CODE_CACHE_OUT_ENV set, writes the script's cache there as the process exits, after the command ran. */
export function writeCacheOnExit(script: Script, env: NodeJS.ProcessEnv = process.env): void {
  const out = env[CODE_CACHE_OUT_ENV];
  if (out) process.once('exit', () => writeFileSync(out, script.createCachedData()));
}

/** The cache, unless it is older than the bundle it was made from (modified at `bundleTime`). */
function readCache(file: string, bundleTime: number): Buffer | undefined {
  try {
    return statSync(file).mtimeMs >= bundleTime ? readFileSync(file) : undefined;
  } catch {
    // None (a build that could not make one) is the bundle compiled as usual.
    return undefined;
  }
}
