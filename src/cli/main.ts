#!/usr/bin/env node
/**
 * The CLI declares commands and options, nothing more: each action lazily imports the code that
 * does the work, and one try/catch below decides what is printed and the exit code.
 */
import cac, { type CAC } from 'cac';
import {
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HOST,
  DEFAULT_IDEMPOTENCY_RETENTION_MS,
  DEFAULT_MAX_PENDING_PER_SESSION,
  DEFAULT_PORT,
  DEFAULT_READ_LIMIT,
  ENV,
} from '../protocol/constants.js';
import { VERSION } from '../version.js';
import { attachOptionValues, COMMAND_GROUPS, joinCommandGroup } from './argv.js';
import { CliError, EXIT_CODES_HELP, ExitCode, usageError } from './exit-codes.js';

/** `args()` is read when an action runs, after main has normalised the arguments against the declarations. */
function declare(args: () => readonly string[]): CAC {
  const cli = cac('switchboard');
  type Action = (args: readonly string[], options: Record<string, unknown>, positionals: string[]) => Promise<ExitCode>;
  // cac calls an action with the command's positionals first and the options object last.
  const run =
    (load: () => Promise<Action>) =>
    async (...actionArgs: unknown[]) =>
      (await load())(args(), actionArgs.at(-1) as Record<string, unknown>, actionArgs.slice(0, -1).map(String));
  const client = () => import('./client-commands.js');

  const withConnection = <T extends ReturnType<CAC['command']>>(command: T): T =>
    command
      .option('--json', 'Print the result as one JSON object on stdout')
      .option('--url <url>', `Gateway URL (env ${ENV.url}, default ws://${DEFAULT_HOST}:${DEFAULT_PORT})`)
      .option('--token <token>', `Gateway token (env ${ENV.token}, default: the token file in the data dir)`)
      .option('--data-dir <dir>', `Where to find the token file (env ${ENV.dataDir})`)
      .option('--timeout <ms>', 'Give up after this many milliseconds (default 10000)');

  withConnection(
    cli
      .command('system event', 'Tell an agent that something happened; prints where the event went')
      .option('--text <text>', 'What happened (required)')
      .option('--mode <mode>', 'now | next-heartbeat (default next-heartbeat)')
      .option('--session-key <key>', 'Conversation to deliver to (default: the main session of --agent)')
      .option('--agent <agentId>', 'Agent whose main session gets the event when no --session-key is given (default main)')
      .option('--context-key <key>', 'Replaces the pending event with the same context key in the session')
      .option('--idempotency-key <key>', "A repeat returns the first call's result instead of storing again"),
  )
    .example(`switchboard system event --text 'Task done!' --mode now --session-key 'agent:main:slack:channel:C123:thread:456'`)
    .action(run(async () => (await client()).systemEvent));

  for (const [name, summary] of [
    ['peek', 'Show pending events of a session, oldest first, without consuming them'],
    ['drain', 'Show pending events of a session, oldest first, and consume them'],
  ] as const) {
    withConnection(
      cli
        .command(`session ${name}`, summary)
        .option('--session-key <key>', 'Session to read (default: the main session of --agent)')
        .option('--agent <agentId>', 'Agent whose main session to read when no --session-key is given (default main)')
        .option('--after <seq>', 'Only events with a seq greater than this')
        .option('--limit <n>', `Most events to return (default ${DEFAULT_READ_LIMIT})`),
    )
      .example(`switchboard session ${name} --session-key 'agent:main:slack:channel:C123:thread:456'`)
      .action(run(async () => (name === 'peek' ? (await client()).sessionPeek : (await client()).sessionDrain)));
  }

  withConnection(
    cli
      .command('session list', 'List sessions with pending events, most pending first')
      .option('--agent <agentId>', 'Only sessions of this agent')
      .option('--limit <n>', `Most sessions to list (default ${DEFAULT_READ_LIMIT})`),
  )
    .example('switchboard session list --agent main')
    .action(run(async () => (await client()).sessionList));

  withConnection(
    cli
      .command('session watch', 'Stream events as they arrive (backlog first) until interrupted; resumes after a gateway restart')
      .option('--session-key <key>', 'Watch one session')
      .option('--agent <agentId>', 'Watch every session of an agent (default main)')
      .option('--after <seq>', 'With --session-key: start after this seq')
      .option('--ack', 'Ack each event once printed, so it is not replayed to the next watcher'),
  )
    .example('switchboard session watch --agent main --ack')
    .action(run(async () => (await client()).sessionWatch));

  withConnection(cli.command('trace <eventId>', 'Show the life of an event: accepted, stored, wake, delivered, acked'))
    .example('switchboard trace 6f1c0d2e-2b1e-4c1a-9d1e-0a4b5c6d7e8f')
    .action(run(async () => (await client()).trace));

  withConnection(
    cli
      .command('token create', "Create a token for one agent's sessions (needs the admin token); prints the secret once")
      .option('--agent <agentId>', 'Agent whose sessions the token reaches (required)')
      .option('--can <scopes>', 'Comma-separated scopes: publish, subscribe (default both)')
      .option('--name <name>', 'A label shown by token list'),
  )
    .example('switchboard token create --agent ops --can publish --name ci')
    .action(run(async () => (await client()).tokenCreate));

  withConnection(cli.command('token list', 'List scoped tokens (not their secrets)'))
    .example('switchboard token list')
    .action(run(async () => (await client()).tokenList));

  withConnection(cli.command('token revoke <tokenId>', 'Revoke a scoped token; its connections are closed'))
    .example('switchboard token revoke tok_1a2b3c4d5e6f')
    .action(run(async () => (await client()).tokenRevoke));

  withConnection(cli.command('status', 'Show the gateway version, uptime, data dir and pending totals'))
    .example('switchboard status --json')
    .action(run(async () => (await client()).status));

  cli
    .command('gateway', 'Run the gateway (a long-lived service) in the foreground')
    .option('--host <host>', `Interface to listen on (default ${DEFAULT_HOST})`)
    .option('--port <port>', `Port to listen on; 0 picks a free one (default ${DEFAULT_PORT})`)
    .option('--data-dir <dir>', `Where events and the token live (env ${ENV.dataDir}, default: the user data dir)`)
    .option('--max-pending <n>', `Pending events kept per session before the oldest is dropped (default ${DEFAULT_MAX_PENDING_PER_SESSION})`)
    .option('--heartbeat-interval <seconds>', `Seconds between heartbeat wakes of connected agents (default ${DEFAULT_HEARTBEAT_INTERVAL_MS / 1000})`)
    .option('--idempotency-retention <hours>', `Hours an idempotency key answers repeats (default ${DEFAULT_IDEMPOTENCY_RETENTION_MS / 3_600_000})`)
    .example('switchboard gateway --port 0 --data-dir /tmp/switchboard')
    .action(run(async () => (await import('./gateway-command.js')).gateway));

  cli.help((sections) => [...sections, { title: '', body: EXIT_CODES_HELP }]);
  cli.version(VERSION);
  return cli;
}

async function main(argv: readonly string[]): Promise<ExitCode> {
  let args: readonly string[] = [];
  const cli = declare(() => args);
  const declared = [cli.globalCommand, ...cli.commands].flatMap((command) => command.options);
  args = attachOptionValues(joinCommandGroup(argv.slice(2)), declared);
  try {
    const parsed = cli.parse(['node', 'switchboard', ...args], { run: false });
    if (parsed.options['help'] || parsed.options['version']) return ExitCode.OK;
    if (!cli.matchedCommand) {
      const [first] = parsed.args;
      if (first === undefined) {
        cli.outputHelp();
        return ExitCode.USAGE;
      }
      const group = (COMMAND_GROUPS as readonly string[]).includes(String(first)) ? ` "${String(first)}" needs a command:` : '';
      throw usageError(`unknown command "${args.join(' ')}":${group} run \`switchboard --help\` for the list`);
    }
    return (await cli.runMatchedCommand()) as ExitCode;
  } catch (error) {
    if (error instanceof CliError) {
      process.stderr.write(`switchboard: ${error.message}\n`);
      return error.exitCode;
    }
    if (error instanceof Error && error.name === 'CACError') {
      process.stderr.write(`switchboard: ${error.message}; see \`switchboard ${cli.matchedCommandName ?? ''} --help\`\n`.replace('  ', ' '));
      return ExitCode.USAGE;
    }
    throw error;
  }
}

main(process.argv).then(
  (code) => {
    // Exit as soon as output is flushed: open sockets or timers must not keep a one-shot CLI alive.
    if (code !== undefined) process.stdout.write('', () => process.exit(code));
  },
  (error: unknown) => {
    process.stderr.write(`switchboard: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(ExitCode.GATEWAY_ERROR);
  },
);
