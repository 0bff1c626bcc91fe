/**
 * schema/ is generated (`npm run schema`) and committed so consumers and reviewers see the wire
 * contract. This suite fails when the committed files and the protocol definitions disagree.
 */
import { readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { filesUnder } from '../../scripts/files.js';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { METHOD_NAMES } from '../../src/protocol/methods.js';
import { buildOpenRpcDocument } from '../../src/protocol/openrpc.js';
import { ANSWER_SHAPES_FILE, answerShapesSource, JSON_SCHEMA_DIALECT, schemaFiles, WIRE_TYPES_FILE, wireTypesSource } from '../../src/protocol/schema-files.js';
import { VERSION } from '../../src/version.js';

// Compiled to dist/test/protocol/: the repository root is three levels up.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SCHEMA_DIR = join(ROOT, 'schema');
const FIX = 'run npm run schema, then commit schema/';

/** The files under schema/, as `/`-separated paths relative to it. */
function committedFiles(dir: string): string[] {
  return filesUnder(dir).map((path) => relative(SCHEMA_DIR, path).split(sep).join('/'));
}

const test = suite('protocol/schema-drift');
const expected = schemaFiles(VERSION);

test('schema/ holds exactly the generated files', () => {
  const committed = committedFiles(SCHEMA_DIR).sort();
  const generated = [...expected.keys()].sort();
  const missing = generated.filter((name) => !committed.includes(name));
  const extra = committed.filter((name) => !expected.has(name));
  assert.equal(
    { missing, extra },
    { missing: [], extra: [] },
    `schema/ lacks [${missing.join(', ')}] and has files no longer generated [${extra.join(', ')}]: ${FIX}`,
  );
});

test('every file under schema/ is byte-for-byte what schemaFiles() generates', () => {
  const stale: string[] = [];
  for (const [name, text] of expected) {
    let committed: string | undefined;
    try {
      committed = readFileSync(join(SCHEMA_DIR, ...name.split('/')), 'utf8');
    } catch {
      committed = undefined;
    }
    if (committed !== text) stale.push(name);
  }
  assert.equal(stale, [], `schema/ is out of date (${stale.join(', ')}): ${FIX}`);
});

for (const [file, source] of [
  [ANSWER_SHAPES_FILE, answerShapesSource],
  [WIRE_TYPES_FILE, wireTypesSource],
] as const) {
  test(`${file} is what ${source.name}() generates`, () => {
    assert.ok(readFileSync(join(ROOT, file), 'utf8') === source(), `${file} is out of date: run npm run schema, then build and commit it`);
  });
}

test('schemaFiles: openrpc.json plus params and result per method, pretty JSON with a trailing newline', () => {
  assert.equal(
    [...expected.keys()],
    ['openrpc.json', ...METHOD_NAMES.flatMap((m) => [`methods/${m}.params.json`, `methods/${m}.result.json`])],
  );
  for (const [name, text] of expected) {
    assert.ok(text.endsWith('}\n') && !text.endsWith('\n\n'), `${name} ends with one newline`);
    assert.is(text, `${JSON.stringify(JSON.parse(text), null, 2)}\n`, `${name} is 2-space pretty JSON`);
  }
  assert.equal(JSON.parse(expected.get('openrpc.json')!), buildOpenRpcDocument(VERSION));
});

test('schemaFiles: each method schema names its dialect, id and title', () => {
  const params = JSON.parse(expected.get('methods/system.event.params.json')!) as Record<string, unknown>;
  assert.equal(Object.keys(params).slice(0, 3), ['$schema', '$id', 'title']);
  assert.is(params['$schema'], 'https://json-schema.org/draft/2020-12/schema');
  assert.is(params['$schema'], JSON_SCHEMA_DIALECT);
  assert.is(params['$id'], 'https://switchboard.dev/schema/methods/system.event.params.json');
  assert.is(params['title'], 'system.event params');
  assert.equal(params['required'], ['text']);
  const result = JSON.parse(expected.get('methods/system.event.result.json')!) as Record<string, unknown>;
  assert.is(result['$id'], 'https://switchboard.dev/schema/methods/system.event.result.json');
  assert.is(result['title'], 'system.event result');
  assert.is(result['type'], 'object');
});

test('schemaFiles is pure: same input, same output; the version reaches openrpc.json', () => {
  assert.equal([...schemaFiles('1.2.3')], [...schemaFiles('1.2.3')]);
  const other = JSON.parse(schemaFiles('1.2.3').get('openrpc.json')!) as { info: { version: string } };
  assert.is(other.info.version, '1.2.3');
});

test.run();
