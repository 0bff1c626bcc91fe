/**
 * UnfinishedMessages with stand-in holders: the bound at its edge and one past it, which holder is
 * cut (the largest, as many as it takes), that a cut holder is no longer counted nor cut twice,
 * and what finishing a message and releasing a holder give back.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UnfinishedMessages, type UnfinishedHolder } from '../../src/server/unfinished-messages.js';

const test = suite('server: UnfinishedMessages');

function holders(...names: string[]): { cuts: string[]; holder: Record<string, UnfinishedHolder> } {
  const cuts: string[] = [];
  const holder = Object.fromEntries(names.map((name) => [name, { cutForUnfinished: () => cuts.push(name) }]));
  return { cuts, holder };
}

test('up to the limit nothing is cut; one byte past it, the largest holder is', () => {
  const { cuts, holder } = holders('a', 'b', 'c');
  const unfinished = new UnfinishedMessages(100);
  unfinished.set(holder.a!, 30);
  unfinished.set(holder.b!, 50);
  unfinished.set(holder.c!, 20);
  assert.equal(cuts, []);
  // Growing: what a holder holds now replaces what it held.
  unfinished.set(holder.c!, 21);
  assert.equal(cuts, ['b']);
});

test('as many of the largest are cut as it takes to be within the limit; the one growing is among them', () => {
  const { cuts, holder } = holders('a', 'b', 'c', 'd');
  const unfinished = new UnfinishedMessages(100);
  unfinished.set(holder.a!, 40);
  unfinished.set(holder.b!, 30);
  unfinished.set(holder.c!, 20);
  unfinished.set(holder.d!, 95);
  assert.equal(cuts, ['d']);
  unfinished.set(holder.c!, 100);
  assert.equal(cuts, ['d', 'c']);
  unfinished.set(holder.d!, 500);
  assert.equal(cuts, ['d', 'c'], 'a cut holder is not counted again, nor cut twice');
  unfinished.set(holder.a!, 60);
  unfinished.set(holder.b!, 41);
  assert.equal(cuts, ['d', 'c', 'a']);
});

test('a finished message (0) and a released holder give back what they held', () => {
  const { cuts, holder } = holders('a', 'b', 'c');
  const unfinished = new UnfinishedMessages(100);
  unfinished.set(holder.a!, 60);
  unfinished.set(holder.b!, 40);
  unfinished.set(holder.a!, 0);
  unfinished.set(holder.c!, 60);
  unfinished.release(holder.b!);
  unfinished.set(holder.a!, 40);
  assert.equal(cuts, []);
  // Released after a cut: counted from nothing if it came back.
  unfinished.set(holder.c!, 101);
  assert.equal(cuts, ['c']);
  unfinished.release(holder.c!);
  unfinished.set(holder.c!, 60);
  assert.equal(cuts, ['c']);
});

test.run();
