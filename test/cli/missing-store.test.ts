import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { isStoreModuleMissing, storeBuildAdvice } from '../../src/cli/missing-store.js';

const test = suite('cli/missing-store');

const dirs: string[] = [];
test.after(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

test("storeBuildAdvice names the headers installed beside this Node.js, for node-gyp to use without nodejs.org (QA: the advice was to install a compiler that was there)", () => {
  const prefix = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-node-prefix-'));
  dirs.push(prefix);
  const execPath = path.join(prefix, 'bin', 'node');
  const needs = "building it needs python3, make and g++, and Node.js's C headers, which node-gyp downloads from nodejs.org unless told where they are: run ";
  const after = ' where switchboard is installed (`--foreground-scripts` shows why a build fails)';
  assert.is(storeBuildAdvice(execPath), `${needs}\`npm install\` with nodejs.org reachable${after}`);
  fs.mkdirSync(path.join(prefix, 'include', 'node'), { recursive: true });
  fs.writeFileSync(path.join(prefix, 'include', 'node', 'node_api.h'), '');
  assert.is(storeBuildAdvice(execPath), `${needs}\`npm_config_nodedir=${prefix} npm install\` (this Node.js has its headers in ${prefix}/include/node)${after}`);
});

test('isStoreModuleMissing: better-sqlite3 not found, as CommonJS and ES modules say it; nothing else', () => {
  const missing = (code: string, message: string) => Object.assign(new Error(message), { code });
  assert.ok(isStoreModuleMissing(missing('MODULE_NOT_FOUND', "Cannot find module 'better-sqlite3'")));
  assert.ok(isStoreModuleMissing(missing('ERR_MODULE_NOT_FOUND', "Cannot find package 'better-sqlite3' imported from /x.js")));
  assert.not.ok(isStoreModuleMissing(missing('ERR_MODULE_NOT_FOUND', "Cannot find package 'ws'")));
  assert.not.ok(isStoreModuleMissing(new Error("'better-sqlite3'")));
});

test.run();
