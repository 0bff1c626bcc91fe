/**
 * Bundles the CLI into dist/bin/ (run after tsc by `npm run build`, in the dir that build writes:
 * see build.mjs). Node 20 has no module compile cache, so every file a command loads costs
 * start-up time, and an ES module entry costs ~5 ms more than CommonJS before it runs at all: a
 * quarter of `node -e 0` on these machines.
 *
 * - `switchboard.cjs`, the bin (src/cli/bin.ts): runs `cli.cjs` compiled with `cli.cjs.cache`.
 * - `cli.cjs`: one file holding what one-shot commands need (the command table, argument
 *   handling, the HTTP call, the output).
 * - `cli.cjs.cache`: the V8 code cache of `cli.cjs`, taken after a real `system event` call to a
 *   gateway started here for it (see src/cli/code-cache.ts). When it cannot be made (no
 *   better-sqlite3, say), the build says so and goes on: the CLI then compiles as usual.
 * - `cac-parser.cjs`, `watch-command.cjs`, `gateway-command.cjs`, `websocket-call.cjs`: loaded by
 *   `cli.cjs` when a command needs them, for help and errors, `session watch` (ws), `gateway`
 *   (server, store, schemas) and a request too large for HTTP (ws). Each is one file with what it
 *   needs, shared code included.
 *
 * All are CommonJS. `cli.cjs` runs in a vm.Script (for its cache), where Node 20 takes import()
 * only behind an experimental flag, so its lazy imports become require() calls here.
 * Nothing relies on the identity of a module across files: CliError is recognised by name (see
 * isCliError), and so are the client's errors (see sameErrorClass in src/client/errors.ts). better-sqlite3 stays external: it is a native addon.
 */
import { build, type Plugin } from 'esbuild';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { codeCachePath } from '../src/cli/code-cache.js';
import { isStoreModuleMissing, storeBuildAdvice } from '../src/cli/missing-store.js';
import { codeCacheRunEnv } from './code-cache-env.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
// The build this script is part of: dist, or the dir a build writes before it takes dist's
// place (scripts/build.mjs).
const out = path.relative(root, fileURLToPath(new URL('../', import.meta.url)));
const LAZY = ['cac-parser', 'watch-command', 'gateway-command', 'websocket-call'] as const;
const BIN = path.join(root, out, 'bin/switchboard.cjs');
const BUNDLE = path.join(root, out, 'bin/cli.cjs');
const run = promisify(execFile);

/** The lazy commands' modules, imported as `./name.js` in the source: the built files beside cli.cjs. */
const lazyFiles: Plugin = {
  name: 'lazy-files',
  setup(builder) {
    builder.onResolve({ filter: new RegExp(`^\\./(${LAZY.join('|')})\\.js$`) }, (args) => ({ path: args.path.replace(/\.js$/, '.cjs'), external: true }));
  },
};

// Before the bundle is written: a cache left from an earlier bundle must not outlive a failure
// below (V8 would take one whose bundle has the same length; see code-cache.ts).
fs.rmSync(codeCachePath(BUNDLE), { force: true });

await build({
  // The build's dir: the bundles name each module they hold by its path from there (src/...,
  // ../node_modules/...).
  absWorkingDir: path.join(root, out),
  outdir: 'bin',
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  entryPoints: { cli: 'src/cli/main.js', switchboard: 'src/cli/bin.js', ...Object.fromEntries(LAZY.map((name) => [name, `src/cli/${name}.js`])) },
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  external: ['better-sqlite3'],
  plugins: [lazyFiles],
  // import() as require(): see above. And regular expressions with \p{...} as written: esbuild
  // takes them for unsupported on every Node and lowers each to a new RegExp(), which it cannot
  // drop when unused and V8 builds at start (~0.85 ms of a CLI call); Node 20 has every property
  // the bundles use.
  supported: { 'dynamic-import': false, 'regexp-unicode-property-escapes': true },
  // CommonJS has no import.meta: version.ts finds package.json from the file's own URL instead,
  // two levels up from any file in dist/bin.
  inject: ['scripts/cjs-import-meta.js'],
  define: { 'import.meta': 'importMeta' },
});

await writeCodeCache();

/**
 * Runs the bin once as a user would, `system event` to a gateway of a fresh data dir (its token
 * and socket), and keeps the cache of what that compiled.
 */
async function writeCodeCache(): Promise<void> {
  // Imported here: without better-sqlite3 (an optional dependency npm leaves out when it cannot
  // build it) the build goes on, without the cache, as the install must (README QA). Any other
  // failure to load the gateway is a broken build, and fails it.
  const gatewayModule = await import('../src/server/gateway.js').catch((error: unknown) => {
    if (!isStoreModuleMissing(error)) throw error;
    process.stderr.write(`warning: better-sqlite3 is not installed (npm could not build it), so the gateway cannot start (the CLI and the client library work); ${storeBuildAdvice()}\n`);
    warnNoCodeCache(error);
  });
  if (!gatewayModule) return;
  const cache = codeCachePath(BUNDLE);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-build-'));
  try {
    const gateway = await gatewayModule.startGateway({ dataDir, port: 0, log: () => {} });
    try {
      // Not execFileSync: the gateway that answers the call runs on this process's event loop.
      await run(process.execPath, [BIN, 'system', 'event', '--text', 'building the code cache', '--data-dir', dataDir], { env: codeCacheRunEnv(process.env, cache) });
    } finally {
      await gateway.close();
    }
  } catch (error) {
    warnNoCodeCache(error);
  } finally {
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function warnNoCodeCache(error: unknown): void {
  process.stderr.write(`warning: no code cache for the CLI (${(error as Error).message}); it compiles on every start instead\n`);
}
