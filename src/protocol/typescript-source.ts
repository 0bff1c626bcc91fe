/**
 * JSON Schema → TypeScript declarations, with each schema's description as a doc comment: for the
 * wire types an editor shows on hover (see wireTypesSource in schema-files.ts). TypeBox's Static
 * types are the same types, but carry no descriptions: a field's hover said only `number`.
 * Handles what schemas.ts uses (objects, arrays, records, unions, enums, literals, scalars), and
 * throws on a schema it has no type for; keywords that narrow a type TypeScript cannot (bounds,
 * formats) are said in the doc comment, and test/protocol/wire-types.test.ts holds each type to be
 * the schema's Static type.
 */

type Schema = Readonly<Record<string, unknown>>;

/**
 * Schemas by their JSON text → the name they are declared under: a use of one is written as its
 * name. By text, not identity: Type.Optional(EventMode) is a copy of EventMode.
 */
export type SchemaNames = ReadonlyMap<string, string>;

/**
 * `export type Name = ...`: an alias, as Static's are, not an interface, which other code could
 * not pass where a record of unknown values is asked for (interfaces have no implicit index signature).
 * An `input` (a method's params) types each optional member `?: T | undefined`: under
 * exactOptionalPropertyTypes, a caller passing on a setting of its own that may be undefined is
 * then not refused (JSON leaves such a member out, as if not given). The same type without that
 * option, where `?:` takes undefined already.
 */
export function declaration(name: string, definition: object, names: SchemaNames, input = false): string {
  const schema = definition as Schema;
  return `${docComment(schema, '')}export type ${name} = ${typeOf(schema, { names, input }, '', schema)};\n`;
}

interface Context {
  names: SchemaNames;
  input: boolean;
}

/** The TypeScript type of a schema; `self` is the schema being declared, written out rather than named. */
function typeOf(schema: Schema, context: Context, indent: string, self?: Schema): string {
  const named = schema === self ? undefined : context.names.get(JSON.stringify(schema));
  if (named !== undefined) return named;
  if (Array.isArray(schema['anyOf'])) return (schema['anyOf'] as Schema[]).map((member) => typeOf(member, context, indent)).join(' | ');
  if (Array.isArray(schema['enum'])) return (schema['enum'] as unknown[]).map((value) => JSON.stringify(value)).join(' | ');
  if ('const' in schema) return JSON.stringify(schema['const']);
  switch (schema['type']) {
    case 'string':
    case 'boolean':
    case 'null':
      return schema['type'];
    case 'integer':
    case 'number':
      return 'number';
    case 'array': {
      const items = typeOf(schema['items'] as Schema, context, indent);
      return /^[\w.]+$/.test(items) ? `${items}[]` : `Array<${items}>`;
    }
    case 'object':
      return objectType(schema, context, indent);
    default:
      throw new Error(`no TypeScript type for the schema ${JSON.stringify(schema)}`);
  }
}

function objectType(schema: Schema, context: Context, indent: string): string {
  const inner = `${indent}  `;
  const required = new Set((schema['required'] as string[] | undefined) ?? []);
  const members = Object.entries((schema['properties'] as Record<string, Schema> | undefined) ?? {}).map(([key, property]) => {
    const type = typeOf(property, context, inner);
    const member = required.has(key) ? `: ${type}` : `?: ${type}${context.input ? ' | undefined' : ''}`;
    return `${docComment(property, inner)}${inner}${propertyName(key)}${member};\n`;
  });
  const patterns = Object.values((schema['patternProperties'] as Record<string, Schema> | undefined) ?? {});
  if (patterns.length > 1) throw new Error(`no TypeScript type for more than one patternProperties: ${JSON.stringify(schema)}`);
  for (const values of patterns) members.push(`${inner}[key: string]: ${typeOf(values, context, inner)};\n`);
  // As Static types it: `{}` would take any value but null and undefined, a string included.
  return members.length === 0 ? 'object' : `{\n${members.join('')}${indent}}`;
}

function propertyName(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key);
}

/**
 * The schema's description and the bounds it sets, as a doc comment; none when it has neither. A
 * nullable schema's description is its non-null member's, where TypeBox puts it.
 */
function docComment(schema: Schema, indent: string): string {
  const described = [schema, ...((schema['anyOf'] as Schema[] | undefined) ?? [])];
  const description = described.map((member) => member['description']).find((text): text is string => typeof text === 'string');
  const bounds = described.flatMap(boundsOf);
  const lines = [...(description === undefined ? [] : [description]), ...(bounds.length === 0 ? [] : [`Schema: ${bounds.join(', ')}.`])];
  if (lines.length === 0) return '';
  // A description may hold `*/`, which would end the comment early.
  const body = lines.join('\n\n').replaceAll('*/', '*\\/').split('\n');
  return `${indent}/**\n${body.map((line) => `${indent} *${line === '' ? '' : ` ${line}`}`).join('\n')}\n${indent} */\n`;
}

const BOUND_KEYWORDS = ['minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'uniqueItems', 'pattern', 'format', 'default'] as const;

function boundsOf(schema: Schema): string[] {
  // TypeScript has no integer type: the hover of a `number` says when it is one.
  const integer = schema['type'] === 'integer' ? ['integer'] : [];
  // Typed without an index signature, as Static types it: the doc says that more may come.
  const open = schema['additionalProperties'] === true ? ['other members allowed'] : [];
  return [...integer, ...open, ...BOUND_KEYWORDS.filter((keyword) => keyword in schema).map((keyword) => `${keyword} ${JSON.stringify(schema[keyword])}`)];
}
