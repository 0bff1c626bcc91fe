/**
 * The files under schema/, as text: the OpenRPC document and one JSON Schema per method's params
 * and result. Pure, so `npm run schema` writes exactly what the drift test compares against.
 */
import type { TSchema } from 'typebox';
import { METHODS } from './methods.js';
import { buildOpenRpcDocument, plain } from './openrpc.js';

export const JSON_SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';

/** Absolute, so a schema copied out of the package still names where it came from. */
export const SCHEMA_BASE_URL = 'https://switchboard.dev/schema/';

/** Relative file name (always with `/`) → exact file text, in a stable order. */
export function schemaFiles(version: string): Map<string, string> {
  const files = new Map<string, string>();
  files.set('openrpc.json', toText(buildOpenRpcDocument(version)));
  for (const [method, spec] of Object.entries(METHODS)) {
    files.set(`methods/${method}.params.json`, toText(jsonSchemaFile(`methods/${method}.params.json`, `${method} params`, spec.params)));
    files.set(`methods/${method}.result.json`, toText(jsonSchemaFile(`methods/${method}.result.json`, `${method} result`, spec.result)));
  }
  return files;
}

function jsonSchemaFile(file: string, title: string, schema: TSchema): Record<string, unknown> {
  // The header comes first so a reader sees what the file is before the body.
  return { $schema: JSON_SCHEMA_DIALECT, $id: `${SCHEMA_BASE_URL}${file}`, title, ...plain(schema) };
}

function toText(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
