import Type from 'typebox';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { declaration, type SchemaNames } from '../../src/protocol/typescript-source.js';

const test = suite('protocol/typescript-source');
const NONE: SchemaNames = new Map();

test('an object: each member with its description and bounds as a doc comment, optional ones marked', () => {
  const schema = Type.Object(
    {
      text: Type.String({ minLength: 1, description: 'What happened.' }),
      limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
      flag: Type.Boolean(),
    },
    { description: 'The params.' },
  );
  assert.is(
    declaration('Params', schema, NONE),
    [
      '/**',
      ' * The params.',
      ' */',
      'export type Params = {',
      '  /**',
      '   * What happened.',
      '   *',
      '   * Schema: minLength 1.',
      '   */',
      '  text: string;',
      '  /**',
      '   * Schema: integer, minimum 1, maximum 100.',
      '   */',
      '  limit?: number;',
      '  flag: boolean;',
      '};',
      '',
    ].join('\n'),
  );
});

test('an input (a method\'s params) takes undefined for each optional member, in objects within it too', () => {
  const schema = Type.Object({
    text: Type.String(),
    mode: Type.Optional(Type.String()),
    nested: Type.Optional(Type.Object({ after: Type.Optional(Type.Number()) })),
  });
  assert.is(
    declaration('Params', schema, NONE, true),
    'export type Params = {\n  text: string;\n  mode?: string | undefined;\n  nested?: {\n    after?: number | undefined;\n  } | undefined;\n};\n',
  );
  assert.is(declaration('Result', schema, NONE), 'export type Result = {\n  text: string;\n  mode?: string;\n  nested?: {\n    after?: number;\n  };\n};\n');
});

test('a nullable member takes the description of its non-null member, where TypeBox puts it', () => {
  const schema = Type.Object({ at: Type.Union([Type.String({ format: 'date-time', description: 'When.' }), Type.Null()]) });
  assert.is(declaration('T', schema, NONE), 'export type T = {\n  /**\n   * When.\n   *\n   * Schema: format "date-time".\n   */\n  at: string | null;\n};\n');
});

test('enums and literals as unions of literals; records as index signatures; arrays of a union in Array<>', () => {
  assert.is(declaration('Mode', Type.Enum(['now', 'later']), NONE), 'export type Mode = "now" | "later";\n');
  assert.is(declaration('Yes', Type.Literal(true), NONE), 'export type Yes = true;\n');
  assert.is(declaration('Map', Type.Record(Type.String(), Type.Integer()), NONE), 'export type Map = {\n  [key: string]: number;\n};\n');
  assert.is(declaration('List', Type.Array(Type.Union([Type.String(), Type.Number()])), NONE), 'export type List = Array<string | number>;\n');
  assert.is(declaration('Names', Type.Array(Type.String()), NONE), 'export type Names = string[];\n');
});

test('an object without members is `object`, as Static types it; other members allowed are said, not typed', () => {
  assert.is(declaration('Empty', Type.Object({}), NONE), 'export type Empty = object;\n');
  assert.is(
    declaration('Open', Type.Object({ name: Type.String() }, { additionalProperties: true }), NONE),
    '/**\n * Schema: other members allowed.\n */\nexport type Open = {\n  name: string;\n};\n',
  );
});

test('a use of a named schema is written as its name, an optional copy of it too; the schema declared is written out', () => {
  const Mode = Type.Enum(['now', 'later']);
  const names: SchemaNames = new Map([[JSON.stringify(Mode), 'Mode']]);
  const schema = Type.Object({ mode: Type.Optional(Mode), modes: Type.Array(Mode) });
  assert.is(declaration('T', schema, names), 'export type T = {\n  mode?: Mode;\n  modes: Mode[];\n};\n');
  assert.is(declaration('Mode', Mode, names), 'export type Mode = "now" | "later";\n');
});

test('member names that are not identifiers are quoted; a description cannot end its comment early', () => {
  const schema = Type.Object({ 'content-type': Type.String({ description: 'Ends with */ here.' }) });
  assert.is(declaration('T', schema, NONE), 'export type T = {\n  /**\n   * Ends with *\\/ here.\n   */\n  "content-type": string;\n};\n');
});

test('a schema it has no type for is an error, not a type that says less', () => {
  assert.throws(() => declaration('T', Type.Object({ when: Type.Any() }), NONE), /no TypeScript type for the schema \{\}/);
  const twoPatterns = { type: 'object', patternProperties: { '^a': Type.String(), '^b': Type.Number() } };
  assert.throws(() => declaration('T', twoPatterns, NONE), /more than one patternProperties/);
});

test.run();
