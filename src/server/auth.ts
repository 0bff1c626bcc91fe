/**
 * Who is calling. Every ingress (WebSocket upgrade, POST /rpc, POST /hooks/wake) authenticates
 * through `Authenticator.authenticate`, and every method authorizes through `authorize`, so a
 * refusal is the same whichever way a request came in.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { RpcError } from '../protocol/errors.js';
import type { TokenScope } from '../protocol/schemas.js';

export type Principal =
  | { kind: 'admin' }
  | { kind: 'agent'; tokenId: string; agentId: string; scopes: readonly TokenScope[] };

export const ADMIN: Principal = { kind: 'admin' };

/** A scoped token as the gateway keeps it: only the hash of the secret. */
export interface ScopedToken {
  tokenId: string;
  hash: string;
  agentId: string;
  scopes: readonly TokenScope[];
  revoked: boolean;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class Authenticator {
  readonly #admin: Buffer;
  readonly #scoped = new Map<string, ScopedToken>();
  /** The ids of the scoped tokens not revoked: what a principal authenticated earlier is checked against. */
  readonly #live = new Set<string>();

  constructor(adminToken: string, scoped: Iterable<ScopedToken>) {
    this.#admin = Buffer.from(adminToken);
    for (const token of scoped) this.remember(token);
  }

  /** Adds or updates a scoped token (after create or revoke). */
  remember(token: ScopedToken): void {
    if (token.revoked) {
      this.#scoped.delete(token.hash);
      this.#live.delete(token.tokenId);
    } else {
      this.#scoped.set(token.hash, token);
      this.#live.add(token.tokenId);
    }
  }

  /**
   * Whether a principal authenticated earlier still holds: its token was not revoked since. An
   * HTTP request is admitted on its headers, and its body may take seconds to come.
   */
  isCurrent(principal: Principal): boolean {
    return principal.kind === 'admin' || this.#live.has(principal.tokenId);
  }

  /** The principal behind the request's token, or undefined when there is none or it is unknown. */
  authenticate(headers: IncomingHttpHeaders): Principal | undefined {
    const given = presentedToken(headers);
    if (given === undefined) return undefined;
    const bytes = Buffer.from(given);
    // Constant-time for the admin token; scoped tokens are looked up by hash, which leaks nothing.
    if (bytes.length === this.#admin.length && timingSafeEqual(bytes, this.#admin)) return ADMIN;
    const scoped = this.#scoped.get(hashToken(given));
    return scoped && { kind: 'agent', tokenId: scoped.tokenId, agentId: scoped.agentId, scopes: scoped.scopes };
  }
}

/**
 * The token from `Authorization: Bearer <token>`, `X-Switchboard-Token: <token>`, or, for clients
 * that cannot set headers but take a URL (ws://any:<token>@host:port, which `ws` and curl send as
 * HTTP Basic), the password of `Authorization: Basic`.
 */
function presentedToken(headers: IncomingHttpHeaders): string | undefined {
  const custom = headers['x-switchboard-token'];
  if (typeof custom === 'string' && custom.trim() !== '') return custom.trim();
  const header = headers.authorization;
  if (typeof header !== 'string') return undefined;
  const match = /^(Bearer|Basic)[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match?.[2]) return undefined;
  if (match[1]!.toLowerCase() === 'bearer') return match[2];
  const decoded = Buffer.from(match[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(colon + 1);
}

export type Need = { admin: true } | { scope: TokenScope; agentId: string };

/** Throws FORBIDDEN unless the principal may do what `need` names. Admin may do everything. */
export function authorize(principal: Principal, need: Need): void {
  if (principal.kind === 'admin') return;
  if ('admin' in need) {
    throw new RpcError('FORBIDDEN', 'this needs the admin token (the one in <data-dir>/token): a scoped token only publishes and subscribes for its agent');
  }
  if (!principal.scopes.includes(need.scope)) {
    throw new RpcError('FORBIDDEN', `this token lacks the "${need.scope}" scope; create one with --can ${need.scope}`, {
      tokenId: principal.tokenId,
      scope: need.scope,
    });
  }
  if (principal.agentId !== need.agentId) {
    throw new RpcError(
      'FORBIDDEN',
      `this token belongs to agent "${principal.agentId}" and cannot reach agent "${need.agentId}"'s sessions`,
      { tokenId: principal.tokenId, tokenAgentId: principal.agentId, agentId: need.agentId },
    );
  }
}

/** The agent a scoped principal is bound to; undefined for admin. */
export function boundAgent(principal: Principal): string | undefined {
  return principal.kind === 'agent' ? principal.agentId : undefined;
}
