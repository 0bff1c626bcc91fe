/**
 * The store's errors say what happened in one line, whatever the library below them wrote.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { NativeModuleError } from '../../src/store/errors.js';

const test = suite('store/errors');

test("NativeModuleError keeps the cause's reason on one line: Node's version mismatch (four lines) whole", () => {
  const cause = new Error(
    "The module '/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 108. This version of Node.js requires\nNODE_MODULE_VERSION 115. Please try re-compiling or re-installing\nthe module (for instance, using `npm rebuild` or `npm install`).",
  );
  const error = new NativeModuleError(cause);
  assert.is(error.code, 'NATIVE_MODULE_UNUSABLE');
  assert.is(error.cause, cause);
  assert.is(
    error.message,
    "the gateway stores events with better-sqlite3, whose native part cannot be loaded (The module '/app/node_modules/better-sqlite3/build/Release/better_sqlite3.node' was compiled against a different Node.js version using NODE_MODULE_VERSION 108. This version of Node.js requires NODE_MODULE_VERSION 115. Please try re-compiling or re-installing the module (for instance, using `npm rebuild` or `npm install`).): run `npm rebuild better-sqlite3` where switchboard is installed, which builds it for this Node.js (it needs python3, make and g++)",
  );
});

test('NativeModuleError leaves out the paths node-bindings tried', () => {
  const error = new NativeModuleError(new Error('Could not locate the bindings file. Tried:\n → /a/build/better_sqlite3.node\n → /a/Release/better_sqlite3.node'));
  assert.match(error.message, /cannot be loaded \(Could not locate the bindings file\.\): run/);
});

test.run();
