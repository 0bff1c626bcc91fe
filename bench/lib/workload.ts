/**
 * The workload every server sees: the same system.event request frames, byte for byte, whoever
 * answers them. Texts are unique per call so the gateway never takes its dedupe shortcut.
 */

/** A realistic event text: a build/CI style message, padded to this many bytes. */
export const TEXT_BYTES = 200;

const FILLER =
  'Build finished on runner ci-7: 1342 tests passed, 3 failed in packages/api (auth.test.ts, ' +
  'routes.test.ts, limits.test.ts); artifacts uploaded; coverage 87.4% (-0.2); see the job log for details. ';

/** `prefix` followed by filler, exactly TEXT_BYTES long (the prefix is ASCII). */
export function eventText(prefix: string, bytes = TEXT_BYTES): string {
  let text = `${prefix} ${FILLER}`;
  while (text.length < bytes) text += FILLER;
  return text.slice(0, bytes);
}

/**
 * `count` session keys of agent `agentId`, mixing the key forms agents meet: channel threads,
 * group topics, direct messages and the main session.
 */
export function sessionKeys(agentId: string, count: number): string[] {
  const keys: string[] = [];
  for (let i = 0; i < count; i++) {
    switch (i % 4) {
      case 0:
        keys.push(`agent:${agentId}:slack:channel:C${1000 + (i % 17)}:thread:${1700000000 + i}`);
        break;
      case 1:
        keys.push(`agent:${agentId}:telegram:group:-100${2000 + i}:topic:${i % 9}`);
        break;
      case 2:
        keys.push(`agent:${agentId}:telegram:direct:U${3000 + i}`);
        break;
      default:
        keys.push(i === 3 ? `agent:${agentId}:main` : `agent:${agentId}:discord:acct${i % 3}:channel:${4000 + i}`);
    }
  }
  return keys;
}

/** One JSON-RPC request frame for system.event. */
export function systemEventFrame(id: number, text: string, sessionKey: string): string {
  return `{"jsonrpc":"2.0","id":${id},"method":"system.event","params":{"text":${JSON.stringify(text)},"sessionKey":${JSON.stringify(sessionKey)}}}`;
}

/** The agent id of a canonical key `agent:<id>:...`. */
export function agentOf(sessionKey: string): string {
  const end = sessionKey.indexOf(':', 6);
  return sessionKey.slice(6, end === -1 ? undefined : end);
}
