/**
 * Bundles the CLI into dist/bin/ (run after tsc by `npm run build`). Node 20 has no module compile
 * cache, so every file a command loads costs start-up time: one bundle, split so `switchboard
 * gateway`'s server, store and schema code load only for that command. better-sqlite3 stays
 * external: it is a native addon.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));

await build({
  absWorkingDir: root,
  entryPoints: { switchboard: 'dist/src/cli/main.js' },
  outdir: 'dist/bin',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['better-sqlite3'],
  // CommonJS dependencies (ws, json-rpc-2.0) call require() for Node built-ins; ESM has none.
  banner: { js: "import { createRequire as __sbCreateRequire } from 'node:module'; const require = __sbCreateRequire(import.meta.url);" },
  // Chunks beside the entry: version.ts finds package.json two levels up from either.
  chunkNames: '[name]-[hash]',
  logLevel: 'warning',
});
