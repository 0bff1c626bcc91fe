/**
 * The README is part of the interface: its first lines are the two commands a new user runs,
 * and its error table must say what the code says.
 */
import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CliErrorCode } from '../../src/cli/exit-codes.js';
import { ERROR_DESCRIPTIONS, ErrorCode, type ErrorName } from '../../src/protocol/errors.js';
import { METHOD_NAMES } from '../../src/protocol/methods.js';
import { CloseCode } from '../../src/server/connection.js';

const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
const test = suite('docs/README');

test('the first lines give the install-and-run command and the test command', () => {
  const head = readme.split('\n').slice(0, 6).join('\n');
  assert.match(head, /npm install && npm start/);
  assert.match(head, /npm test/);
});

test('the error table lists every code with its name and description, and nothing else', () => {
  const section = readme.slice(readme.indexOf('## Error codes'));
  const rows = [...section.matchAll(/^\| (-?\d+) \| ([A-Z_]+) \| (.+) \|$/gm)].map(([, code, name, description]) => ({
    code: Number(code),
    name: name!,
    description: description!.replace(/`/g, ''),
  }));
  const expected = (Object.keys(ErrorCode) as ErrorName[]).map((name) => ({
    code: ErrorCode[name],
    name,
    description: ERROR_DESCRIPTIONS[name].replace(/`/g, ''),
  }));
  assert.equal(rows, expected);
});

test("the CLI's table of --json codes (under Exit codes) lists every one with its name, and nothing else", () => {
  const section = readme.slice(readme.indexOf('### Exit codes'), readme.indexOf('## RPC methods'));
  const rows = [...section.matchAll(/^\| (\d+) \| ([A-Z_]+) \| .+ \|$/gm)].map(([, code, name]) => [name, Number(code)]);
  assert.equal(rows, Object.entries(CliErrorCode));
});

test("the gateway's row says its listening line goes to stdout and its log to stderr, as gateway-command.ts writes them", () => {
  const row = readme.split('\n').find((line) => line.startsWith('| `switchboard gateway '))!;
  assert.match(row, /one line on stdout is `switchboard gateway listening on ws:\/\/HOST:PORT/);
  assert.match(row, /its log \(a `started:` line with the version and store schema, pid, URL, data dir and pending cap, then signals, shutdown, warnings, store failures, tokens created and revoked \(and over which connection or `POST \/rpc`, from which address\), addresses locked out for wrong tokens, events dropped at the cap; a store of an older schema is migrated as it opens, one way, and the log says so\) goes to stderr/);
});

test('every WebSocket close code the gateway sends is in its list of close codes, with those ws sends for it', () => {
  const start = readme.indexOf('WebSocket close codes:');
  const sentence = readme.slice(start, readme.indexOf('.', start));
  // 1000 and 1002/1007/1009 are ws's: the normal close, frames that break RFC 6455, an oversized one.
  for (const code of [1000, 1002, 1007, 1009, ...Object.values(CloseCode)]) assert.match(sentence, String(code), `close code ${code}`);
});

test('every RPC method is documented', () => {
  for (const method of METHOD_NAMES) assert.ok(readme.includes(`\`${method}\``), `README does not mention ${method}`);
});

test.run();
