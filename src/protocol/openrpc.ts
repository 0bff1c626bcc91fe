/**
 * The OpenRPC document (https://spec.open-rpc.org, 1.3.2), generated from the method registry.
 * `npm run schema` writes it to schema/openrpc.json; the gateway answers rpc.discover with it.
 */
import type { TSchema } from 'typebox';
import { DEFAULT_URL } from './constants.js';
import { ERROR_DESCRIPTIONS, ErrorCode, type ErrorName } from './errors.js';
import { METHODS, NOTIFICATIONS, type MethodSpec } from './methods.js';
import type { DiscoverResult } from './schemas.js';

export const OPENRPC_VERSION = '1.3.2';

/**
 * Errors every method can answer with, listed once in components and referenced by each method:
 * JSON-RPC's own, and the refusal a frame gets before its method is looked at while the gateway
 * shuts down (see connection.ts).
 */
const GENERIC_ERRORS: readonly ErrorName[] = [
  'PARSE_ERROR',
  'INVALID_REQUEST',
  'METHOD_NOT_FOUND',
  'INVALID_PARAMS',
  'INTERNAL_ERROR',
  'SHUTTING_DOWN',
];

type JsonObject = Record<string, unknown>;

/**
 * @param serverUrls where the gateway can be reached: rpc.discover names the live gateway's own
 * URLs, the committed schema/openrpc.json the default one.
 */
export function buildOpenRpcDocument(version: string, serverUrls: readonly string[] = [DEFAULT_URL]): DiscoverResult & JsonObject {
  // Named, not returned as written: the members beyond those DiscoverResult types are not excess.
  const document = {
    openrpc: OPENRPC_VERSION,
    info: {
      title: 'switchboard',
      version,
      description:
        'Event gateway for AI agents: JSON-RPC 2.0 over WebSocket. Background work tells a long-running agent "this happened" and it lands in the right conversation. Authenticate the WebSocket upgrade with "Authorization: Bearer <token>".',
      license: { name: 'MIT' },
    },
    servers: serverUrls.map((url) => ({ name: 'switchboard gateway', url })),
    methods: Object.entries(METHODS).map(([name, spec]) => describeMethod(name, spec)),
    'x-notifications': Object.entries(NOTIFICATIONS).map(([name, spec]) => describeNotification(name, spec)),
    components: {
      errors: Object.fromEntries(
        (Object.keys(ErrorCode) as ErrorName[]).map((name) => [name, { code: ErrorCode[name], message: ERROR_DESCRIPTIONS[name] }]),
      ),
    },
  };
  return document;
}

function describeMethod(name: string, spec: MethodSpec): { name: string } & JsonObject {
  return {
    name,
    summary: spec.summary,
    ...(spec.description ? { description: spec.description } : {}),
    paramStructure: 'by-name',
    params: contentDescriptors(spec.params),
    result: { name: `${name}.result`, schema: plain(spec.result) },
    errors: [...GENERIC_ERRORS, ...spec.errors].map((errorName) => ({ $ref: `#/components/errors/${errorName}` })),
  };
}

/**
 * The notifications the gateway sends, in an extension of the document's root (OpenRPC allows
 * `x-` members there). OpenRPC has no way to describe a call from server to client: in `methods`,
 * an entry without `result` is a notification the client sends, so a client generated from the
 * document would offer calls the gateway never serves. Each is shaped like a method object, so
 * tools can read its params the same way; `x-direction` says which way it flows.
 */
function describeNotification(name: string, spec: { params: TSchema; summary: string }): JsonObject {
  return {
    name,
    summary: spec.summary,
    description: `Notification sent by the gateway to the client (never answered). Calling it on the gateway answers -32601.`,
    paramStructure: 'by-name',
    params: contentDescriptors(spec.params),
    'x-direction': 'server-to-client',
  };
}

function contentDescriptors(schema: TSchema): JsonObject[] {
  const object = schema as TSchema & { properties?: Record<string, TSchema>; required?: string[] };
  const required = new Set(object.required ?? []);
  return Object.entries(object.properties ?? {}).map(([paramName, property]) => {
    const json = plain(property);
    const description = typeof json['description'] === 'string' ? { description: json['description'] } : {};
    return { name: paramName, required: required.has(paramName), ...description, schema: json };
  });
}

/** TypeBox schemas are plain JSON already; a round trip drops any symbol-keyed metadata. */
export function plain(schema: TSchema): JsonObject {
  return JSON.parse(JSON.stringify(schema)) as JsonObject;
}
