/**
 * Every CLI command as data: its name, positionals, options, help text and the code that runs it.
 * The help, cac's parser and the direct path in main.ts all read this one table.
 */
import {
  BACKUP_TIMEOUT_MS,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HOST,
  DEFAULT_IDEMPOTENCY_RETENTION_MS,
  DEFAULT_MAX_CONNECTIONS_PER_ADDRESS,
  DEFAULT_MAX_CONNECTIONS_PER_TOKEN,
  DEFAULT_MAX_PENDING_PER_SESSION,
  DEFAULT_MAX_UNAUTHENTICATED_SOCKETS,
  DEFAULT_MIN_FREE_DISK_BYTES,
  DEFAULT_PORT,
  DEFAULT_READ_LIMIT,
  ENV,
  MAX_READ_LIMIT,
  UNIX_SCHEME,
} from '../protocol/constants.js';
import { SESSION_KEY_FORMS } from '../protocol/session-key.js';
import { COMMAND_GROUPS, declaredFlags, joinCommandGroup } from './argv.js';
// Static, unlike the other commands' code: one-shot commands are what the CLI mostly runs, and
// their code is small; bundled with the entry, they load without another module to resolve.
import * as oneShot from './client-commands.js';
import { CliError, ExitCode, GATEWAY_EXIT_CODES_HELP, WATCH_EXIT_CODES_HELP } from './exit-codes.js';
import { isStoreModuleMissing, storeBuildAdvice } from './missing-store.js';

/**
 * What a command runs: the raw arguments (options are read from them as typed, see argv.ts) and
 * the positionals, in declaration order.
 */
export type Action = (args: readonly string[], positionals: string[]) => Promise<ExitCode>;

export interface OptionSpec {
  /** As cac writes it: `--text <text>` takes a value, `--json` is a flag. */
  flags: string;
  description: string;
}

export interface CommandSpec {
  /** One or two words: `status`, `system event`. */
  name: string;
  /** Required positionals, e.g. `['eventId']`. */
  positionals: readonly string[];
  summary: string;
  options: readonly OptionSpec[];
  /**
   * What its usage line shows after the name and positionals: the options it cannot run without,
   * then `[options]` (the default, for a command that needs none).
   */
  synopsis?: string;
  example: string;
  /** Sections its --help shows before the examples (a title, and lines indented by two spaces). */
  notes?: ReadonlyArray<{ title: string; body: string }>;
  /** The exit codes its --help lists, when they are not the client commands' (EXIT_CODES_HELP). */
  exitCodes?: string;
  load: () => Promise<Action>;
}

/** Options of every command that talks to a gateway. */
const CONNECTION_OPTIONS: readonly OptionSpec[] = [
  { flags: '--json', description: 'Print the result as one JSON object on stdout (a failed call: {"error": ...})' },
  {
    flags: '--url <url>',
    description: `Gateway URL, ws://host:port or ${UNIX_SCHEME}/path (env ${ENV.url}; default: the gateway's socket in the data dir, on Windows ws://${DEFAULT_HOST}:${DEFAULT_PORT}); another ws:// URL needs its token given too`,
  },
  // Every local user can read a process's arguments (ps, /proc/<pid>/cmdline), not its environment.
  {
    flags: '--token <token>',
    description: `Gateway token (env ${ENV.token}, default: the token file in the data dir, sent only to its socket or a ${UNIX_SCHEME} URL of your own, on Windows to ws://${DEFAULT_HOST}:${DEFAULT_PORT}); other local users can read it here with ps, prefer the env or the file`,
  },
  {
    flags: '--data-dir <dir>',
    description: `Where to find the token file and the gateway's socket (env ${ENV.dataDir}); given here, ${ENV.url} yields to it`,
  },
  { flags: '--timeout <ms>', description: `Give up after this many milliseconds (default ${DEFAULT_CALL_TIMEOUT_MS})` },
];

/** The flag an option is given with: `--text` of `--text <text>`. */
function flagOf(option: OptionSpec): string {
  return option.flags.split(' ', 1)[0]!;
}

/** A command that talks to a gateway: its own options, then the connection options it does not describe itself. */
function connected(spec: Omit<CommandSpec, 'positionals'> & { positionals?: readonly string[] }): CommandSpec {
  const own = new Set(spec.options.map(flagOf));
  return { ...spec, positionals: spec.positionals ?? [], options: [...spec.options, ...CONNECTION_OPTIONS.filter((option) => !own.has(flagOf(option)))] };
}

function sessionRead(name: 'peek' | 'drain', summary: string): CommandSpec {
  return connected({
    name: `session ${name}`,
    summary,
    options: [
      { flags: '--session-key <key>', description: 'Session to read (default: the main session of --agent)' },
      { flags: '--agent <agentId>', description: "Agent whose main session to read when no --session-key is given (default: the token's agent, main for the admin token)" },
      { flags: '--after <seq>', description: 'Only events with a seq greater than this' },
      { flags: '--limit <n>', description: `Most events to return (default ${DEFAULT_READ_LIMIT}, at most ${MAX_READ_LIMIT})` },
    ],
    example: `switchboard session ${name} --session-key 'agent:main:slack:channel:C123:thread:456'`,
    notes: [
      {
        title: 'Other sessions',
        body: `  --agent reads that agent's main session alone; its other sessions (threads, DMs) are listed by
  \`switchboard session list --agent <agentId>\`, each read with its --session-key
  (\`switchboard session watch --agent <agentId>\` streams them all)`,
      },
    ],
    load: async () => (name === 'peek' ? oneShot.sessionPeek : oneShot.sessionDrain),
  });
}

export const COMMANDS: readonly CommandSpec[] = [
  connected({
    name: 'system event',
    summary: 'Tell an agent that something happened; prints where the event went',
    synopsis: '--text <text> [options]',
    options: [
      { flags: '--text <text>', description: 'What happened (required); - reads it from stdin (`make 2>&1 | tail -20 | switchboard system event --text -`)' },
      { flags: '--mode <mode>', description: 'now | next-heartbeat (default next-heartbeat)' },
      { flags: '--session-key <key>', description: 'Conversation to deliver to (default: the main session of --agent)' },
      { flags: '--agent <agentId>', description: "Agent whose main session gets the event when no --session-key is given (default: the token's agent, main for the admin token)" },
      { flags: '--context-key <key>', description: 'Replaces the pending event with the same context key in the session' },
      { flags: '--idempotency-key <key>', description: "A repeat returns the first call's result instead of storing again" },
    ],
    example: `switchboard system event --text 'Task done!' --mode now --session-key 'agent:main:slack:channel:C123:thread:456'`,
    notes: [
      {
        title: 'Session keys',
        body: `${SESSION_KEY_FORMS.map((form) => `  ${form}`).join('\n')}
  (a key that does not parse is refused, naming what is wrong: never sent to a main session instead)`,
      },
    ],
    load: async () => oneShot.systemEvent,
  }),
  sessionRead('peek', 'Show pending events of a session, oldest first, without consuming them'),
  sessionRead('drain', 'Show pending events of a session, oldest first, and consume them'),
  connected({
    name: 'session ack',
    summary: 'Consume the pending events of a session up to a seq (what peek showed), without showing them',
    synopsis: '(--session-key <key> | --agent <agentId>) --seq <seq> [options]',
    options: [
      { flags: '--session-key <key>', description: 'Session to ack in (or --agent for its main session)' },
      { flags: '--agent <agentId>', description: 'Agent whose main session to ack in when no --session-key is given' },
      { flags: '--seq <seq>', description: 'Consume every pending event up to and including this seq (required)' },
    ],
    example: `switchboard session ack --session-key 'agent:main:slack:channel:C123:thread:456' --seq 7`,
    load: async () => oneShot.sessionAck,
  }),
  connected({
    name: 'session list',
    summary: 'List sessions with pending events, most pending first',
    options: [
      { flags: '--agent <agentId>', description: 'Only sessions of this agent' },
      { flags: '--limit <n>', description: `Most sessions to list (default ${DEFAULT_READ_LIMIT}, at most ${MAX_READ_LIMIT})` },
      { flags: '--after <next>', description: 'List the sessions after the list before it (its hint gives this)' },
    ],
    example: 'switchboard session list --agent main',
    load: async () => oneShot.sessionList,
  }),
  connected({
    name: 'session watch',
    summary: 'Stream events as they arrive (backlog first) until interrupted; resumes after a gateway restart',
    options: [
      { flags: '--session-key <key>', description: 'Watch one session' },
      { flags: '--agent <agentId>', description: "Watch every session of an agent (default: the token's agent, main for the admin token)" },
      { flags: '--after <seq>', description: 'With --session-key: start after this seq (with --ack, the first ack consumes the events up to it too)' },
      { flags: '--ack', description: 'Ack each event once printed, so it is not replayed to the next watcher' },
      { flags: '--json', description: 'Print each event as one JSON object on its own line (JSON lines); a failure as a last {"error": ...} line' },
      {
        flags: '--timeout <ms>',
        description: `Give up connecting, subscribing or acking after this many milliseconds (default ${DEFAULT_CALL_TIMEOUT_MS}); the watch itself runs until interrupted, and waits out gateway restarts`,
      },
    ],
    example: 'switchboard session watch --agent main --ack',
    exitCodes: WATCH_EXIT_CODES_HELP,
    load: async () => (await import('./watch-command.js')).sessionWatch,
  }),
  connected({
    name: 'trace',
    positionals: ['eventId'],
    summary: 'Show the life of an event: accepted, stored, wake, delivered, acked',
    options: [],
    example: 'switchboard trace 6f1c0d2e-2b1e-4c1a-9d1e-0a4b5c6d7e8f',
    load: async () => oneShot.trace,
  }),
  connected({
    name: 'token create',
    summary: "Create a token for one agent's sessions (needs the admin token); prints the secret once",
    synopsis: '--agent <agentId> [options]',
    options: [
      { flags: '--agent <agentId>', description: 'Agent whose sessions the token reaches (required)' },
      { flags: '--can <scopes>', description: 'Comma-separated scopes: publish, subscribe (default both)' },
      { flags: '--name <name>', description: 'A label shown by token list' },
    ],
    example: 'switchboard token create --agent ops --can publish --name ci',
    load: async () => oneShot.tokenCreate,
  }),
  connected({
    name: 'token list',
    summary: 'List scoped tokens (not their secrets), oldest first',
    options: [
      { flags: '--limit <n>', description: `Most tokens to list (default ${DEFAULT_READ_LIMIT}, at most ${MAX_READ_LIMIT})` },
      { flags: '--after <tokenId>', description: 'List the tokens created after this one (the last of the list before)' },
    ],
    example: 'switchboard token list',
    load: async () => oneShot.tokenList,
  }),
  connected({
    name: 'token revoke',
    positionals: ['tokenId'],
    summary: 'Revoke a scoped token; its connections are closed',
    options: [],
    example: 'switchboard token revoke tok_1a2b3c4d5e6f',
    load: async () => oneShot.tokenRevoke,
  }),
  connected({
    name: 'status',
    summary: 'Show the gateway version, uptime, data dir and pending totals',
    options: [],
    example: 'switchboard status --json',
    load: async () => oneShot.status,
  }),
  connected({
    name: 'backup',
    positionals: ['file'],
    summary: "Copy the gateway's whole store into a new file while it runs (needs the admin token)",
    options: [{ flags: '--timeout <ms>', description: `Give up after this many milliseconds (default ${BACKUP_TIMEOUT_MS}: a large store takes minutes)` }],
    example: 'switchboard backup /var/backups/switchboard-$(date +%F).db',
    load: async () => oneShot.backup,
  }),
  {
    name: 'gateway',
    positionals: [],
    summary: 'Run the gateway (a long-lived service) in the foreground',
    options: [
      { flags: '--host <host>', description: `Interface to listen on (default ${DEFAULT_HOST})` },
      { flags: '--port <port>', description: `Port to listen on; 0 picks a free one (default ${DEFAULT_PORT})` },
      { flags: '--data-dir <dir>', description: `Where events and the token live (env ${ENV.dataDir}, default: the user data dir)` },
      {
        flags: '--max-pending <n>',
        description: `Pending events kept per session before the oldest is dropped (default ${DEFAULT_MAX_PENDING_PER_SESSION})`,
      },
      {
        flags: '--heartbeat-interval <seconds>',
        description: `Seconds between heartbeat wakes of connected agents (default ${DEFAULT_HEARTBEAT_INTERVAL_MS / 1000})`,
      },
      {
        flags: '--idempotency-retention <hours>',
        description: `Hours an idempotency key answers repeats (default ${DEFAULT_IDEMPOTENCY_RETENTION_MS / 3_600_000})`,
      },
      {
        flags: '--max-connections-per-address <n>',
        description: `WebSocket connections one remote address may hold open (default ${DEFAULT_MAX_CONNECTIONS_PER_ADDRESS})`,
      },
      {
        flags: '--max-connections-per-token <n>',
        description: `WebSocket connections one scoped token may hold open, from all addresses; the admin token has no such bound (default ${DEFAULT_MAX_CONNECTIONS_PER_TOKEN})`,
      },
      {
        flags: '--min-free-disk <MiB>',
        description: `MiB kept free on the data dir's disk for acks and traces: with less, new events are refused (STORE_FULL); 0 never refuses (default ${DEFAULT_MIN_FREE_DISK_BYTES / 1_048_576})`,
      },
      {
        flags: '--max-unauthenticated-sockets <n>',
        description: `Sockets held without an authenticated request, from all addresses; past it the oldest is closed (default ${DEFAULT_MAX_UNAUTHENTICATED_SOCKETS})`,
      },
    ],
    example: 'switchboard gateway --port 0 --data-dir /tmp/switchboard',
    exitCodes: GATEWAY_EXIT_CODES_HELP,
    load: async () => (await import('./gateway-command.js').catch(explainMissingStore)).gateway,
  },
];

/**
 * better-sqlite3 is an optional dependency: a native build, which a client never loads, so an
 * install on a machine that cannot build it still gives the CLI and the library (IDE QA: a
 * plugin's install failed whole without a compiler). The gateway needs it, and says how to get it.
 */
function explainMissingStore(error: unknown): never {
  if (!isStoreModuleMissing(error)) throw error;
  throw new CliError(
    ExitCode.GATEWAY_ERROR,
    // Not `npm rebuild`: it rebuilds what is there, and npm removes an optional package it failed to build.
    `cannot start: the gateway stores events with better-sqlite3, a native module, which is not installed (npm leaves it out when it cannot build it); ${storeBuildAdvice()}`,
  );
}

/**
 * `--data-dir D system event ...` as `system event --data-dir D ...`: options given before the
 * command they belong to. Read as given, a command of two words was taken for an unknown command
 * ("did you mean system event?"), or its first word for an option's value. The command is the
 * first argument that is neither an option nor the value of one (`--data-dir gateway status` is
 * `status`); when it names none, the arguments stay as given, for cac to explain.
 */
export function commandFirst(args: readonly string[]): readonly string[] {
  if (!args[0]?.startsWith('-')) return args;
  const flags = everyCommandsFlags();
  let at = 0;
  while (at < args.length && args[at]!.startsWith('-') && args[at] !== '--') at += flags.get(args[at]!) === true ? 2 : 1;
  let words = commandAt(args, at);
  // An unknown option may have been meant to take the argument after it (`--agnt a1 session list`):
  // the command is then the one after, and checkArgs names the option.
  const previous = args[at - 1];
  if (!words && previous?.startsWith('-') && !previous.includes('=') && !flags.has(previous)) words = commandAt(args, ++at);
  if (!words) return args;
  return joinCommandGroup([...words, ...args.slice(0, at), ...args.slice(at + words.length)]);
}

/** The flags of every command's options, and whether each takes a value. */
export function everyCommandsFlags(): Map<string, boolean> {
  return declaredFlags(COMMANDS.flatMap((spec) => spec.options.map((option) => option.flags)));
}

/** The words of the command named at `at` (one, or a group and one), or a group alone, if one is. */
function commandAt(args: readonly string[], at: number): string[] | undefined {
  const first = args[at];
  if (first === undefined || first.includes(' ')) return undefined;
  const command = COMMANDS.find((spec) => spec.name === first || spec.name === `${first} ${args[at + 1]}`);
  if (command) return command.name.split(' ');
  if (!(COMMAND_GROUPS as readonly string[]).includes(first)) return undefined;
  // A group and a word that is not one of its commands: both go first, for cac to name them.
  const next = args[at + 1];
  return next === undefined || next.startsWith('-') ? [first] : [first, next];
}
