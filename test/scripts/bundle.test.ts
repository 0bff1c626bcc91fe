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
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { storeBuildAdvice } from '../../src/cli/missing-store.js';

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

test('regular expressions with Unicode property escapes stay literals, which go when unused', () => {
  // esbuild lowers one with \p{...} outside a character class to new RegExp(), for every Node
  // target: a call it cannot drop when unused, which V8 builds at start. Five the CLI never used
  // cost every call ~0.85 ms.
  const dir = new URL('../../bin/', import.meta.url);
  for (const file of fs.readdirSync(dir).filter((name) => name.endsWith('.cjs'))) {
    assert.not.match(fs.readFileSync(new URL(file, dir), 'utf8'), /new RegExp\((["'`])[^"'`]*\\\\p\{/, file);
  }
});

test('without better-sqlite3 (an optional dependency npm leaves out when it cannot build it) the build goes on without the code cache, the CLI works, and the gateway says what it needs; with the package but not its native part, it says how to build that, in one line, and makes no database file (README QA: the install failed whole, and `npm rebuild` was advised for a package not there)', () => {
  // The build as `npm run build` runs it, in a checkout whose node_modules lack better-sqlite3.
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-no-store-'));
  try {
    const modules = new URL('../../../node_modules/', import.meta.url);
    fs.mkdirSync(path.join(root, 'node_modules'));
    for (const name of fs.readdirSync(modules).filter((name) => name !== 'better-sqlite3')) {
      fs.symlinkSync(fileURLToPath(new URL(name, modules)), path.join(root, 'node_modules', name));
    }
    fs.copyFileSync(new URL('../../../package.json', import.meta.url), path.join(root, 'package.json'));
    for (const dir of ['src', 'scripts']) fs.cpSync(fileURLToPath(new URL(`../../${dir}`, import.meta.url)), path.join(root, 'dist', dir), { recursive: true });
    const { NODE_PATH: _, ...env } = process.env;
    const node = (...args: string[]) => spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000, env });

    const build = node(path.join(root, 'dist', 'scripts', 'bundle.js'));
    assert.is(build.status, 0, build.stderr);
    assert.equal(build.stderr.split('\n').slice(0, 1), [
      `warning: better-sqlite3 is not installed (npm could not build it), so the gateway cannot start (the CLI and the client library work); ${storeBuildAdvice()}`,
    ]);
    assert.match(build.stderr, /\nwarning: no code cache for the CLI \(Cannot find package 'better-sqlite3' .*\); it compiles on every start instead\n$/);
    const bin = path.join(root, 'dist', 'bin', 'switchboard.cjs');
    const dataDir = path.join(root, 'data');
    const version = node(bin, '--version');
    assert.is(version.status, 0, version.stderr);
    const absent = node(bin, 'gateway', '--port', '0', '--data-dir', dataDir);
    assert.equal(
      [absent.status, absent.stdout, absent.stderr],
      [
        1,
        '',
        `switchboard: cannot start: the gateway stores events with better-sqlite3, a native module, which is not installed (npm leaves it out when it cannot build it); ${storeBuildAdvice()}\n`,
      ],
    );

    // The package without its build (the JavaScript loads, the native part is looked for later).
    const installed = fileURLToPath(new URL('better-sqlite3/', modules));
    for (const part of ['package.json', 'lib']) fs.cpSync(path.join(installed, part), path.join(root, 'node_modules', 'better-sqlite3', part), { recursive: true });
    const unbuilt = node(bin, 'gateway', '--port', '0', '--data-dir', dataDir);
    assert.equal(
      [unbuilt.status, unbuilt.stdout, unbuilt.stderr],
      [
        1,
        '',
        'switchboard: cannot start: the gateway stores events with better-sqlite3, whose native part cannot be loaded (Could not locate the bindings file.): run `npm rebuild better-sqlite3` where switchboard is installed, which builds it for this Node.js (it needs python3, make and g++)\n',
      ],
    );
    assert.not.ok(fs.existsSync(path.join(dataDir, 'switchboard.db')), 'no database made');
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test.run();
