/**
 * The package as a consumer loads it, by its name: from ES modules, and from CommonJS (most VS
 * Code extensions are CommonJS), which Node 20.19 and later load ES modules for with require();
 * and what it ships beside the code.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import ts from 'typescript';

const test = suite('client/package');

test('import and require of "switchboard" give the same library', async () => {
  const imported = await import('switchboard');
  const required = createRequire(import.meta.url)('switchboard') as typeof imported;
  for (const name of ['connect', 'callOverHttp', 'localGatewayUrl', 'localGatewayToken', 'ConnectionError', 'RpcCallError', 'TokenFileError'] as const) {
    assert.type(imported[name], 'function', name);
    assert.is(required[name], imported[name], name);
  }
});

// Compiled to dist/test/client/: the repository root is three levels up.
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The package as built, as a consumer's plugin.ts imports it (in quotes). */
const PACKAGE = JSON.stringify(path.join(ROOT, 'dist/src/index.js'));
/** A plugin's strict settings, as its editor checks it. */
const PROBE_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  types: [],
};

/** Writes `lines` as plugin.ts in a directory of its own, and gives `check` its path; removed after. */
function withProbe<T>(lines: string[], check: (file: string, source: string) => T): T {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sb-probe-'));
  try {
    const file = path.join(dir, 'plugin.ts');
    const source = lines.join('\n');
    writeFileSync(file, source);
    return check(file, source);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function problemsOf(program: ts.Program): string[] {
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
}

test('a call through the typed client costs the type checker little: its types are worked out once per program, not for every call (IDE QA: one client.call() took 1.3 million instantiations, 6 s of checking on every edit)', () => {
  const lines = [
    `import { callOverHttp, connect } from ${PACKAGE};`,
    'export async function use(): Promise<number> {',
    "  const client = await connect({ url: 'ws://127.0.0.1:18790', token: 't' });",
    "  const peeked = await client.call('session.peek', { sessionKey: 'agent:main:main' });",
    "  const routed = await callOverHttp({ url: 'http://127.0.0.1:18790', token: 't' }, 'system.event', { text: 'done', mode: 'now' });",
    '  // @ts-expect-error a param no method takes',
    "  await client.call('session.peek', { sessionKey: 'agent:main:main', limits: 1 });",
    '  return peeked.events.length + routed.queue.seq;',
    '}',
  ];
  withProbe(lines, (file) => {
    const program = ts.createProgram([file], PROBE_OPTIONS);
    assert.equal(problemsOf(program), []);
    const instantiations = program.getInstantiationCount();
    assert.ok(instantiations < 100_000, `${instantiations} type instantiations`);
  });
});

test('options and params take an explicit undefined for "the default" under exactOptionalPropertyTypes, as a plugin passes its own optional settings on (client QA: TS2375, TS2379)', () => {
  const lines = [
    `import { callOverHttp, connect, type CallOptions, type ConnectOptions, type HttpCallOptions } from ${PACKAGE};`,
    'export async function use(timeoutMs: number | undefined, signal: AbortSignal | undefined, url: string | undefined, after: number | undefined): Promise<void> {',
    "  const options: ConnectOptions = { token: 't', url, timeoutMs, signal, reconnect: { initialDelayMs: timeoutMs, maxDelayMs: undefined, waitAtStart: undefined }, onReconnect: undefined, heartbeatTimeoutMs: undefined };",
    '  const client = await connect(options);',
    '  const call: CallOptions = { timeoutMs, signal };',
    "  await client.call('gateway.status', {}, call);",
    "  await client.subscribe({ sessionKey: 'main' }, { onEvent: () => {}, after }, call);",
    "  for await (const event of client.events({ sessionKey: 'main' }, { after, signal })) void event;",
    "  const http: HttpCallOptions = { url: 'http://127.0.0.1:18790', token: 't', timeoutMs, signal };",
    "  await callOverHttp(http, 'gateway.status', {});",
    '}',
    // The params as well (QA: TS2379): the gateway takes a member left out, as JSON leaves out an undefined one.
    'export async function publish(sessionKey: string | undefined, mode: "now" | undefined, limit: number | undefined): Promise<void> {',
    "  const client = await connect({ token: 't' });",
    "  await client.systemEvent({ text: 'done', sessionKey, mode, contextKey: undefined });",
    "  await client.peek({ sessionKey: 'main', limit });",
    "  await callOverHttp({ url: 'http://127.0.0.1:18790', token: 't' }, 'system.event', { text: 'done', sessionKey, idempotencyKey: undefined });",
    '}',
  ];
  withProbe(lines, (file) => assert.equal(problemsOf(ts.createProgram([file], { ...PROBE_OPTIONS, exactOptionalPropertyTypes: true })), []));
});

test('an answer\'s fields show their schema\'s description on hover, in an editor that opens the package (IDE QA: a hover said only `number`)', () => {
  const lines = [
    `import { connect } from ${PACKAGE};`,
    'export async function use(): Promise<number> {',
    "  const client = await connect({ url: 'ws://127.0.0.1:18790', token: 't' });",
    "  const routed = await client.call('system.event', { text: 'done' });",
    "  await client.subscribe({ agentId: 'main' }, { onEvent: (event) => void event.storedAt });",
    '  return routed.queue.depth + routed.receivers;',
    '}',
  ];
  const hovers = withProbe(lines, (file, source) => {
    const service = ts.createLanguageService({
      getCompilationSettings: () => PROBE_OPTIONS,
      getScriptFileNames: () => [file],
      getScriptVersion: () => '1',
      getScriptSnapshot: (name) => (ts.sys.fileExists(name) ? ts.ScriptSnapshot.fromString(ts.sys.readFile(name)!) : undefined),
      getCurrentDirectory: () => path.dirname(file),
      getDefaultLibFileName: ts.getDefaultLibFilePath,
      fileExists: ts.sys.fileExists,
      readFile: ts.sys.readFile,
      readDirectory: ts.sys.readDirectory,
      directoryExists: ts.sys.directoryExists,
      getDirectories: ts.sys.getDirectories,
    });
    return ['depth', 'storedAt', 'receivers'].map((word) => {
      const info = service.getQuickInfoAtPosition(file, source.indexOf(word) + 1);
      return { type: ts.displayPartsToString(info?.displayParts), doc: ts.displayPartsToString(info?.documentation) };
    });
  });
  assert.equal(hovers, [
    { type: '(property) depth: number', doc: "The session's pending count after this event.\n\nSchema: integer, minimum 0." },
    { type: '(property) storedAt: string', doc: 'When the event was stored (ISO 8601, UTC).\n\nSchema: format "date-time".' },
    { type: '(property) receivers: number', doc: 'Live subscribers that were sent the event.\n\nSchema: integer, minimum 0.' },
  ]);
});

test('the schema files are the package\'s to import: switchboard/schema/openrpc.json (QA: the exports map refused it)', () => {
  const require = createRequire(import.meta.url);
  const document = require('switchboard/schema/openrpc.json') as { openrpc: string };
  assert.is(document.openrpc, '1.3.2');
  assert.type(require('switchboard/schema/methods/system.event.params.json'), 'object');
});

test('every source map shipped holds the sources it maps: src/ is not in the package', () => {
  const packaged = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files;
  assert.not.ok(packaged.includes('src'), 'src/ is not packaged, so the maps must carry it');
  const maps = readdirSync(path.join(ROOT, 'dist/src'), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.js.map'));
  assert.ok(maps.length > 20, `${maps.length} maps`);
  for (const file of maps) {
    const map = JSON.parse(readFileSync(path.join(ROOT, 'dist/src', file), 'utf8')) as { sources: string[]; sourcesContent?: string[] };
    assert.is(map.sourcesContent?.length, map.sources.length, file);
  }
});

test.run();
