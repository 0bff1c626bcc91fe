/**
 * `npm run schema`: writes schema/ from the protocol definitions and removes files there that are
 * no longer generated, so the committed tree is exactly schemaFiles(VERSION); and writes
 * src/protocol/answer-shapes.ts and wire-types.ts (built on the next build). The drift test
 * (test/protocol/schema-drift.test.ts) fails until this has been run after a protocol change.
 * Compiled without a type check, into a directory of its own (package.json): after a change to
 * the schemas, the generated types it writes anew no longer match them, and a checked build fails
 * until they do; dist/, which a CLI run from the checkout may be using, is left to the build.
 */
import { mkdirSync, readdirSync, readFileSync, rmdirSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ANSWER_SHAPES_FILE, answerShapesSource, schemaFiles, WIRE_TYPES_FILE, wireTypesSource } from '../src/protocol/schema-files.js';
import { VERSION } from '../src/version.js';
import { filesUnder } from './files.js';

// Compiled to dist.schema/scripts/schema.js: the repository root is two levels up.
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCHEMA_DIR = join(ROOT, 'schema');

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Removes directories left empty once stale files are gone, deepest first; never schema/ itself. */
function removeEmptyDirs(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeEmptyDirs(join(dir, entry.name));
  }
  if (dir !== SCHEMA_DIR && readdirSync(dir).length === 0) rmdirSync(dir);
}

function main(): void {
  const files = schemaFiles(VERSION);
  let written = 0;
  for (const [name, text] of files) {
    const path = join(SCHEMA_DIR, ...name.split('/'));
    if (readOrUndefined(path) === text) continue;
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    written += 1;
    console.log(`wrote   schema/${name}`);
  }
  let removed = 0;
  for (const path of filesUnder(SCHEMA_DIR)) {
    const name = relative(SCHEMA_DIR, path).split(sep).join('/');
    if (files.has(name)) continue;
    unlinkSync(path);
    removed += 1;
    console.log(`removed schema/${name}`);
  }
  removeEmptyDirs(SCHEMA_DIR);
  console.log(`schema/: ${files.size} files, ${written} written, ${removed} removed (version ${VERSION})`);
  for (const [file, source] of [
    [ANSWER_SHAPES_FILE, answerShapesSource()],
    [WIRE_TYPES_FILE, wireTypesSource()],
  ] as const) {
    if (readOrUndefined(join(ROOT, file)) === source) continue;
    writeFileSync(join(ROOT, file), source);
    console.log(`wrote   ${file}: run npm run build to build it`);
  }
}

main();
