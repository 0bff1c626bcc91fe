/**
 * Every limit and default of the wire protocol, in one place. Each is enforced with a documented
 * error (see errors.ts) and tested at its edge and one past it.
 */

/** Default TCP port of the gateway: unassigned by IANA and far from common dev-server ports. */
export const DEFAULT_PORT = 18790;

/** Loopback only by default: the gateway holds an admin token's worth of power. */
export const DEFAULT_HOST = '127.0.0.1';

/**
 * The gateway's own address when started without --host or --port. Clients given no URL look in
 * the data dir first (localGatewayUrl(): its Unix socket), and here only where there are no Unix
 * sockets (Windows).
 */
export const DEFAULT_URL = `ws://${DEFAULT_HOST}:${DEFAULT_PORT}`;

/** Event text limit in bytes of UTF-8. Agent prompts are small; 64 KiB keeps a queue of 1000 under 64 MiB. */
export const MAX_TEXT_BYTES = 64 * 1024;

/** Session keys name conversations, not payloads; 512 leaves room for long Slack/Matrix ids. */
export const MAX_SESSION_KEY_LENGTH = 512;

/** Idempotency keys are opaque client ids (UUIDs, job ids, hashes); 256 fits any of them. */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256;

/** Context keys group related updates ("build:123"); same bound as idempotency keys. */
export const MAX_CONTEXT_KEY_LENGTH = 256;

/** Agent ids are slugs: `^[a-z0-9][a-z0-9_-]{0,63}$`, case-insensitive. */
export const MAX_AGENT_ID_LENGTH = 64;

/**
 * Agent ids (and channel names) as sent: either case, lower-cased in the canonical form. Explicit
 * ASCII classes rather than /i: with the `u` flag, /i folds U+212A KELVIN SIGN to "k" and U+017F
 * LONG S to "s", which would let non-ASCII agent ids through and break lower-casing.
 */
export const AGENT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_-]*$';

/**
 * A contextKey or idempotencyKey holds something besides whitespace: `--idempotency-key " $ID"`
 * with ID unset was a key all the same, and every such retry one event.
 */
export const NOT_BLANK_PATTERN = '\\S';

/**
 * Largest WebSocket frame the gateway reads. A maximal event (64 KiB text, JSON-escaped up to 6x
 * for control characters) fits, as does a modest batch; anything larger is closed with 1009.
 */
export const MAX_FRAME_BYTES = 1024 * 1024;

/**
 * Fragments one message may arrive in: each costs the gateway a buffer until the message is whole,
 * ~140 bytes beside its own (QA). ws's default of 16,384 let a connection hold ~2 MB that way; 1024
 * still takes a 1 MiB message from a client that writes it in 4 KiB frames (gorilla/websocket's
 * default buffer). Past it, the connection is closed with 1008.
 */
export const MAX_FRAGMENTS_PER_MESSAGE = 1024;

/**
 * What the messages and HTTP bodies the gateway has begun to read and not finished may hold in
 * memory, all connections together (see UnfinishedMessages): past it, the connection that holds
 * the most is closed with 1013 (try again later), or the body answered 503 GATEWAY_BUSY. A frame
 * that takes more than one read is unfinished until its last one, so a busy gateway always holds
 * some; 64 MiB is ~60 maximal frames at once.
 */
export const MAX_UNFINISHED_MESSAGE_BYTES = 64 * 1024 * 1024;

/** Pending events a session keeps before the oldest is dropped; configurable on the gateway. */
export const DEFAULT_MAX_PENDING_PER_SESSION = 1000;

/**
 * Bytes the gateway keeps free on its data dir's disk, for what is already stored to be acked and
 * traced (see FreeSpaceGuard): what a backlog's acks write before a checkpoint frees WAL pages
 * (~40 MiB at most), and more. Configurable on the gateway.
 */
export const DEFAULT_MIN_FREE_DISK_BYTES = 64 * 1024 * 1024;

/** Upper bound of `limit` for session.peek / session.drain / session.list / token.list: bounds one response. */
export const MAX_READ_LIMIT = 1000;

/** Default `limit` for reads when the caller gives none. */
export const DEFAULT_READ_LIMIT = 100;

/** Requests in one batch: a batch is answered as one frame, so it is bounded like one. */
export const MAX_BATCH_LENGTH = 100;

/** How long the CLI and client library wait for an answer before giving up (ms). */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** How long `switchboard backup` waits by default (ms): a store of gigabytes takes minutes to copy. */
export const BACKUP_TIMEOUT_MS = 10 * 60_000;

/**
 * The longest --timeout the CLI takes, and timeoutMs the client library (ms, ~24.8 days): the largest delay a Node.js timer holds
 * (2^31 - 1). Node sets a longer one to 1 ms, with only a warning: the call would time out at once.
 */
export const MAX_CALL_TIMEOUT_MS = 2_147_483_647;

/**
 * How the gateway closes a connection whose token was revoked. The client library takes it as
 * final: reconnecting with the same token could only be refused (401).
 */
export const TOKEN_REVOKED_CLOSE = { code: 1008, reason: 'token revoked' } as const;

/** The agent that owns sessions when none is named: `main` is the default agent's main session. */
export const DEFAULT_AGENT_ID = 'main';

/** Environment variables read by the gateway and CLI. */
export const ENV = {
  dataDir: 'SWITCHBOARD_DATA_DIR',
  url: 'SWITCHBOARD_URL',
  token: 'SWITCHBOARD_TOKEN',
} as const;

/**
 * How tokens start: a leaked one is recognisable in logs, the CLI can tell an admin token from a
 * scoped one, and neither ever starts with "-" like a CLI flag.
 */
export const TOKEN_PREFIX = {
  /** The admin token in `<data-dir>/token`. */
  admin: 'sba_',
  /** Tokens made by token.create for one agent. */
  scoped: 'sbt_',
} as const;

/** File names inside the data dir. */
export const DATA_FILES = {
  token: 'token',
  database: 'switchboard.db',
  /** The gateway's Unix socket, which the CLI uses when no URL is given (see localGatewayUrl in src/client/local-gateway.ts). */
  socket: 'gateway.sock',
} as const;

/**
 * The scheme of a gateway URL that names a Unix socket: `unix:/abs/path/gateway.sock`. Calls over
 * it are HTTP (POST /rpc) and WebSocket upgrades (at /), as over TCP.
 */
export const UNIX_SCHEME = 'unix:';

/**
 * Wake coalescing window: `now` events for an agent within this long of a wake are folded into
 * one follow-up wake, so a burst of events wakes the agent once or twice, not once per event.
 */
export const WAKE_COALESCE_MS = 250;

/**
 * Bytes of session keys (as JSON) one agent.wake names at most; the rest go in further wakes sent
 * with it. A backlog wake names every session of the agent with pending events: 2,200 sessions
 * under 500-character keys made a wake of 1.1 MB, which a client taking 1 MiB frames (Python's
 * websockets by default) refused, to be replayed and woken again on every reconnect (QA).
 */
export const MAX_WAKE_SESSIONS_BYTES = 256 * 1024;

/** How often an agent with live subscriptions gets a heartbeat `agent.wake`; configurable. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 60_000;

/**
 * Liveness: the gateway pings every connection this often and terminates one that has not
 * answered the previous ping, so dead sockets (and their subscriptions) go within two intervals.
 */
export const PING_INTERVAL_MS = 30_000;

/**
 * How long the client library waits without hearing from the gateway (a ping, an answer, an
 * event) before it takes the connection for dead and closes it, reconnecting if asked to: three
 * of the gateway's ping intervals. A gateway that was stopped, or a connection cut without a word
 * (a laptop asleep, a NAT that forgot it), otherwise left an agent waiting for events for good.
 */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 3 * PING_INTERVAL_MS;

/**
 * A subscriber whose unsent pushes pass this is cut (close 1008, "slow consumer"): its events
 * stay pending and are replayed when it reconnects, and nobody else waits for it. Answers to its
 * reads are not counted (see Connection#bufferedAmount).
 */
export const MAX_SUBSCRIBER_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Answers waiting to be written past which a connection's requests are not read until its socket
 * drains: a client that sends requests faster than it reads their answers is slowed to its own
 * pace instead of having the gateway hold every answer (see Connection#throttle).
 */
export const ANSWER_HIGH_WATER_BYTES = 4 * 1024 * 1024;

/** Subscriptions one connection may hold: an agent needs a few; bounds the gateway's memory. */
export const MAX_SUBSCRIPTIONS_PER_CONNECTION = 256;

/** Events read from the store per page while replaying a subscription's backlog. */
export const REPLAY_PAGE_SIZE = 200;

/** How long delivery traces are kept: long enough to answer "why did the agent not react?". */
export const TRACE_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/**
 * Recorded steps (trace rows) one event.trace reads, the last one included; past it, the steps
 * before the last are counted in `omitted`, not read. The acceptance comes on top.
 */
export const MAX_TRACE_STEPS = 1000;

/**
 * "delivered" steps of an event's trace (live deliveries and replays together) past which its
 * replays are not traced: an agent that reconnects without acking wrote a row for every event
 * pending each time, ~200 bytes, kept 7 days; one with 1,000 pending, reconnecting every 5 s, would
 * have written ~3.5 GB a day (soak QA). Live deliveries are always traced, one row for all the
 * subscribers of the moment.
 */
export const MAX_REPLAYS_TRACED_PER_EVENT = 16;

/**
 * HTTP request bodies (POST /rpc, POST /hooks/wake): a maximal event of ordinary text with room to
 * spare. Text that JSON escapes heavily (64 KiB of control characters is ~384 KiB) is refused with
 * 413 here and must go over WebSocket, whose frame limit allows for it.
 */
export const MAX_HTTP_BODY_BYTES = 256 * 1024;

/** A body must arrive within this long: a client trickling bytes must not hold a socket forever. */
export const HTTP_BODY_TIMEOUT_MS = 10_000;

/** Time for a client to send its request headers (including a WebSocket upgrade) after connecting. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

/** Failed authentications from one address within AUTH_FAILURE_WINDOW_MS before it gets 429. */
export const MAX_AUTH_FAILURES_PER_WINDOW = 20;

export const AUTH_FAILURE_WINDOW_MS = 60_000;

/** Open WebSocket connections from one address: generous for agents, bounded against floods. */
export const DEFAULT_MAX_CONNECTIONS_PER_ADDRESS = 1024;

/**
 * Open WebSocket connections of one scoped token, from all addresses (the admin token has no such
 * bound): an agent holds one or a few. Without it a publish-only token could take every place of
 * its address, and lock out the admin and every other agent there, a proxy's address above all
 * (security QA).
 */
export const DEFAULT_MAX_CONNECTIONS_PER_TOKEN = 256;

/**
 * Sockets open without an authenticated request, from all addresses together: connected and
 * silent, sending headers slowly, answered a refusal, or idle between HTTP keep-alive requests.
 * Per-address limits do not bound them (a local client can use any of 127.0.0.0/8; a remote one
 * may hold many addresses) and the handshake timeout bounds each one's time, not their number.
 * Past it the oldest is closed for each new one (see unauthenticated-sockets.ts). 2048 is four
 * times Node's listen backlog (511), so a burst of connections accepted at once cannot push out a
 * client whose request is on its way, and no normal use comes near it (the benchmarks open 64
 * handshakes at a time, the CLI one connection per call); at ~20 KiB each with a header half
 * sent, it holds ~40 MiB and 2048 file descriptors at most. Authenticated WebSocket connections,
 * requests being served and the Unix socket's connections (its owner's) are not counted. Configurable.
 */
export const DEFAULT_MAX_UNAUTHENTICATED_SOCKETS = 2048;

/**
 * Frames (a request, or a batch of at most MAX_BATCH_LENGTH) one connection may have in flight:
 * at it, the gateway reads no more of the connection's frames until one is answered, so TCP slows
 * the client, and nothing it sent is refused or lost (see Connection#hold).
 */
export const MAX_IN_FLIGHT_PER_CONNECTION = 1024;

/** Event ids are UUIDs (36 characters) and token ids are shorter; 64 bounds either with room. */
export const MAX_ID_LENGTH = 64;

/** Longest path gateway.backup takes: Linux's PATH_MAX. */
export const MAX_BACKUP_PATH_LENGTH = 4096;

/** A token's label, shown by `token list`. */
export const MAX_TOKEN_NAME_LENGTH = 128;

/**
 * How long an idempotency key answers repeats with the first result. Retries come within minutes
 * (or after a gateway restart); a day covers both with room, as payment APIs do. Configurable.
 */
export const DEFAULT_IDEMPOTENCY_RETENTION_MS = 24 * 60 * 60 * 1000;

/**
 * Bytes that the answers of one frame's reads carry at most, together (a batch's reads share it,
 * see ReadBudget): events of session.peek and session.drain, sessions of session.list, steps of
 * event.trace, tokens of token.list, rpc.discover's document. Room for the largest event (64 KiB of control characters is ~390 KiB as JSON), and
 * for a thousand events of a few hundred bytes. Counted as JSON, not as text: escaping can make an
 * event's JSON six times its text.
 */
export const MAX_READ_BYTES = 768 * 1024;

/**
 * Room kept in a frame's answer for each of its requests' own answers beyond what they repeat of
 * the frame (ids, keys: three times a batch's bytes are kept for those, as a routing result
 * names its key three times: sessionKey, requestedSessionKey and the route's parts; a lone
 * request's once). What is left
 * is an answer's own words: a routing result's wake and times (~1.4 KiB), an error's message and
 * the paths it names, each cut at MAX_ECHOED_NAME_LENGTH (~3.3 KiB at most, measured). The frame's
 * reads take only what is left of MAX_FRAME_BYTES (see fitAnswerFrame), so that no answer is
 * larger than the frames the gateway takes, and a drained event can never be consumed by an answer
 * too large for a client to receive.
 */
export const ANSWER_RESERVE_BYTES = 4 * 1024;

/**
 * Characters of a name an error repeats from its request (an unknown method, a member's path),
 * past which it is cut short with "…": a JSON pointer writes each "/" of a name as "~1", and an
 * error names it in its message and its data, so a name of 200,000 slashes came back as 800 KB.
 */
export const MAX_ECHOED_NAME_LENGTH = 256;

/**
 * Bytes the read answers of one connection's frames carry at most, together, from the read until
 * the answer is written to the socket (see ReadBudget): four frames' worth. Past it, reads answer
 * fewer items, or none, and say so (`more`, a trace's `omitted`).
 */
export const MAX_READ_BYTES_IN_FLIGHT = 4 * MAX_READ_BYTES;

/**
 * Largest frame (or POST /rpc answer body) the client library accepts from the gateway: sixteen
 * times the largest answer a gateway sends (MAX_FRAME_BYTES), so that a newer gateway's answers
 * still fit; what the gateway sends is bounded by the gateway, not the client. Past it, what
 * answers is not a gateway, and the client stops reading.
 */
export const MAX_CLIENT_FRAME_BYTES = 16 * 1024 * 1024;
