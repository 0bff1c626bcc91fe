/**
 * The schema as numbered migrations, recorded in PRAGMA user_version: schema version N is
 * MIGRATIONS[0..N-1] applied in order. To change the schema, append a migration; never edit one
 * that has shipped.
 */
import type Database from 'better-sqlite3';
import { sqliteCode, StoreOpenError } from './errors.js';

const MIGRATIONS: readonly string[] = [
  `
  -- One row per session ever written to, kept when it drains empty so seq is never reused.
  -- pending is kept in step with the events table so depth, list and stats never count events.
  CREATE TABLE sessions (
    session_key   TEXT PRIMARY KEY,
    agent_id      TEXT NOT NULL,
    last_seq      INTEGER NOT NULL,
    last_event_at INTEGER NOT NULL,
    pending       INTEGER NOT NULL
  ) WITHOUT ROWID;
  -- Partial: session.list and stats only ever look at sessions with pending events.
  CREATE INDEX sessions_by_pending ON sessions (pending DESC, session_key) WHERE pending > 0;
  CREATE INDEX sessions_by_agent ON sessions (agent_id, pending DESC, session_key) WHERE pending > 0;

  -- Pending events only: consuming one deletes it.
  CREATE TABLE events (
    session_key TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    event_id    TEXT NOT NULL UNIQUE,
    text        TEXT NOT NULL,
    mode        TEXT NOT NULL,
    context_key TEXT,
    stored_at   INTEGER NOT NULL,
    PRIMARY KEY (session_key, seq)
  ) WITHOUT ROWID;
  -- Covering (event_id included) for the contextKey lookup of every append: without it SQLite
  -- prefers scanning the session's events through the primary key.
  CREATE INDEX events_by_context ON events (session_key, context_key, event_id) WHERE context_key IS NOT NULL;

  -- result is the JSON of what the first caller was answered.
  CREATE TABLE idempotency (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    result      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
  );
  -- For pruning by age (idempotencyRetentionMs).
  CREATE INDEX idempotency_by_age ON idempotency (created_at);

  -- The life of each event, step by step; outlives the event so "why did the agent not react?"
  -- can be answered after it was consumed. detail is JSON. id orders the steps of one event.
  CREATE TABLE trace (
    id       INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    step     TEXT NOT NULL,
    at       INTEGER NOT NULL,
    detail   TEXT NOT NULL
  );
  CREATE INDEX trace_by_event ON trace (event_id, id);
  -- For pruning by age (TRACE_RETENTION_MS).
  CREATE INDEX trace_by_age ON trace (at);

  -- Scoped tokens: only the SHA-256 of the secret, never the secret. Kept when revoked, so
  -- token list shows what was revoked and when. scopes is a JSON array. No index on created_at:
  -- an admin creates tokens by the handful, and the list is read whole.
  CREATE TABLE tokens (
    token_id   TEXT PRIMARY KEY,
    name       TEXT,
    agent_id   TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    -- UNIQUE: a hash names exactly one token, so authentication can never match two.
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
  ) WITHOUT ROWID;
  `,
  `
  -- Events move to a rowid table, so every batch's rows are appended at the table's right edge,
  -- and a session's order is kept by a narrow index instead. Clustered by (session_key, seq), a
  -- batch spread over many sessions rewrote each session's newest leaf page of whole rows (about
  -- twelve to a page) and split one every few batches: ~900 WAL pages per commit of 520 appends
  -- over 200 sessions, against ~600 for this layout, and 21 against 14 µs per append.
  --
  -- That index names a session by a small integer id, not by its key: each append's entry shrinks
  -- from ~55 bytes to ~12, so its pages split less often and its comparisons are of integers
  -- (same load: 14.1 against 17.5 µs per append through the store). The id is the sessions
  -- table's rowid: the row of each session a batch touched is written once per batch, and finding
  -- it by rowid cost ~0.05 µs per append less than by key (as in a WITHOUT ROWID table keyed by
  -- session_key, with the id in a column beside it); both wrote as many WAL pages. The price is
  -- one index search more to find a session by key, only for one not in the store's cache.
  CREATE TABLE sessions_by_id (
    id            INTEGER PRIMARY KEY,
    session_key   TEXT NOT NULL UNIQUE,
    agent_id      TEXT NOT NULL,
    last_seq      INTEGER NOT NULL,
    last_event_at INTEGER NOT NULL,
    pending       INTEGER NOT NULL
  );
  INSERT INTO sessions_by_id (session_key, agent_id, last_seq, last_event_at, pending)
    SELECT session_key, agent_id, last_seq, last_event_at, pending FROM sessions ORDER BY session_key;

  CREATE TABLE events_by_arrival (
    id          INTEGER PRIMARY KEY,
    -- The id of the event's sessions row.
    session_id  INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    event_id    TEXT NOT NULL UNIQUE,
    text        TEXT NOT NULL,
    mode        TEXT NOT NULL,
    context_key TEXT,
    stored_at   INTEGER NOT NULL
  );
  -- Not a join: an event without a sessions row (schema 1 always writes one) would be left out
  -- silently; here its NULL id fails the migration, which leaves the database as it was.
  INSERT INTO events_by_arrival (session_id, seq, event_id, text, mode, context_key, stored_at)
    SELECT (SELECT id FROM sessions_by_id WHERE sessions_by_id.session_key = events.session_key),
           seq, event_id, text, mode, context_key, stored_at
    FROM events ORDER BY stored_at, session_key, seq;

  DROP TABLE events;
  DROP TABLE sessions;
  ALTER TABLE sessions_by_id RENAME TO sessions;
  ALTER TABLE events_by_arrival RENAME TO events;
  CREATE INDEX sessions_by_pending ON sessions (pending DESC, session_key) WHERE pending > 0;
  CREATE INDEX sessions_by_agent ON sessions (agent_id, pending DESC, session_key) WHERE pending > 0;
  CREATE UNIQUE INDEX events_by_session ON events (session_id, seq);
  CREATE INDEX events_by_context ON events (session_id, context_key, event_id) WHERE context_key IS NOT NULL;

  -- Traces are pruned in id order, which is the order they were written in, and so by age: the
  -- index on their time cost every append an index entry (~0.8 of ~12 µs through the store).
  DROP INDEX trace_by_age;
  `,
  `
  -- No change to the tables. From schema 3 on, a session's row may lag the events appended to it
  -- (never their removal; schema 6 widens this) until the store writes it, and the store brings such
  -- rows up to date from the events table when it opens (see SessionCache). A build that predates
  -- this would trust the rows as they are, and after a crash reuse seqs: this version makes it
  -- refuse the data dir.
  SELECT 1;
  `,
  `
  -- A session's pending events in seq order move from this index into the store's memory
  -- (PendingIndex in pending-index.ts), built from the events table when the store opens: entries
  -- of different sessions never shared a leaf of it, so every commit wrote one leaf per session it
  -- touched. A build that predates this needs the index: this version makes it refuse the data dir.
  DROP INDEX events_by_session;
  `,
  `
  -- An event's "accepted" and "stored" trace steps move from a trace row of their own, written by
  -- every append, into the event's row while it is pending (events.accepted), and from there into
  -- the trace row of the step that removes it (acked, drained, replaced or dropped: every removal
  -- writes one), with their time (trace.accepted_at, the event's stored_at). An event then costs
  -- one trace row instead of two, and an append none: a trace row was ~12% of an append's CPU in
  -- the gateway. Both hold the JSON array [accepted detail, stored detail]; NULL elsewhere, as in
  -- the rows written before (theirs went to trace rows of their own, which stay as they are).
  ALTER TABLE events ADD COLUMN accepted TEXT;
  ALTER TABLE trace ADD COLUMN accepted_at INTEGER;
  ALTER TABLE trace ADD COLUMN accepted TEXT;
  `,
  `
  -- No change to the tables. From schema 6 on, a session's row may also lag appends that dropped
  -- events at the pending cap or replaced one under its contextKey (those removals no longer write
  -- the row), and the store takes a lagging row's pending count from the events it holds. A build
  -- that predates this adds the appends to the row's count instead: after a crash it would count
  -- events that are gone and, at the cap, drop the real ones. This version makes it refuse the
  -- data dir.
  SELECT 1;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to SCHEMA_VERSION (tests name an older `target`) in one transaction: a crash
 * mid-way leaves it as it was. Returns the schema version it found (0: a new database).
 */
export function migrate(db: Database.Database, file: string, target = SCHEMA_VERSION): number {
  const found = db.pragma('user_version', { simple: true }) as number;
  if (found > SCHEMA_VERSION) {
    throw new StoreOpenError(
      file,
      `its schema version ${found} is newer than this switchboard supports (${SCHEMA_VERSION})`,
      'upgrade switchboard, or use another data dir',
    );
  }
  if (found >= target) return found;
  try {
    db.transaction(() => {
      for (const migration of MIGRATIONS.slice(found, target)) db.exec(migration);
      db.pragma(`user_version = ${target}`);
    }).immediate();
    return found;
  } catch (error) {
    // A constraint failure is the data's doing (a row the migration cannot carry over, such as an
    // event without its session row), not the disk's: say so, rather than "check the data dir".
    if (!sqliteCode(error)?.startsWith('SQLITE_CONSTRAINT')) throw error;
    throw new StoreOpenError(
      file,
      `its data cannot be migrated from schema version ${found} to ${target} (${(error as Error).message})`,
      'the database was left as it was: run the switchboard version that wrote it, or move the file aside to start with an empty store',
      { cause: error },
    );
  }
}
