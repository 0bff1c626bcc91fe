/** The data dir and its token file, as the gateway creates them and the CLI reads them. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { EmptyTokenFileError, ensureDataDir, readToken, tokenPath } from '../../src/config/data-dir.js';

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
