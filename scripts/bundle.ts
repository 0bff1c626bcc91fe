/**
 * Bundles the CLI into dist/bin/ (run after tsc by `npm run build`). Node 20 has no module compile
 * cache, so every file a command loads costs start-up time, and an ES module entry costs ~5 ms
 * more than CommonJS before it runs at all: a quarter of `node -e 0` on these machines.
 *
 * - `switchboard.cjs`, the bin: CommonJS, one file, holding what one-shot commands need (the
 *   command table, argument handling, the HTTP call, the output).
 * - `cac-parser.js`, `watch-command.js`, `gateway-command.js`: ES modules, split into shared
 *   chunks, loaded by the bin through `import()` for help and errors, `session watch` (ws) and
 *   `gateway` (server, store, schemas).
 *
 * The two builds each hold a copy of the modules they share; nothing relies on their identity
 * across the boundary except CliError, which is recognised by name (see isCliError).
 * better-sqlite3 stays external: it is a native addon.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../', import.meta.url));
const LAZY = ['cac-parser', 'watch-command', 'gateway-command'] as const;
const common = { absWorkingDir: root, outdir: 'dist/bin', bundle: true, platform: 'node', target: 'node20', logLevel: 'warning' } as const;

await build({
  ...common,
  entryPoints: { switchboard: 'dist/src/cli/main.js' },
  format: 'cjs',
  outExtension: { '.js': '.cjs' },
  external: ['better-sqlite3', ...LAZY.map((name) => `./${name}.js`)],
  // CommonJS has no import.meta: version.ts finds package.json from the bin's own URL instead.
  inject: ['dist/scripts/cjs-import-meta.js'],
  define: { 'import.meta': 'importMeta' },
});

await build({
  ...common,
  entryPoints: Object.fromEntries(LAZY.map((name) => [name, `dist/src/cli/${name}.js`])),
  format: 'esm',
  splitting: true,
  external: ['better-sqlite3'],
  // CommonJS dependencies (ws, json-rpc-2.0) call require() for Node built-ins; ESM has none.
  banner: { js: "import { createRequire as __sbCreateRequire } from 'node:module'; const require = __sbCreateRequire(import.meta.url);" },
  // Chunks beside the entries: version.ts finds package.json two levels up from either.
  chunkNames: '[name]-[hash]',
});
