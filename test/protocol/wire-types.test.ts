/**
 * src/protocol/wire-types.ts holds the types the library exports: generated from the schemas, with
 * their descriptions as doc comments. Each must be exactly TypeBox's Static type of its schema: the
 * compiler checks it when this file is built, and the build fails where one differs (run `npm run
 * schema`). Whether the file is what the schemas generate now is schema-drift.test.ts's.
 */
import type { Static } from 'typebox';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { METHODS, NOTIFICATIONS } from '../../src/protocol/methods.js';
import type { MethodParams, MethodResults, NotificationParamsByName } from '../../src/protocol/wire-types.js';

/** True when A and B are the same type by the compiler's own identity check, not mere mutual assignability. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

type Methods = typeof METHODS;
type Notifications = typeof NOTIFICATIONS;

/** true for each method or notification whose generated type is its schema's Static type. */
const identical: {
  params: { [M in keyof Methods]: Same<MethodParams[M], Static<Methods[M]['params']>> };
  results: { [M in keyof Methods]: Same<MethodResults[M], Static<Methods[M]['result']>> };
  notifications: { [N in keyof Notifications]: Same<NotificationParamsByName[N], Static<Notifications[N]['params']>> };
  tables: [Same<keyof MethodParams, keyof Methods>, Same<keyof MethodResults, keyof Methods>, Same<keyof NotificationParamsByName, keyof Notifications>];
} = {
  params: everyMethod(true as const),
  results: everyMethod(true as const),
  notifications: { 'session.event': true, 'agent.wake': true },
  tables: [true, true, true],
};

function everyMethod<V>(value: V): { [M in keyof Methods]: V } {
  return Object.fromEntries(Object.keys(METHODS).map((method) => [method, value])) as { [M in keyof Methods]: V };
}

const test = suite('protocol/wire-types');

test('the generated types are each schema\'s Static type (checked by the compiler when this file is built)', () => {
  assert.equal(Object.keys(identical.params), Object.keys(METHODS));
  assert.equal(Object.keys(identical.notifications), Object.keys(NOTIFICATIONS));
});

test.run();
