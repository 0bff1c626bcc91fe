/**
 * The CLI's bundle (scripts/bundle.ts): cli.cjs, which every one-shot command loads and compiles,
 * holds only what one-shot calls need. A lazy import that esbuild inlined once tripled it (ws and
 * the client library, for a rare call over a WebSocket) and cost every call a millisecond.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { isBuiltin } from 'node:module';
import os from 'node:os';
import path from 'node:path';
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

test('without better-sqlite3 (an optional dependency: a native build that may fail) the CLI works, and the gateway says what it needs and how to get it, exit 1', () => {
  // The bundles and package.json as installed, where no node_modules can be found.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-no-store-'));
  try {
    const bin = path.join(root, 'dist', 'bin');
    fs.mkdirSync(bin, { recursive: true });
    const built = new URL('../../bin/', import.meta.url);
    for (const file of fs.readdirSync(built).filter((name) => name.endsWith('.cjs'))) fs.copyFileSync(new URL(file, built), path.join(bin, file));
    fs.copyFileSync(new URL('../../../package.json', import.meta.url), path.join(root, 'package.json'));
    const { NODE_PATH: _, ...env } = process.env;
    const run = (...args: string[]) => spawnSync(process.execPath, [path.join(bin, 'switchboard.cjs'), ...args], { encoding: 'utf8', timeout: 30_000, env });
    assert.is(run('--version').status, 0);
    const gateway = run('gateway', '--port', '0', '--data-dir', path.join(root, 'data'));
    assert.equal(
      [gateway.status, gateway.stdout, gateway.stderr],
      [
        1,
        '',
        'switchboard: cannot start: the gateway stores events with better-sqlite3, a native module, which is not installed: installing switchboard fetches a prebuilt one or builds it, which needs python3, make and g++; install them, then run `npm rebuild better-sqlite3` where switchboard is installed\n',
      ],
    );
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test.run();
