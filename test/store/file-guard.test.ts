import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { sqliteCode } from '../../src/store/errors.js';
import { databaseFileGuard } from '../../src/store/file-guard.js';
import { thrownBy } from '../helpers/thrown.js';

const test = suite('store/file-guard');

test('a commit goes through while the file is the one opened; removed or replaced, it is refused; put back, it goes through again', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-guard-'));
  const file = path.join(dir, 'switchboard.db');
  fs.writeFileSync(file, 'db');
  const guard = databaseFileGuard(file);
  assert.is(thrownBy(() => guard.beforeCommit(true)), undefined);

  fs.renameSync(file, `${file}.aside`);
  const removed = thrownBy(() => guard.beforeCommit(true));
  // A batch of reads changes nothing, and is let through.
  assert.is(thrownBy(() => guard.beforeCommit(false)), undefined);
  assert.is(sqliteCode(removed), 'SQLITE_READONLY_DBMOVED');
  assert.is((removed as Error).message, `${file} was removed while the gateway ran`);

  fs.renameSync(`${file}.aside`, file);
  assert.is(thrownBy(() => guard.beforeCommit(true)), undefined);

  fs.copyFileSync(file, `${file}.copy`);
  fs.renameSync(`${file}.copy`, file);
  assert.is((thrownBy(() => guard.beforeCommit(true)) as Error).message, `${file} was replaced while the gateway ran`);
  fs.rmSync(dir, { recursive: true, force: true });
});

test.run();
