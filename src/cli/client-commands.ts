/**
 * The CLI's one-shot commands: resolve where the gateway is and the token, make one call through
 * the client library, print, and map the outcome to an exit code.
 */
import { isUtf8 } from 'node:buffer';
import { lstatSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gatewayUrlProblem, HTTP_PROTOCOLS, unixSocketPath, shownUrl } from '../client/gateway-url.js';
import { callOverHttp, rpcRequestBody } from '../client/http.js';
import { localGatewayUrl } from '../client/local-gateway.js';
import type { MethodName, ParamsOf, ResultOf } from '../protocol/methods.js';
import type { ErrorName } from '../protocol/errors.js';
import { ConnectionError, errnoCode, RpcCallError, type ConnectionFailure } from '../client/errors.js';
import { readToken, resolveDataDir, TokenFileError, tokenPath } from '../config/data-dir.js';
import {
  BACKUP_TIMEOUT_MS,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_HOST,
  DEFAULT_PORT,
  DEFAULT_URL,
  ENV,
  MAX_AGENT_ID_LENGTH,
  MAX_CALL_TIMEOUT_MS,
  MAX_FRAME_BYTES,
  MAX_HTTP_BODY_BYTES,
  MAX_TEXT_BYTES,
  MAX_READ_LIMIT,
  TOKEN_PREFIX,
} from '../protocol/constants.js';
import { printable } from '../protocol/printable.js';
import { isValidAgentId } from '../protocol/session-key.js';
import { HAS_UNIX_SOCKETS, socketPathProblem } from '../protocol/socket-path.js';
import { tokenProblem } from '../protocol/token-format.js';
import { dataDirOption, flagOption, integerOption, optionOrEnv, rawOption } from './argv.js';
import { CliError, ExitCode, noAnswer, outputFailed, usageError, type CliErrorName } from './exit-codes.js';
import {
  formatAck,
  formatBackup,
  formatRoutingResult,
  formatSessionList,
  formatSessionRead,
  formatStatus,
  formatTokenCreated,
  formatTokenList,
  formatTokenRevoked,
  formatTrace,
  printableStrings,
  shellWord,
} from './format.js';
import { writeAll } from './output.js';

type Args = readonly string[];

const MODES = ['now', 'next-heartbeat'] as const;

export async function systemEvent(args: Args): Promise<ExitCode> {
  const given = rawOption(args, 'text');
  const read = given === '-' ? await readStdinText() : given;
  const text = read?.trim();
  if (text === undefined || text === '') {
    const blank = read ? 'holds only whitespace' : undefined;
    const what = given === '-' ? `${STDIN_TEXT} ${blank ?? 'is empty'}` : `--text ${blank ?? 'is required and must not be empty'}`;
    throw usageError(`${what}: switchboard system event --text 'Task done!'`);
  }
  // As for stdin: a usage error (exit 2), not the gateway's refusal (exit 1) of the same text.
  const length = Buffer.byteLength(text);
  if (given !== '-' && length > MAX_TEXT_BYTES) throw textTooLong('--text', String(length));
  const mode = rawOption(args, 'mode');
  if (mode !== undefined && !(MODES as readonly string[]).includes(mode)) {
    throw usageError(`--mode must be "now" or "next-heartbeat" (got "${mode}")`);
  }
  const params = {
    text,
    ...(mode === undefined ? {} : { mode: mode as (typeof MODES)[number] }),
    ...optionalString(args, 'session-key', 'sessionKey'),
    ...optionalString(args, 'agent', 'agentId'),
    ...optionalString(args, 'context-key', 'contextKey'),
    ...optionalString(args, 'idempotency-key', 'idempotencyKey'),
  };
  return withClient(args, 'system.event', params, formatRoutingResult, {
    unanswered: params.idempotencyKey === undefined ? UNANSWERED.event : UNANSWERED.keyedEvent,
    unseen: UNSEEN.event,
  });
}

/**
 * The text of `--text -`: all of stdin, as UTF-8, at most MAX_TEXT_BYTES once trimmed (as the
 * gateway trims it). Reading stops past a frame's worth, which bounds what is held. Bytes that are
 * not UTF-8 are sent as U+FFFD, and stderr says so: stdin is most often a log's tail, where one
 * Latin-1 byte, or a character `tail -c` cut in two, must not cost the whole event.
 */
async function readStdinText(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('switchboard: reading the text from stdin (end it with Ctrl-D)\n');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FRAME_BYTES) throw textTooLong(STDIN_TEXT, `more than ${MAX_FRAME_BYTES}`);
    chunks.push(chunk);
  }
  const bytes = Buffer.concat(chunks);
  const text = bytes.toString('utf8');
  const utf8 = isUtf8(bytes);
  // A NUL is in no text a person writes: UTF-16 (whose ASCII reads as valid UTF-8, a NUL after
  // each letter), or a binary file. So is input with nothing of UTF-8 in it. UTF-16 of letters
  // past U+00FF (Chinese, Japanese) has no NUL, but as Windows tools write it, a byte order mark.
  if (bytes.includes(0) || hasUtf16ByteOrderMark(bytes) || (!utf8 && text.replaceAll('\uFFFD', '').trim() === '')) {
    throw usageError('stdin (--text -) is not UTF-8 text (UTF-16, or not text at all): convert it first (iconv -f <its encoding> -t UTF-8)');
  }
  if (!utf8) {
    process.stderr.write('switchboard: stdin (--text -) is not all UTF-8: what is not is sent as U+FFFD (\uFFFD); to keep it, convert it first (iconv -f <its encoding> -t UTF-8)\n');
  }
  // Checked here, not left to the gateway: JSON may escape a text of a megabyte past a frame's
  // size, and a request the gateway cuts off unread leaves the CLI unable to say it was not stored.
  const length = Buffer.byteLength(text.trim());
  if (length > MAX_TEXT_BYTES) throw textTooLong(STDIN_TEXT, String(length));
  return text;
}

const STDIN_TEXT = 'the text read from stdin (--text -)';

function hasUtf16ByteOrderMark(bytes: Buffer): boolean {
  return bytes.length >= 2 && ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff));
}

function textTooLong(what: string, bytes: string): CliError {
  return usageError(`${what} is ${bytes} bytes; an event's text is at most ${MAX_TEXT_BYTES}: send a part of it (tail -c 60000)`);
}

/**
 * What a call that got no answer (a timeout, a lost connection) may have done all the same, for
 * the commands whose retry could do it twice: the gateway may have committed it just before.
 */
const UNANSWERED = {
  event:
    'the event may still have been stored: check with `switchboard session peek` before sending it again, and give --idempotency-key to make a retry safe',
  keyedEvent: 'the event may still have been stored: retrying with the same --idempotency-key is safe (it is stored once)',
  drain: 'the events may still have been consumed: `switchboard session peek` shows what is left',
} as const;

/**
 * What a call did although its answer could not be written (exit 4), for the commands where that
 * is lost unless said: drained events are gone from the session, a stored event must not be sent
 * again, a token's secret is never shown twice. Given the answer made printable.
 */
const UNSEEN = {
  event: (routed: ResultOf<'system.event'>) =>
    `; the event was stored all the same (event ${routed.eventId}, seq ${routed.queue.seq} of ${routed.sessionKey}): do not send it again`,
  drain: ({ sessionKey, events }: ResultOf<'session.drain'>) => {
    if (events.length === 0) return '; nothing was drained';
    const seqs = events.length === 1 ? `seq ${events[0]!.seq}` : `seq ${events[0]!.seq} to ${events.at(-1)!.seq}`;
    const ids = events.map((event) => `\n  #${event.seq} ${event.eventId}`).join('');
    return `; the ${events.length} event(s) it drained from ${sessionKey} (${seqs}) were consumed all the same, and are no longer pending: \`switchboard trace <eventId>\` shows each of these${ids}`;
  },
  tokenCreated: ({ tokenId }: ResultOf<'token.create'>) =>
    `; token ${tokenId} was created all the same, and its secret is shown only once: revoke it (\`switchboard token revoke ${tokenId}\`) and create another`,
} as const;

export function sessionPeek(args: Args): Promise<ExitCode> {
  const params = readParams(args);
  return withClient(args, 'session.peek', params, (result) => formatSessionRead(result, 'shown', params.after, otherSessionsHint(args)));
}

/** Consumes what peek showed, up to a seq, without printing the events again as drain does (QA: no CLI way to ack). */
export function sessionAck(args: Args): Promise<ExitCode> {
  const sessionKey = sessionKeyOption(args);
  const seq = integerOption(args, 'seq', 1);
  if (sessionKey === undefined || seq === undefined) {
    throw usageError(`${sessionKey === undefined ? '--session-key (or --agent)' : '--seq'} is required: switchboard session ack --session-key <key> --seq <seq> (a seq that peek, drain or watch showed)`);
  }
  return withClient(args, 'session.ack', { sessionKey, seq }, formatAck);
}

export function sessionDrain(args: Args): Promise<ExitCode> {
  const params = readParams(args);
  return withClient(args, 'session.drain', params, (result) => formatSessionRead(result, 'drained', params.after, otherSessionsHint(args)), {
    unanswered: UNANSWERED.drain,
    unseen: UNSEEN.drain,
  });
}

/** For a read of an agent's main session (no --session-key): the command a hint names to list its others. */
function otherSessionsHint(args: Args): ((agentId: string) => string) | undefined {
  return rawOption(args, 'session-key') === undefined ? (agentId) => listCommand('session list', args, agentId) : undefined;
}

/** `switchboard <command>` (session list, token list) for the agent (and --limit) given, at this command's gateway. */
function listCommand(command: string, args: Args, agentId: string | undefined, limit?: number): string {
  const agent = agentId === undefined ? [] : [`--agent ${shellWord(agentId)}`];
  return [`switchboard ${command}`, ...agent, ...(limit === undefined ? [] : [`--limit ${limit}`]), ...sameGateway(args)].join(' ');
}

/**
 * The options this command reached its gateway with, for a command line a hint prints: without
 * them, the hint would ask the default data dir's gateway, another one, or none (review). Not the
 * token's secret, in its place a word the gateway refuses (a shell reads none of it).
 */
function sameGateway(args: Args): string[] {
  return ['url', 'data-dir', 'token', 'timeout'].flatMap((name) => {
    const value = rawOption(args, name);
    return value === undefined ? [] : [`--${name} ${name === 'token' ? "'<token>'" : shellWord(value)}`];
  });
}

export function sessionList(args: Args): Promise<ExitCode> {
  const limit = limitOption(args);
  const params = {
    ...optionalString(args, 'agent', 'agentId'),
    ...(limit === undefined ? {} : { limit }),
    ...optionalString(args, 'after', 'after'),
  };
  return withClient(args, 'session.list', params, (result) => formatSessionList(result, listCommand('session list', args, params.agentId, limit)));
}

export function status(args: Args): Promise<ExitCode> {
  return withClient(args, 'gateway.status', {}, formatStatus);
}

export function backup(args: Args, [file]: string[]): Promise<ExitCode> {
  if (!file) throw usageError("a file is required: switchboard backup <file> (a new file, on the gateway's machine)");
  // The gateway's working directory is not this one: a relative path means this one's. A final
  // "/" stays, for the gateway to refuse: resolved away, "newdir/" made a file named newdir.
  const resolved = path.resolve(file);
  const target = /[\\/]$/.test(file) && !resolved.endsWith(path.sep) ? `${resolved}${path.sep}` : resolved;
  return withClient(args, 'gateway.backup', { path: target }, formatBackup, { defaultTimeoutMs: BACKUP_TIMEOUT_MS });
}

export function trace(args: Args, [eventId]: string[]): Promise<ExitCode> {
  if (!eventId) throw usageError('an event id is required: switchboard trace <eventId> (the eventId printed by system event)');
  return withClient(args, 'event.trace', { eventId }, formatTrace);
}

const SCOPES = ['publish', 'subscribe'] as const;

export function tokenCreate(args: Args): Promise<ExitCode> {
  const agentId = rawOption(args, 'agent');
  if (!agentId) throw usageError('--agent is required: switchboard token create --agent <agentId> [--can publish,subscribe]');
  const can = rawOption(args, 'can');
  const scopes = can?.split(',').map((scope) => scope.trim());
  const unknown = scopes?.find((scope) => !(SCOPES as readonly string[]).includes(scope));
  if (unknown !== undefined) {
    const got = unknown === '' ? `an empty entry in "${can}"` : `"${unknown}"`;
    throw usageError(`--can takes publish and/or subscribe, comma-separated (got ${got})`);
  }
  const params = {
    agentId,
    ...(scopes ? { scopes: [...new Set(scopes)] as (typeof SCOPES)[number][] } : {}),
    ...optionalString(args, 'name', 'name'),
  };
  return withClient(args, 'token.create', params, formatTokenCreated, { unseen: UNSEEN.tokenCreated });
}

export function tokenList(args: Args): Promise<ExitCode> {
  const limit = limitOption(args);
  const params = { ...(limit === undefined ? {} : { limit }), ...optionalString(args, 'after', 'after') };
  // The next page's hint asks the same gateway for as many (QA: it named neither).
  return withClient(args, 'token.list', params, (listed) => formatTokenList(listed, listCommand('token list', args, undefined, limit), params.after));
}

export function tokenRevoke(args: Args, [tokenId]: string[]): Promise<ExitCode> {
  if (!tokenId) throw usageError('a token id is required: switchboard token revoke <tokenId> (see token list)');
  return withClient(args, 'token.revoke', { tokenId }, formatTokenRevoked);
}

/** --limit, checked here against the gateway's bound so that a limit too high is a usage error (2), not a refused call (1). */
function limitOption(args: Args): number | undefined {
  return integerOption(args, 'limit', 1, MAX_READ_LIMIT);
}

/** The session --session-key names, or --agent's main session; undefined for neither. */
function sessionKeyOption(args: Args): string | undefined {
  const sessionKey = rawOption(args, 'session-key');
  const agent = rawOption(args, 'agent');
  if (sessionKey !== undefined && agent !== undefined) throw usageError('give --session-key or --agent, not both');
  // The agent's main session is named by a key made from it: an agent "a:slack:group:G:thread"
  // would make another agent's valid key, and a refusal would name a key the user never gave.
  if (agent !== undefined && !isValidAgentId(agent)) {
    throw usageError(
      `--agent ${JSON.stringify(agent)} is not an agent id: letters a-z (either case), digits, "_" or "-", starting with a letter or digit, at most ${MAX_AGENT_ID_LENGTH}`,
    );
  }
  return sessionKey ?? (agent !== undefined ? `agent:${agent}:main` : undefined);
}

function readParams(args: Args) {
  // Neither: the gateway takes the main session of the token's agent (main for the admin token).
  const key = sessionKeyOption(args);
  const limit = limitOption(args);
  const after = integerOption(args, 'after', 0);
  return {
    ...(key === undefined ? {} : { sessionKey: key }),
    ...(limit === undefined ? {} : { limit }),
    ...(after === undefined ? {} : { after }),
  };
}

/**
 * One call, then exit: over the gateway's HTTP ingress, which costs no WebSocket handshake or
 * library load. `unanswered` warns what the call may have done if no answer comes; `unseen` says
 * what it did when its answer came but could not be written.
 */
async function withClient<M extends MethodName>(
  args: Args,
  method: M,
  params: ParamsOf<M>,
  format: (result: ResultOf<M>, settings: ConnectionSettings) => string,
  { unanswered, unseen, defaultTimeoutMs }: { unanswered?: string; unseen?: (result: ResultOf<M>) => string; defaultTimeoutMs?: number } = {},
): Promise<ExitCode> {
  const settings = connectionSettings(args, defaultTimeoutMs);
  let result: ResultOf<M>;
  try {
    // Past the HTTP body limit (a valid event whose text JSON escapes heavily, 64 KiB of ESC in a
    // coloured build log is ~384 KiB), over a WebSocket, whose frame limit allows any valid event.
    result =
      Buffer.byteLength(rpcRequestBody(method, params)) > MAX_HTTP_BODY_BYTES
        ? await (await import('./websocket-call.js')).callOverWebSocket(settings, method, params)
        : await callOverHttp(settings, method, params);
  } catch (error) {
    throw explain(error, settings, unanswered);
  }
  // Outside the write's try: a failure to format is not one to write.
  const output = `${flagOption(args, 'json') ? JSON.stringify(result) : format(printableStrings(result), settings)}\n`;
  try {
    await writeAll(process.stdout, output);
  } catch (error) {
    // Any failed write, EPIPE included: unlike a watch, a one-shot command's answer is its whole point.
    throw outputFailed('the answer', error, unseen?.(printableStrings(result)));
  }
  return ExitCode.OK;
}

export function connectionSettings(args: Args, defaultTimeoutMs = DEFAULT_CALL_TIMEOUT_MS): ConnectionSettings {
  // An option beats its variable, and --data-dir names the gateway to call (its socket): given on
  // the command line, it beats SWITCHBOARD_URL as well. QA: with SWITCHBOARD_URL exported for CI, a
  // script's --data-dir was ignored, and its event went to the other gateway with exit 0. A token
  // in SWITCHBOARD_TOKEN still goes to it (a scoped one, say): the wrong one is refused, not sent
  // elsewhere. Not on Windows, where a data dir has no socket to name its gateway by.
  const dataDirGiven = rawOption(args, 'data-dir') !== undefined;
  const dataDirNamesGateway = dataDirGiven && HAS_UNIX_SOCKETS;
  const given = givenGatewayUrl(args, dataDirNamesGateway ? {} : process.env);
  if (dataDirGiven && given !== undefined && optionOrEnv(args, 'token', ENV.token) !== undefined) {
    throw usageError(`--data-dir plays no part beside --url and a token (--token or ${ENV.token}), which name the gateway and what to send it: drop one or the other`);
  }
  // Resolved only when needed: with a URL and a token given, the data dir plays no part.
  let dataDir: string | undefined;
  const theDataDir = () => (dataDir ??= resolveDataDir(dataDirOption(args)?.value));
  const { token, tokenFrom } = resolveToken(args, theDataDir, given?.value);
  return {
    token,
    tokenFrom,
    url: given?.value ?? defaultGatewayUrl(theDataDir()),
    urlFrom: given?.from,
    localDataDir: given === undefined ? theDataDir() : undefined,
    dataDirNamesGateway,
    timeoutMs: integerOption(args, 'timeout', 1, MAX_CALL_TIMEOUT_MS) ?? defaultTimeoutMs,
  };
}

/**
 * The gateway to call when no URL is given: the data dir's, over the Unix socket it serves there
 * (see local-gateway.ts), never a TCP port, whatever the token: any local user can listen on one
 * while the gateway is down, and would be sent the token. When the socket is missing the call
 * fails, naming it; TCP is for a URL given. On Windows, which has no such sockets, DEFAULT_URL.
 */
function defaultGatewayUrl(dataDir: string): string {
  const url = localGatewayUrl(dataDir);
  const socket = unixSocketPath(url);
  // The gateway could not make one either, and said so in its log.
  const unfit = socket === undefined ? undefined : socketPathProblem(socket);
  if (unfit !== undefined) {
    throw noAnswer(
      'GATEWAY_UNREACHABLE',
      `the data dir ${dataDir} cannot hold the gateway's Unix socket (${socket}: ${unfit}), so its gateway serves none, and the token is not sent over TCP instead: use a data dir with a shorter path, or give the gateway's URL (--url / ${ENV.url}) and its token (${ENV.token})`,
    );
  }
  return url;
}

/**
 * `--url`, else SWITCHBOARD_URL, else undefined. One that is not a gateway URL at all is a usage
 * error here, so that a typo is not reported as a gateway that is not running. So is one with a
 * user name or password: neither call sends them (the token from --token or the data dir goes in
 * the Authorization header), and a token meant to be used there must not be silently replaced.
 */
function givenGatewayUrl(args: Args, env: NodeJS.ProcessEnv): { value: string; from: string } | undefined {
  const setting = optionOrEnv(args, 'url', ENV.url, env);
  if (setting === undefined) return undefined;
  const url = setting.value;
  // First, and without the URL in the message: the password is most likely a token.
  const credentials = URL.canParse(url) ? new URL(url) : undefined;
  if (credentials?.username || credentials?.password) {
    throw usageError(`--url (or ${ENV.url}) holds a user name or password, which is not sent: give the token with --token or ${ENV.token}`);
  }
  const problem = gatewayUrlProblem(url);
  if (problem !== undefined) throw usageError(`--url (or ${ENV.url}) ${JSON.stringify(shownUrl(url))} is not a gateway URL: ${problem}`);
  return setting;
}

/**
 * `--token`, else SWITCHBOARD_TOKEN, else the token file of the data dir the gateway uses: that
 * one only for the data dir's own gateway or a socket of this user's (see dataDirTokenRefusal).
 * Sent to a TCP URL given, it would go to whoever listens there, which while the gateway is down
 * may be any local user, the very reason the CLI never calls a port by default.
 */
function resolveToken(args: Args, theDataDir: () => string, givenUrl: string | undefined): { token: string; tokenFrom: string } {
  const setting = optionOrEnv(args, 'token', ENV.token);
  // Trimmed, as the token file is: `--token " $TOKEN"` means the token.
  const given = setting?.value.trim();
  // A line break inside (a paste of two lines) cannot go in an HTTP header.
  const problem = given === undefined ? undefined : tokenProblem(given);
  if (problem !== undefined) throw usageError(`the token (--token or ${ENV.token}) ${problem}: pass the token alone`);
  if (given !== undefined) return { token: given, tokenFrom: setting!.from };
  const dataDir = theDataDir();
  const refused = givenUrl === undefined ? undefined : dataDirTokenRefusal(givenUrl, dataDir);
  if (refused !== undefined) {
    const bySocket = HAS_UNIX_SOCKETS ? `, or call without --url / ${ENV.url} to use the data dir's socket` : '';
    throw noAnswer('NO_TOKEN', `no token for ${shownUrl(givenUrl!)}: ${refused}; pass that gateway's token in ${ENV.token} (or --token)${bySocket}`);
  }
  let token: string | undefined;
  try {
    token = readToken(dataDir);
  } catch (error) {
    if (error instanceof TokenFileError) throw noAnswer('NO_TOKEN', `no token: ${error.message}; or pass --token / ${ENV.token}`);
    throw error;
  }
  if (token) return { token, tokenFrom: tokenPath(dataDir) };
  // A gateway named by its URL may be anywhere: its token is the way out, not a local gateway.
  throw noAnswer(
    'NO_TOKEN',
    givenUrl === undefined
      ? `no token: ${tokenPath(dataDir)} does not exist, so no gateway has run with the data dir ${dataDir}: start one (\`switchboard gateway\`), or give --data-dir (or ${ENV.dataDir}) the running gateway's; for a gateway elsewhere, --url and ${ENV.token}`
      : `no token for ${shownUrl(givenUrl)}: ${tokenPath(dataDir)} does not exist; pass that gateway's token in ${ENV.token} (or --token), or give --data-dir (or ${ENV.dataDir}) its data dir`,
  );
}

/**
 * The CLI's error for a failed call to the gateway at `url` with `token`: its message and exit
 * code, and for --json the error as the gateway sent it or the CLI's code. `unanswered` says what
 * the call may have done when no answer came.
 */
export interface ConnectionSettings {
  url: string;
  /** Where the URL came from (`--url`, SWITCHBOARD_URL); undefined for the data dir's socket. */
  urlFrom?: string | undefined;
  token: string;
  /** Where the token came from: `--token`, SWITCHBOARD_TOKEN, or the token file's path. */
  tokenFrom?: string | undefined;
  /** The data dir whose gateway is called, when no URL was given: what a failure's hint names. */
  localDataDir?: string | undefined;
  /** --data-dir was given, so that SWITCHBOARD_URL yields to it: a hint must not offer the variable alone. */
  dataDirNamesGateway?: boolean;
  timeoutMs?: number;
}

export function explain(error: unknown, settings: ConnectionSettings, unanswered?: string): unknown {
  const { url, localDataDir, dataDirNamesGateway = false } = settings;
  if (error instanceof RpcCallError) return gatewayRefused(error);
  if (!(error instanceof ConnectionError)) return error;
  const uncertain = unanswered === undefined ? '' : `; ${unanswered}`;
  // Printable: it quotes the URL as given, and a rejection quotes what the gateway, or a proxy in
  // front of it, answered instead.
  const message = printable(error.message);
  const { refusal } = error;
  if (refusal?.code !== undefined && refusal.errorName !== undefined && RETRY_LATER.has(refusal.errorName)) {
    // The gateway's own words: a script tells "retry later" apart from a wrong URL by its name (QA).
    const retry = refusal.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: refusal.retryAfterSeconds };
    return new CliError(ExitCode.UNREACHABLE, message, { code: refusal.code, message, data: { name: refusal.errorName, ...retry } });
  }
  const explained: Record<ConnectionFailure, [CliErrorName, string]> = {
    unreachable: ['GATEWAY_UNREACHABLE', `${message}: ${unreachableHint(localDataDir, errnoCode(error), dataDirNamesGateway)}${defaultPortHint(url)}`],
    unauthorized: ['TOKEN_REFUSED', `the gateway at ${printable(url)} refused the token: ${refusedTokenHint(settings)}`],
    // Refused, nothing was done; answered unreadably, it may have been.
    rejected: ['GATEWAY_REJECTED', `${message}${endpointInUrlHint(url, error)}${error.unreadableAnswer ? uncertain : ''}`],
    closed: ['CONNECTION_CLOSED', `${message}${errnoCode(error) === 'ECONNRESET' ? ` (reset: ${RESET_REASONS})` : ''}${uncertain || '; retry, or check the gateway'}`],
    timeout: ['TIMEOUT', `${message}${uncertain}; raise --timeout, or check the gateway`],
    aborted: ['ABORTED', message],
  };
  return noAnswer(...explained[error.failure]);
}

/**
 * Refusals the gateway sends over HTTP before it runs a call, that pass: it is shutting down (503),
 * it holds too much of other requests being read (503), or this address is past its limits (429:
 * too many wrong tokens, whose message says so, or open connections). Nothing was done.
 */
const RETRY_LATER: ReadonlySet<string> = new Set<ErrorName>(['SHUTTING_DOWN', 'RATE_LIMITED', 'GATEWAY_BUSY']);

/**
 * The gateway's JSON-RPC error as the CLI reports it: exit 1, and with --json the error as it came;
 * but SHUTTING_DOWN (a backup stopped by a shutdown), which left nothing done, exits 3, as its
 * HTTP refusal does (operator QA: a script retrying on 3 was told 1).
 * `message` is for people: the gateway's own by default, with every problem of its params.
 */
export function gatewayRefused(error: RpcCallError, message = `the gateway refused: ${printable(error.message)} (code ${error.code})${problemsOf(error.data)}`): CliError {
  const exitCode = error.errorName === 'SHUTTING_DOWN' ? ExitCode.UNREACHABLE : ExitCode.GATEWAY_ERROR;
  return new CliError(exitCode, message, { code: error.code, message: error.message, ...(error.data === undefined ? {} : { data: error.data }) });
}

/**
 * Why the data dir's admin token must not go to `url`, a URL given, if it must not: it goes to the
 * data dir's gateway where the CLI would call it anyway (on Windows, DEFAULT_URL, however written),
 * or to a Unix socket of this user's own; a socket of another user's is that user's to read.
 */
function dataDirTokenRefusal(url: string, dataDir: string): string | undefined {
  const token = `the data dir's token (${tokenPath(dataDir)})`;
  const socket = unixSocketPath(url);
  if (socket !== undefined) {
    const owner = ownerOf(socket);
    const me = process.getuid?.();
    if (owner === undefined || me === undefined || owner === me) return undefined;
    return `${socket} belongs to uid ${owner}, not to this user (uid ${me}), and ${token} goes only to a socket of this user's own`;
  }
  if (sameGatewayUrl(url, localGatewayUrl(dataDir))) return undefined;
  return HAS_UNIX_SOCKETS
    ? `${token} is sent only to its gateway's socket, never over TCP, where any local user could listen while the gateway is down`
    : `${token} is sent only to ${DEFAULT_URL}, where the data dir's gateway listens`;
}

/**
 * Who owns the file, or undefined when that cannot be told (no file, a dir this user may not
 * enter): connecting fails then as well, and says why, before a token is sent.
 */
function ownerOf(file: string): number | undefined {
  try {
    return lstatSync(file, { throwIfNoEntry: false })?.uid;
  } catch {
    return undefined;
  }
}

/** The same gateway endpoint: ws: and http: (wss:, https:) alike, a trailing "/" or none. */
function sameGatewayUrl(a: string, b: string): boolean {
  const key = (url: string) => {
    if (!URL.canParse(url)) return url;
    const { protocol, host, pathname, search } = new URL(url);
    return `${HTTP_PROTOCOLS[protocol] ?? protocol}//${host}${pathname.replace(/\/$/, '')}${search}`;
  };
  return key(a) === key(b);
}

/**
 * For a URL ending in one of the gateway's endpoints (`--url ws://host:18790/rpc`: the README
 * names POST /rpc): the path is kept, for a proxy, so a call went to /rpc/rpc and a watch to /rpc.
 */
function endpointInUrlHint(url: string, error: ConnectionError): string {
  if (error.refusal?.errorName !== 'PATH_NOT_FOUND' || unixSocketPath(url) !== undefined || !URL.canParse(url)) return '';
  const endpoint = ['/rpc', '/hooks/wake'].find((path) => new URL(url).pathname.replace(/\/$/, '').endsWith(path));
  return endpoint === undefined ? '' : `; the URL names the gateway's root (with a path only for a proxy in front of it): drop ${endpoint} from it`;
}

/**
 * Why a gateway resets a connection it has not answered: a gateway holding more sockets without a
 * request than --max-unauthenticated-sockets closes the oldest (QA: a fleet starting at once was
 * told its gateway did not run), and one at its TCP connection limit closes new ones as they come.
 */
const RESET_REASONS =
  'a gateway there may be restarting, closing the oldest of more sockets than its --max-unauthenticated-sockets, or at its limit of TCP connections (its log says so)';

/**
 * What to do about a gateway not reached, by why (`code`, the connect's errno). Called without a
 * URL, the CLI tried the data dir's socket: a gateway may well run, with another data dir or as
 * another user, or on a port only.
 */
function unreachableHint(localDataDir: string | undefined, code: string | undefined, dataDirNamesGateway: boolean): string {
  // Its token too: the data dir's is sent to no URL given but a unix: one (see resolveToken). A
  // --data-dir given beats the URL's variable, and beside --url and a token is a usage error.
  const byUrl = (example = '') => `${dataDirNamesGateway ? 'drop --data-dir and ' : ''}give its URL (--url / ${ENV.url}${example}) and its token (${ENV.token})`;
  // A URL was given (--url or the variable): the fix is in it, or in the gateway it names.
  if (localDataDir === undefined) {
    if (code === 'ENOTFOUND') return 'no such host: check the URL';
    if (code === 'ECONNRESET') return `the connection was reset before any answer: ${RESET_REASONS}; retry`;
    // A gateway may well run there: its socket, or a directory on its path, is not this user's to open (QA).
    if (code === 'EACCES' || code === 'EPERM') return "permission denied: the socket, or a directory above it, is another user's: run this as the user the gateway runs as, or give its ws:// URL";
    return 'is `switchboard gateway` running there?';
  }
  // Windows: the default is a port, where a gateway of this data dir listens only if it took the default one.
  if (!HAS_UNIX_SOCKETS && code === 'ECONNREFUSED') {
    return `no gateway listens on the default port: start one (\`switchboard gateway\`), or for one on another port ${byUrl()}`;
  }
  if (code === 'ENOENT' || code === 'ECONNREFUSED') {
    return `no gateway runs with the data dir ${localDataDir}: start one (\`switchboard gateway\`), or give --data-dir the running gateway's, or ${byUrl(`; ws://${DEFAULT_HOST}:${DEFAULT_PORT} on the default port`)}`;
  }
  if (code === 'EACCES' || code === 'EPERM') return `the socket is another user's: run this as the user the gateway runs as, or ${byUrl()}`;
  // Tried again until the timeout (see busy-socket.ts): the gateway takes no connections.
  if (code === 'EAGAIN') return `the gateway of the data dir ${localDataDir} took no connection within the timeout (its socket's backlog stayed full: overloaded, or stopped): raise --timeout, or check it`;
  return `check the gateway of the data dir ${localDataDir}, or for another one ${byUrl()}`;
}

/**
 * A ws:// or wss:// URL without a port goes to 80 or 443, as URLs do, where a gateway listens only
 * behind a proxy: said, since the gateway's own default is DEFAULT_PORT (QA: `ws://127.0.0.1`).
 */
function defaultPortHint(url: string): string {
  if (!URL.canParse(url)) return '';
  const { protocol, port } = new URL(url);
  if (port !== '' || (protocol !== 'ws:' && protocol !== 'wss:')) return '';
  return `; the URL names no port, so ${protocol === 'ws:' ? 80 : 443} was tried (a gateway listens on ${DEFAULT_PORT} unless given --port)`;
}

/**
 * The gateway answers 401 alike for every token it does not know: a revoked scoped token is
 * forgotten, not kept to tell apart. The token's prefix still says which kind the user holds, and
 * where it and the URL came from says which setting is the wrong one: an environment variable
 * overrules the data dir's token file, and SWITCHBOARD_URL the socket of SWITCHBOARD_DATA_DIR's.
 */
function refusedTokenHint({ url, token, tokenFrom, urlFrom }: ConnectionSettings): string {
  if (token.startsWith(TOKEN_PREFIX.scoped)) {
    return 'this scoped token was revoked or never existed: ask for a new one (`switchboard token create --agent <agentId>`, run with the admin token)';
  }
  // A TCP URL given takes no token file (see dataDirTokenRefusal): only the gateway's own token helps.
  if (urlFrom !== undefined && unixSocketPath(url) === undefined) {
    return `pass that gateway's token (the one in its data dir's token file) in ${ENV.token} or --token`;
  }
  if (tokenFrom === ENV.token) {
    return `the token in ${ENV.token} is not this gateway's: set it to this gateway's token, or unset it to use the token file of the gateway's data dir (--data-dir)`;
  }
  if (tokenFrom !== undefined && tokenFrom !== '--token') {
    // A watch reads the file once; the data dir may have been set up again since (its token file
    // removed, a gateway started on it anew), and the file then holds the token the gateway takes.
    if (tokenFileChanged(tokenFrom, token)) {
      return `${tokenFrom} holds another token than when this command read it (the admin token was replaced since: rotated, or the data dir set up anew): run the command again`;
    }
    // The data dir's own socket: its gateway, which read the file when it started, and not since.
    if (urlFrom === undefined && unixSocketPath(url) !== undefined) {
      return `${tokenFrom} is not the token its gateway started with: the file was changed since (the gateway reads it at start only): restart the gateway to take it, or put back the token it holds`;
    }
    const from = urlFrom === undefined ? '' : ` (the URL is from ${urlFrom}${urlFrom === ENV.url ? `: unset it to call the data dir's own gateway` : ''})`;
    return `${tokenFrom} is not this gateway's token${from}: give --data-dir the gateway's data dir, or pass its token in ${ENV.token} (or --token)`;
  }
  return `pass the token from the gateway's data dir (--token, ${ENV.token}, or --data-dir)`;
}

function tokenFileChanged(file: string, token: string): boolean {
  try {
    const now = readFileSync(file, 'utf8').trim();
    return now !== '' && now !== token;
  } catch {
    // Gone or unreadable: nothing to run again with.
    return false;
  }
}

function problemsOf(data: unknown): string {
  const errors = (data as { errors?: { path: string; message: string }[] } | undefined)?.errors;
  return Array.isArray(errors) && errors.length > 1 ? `\n${errors.map((e) => printable(`  ${e.path}: ${e.message}`)).join('\n')}` : '';
}

function optionalString<K extends string>(args: Args, flag: string, key: K): { [P in K]?: string } {
  const value = rawOption(args, flag);
  return value === undefined ? {} : ({ [key]: value } as { [P in K]?: string });
}

