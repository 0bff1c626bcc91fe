/**
 * The OpenRPC document checked against the rules of the OpenRPC 1.x spec
 * (https://spec.open-rpc.org) that hold without fetching its meta-schema: required fields, the
 * fields each object may have, unique names, content descriptors, and $refs that resolve.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ERROR_DESCRIPTIONS, ErrorCode, type ErrorName } from '../../src/protocol/errors.js';
import { METHODS, METHOD_NAMES, NOTIFICATIONS } from '../../src/protocol/methods.js';
import { OPENRPC_VERSION, buildOpenRpcDocument } from '../../src/protocol/openrpc.js';
import { VERSION } from '../../src/version.js';

type Json = Record<string, unknown>;

// Fixed fields per object type, from the spec; anything else must be an `x-` extension.
const DOCUMENT_FIELDS = ['openrpc', 'info', 'servers', 'methods', 'components', 'externalDocs'];
const INFO_FIELDS = ['title', 'description', 'termsOfService', 'contact', 'license', 'version'];
const METHOD_FIELDS = [
  'name', 'tags', 'summary', 'description', 'externalDocs', 'params', 'result',
  'deprecated', 'servers', 'errors', 'links', 'paramStructure', 'examples',
];
const CONTENT_DESCRIPTOR_FIELDS = ['name', 'summary', 'description', 'required', 'schema', 'deprecated'];
const ERROR_FIELDS = ['code', 'message', 'data'];
const COMPONENTS_FIELDS = ['contentDescriptors', 'schemas', 'examples', 'links', 'errors', 'examplePairingObjects', 'tags'];

const SEMVER_1 = /^1\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Resolves a local JSON pointer ref ("#/a/b") inside doc; undefined when it does not resolve. */
function resolveRef(doc: Json, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObject(node) && !Array.isArray(node)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(node, key)) return undefined;
    node = (node as Json)[key];
  }
  return node;
}

/** Every problem found in an OpenRPC document, as "where: what" lines; [] when it conforms. */
function openRpcProblems(doc: unknown): string[] {
  const problems: string[] = [];
  const fail = (where: string, what: string) => problems.push(`${where}: ${what}`);
  const onlyFields = (where: string, value: Json, allowed: string[]) => {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key) && !key.startsWith('x-')) fail(where, `unknown field "${key}"`);
    }
  };
  const nonEmptyString = (value: unknown) => typeof value === 'string' && value.length > 0;

  if (!isObject(doc)) return ['document: must be an object'];
  onlyFields('document', doc, DOCUMENT_FIELDS);
  if (typeof doc['openrpc'] !== 'string' || !SEMVER_1.test(doc['openrpc'])) fail('openrpc', 'must be a 1.x semver string');

  const info = doc['info'];
  if (!isObject(info)) fail('info', 'is required and must be an object');
  else {
    onlyFields('info', info, INFO_FIELDS);
    if (!nonEmptyString(info['title'])) fail('info.title', 'is required');
    if (!nonEmptyString(info['version'])) fail('info.version', 'is required');
  }

  if (doc['servers'] !== undefined) {
    if (!Array.isArray(doc['servers'])) fail('servers', 'must be an array');
    else doc['servers'].forEach((server, i) => {
      if (!isObject(server) || !nonEmptyString(server['url'])) fail(`servers[${i}]`, 'needs a url');
    });
  }

  const components = doc['components'];
  if (components !== undefined) {
    if (!isObject(components)) fail('components', 'must be an object');
    else onlyFields('components', components, COMPONENTS_FIELDS);
  }

  const checkError = (where: string, error: unknown) => {
    if (!isObject(error)) return fail(where, 'must be an object');
    if (typeof error['$ref'] === 'string') {
      if (Object.keys(error).length !== 1) fail(where, 'a reference object holds only $ref');
      const target = resolveRef(doc, error['$ref']);
      if (target === undefined) return fail(where, `$ref ${error['$ref']} does not resolve`);
      return checkError(`${where} -> ${error['$ref']}`, target);
    }
    onlyFields(where, error, ERROR_FIELDS);
    if (!Number.isInteger(error['code'])) fail(where, 'code must be an integer');
    if (!nonEmptyString(error['message'])) fail(where, 'message must be a non-empty string');
    return undefined;
  };

  const checkDescriptor = (where: string, descriptor: unknown) => {
    if (!isObject(descriptor)) return fail(where, 'must be a content descriptor object');
    onlyFields(where, descriptor, CONTENT_DESCRIPTOR_FIELDS);
    if (!nonEmptyString(descriptor['name'])) fail(where, 'name is required');
    const schema = descriptor['schema'];
    if (!isObject(schema) && typeof schema !== 'boolean') fail(where, 'schema is required and must be a JSON Schema');
    if (descriptor['required'] !== undefined && typeof descriptor['required'] !== 'boolean') fail(where, 'required must be a boolean');
    return undefined;
  };

  const methods = doc['methods'];
  if (!Array.isArray(methods)) {
    fail('methods', 'is required and must be an array');
    return problems;
  }
  const seen = new Set<string>();
  methods.forEach((method: unknown, i) => {
    if (!isObject(method)) return fail(`methods[${i}]`, 'must be an object');
    const name = method['name'];
    const where = `methods[${i}] ${String(name)}`;
    onlyFields(where, method, METHOD_FIELDS);
    if (!nonEmptyString(name)) fail(where, 'name is required');
    else if (seen.has(name as string)) fail(where, 'name is not unique');
    else seen.add(name as string);
    if (method['paramStructure'] !== 'by-name') fail(where, 'paramStructure must be "by-name"');
    const params = method['params'];
    if (!Array.isArray(params)) fail(where, 'params is required and must be an array');
    else {
      const paramNames = new Set<string>();
      params.forEach((param: unknown, j) => {
        checkDescriptor(`${where} params[${j}]`, param);
        const paramName = isObject(param) ? String(param['name']) : '';
        if (paramNames.has(paramName)) fail(`${where} params[${j}]`, `param name "${paramName}" is not unique`);
        paramNames.add(paramName);
      });
    }
    // OpenRPC 1.3 made result optional: a method without one is a notification. Before 1.3 it is required.
    if (method['result'] !== undefined) checkDescriptor(`${where} result`, method['result']);
    else if (/^1\.[0-2]\./.test(String(doc['openrpc']))) fail(where, 'result is required');
    const errors = method['errors'];
    if (errors !== undefined) {
      if (!Array.isArray(errors)) fail(where, 'errors must be an array');
      else errors.forEach((error: unknown, j) => checkError(`${where} errors[${j}]`, error));
    }
    return undefined;
  });

  // Any $ref anywhere (a schema's too) must resolve inside the document: there is no network.
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) node.forEach((item, i) => walk(item, `${path}[${i}]`));
    else if (isObject(node)) {
      for (const [key, value] of Object.entries(node)) {
        if (key === '$ref' && typeof value === 'string' && resolveRef(doc, value) === undefined) {
          fail(path, `$ref ${value} does not resolve`);
        }
        walk(value, `${path}.${key}`);
      }
    }
  };
  walk(doc, 'document');
  return problems;
}

const test = suite('protocol/openrpc');
const doc = buildOpenRpcDocument(VERSION);
const methodsOf = (d: Json) => d['methods'] as Json[];

test('the document conforms to the structural rules of OpenRPC 1.x', () => {
  assert.equal(openRpcProblems(doc), []);
});

test('top level: openrpc version, info.title, info.version from package.json', () => {
  assert.is(doc['openrpc'], OPENRPC_VERSION);
  assert.match(OPENRPC_VERSION, SEMVER_1);
  const info = doc['info'] as Json;
  assert.is(info['title'], 'switchboard');
  assert.is(info['version'], VERSION);
  assert.is((buildOpenRpcDocument('9.9.9-test')['info'] as Json)['version'], '9.9.9-test');
});

test('the document is plain JSON: a round trip changes nothing', () => {
  assert.equal(JSON.parse(JSON.stringify(doc)), doc);
});

test('methods are the registry, in order, each by-name with the params of its schema', () => {
  const methods = methodsOf(doc);
  assert.equal(
    methods.map((m) => m['name']),
    METHOD_NAMES,
  );
  // In OpenRPC a method without result is a notification the client sends: none of ours is.
  assert.equal(methods.filter((m) => m['result'] === undefined), []);
  for (const method of methods) {
    const name = method['name'] as keyof typeof METHODS;
    const spec = METHODS[name] as { params: { properties?: Json; required?: string[] }; summary: string };
    assert.is(method['summary'], spec.summary, name);
    const params = method['params'] as Json[];
    assert.equal(
      params.map((p) => p['name']),
      Object.keys(spec.params.properties ?? {}),
      `${name} params`,
    );
    for (const param of params) {
      const required = (spec.params.required ?? []).includes(param['name'] as string);
      assert.is(param['required'], required, `${name}.${String(param['name'])} required`);
    }
    assert.is((method['result'] as Json)['name'], `${name}.result`);
  }
});

test('the notifications the gateway sends are in x-notifications, shaped as method objects, never in methods', () => {
  const notifications = doc['x-notifications'] as Json[];
  assert.equal(
    notifications.map((n) => n['name']),
    Object.keys(NOTIFICATIONS),
  );
  for (const notification of notifications) {
    assert.is(notification['x-direction'], 'server-to-client');
    assert.is(notification['result'], undefined);
    assert.is(notification['paramStructure'], 'by-name');
    const spec = NOTIFICATIONS[notification['name'] as keyof typeof NOTIFICATIONS] as { params: { properties?: Json } };
    assert.equal(
      (notification['params'] as Json[]).map((p) => p['name']),
      Object.keys(spec.params.properties ?? {}),
    );
  }
});

test('only rpc.discover uses the rpc. prefix JSON-RPC reserves', () => {
  const reserved = methodsOf(doc).map((m) => m['name'] as string).filter((n) => n.startsWith('rpc.'));
  assert.equal(reserved, ['rpc.discover']);
});

test('every method lists the generic errors and its own, each resolving to the error table', () => {
  // JSON-RPC's own, and the refusals a frame gets before its method is looked at.
  const generic = ['PARSE_ERROR', 'INVALID_REQUEST', 'METHOD_NOT_FOUND', 'INVALID_PARAMS', 'INTERNAL_ERROR', 'SHUTTING_DOWN'];
  for (const method of methodsOf(doc)) {
    const name = method['name'] as keyof typeof METHODS;
    const refs = (method['errors'] as Json[]).map((e) => e['$ref']);
    assert.equal(refs, [...generic, ...METHODS[name].errors].map((e) => `#/components/errors/${e}`), name);
  }
  const table = (doc['components'] as { errors: Record<string, Json> }).errors;
  assert.equal(Object.keys(table), Object.keys(ErrorCode));
  for (const errorName of Object.keys(ErrorCode) as ErrorName[]) {
    assert.equal(table[errorName], { code: ErrorCode[errorName], message: ERROR_DESCRIPTIONS[errorName] });
  }
});

// The checker itself must be able to fail, or the first test proves nothing.
test('the checker catches each kind of violation', () => {
  const broken = (mutate: (d: Json) => void): string[] => {
    const copy = JSON.parse(JSON.stringify(doc)) as Json;
    mutate(copy);
    return openRpcProblems(copy);
  };
  assert.equal(broken((d) => { d['openrpc'] = '2.0.0'; }), ['openrpc: must be a 1.x semver string']);
  assert.equal(broken((d) => { delete (d['info'] as Json)['title']; }), ['info.title: is required']);
  assert.equal(broken((d) => { (d['info'] as Json)['version'] = ''; }), ['info.version: is required']);
  assert.equal(broken((d) => { delete d['methods']; }), ['methods: is required and must be an array']);
  assert.equal(broken((d) => { d['extra'] = 1; }), ['document: unknown field "extra"']);
  assert.equal(broken((d) => { d['x-extra'] = 1; }), []);
  assert.equal(
    broken((d) => { methodsOf(d)[1]!['name'] = 'system.event'; }),
    ['methods[1] system.event: name is not unique'],
  );
  assert.equal(
    broken((d) => { methodsOf(d)[0]!['paramStructure'] = 'by-position'; }),
    ['methods[0] system.event: paramStructure must be "by-name"'],
  );
  assert.equal(
    broken((d) => { delete (methodsOf(d)[0]!['params'] as Json[])[0]!['schema']; }),
    ['methods[0] system.event params[0]: schema is required and must be a JSON Schema'],
  );
  assert.equal(
    broken((d) => { delete (methodsOf(d)[0]!['params'] as Json[])[1]!['name']; }),
    ['methods[0] system.event params[1]: name is required'],
  );
  assert.equal(
    broken((d) => { (methodsOf(d)[0]!['params'] as Json[])[1]!['name'] = 'text'; }),
    ['methods[0] system.event params[1]: param name "text" is not unique'],
  );
  assert.equal(
    broken((d) => { delete (methodsOf(d)[0]!['result'] as Json)['schema']; }),
    ['methods[0] system.event result: schema is required and must be a JSON Schema'],
  );
  assert.equal(broken((d) => { delete methodsOf(d)[0]!['result']; }), []);
  // Before 1.3 every method needs a result (notifications included): only method 0 is checked here.
  assert.equal(
    broken((d) => { d['openrpc'] = '1.2.6'; delete methodsOf(d)[0]!['result']; }).filter((p) => p.startsWith('methods[0] ')),
    ['methods[0] system.event: result is required'],
  );
  // Index of an error appended to system.event's list.
  const appended = (methodsOf(doc)[0]!['errors'] as Json[]).length;
  assert.equal(
    broken((d) => { (methodsOf(d)[0]!['errors'] as Json[]).push({ $ref: '#/components/errors/NOPE' }); }),
    [
      `methods[0] system.event errors[${appended}]: $ref #/components/errors/NOPE does not resolve`,
      `document.methods[0].errors[${appended}]: $ref #/components/errors/NOPE does not resolve`,
    ],
  );
  assert.equal(
    broken((d) => { (methodsOf(d)[0]!['errors'] as Json[]).push({ code: 1.5, message: '' }); }),
    [
      `methods[0] system.event errors[${appended}]: code must be an integer`,
      `methods[0] system.event errors[${appended}]: message must be a non-empty string`,
    ],
  );
  assert.equal(broken((d) => { (methodsOf(d)[0]!['errors'] as Json[]).push({ code: 1, message: 'm' }); }), []);
  assert.equal(
    broken((d) => { ((d['components'] as Json)['errors'] as Json)['PARSE_ERROR'] = { code: 'x', message: 'm' }; }),
    METHOD_NAMES.map((name, i) => `methods[${i}] ${name} errors[0] -> #/components/errors/PARSE_ERROR: code must be an integer`),
  );
});

test.run();
