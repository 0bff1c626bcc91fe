/**
 * `switchboard backup` / gateway.backup: a copy of a running gateway's store, taken under load,
 * that a gateway started on it serves whole. Copying the data dir's files instead tore the
 * database under load (QA: broken indexes in 3 of 12 copies).
 */
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { cleanup, makeTempDir, openPeer, resultOf, runCli, startGatewayProcess } from '../helpers/gateway.js';

const test = suite('e2e: backup of a running gateway');
test.after(cleanup);

const SESSIONS = 20;
const keyOf = (n: number) => `agent:backup:direct:u${n % SESSIONS}`;

test('a backup taken while events pour in holds every event answered before it began; a gateway started on it serves them', async () => {
  const gw = await startGatewayProcess();
  const peers = await Promise.all(Array.from({ length: 4 }, () => openPeer(gw.url, gw.token)));
  const answered: string[] = [];
  let sending = true;
  let sent = 0;
  const text = 'y'.repeat(1_000);
  const load = peers.map(async (peer) => {
    while (sending) {
      const batch = Array.from({ length: 50 }, () => ({ method: 'system.event', params: { text: `${++sent} ${text}`, sessionKey: keyOf(sent) } }));
      for (const answer of await peer.batch(batch)) answered.push(resultOf<{ eventId: string }>(answer).eventId);
    }
  });
  while (answered.length < 4_000) await new Promise((resolve) => setTimeout(resolve, 20));
  const before = new Set(answered);
  // A relative path is the CLI's working directory's, not the gateway's.
  const here = makeTempDir();
  const result = await runCli(['backup', 'copy.db', '--data-dir', gw.dataDir], { cwd: here });
  const answeredByThen = answered.length;
  sending = false;
  await Promise.all(load);
  const copy = path.join(here, 'copy.db');
  assert.is(result.code, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`^backed up to ${copy} \\(${fs.statSync(copy).size} bytes in \\d+ ms\\)\\n  to restore: `));
  assert.ok(answeredByThen > before.size, 'events were answered while the copy was made');

  const restored = makeTempDir();
  fs.renameSync(copy, path.join(restored, 'switchboard.db'));
  const db = new Database(path.join(restored, 'switchboard.db'), { readonly: true });
  assert.is(db.pragma('integrity_check', { simple: true }), 'ok');
  db.close();
  const again = await startGatewayProcess({ dataDir: restored });
  const reader = await openPeer(again.url, again.token);
  const held = new Set<string>();
  type Read = { events: { eventId: string; seq: number }[]; more: boolean };
  for (let n = 0; n < SESSIONS; n++) {
    for (let after = 0, more = true; more; ) {
      const read = resultOf<Read>(await reader.call('session.peek', { sessionKey: keyOf(n), limit: 1000, after }));
      for (const event of read.events) held.add(event.eventId);
      ({ more } = read);
      after = read.events.at(-1)?.seq ?? after;
    }
  }
  const missing = [...before].filter((eventId) => !held.has(eventId));
  assert.equal(missing, [], `${missing.length} of ${before.size} events answered before the backup are not in it`);
  assert.is(await again.stop(), 0);
  for (const peer of peers) peer.close();
  reader.close();
  assert.is(await gw.stop(), 0);
});

test('backup: admin only (FORBIDDEN), an absolute path over the wire, never over a file; --json is the result', async () => {
  const gw = await startGatewayProcess();
  const admin = await openPeer(gw.url, gw.token);
  const scoped = resultOf<{ token: string }>(await admin.call('token.create', { agentId: 'ops' })).token;
  const dir = makeTempDir();
  const forbidden = await runCli(['backup', path.join(dir, 'x.db'), '--url', gw.url], { env: { SWITCHBOARD_TOKEN: scoped } });
  assert.is(forbidden.code, 1);
  assert.match(forbidden.stderr, 'this needs the admin token (the one in <data-dir>/token): a scoped token only publishes and subscribes for its agent (code 1008)');
  assert.not.ok(fs.existsSync(path.join(dir, 'x.db')));
  const relative = await admin.call('gateway.backup', { path: 'x.db' });
  assert.is(relative.error?.code, -32602);
  assert.equal(relative.error?.data?.errors, [{ path: '/path', message: "must be an absolute path (on the gateway's machine)" }]);
  // QA: Node's own words came back, as BACKUP_FAILED, for both.
  const nul = await admin.call('gateway.backup', { path: `${dir}/b.db\u0000x` });
  assert.equal([nul.error?.code, nul.error?.data?.errors], [-32602, [{ path: '/path', message: 'must not hold a NUL character (no file name can)' }]]);
  const directory = await admin.call('gateway.backup', { path: dir });
  assert.equal([directory.error?.code, directory.error?.message], [1024, `could not back up to ${dir}: it is a directory: name a new file in it`]);
  // A final "/" names a directory, whether it exists or not (review: the CLI made "newdir/" a file named newdir).
  for (const named of [`${dir}/`, `${dir}/newdir/`]) {
    const refused = await admin.call('gateway.backup', { path: named });
    assert.equal([refused.error?.code, refused.error?.data?.errors], [-32602, [{ path: '/path', message: 'names a directory (it ends with /): name a new file, in a directory that exists' }]]);
  }
  const viaCli = await runCli(['backup', path.join(dir, 'newdir') + '/', '--data-dir', gw.dataDir]);
  assert.is(viaCli.code, 1, viaCli.stderr);
  assert.match(viaCli.stderr, 'names a directory (it ends with /)');
  assert.not.ok(fs.existsSync(path.join(dir, 'newdir')));
  const json = await runCli(['backup', path.join(dir, 'y.db'), '--json', '--data-dir', gw.dataDir]);
  assert.is(json.code, 0, json.stderr);
  const answer = JSON.parse(json.stdout) as { path: string; bytes: number; durationMs: number };
  assert.equal([answer.path, answer.bytes], [path.join(dir, 'y.db'), fs.statSync(path.join(dir, 'y.db')).size]);
  const taken = await runCli(['backup', path.join(dir, 'y.db'), '--json', '--data-dir', gw.dataDir]);
  assert.is(taken.code, 1);
  assert.equal(JSON.parse(taken.stdout).error.data, { name: 'BACKUP_FAILED', path: path.join(dir, 'y.db') });
  assert.is(fs.statSync(path.join(dir, 'y.db')).size, answer.bytes, 'the earlier copy is untouched');
  admin.close();
  assert.is(await gw.stop(), 0);
});

test.run();
