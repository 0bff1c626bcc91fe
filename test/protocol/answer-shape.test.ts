/**
 * answer-shape: what a client checks of an answer, derived from the TypeBox definitions. Structure
 * only, so that a newer gateway's added member or status is still read.
 */
import Type from 'typebox';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { shapeOf, shapeProblem, type AnswerShape } from '../../src/protocol/answer-shape.js';
import { NOTIFICATION_SHAPES, RESULT_SHAPES } from '../../src/protocol/answer-shapes.js';
import { METHOD_NAMES, METHODS, NOTIFICATIONS } from '../../src/protocol/methods.js';

const test = suite('protocol/answer-shape');

const Step = Type.Object(
  {
    step: Type.Union([Type.Literal('stored'), Type.Literal('acked')]),
    seq: Type.Integer({ minimum: 0 }),
    detail: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()])),
    at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    kind: Type.Literal('trace'),
    note: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);
const Answer = Type.Object({ steps: Type.Array(Step), more: Type.Boolean() });

test('shapeOf keeps types, members, items, record values and union branches (once each); an enum or a const becomes its type', () => {
  assert.equal(shapeOf(Step), {
    type: 'object',
    properties: {
      step: { type: 'string' },
      seq: { type: 'integer' },
      detail: { type: 'object', values: { anyOf: [{ type: 'string' }, { type: 'number' }] } },
      at: { anyOf: [{ type: 'string' }, { type: 'null' }] },
      kind: { type: 'string' },
      note: { type: 'string' },
    },
    required: ['step', 'seq', 'detail', 'at', 'kind'],
  });
  assert.equal(shapeOf({ enum: ['now', 'next-heartbeat'] }), { type: 'string' });
  assert.equal(shapeOf({ enum: ['now', 1] }), {});
});

test('shapeProblem names the first place a value departs, as a path under what was read', () => {
  const shape = shapeOf(Answer);
  const step = { step: 'stored', seq: 1, detail: { n: 1, s: 'x' }, at: null, kind: 'trace' };
  assert.is(shapeProblem({ steps: [step], more: false }, shape, 'result'), undefined);
  for (const [value, problem] of [
    [null, 'result must be an object'],
    [[], 'result must be an object'],
    [{ steps: [] }, 'result lacks "more"'],
    [{ steps: {}, more: false }, 'result/steps must be an array'],
    [{ steps: [step, { ...step, seq: 1.5 }], more: false }, 'result/steps/1/seq must be an integer'],
    [{ steps: [{ ...step, detail: { n: true } }], more: false }, 'result/steps/0/detail/n must be a string or a number'],
    [{ steps: [{ ...step, at: 5 }], more: false }, 'result/steps/0/at must be a string or null'],
    [{ steps: [{ ...step, note: 5 }], more: false }, 'result/steps/0/note must be a string'],
  ] as const) {
    assert.is(shapeProblem(value, shape, 'result'), problem, JSON.stringify(value));
  }
  // In a union, the branch of the value's own type tells what is wrong inside it.
  const nullable = shapeOf(Type.Union([Type.Object({ reason: Type.String() }), Type.Null()]));
  assert.is(shapeProblem({}, nullable, 'result/fallback'), 'result/fallback lacks "reason"');
});

test('what only narrows a value, and members the schema does not name, are not checked: a newer gateway may add them', () => {
  const step = { step: 'archived', seq: 2 ** 60, detail: {}, at: 'yesterday', kind: 'span', extra: [1, 2] };
  assert.is(shapeProblem({ steps: [step], more: true, cursor: 'c1' }, shapeOf(Answer), 'result'), undefined);
});

test('every method has a result shape and every notification a params shape: each its schema\'s, an object, in JSON', () => {
  assert.equal(Object.keys(RESULT_SHAPES), METHOD_NAMES);
  assert.equal(Object.keys(NOTIFICATION_SHAPES), Object.keys(NOTIFICATIONS));
  const read = (text: string | undefined) => JSON.parse(text ?? 'null') as AnswerShape;
  for (const method of METHOD_NAMES) assert.equal(read(RESULT_SHAPES[method]), shapeOf(METHODS[method].result), method);
  for (const name of Object.keys(NOTIFICATIONS) as Array<keyof typeof NOTIFICATIONS>) {
    assert.equal(read(NOTIFICATION_SHAPES[name]), shapeOf(NOTIFICATIONS[name].params), name);
  }
  for (const text of [...Object.values(RESULT_SHAPES), ...Object.values(NOTIFICATION_SHAPES)]) assert.is(read(text).type, 'object');
});

test.run();
