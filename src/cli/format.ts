/**
 * Human-readable output of the CLI. `--json` bypasses all of this. The formatters are given what
 * the gateway sent with every string made printable (printableStrings).
 */
import { mebibytes } from '../protocol/errors.js';
import type { ResultOf } from '../protocol/methods.js';
import { printable } from '../protocol/printable.js';
import type { RoutingResult, StoredEvent } from '../protocol/schemas.js';

/** `value` with every string in it, object keys included, made printable. */
export function printableStrings<T>(value: T): T {
  if (typeof value === 'string') return printable(value) as T;
  if (Array.isArray(value)) return value.map(printableStrings) as T;
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, inner]) => [printable(key), printableStrings(inner)])) as T;
}

export function formatRoutingResult(result: RoutingResult): string {
  const { queue } = result;
  // A repeat answers with the first call's result, which told the queue and the wake as they were
  // then: the event may have been consumed since (QA: a cron job's log said "pending" for an event
  // drained long before).
  const then = result.duplicate ? ' then' : '';
  const lines = [`routed to ${result.sessionKey} (seq ${queue.seq}, ${queue.depth} pending${then}, mode ${result.mode})`];
  if (result.duplicate) {
    lines.push(
      `  repeat of an earlier idempotency key: nothing new was stored; this is the first call's result, as it was then (\`switchboard trace ${result.eventId}\` tells what became of the event since)`,
    );
  }
  if (result.fallback) lines.push(`  fallback: ${result.fallback.message}`);
  if (queue.status === 'deduplicated') lines.push(`  deduplicated: identical to pending event seq ${queue.seq}, not queued twice`);
  if (queue.replaced) lines.push(`  replaced pending event seq ${queue.replaced.seq} with the same context key`);
  if (queue.dropped.length > 0) {
    const seqs = queue.dropped.map((dropped) => dropped.seq).join(', ');
    lines.push(`  session was full: dropped ${queue.dropped.length} oldest pending event(s) (seq ${seqs})`);
  }
  const receivers = result.receivers > 0 ? ` (delivered to ${result.receivers} subscriber(s))` : '';
  lines.push(`  wake${then}: ${result.wake.status}: ${result.wake.message}${receivers}`);
  lines.push(`  event ${result.eventId} stored at ${result.storedAt}`);
  return lines.join('\n');
}

export function formatEvent(event: StoredEvent): string {
  const context = event.contextKey ? ` [${event.contextKey}]` : '';
  return `#${event.seq} ${event.storedAt} ${event.mode}${context} ${event.text}`;
}

/** A line of `session watch`: the session, then the event. */
export function formatWatchedEvent(event: StoredEvent): string {
  return `${event.sessionKey} ${formatEvent(event)}`;
}

/**
 * A peek or drain; `after` is the --after it was given, which can leave out every pending event;
 * `listOthers`, for a read of an agent's main session (no --session-key): the command that lists
 * the agent's other sessions, to name when the main one has nothing.
 */
export function formatSessionRead(result: ResultOf<'session.peek'>, verb: 'shown' | 'drained', after?: number, listOthers?: (agentId: string) => string): string {
  if (result.events.length === 0 && result.depth > 0 && after !== undefined) {
    return `${result.sessionKey}: no events after seq ${after}; ${result.depth} pending in the session (give a lower --after, or none, to see them)`;
  }
  if (result.events.length === 0) {
    // Events sent with a key (a Slack thread) are not in the main session, where a read with no key looks.
    const agentId = /^agent:(.+):main$/.exec(result.sessionKey)?.[1];
    const elsewhere = listOthers === undefined || agentId === undefined ? '' : ` (the agent's other sessions: ${listOthers(agentId)})`;
    return `${result.sessionKey}: no pending events${elsewhere}`;
  }
  // Not "raise --limit": an answer also stops at a budget of event text, which no --limit lifts.
  // A drain removed what it read: the same --after reads on, and none would start below it.
  const readOn =
    verb === 'shown'
      ? `--after ${result.events.at(-1)!.seq} shows the next ones`
      : `drain again${after === undefined ? '' : ` with --after ${after}`} for the next ones`;
  const more = result.more ? ` (more remain: ${readOn})` : '';
  const header = `${result.sessionKey}: ${result.events.length} event(s) ${verb}${more}; ${result.depth} pending in the session`;
  return [header, ...result.events.map(formatEvent)].join('\n');
}

/**
 * A session list; `listedBy`: the command line that listed it, without --after, to which the
 * hint of a list cut short adds the next page's.
 */
export function formatSessionList(result: ResultOf<'session.list'>, listedBy: string): string {
  if (result.sessions.length === 0 && !result.more) return 'no sessions with pending events';
  const width = Math.max(...result.sessions.map((session) => String(session.pending).length));
  const rows = result.sessions.map(
    (session) => `${String(session.pending).padStart(width)}  ${session.sessionKey}  (last event ${session.lastEventAt})`,
  );
  const more = result.next === null ? '(more sessions: ask again)' : `(more sessions: ${listedBy} --after ${shellWord(result.next)})`;
  return [...rows, ...(result.more ? [more] : [])].join('\n');
}

/** `value` as one word of a POSIX shell's command line: quoted unless it needs no quotes. */
export function shellWord(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

export function formatStatus(status: ResultOf<'gateway.status'>): string {
  return [
    `switchboard gateway ${status.version}, up ${Math.round(status.uptimeMs / 1000)} s (since ${status.startedAt})`,
    `  data dir:    ${status.dataDir ?? '(not shown to a scoped token)'}`,
    `  sessions:    ${status.sessions} with pending events, ${status.pending} pending in all (cap ${status.maxPendingPerSession} per session${status.eventsDroppedAtCap === 0 ? '' : `: ${status.eventsDroppedAtCap} dropped at it since the start`})`,
    `  connections: ${status.connections}`,
    `  disk:        ${diskLine(status)}`,
    `  writes:      ${status.writesFailingSince === null ? 'ok' : `FAILING since ${status.writesFailingSince}${status.writeFailure === null ? '' : `: ${status.writeFailure}`}`}`,
  ].join('\n');
}

function diskLine({ freeDiskBytes, minFreeDiskBytes, newEventsRefused }: ResultOf<'gateway.status'>): string {
  const kept = minFreeDiskBytes === 0 ? 'new events never refused (--min-free-disk 0)' : `${mebibytes(minFreeDiskBytes)} kept free`;
  const free = freeDiskBytes === null ? '' : `${mebibytes(freeDiskBytes)} free, `;
  return `${free}${kept}${newEventsRefused ? ': NEW EVENTS REFUSED (STORE_FULL) until there is room' : ''}`;
}

export function formatAck({ sessionKey, seq, acked, depth }: ResultOf<'session.ack'>): string {
  const done = acked === 0 ? `nothing left to ack up to seq ${seq} in ${sessionKey}` : `acked ${acked} event${acked === 1 ? '' : 's'} of ${sessionKey}, up to seq ${seq}`;
  return `${done}; ${depth} still pending`;
}

export function formatBackup({ path, bytes, durationMs }: ResultOf<'gateway.backup'>): string {
  return [
    `backed up to ${path} (${bytes} bytes in ${durationMs} ms)`,
    "  to restore: put it as switchboard.db into a new data dir, and start a gateway on that (its admin token is new; scoped tokens come with the copy)",
  ].join('\n');
}

export function formatTrace(trace: ResultOf<'event.trace'>): string {
  const lines = trace.steps.map(({ step, at, detail }) => {
    const facts = Object.entries(detail)
      .map(([key, value]) => `${key}=${String(value)}`)
      .join(' ');
    return `  ${at}  ${step.padEnd(12)} ${facts}`;
  });
  if (trace.omitted > 0) lines.splice(-1, 0, `  ... ${trace.omitted} step(s) left out ...`);
  return [`event ${trace.eventId}`, ...lines].join('\n');
}

export function formatTokenCreated(created: ResultOf<'token.create'>): string {
  return [
    created.token,
    `  token ${created.tokenId} for agent "${created.agentId}" (${created.scopes.join(', ')})${created.name ? `, "${created.name}"` : ''}`,
    '  the secret above is shown once: the gateway keeps only its hash',
  ].join('\n');
}

export function formatTokenRevoked(revoked: ResultOf<'token.revoke'>): string {
  if (revoked.alreadyRevoked) return `${revoked.tokenId} was already revoked at ${revoked.revokedAt}; nothing changed`;
  return `revoked ${revoked.tokenId}; closed ${revoked.closedConnections} connection(s) that used it`;
}

/**
 * `listedBy`: the command line that listed it, without --after, to which the next page's hint
 * adds it; `after`: the token the list was asked to start after, if any.
 */
export function formatTokenList(listed: ResultOf<'token.list'>, listedBy: string, after?: string): string {
  const last = listed.tokens.at(-1);
  if (!last) return after === undefined ? 'no scoped tokens (create one with `switchboard token create --agent <agentId>`)' : `no tokens created after ${after}`;
  const rows = listed.tokens.map((token) => {
    const state = token.revokedAt ? `revoked ${token.revokedAt}` : 'active';
    const name = token.name ? ` "${token.name}"` : '';
    return `${token.tokenId}  agent ${token.agentId}  ${token.scopes.join(',')}  ${state}  created ${token.createdAt}${name}`;
  });
  return [...rows, ...(listed.more ? [`(more tokens: ${listedBy} --after ${shellWord(last.tokenId)})`] : [])].join('\n');
}
