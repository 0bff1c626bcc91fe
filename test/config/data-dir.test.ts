/** The data dir and its token file, as the gateway creates them and the CLI reads them. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { dataDirProblem, ensureAdminToken, readToken, resolveDataDir, TokenFileError, tokenPath } from '../../src/config/data-dir.js';
import { thrownBy } from '../helpers/thrown.js';

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

test('dataDirProblem: a blank data dir, or one starting with a ~ no shell expanded, cannot be the one meant (operator QA: ./~/sbx was made and used)', () => {
  for (const given of ['', ' ', '\t']) assert.is(dataDirProblem(given), "names no directory: give a data dir's path", JSON.stringify(given));
  for (const given of ['~', '~/sbx', '~\\sbx', '~alice', '~alice/sbx', '~al.ice-2/sbx']) {
    assert.is(dataDirProblem(given), 'starts with ~, which only a shell expands, and none did: give the full path', given);
  }
  for (const given of ['/srv/sb', 'relative/sb', './~/sb', '/home/alice/~', 'sb~', '~ not a user/sb']) assert.is(dataDirProblem(given), undefined, given);
});

test('readToken: undefined without a token file; the token, trimmed, from one', () => {
  const dir = tempDir();
  assert.is(readToken(dir), undefined);
  fs.writeFileSync(tokenPath(dir), '  sba_abc\n');
  assert.is(readToken(dir), 'sba_abc');
});

test('an empty (or blank) token file is a TokenFileError that names the file and the fix, for readToken and ensureAdminToken alike', () => {
  for (const content of ['', '\n', '  \r\n']) {
    const dir = tempDir();
    fs.writeFileSync(tokenPath(dir), content);
    for (const read of [readToken, ensureAdminToken]) {
      const error = thrownBy(() => read(dir));
      assert.instance(error, TokenFileError, `${read.name} with ${JSON.stringify(content)}`);
      assert.is((error as TokenFileError).code, 'TOKEN_FILE_EMPTY');
      const message = (error as Error).message;
      assert.ok(message.includes(tokenPath(dir)), message);
      assert.match(message, /is empty: delete it to have the gateway write a new admin token when it next starts, or write the token into it alone$/);
    }
    assert.is(fs.readFileSync(tokenPath(dir), 'utf8'), content, 'the file is left as it was');
  }
});

test('a token file holding a hand-written token with Latin-1 letters (one byte each in a header) is read as it is', () => {
  const dir = tempDir();
  fs.writeFileSync(tokenPath(dir), 'sba_caf\u00e9-\u00fcber\n');
  assert.is(readToken(dir), 'sba_caf\u00e9-\u00fcber');
});

test('a token file holding more than a token (a second line, a space, a control or non-ASCII character) is a TokenFileError naming what and where', () => {
  const cases = [
    ['sba_abc\nnote to self\n', 'holds a line break'],
    ['sba_abc\r\nsba_def', 'holds a line break'],
    ['sba_abc def', 'holds U+0020 at character 8'],
    ['sba_\u0000abc', 'holds U+0000 at character 5'],
    ['sba_ab\u0085', 'holds U+0085 at character 7'],
    ['sba_\u{1F511}', 'holds U+1F511 at character 5'],
  ] as const;
  for (const [content, problem] of cases) {
    const dir = tempDir();
    fs.writeFileSync(tokenPath(dir), content);
    for (const read of [readToken, ensureAdminToken]) {
      const error = thrownBy(() => read(dir));
      assert.instance(error, TokenFileError, JSON.stringify(content));
      assert.is((error as TokenFileError).code, 'TOKEN_FILE_INVALID');
      assert.is(
        (error as Error).message,
        `token file ${tokenPath(dir)} ${problem}, not a token alone, so no client could send it: delete it to have the gateway write a new admin token when it next starts, or write the token into it alone`,
      );
    }
    assert.is(fs.readFileSync(tokenPath(dir), 'utf8'), content, 'the file is left as it was');
  }
});

test('a token file that cannot be read (a directory in its place, a data dir path through a file) is a TokenFileError naming the file, the errno and the fix', () => {
  const dir = tempDir();
  fs.mkdirSync(tokenPath(dir));
  const file = path.join(tempDir(), 'a-file');
  fs.writeFileSync(file, 'not a dir');
  const cases: [string, string, RegExp][] = [
    [dir, 'EISDIR', /a directory is in its place: remove it/],
    [file, 'ENOTDIR', /the data dir is not a directory/],
  ];
  for (const [dataDir, code, fix] of cases) {
    const error = thrownBy(() => readToken(dataDir));
    assert.instance(error, TokenFileError, code);
    const message = (error as Error).message;
    assert.ok(message.startsWith(`token file ${tokenPath(dataDir)} cannot be read (${code}): `), message);
    assert.match(message, fix);
    assert.is((error as TokenFileError).code, 'TOKEN_FILE_UNREADABLE');
  }
});

(process.platform === 'win32' ? test.skip : test)('a token file that is a symbolic link to nothing is a TokenFileError saying so, at once (the first start tried to create it again and again)', () => {
  const dir = tempDir();
  fs.symlinkSync(path.join(dir, 'gone'), tokenPath(dir));
  const error = thrownBy(() => ensureAdminToken(dir));
  assert.instance(error, TokenFileError);
  assert.is(
    (error as Error).message,
    `token file ${tokenPath(dir)} is a symbolic link to nothing: remove it to have the gateway write a new admin token when it next starts, or point it at the token`,
  );
  assert.equal(fs.readdirSync(dir).sort(), ['token'], 'no draft left behind');
});

test.run();
