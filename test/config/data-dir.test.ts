/** The data dir and its token file, as the gateway creates them and the CLI reads them. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { EmptyTokenFileError, ensureDataDir, readToken, resolveDataDir, tokenPath } from '../../src/config/data-dir.js';

const test = suite('config/data-dir');

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-data-dir-'));
  dirs.push(dir);
  return dir;
}

test.after(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

// XDG_DATA_HOME is read on Linux and the other Unixes, not on macOS or Windows.
(process.platform === 'win32' || process.platform === 'darwin' ? test.skip : test)('the default data dir: an absolute XDG_DATA_HOME is used; a relative or empty one is ignored (XDG spec), never joined to the working directory', () => {
  const fallback = path.join(os.homedir(), '.local', 'share', 'switchboard');
  assert.is(resolveDataDir(undefined, { XDG_DATA_HOME: '/srv/data' }), '/srv/data/switchboard');
  for (const relative of ['relative/path', './data', '../data', '']) {
    assert.is(resolveDataDir(undefined, { XDG_DATA_HOME: relative }), fallback, JSON.stringify(relative));
  }
  assert.is(resolveDataDir(undefined, {}), fallback);
  assert.is(resolveDataDir('given', { XDG_DATA_HOME: '/srv/data' }), path.resolve('given'), 'a chosen data dir wins, relative or not');
});

test('readToken: undefined without a token file; the token, trimmed, from one', () => {
  const dir = tempDir();
  assert.is(readToken(dir), undefined);
  fs.writeFileSync(tokenPath(dir), '  sba_abc\n');
  assert.is(readToken(dir), 'sba_abc');
});

test('an empty (or blank) token file is an EmptyTokenFileError that names the file and the fix, for readToken and ensureDataDir alike', () => {
  for (const content of ['', '\n', '  \r\n']) {
    const dir = tempDir();
    fs.writeFileSync(tokenPath(dir), content);
    for (const read of [readToken, ensureDataDir]) {
      const error = (() => {
        try {
          read(dir);
        } catch (thrown) {
          return thrown;
        }
        return undefined;
      })();
      assert.instance(error, EmptyTokenFileError, `${read.name} with ${JSON.stringify(content)}`);
      const message = (error as Error).message;
      assert.ok(message.includes(tokenPath(dir)), message);
      assert.match(message, /is empty: delete it to have the gateway write a new admin token when it next starts, or write the token into it/);
    }
    assert.is(fs.readFileSync(tokenPath(dir), 'utf8'), content, 'the file is left as it was');
  }
});

test.run();
