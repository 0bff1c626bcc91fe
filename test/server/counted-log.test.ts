import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { countedLog } from '../../src/server/counted-log.js';

const test = suite('server/counted-log');

test('the first time is logged at once, later ones counted until the interval ends; a happening may count many times (events dropped by one call)', async () => {
  const lines: string[] = [];
  const log = countedLog<string>((line) => lines.push(line), (count, last) => `${count} (last ${last})`, 30);
  log.happened('a', 3);
  log.happened('b');
  log.happened('c', 2);
  assert.equal(lines, ['3 (last a)']);
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.equal(lines, ['3 (last a)', '3 (last c)']);
  log.flush();
  assert.is(lines.length, 2, 'nothing held back');
});

test.run();
