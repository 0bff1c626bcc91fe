/**
 * The CLI's bundle (scripts/bundle.ts): cli.cjs, which every one-shot command loads and compiles,
 * holds only what one-shot calls need. A lazy import that esbuild inlined once tripled it (ws and
 * the client library, for a rare call over a WebSocket) and cost every call a millisecond.
 */
import fs from 'node:fs';
import { isBuiltin } from 'node:module';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const test = suite('scripts/bundle');

const bundled = (file: string) => {
  const text = fs.readFileSync(new URL(`../../bin/${file}`, import.meta.url), 'utf8');
  // esbuild names each module it takes in a comment of its own, by its path from the build's dir.
  return [...text.matchAll(/^\/\/ ((?:\.\.\/node_modules|src|scripts)\/\S+\.(?:c?js|mjs|json))$/gm)].map(([, source]) => source!);
};

test('cli.cjs holds no package (ws, cac, json-rpc-2.0), nor the client library, the server or the store', () => {
  const modules = bundled('cli.cjs');
  assert.ok(modules.includes('src/cli/main.js'), modules.join('\n'));
  const heavy = modules.filter((source) => source.startsWith('../node_modules/') || /^src\/(server|store)\/|^src\/client\/(client|transport)\.js$/.test(source));
  assert.equal(heavy, []);
});

test('the lazy files hold what cli.cjs leaves out: ws for a watch and for a call too large for HTTP', () => {
  for (const file of ['watch-command.cjs', 'websocket-call.cjs']) assert.ok(bundled(file).some((source) => source.startsWith('../node_modules/ws/')), file);
});

test('no bundle requires a package at run time but better-sqlite3 (a native addon): cac and json-rpc-2.0 are devDependencies', () => {
  const dir = new URL('../../bin/', import.meta.url);
  for (const file of fs.readdirSync(dir).filter((name) => name.endsWith('.cjs'))) {
    const text = fs.readFileSync(new URL(file, dir), 'utf8');
    const required = [...text.matchAll(/\brequire\("([^".][^"]*)"\)/g)].map(([, name]) => name!).filter((name) => !name.startsWith('node:') && !isBuiltin(name));
    assert.equal([...new Set(required)].filter((name) => name !== 'better-sqlite3'), [], file);
  }
});

test.run();
