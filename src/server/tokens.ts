/**
 * Scoped tokens: created and revoked by the admin, stored hashed, checked in memory. The secret
 * exists only in the answer to token.create.
 */
import { randomBytes } from 'node:crypto';
import { TOKEN_PREFIX } from '../protocol/constants.js';
import { printable } from '../protocol/printable.js';
import type { TokenCreateParams, TokenCreateResult, TokenInfo, TokenListResult, TokenRevokeResult, TokenScope } from '../protocol/schemas.js';
import type { TokenPageOptions, TokenRecord, TokenStore } from '../store/types.js';
import { hashToken, type Authenticator, type ScopedToken } from './auth.js';

/** Both scopes unless the admin narrows them: a token is usually one agent's whole key. */
const DEFAULT_SCOPES: readonly TokenScope[] = ['publish', 'subscribe'];

/** 32 random bytes, like the admin token. */
const SECRET_BYTES = 32;

/** Token ids are labels, not secrets: 6 random bytes keep them short and collisions out of reach. */
const TOKEN_ID_BYTES = 6;

/** `by` says who asked, for the log (describeCaller): the admin token may be held by several. */
export interface TokenService {
  create(params: TokenCreateParams, by: string): Promise<TokenCreateResult>;
  /** Undefined when there is no token `after`. */
  list(options: TokenPageOptions): Promise<TokenListResult | undefined>;
  revoke(tokenId: string, by: string): Promise<TokenRevokeResult | undefined>;
}

export function toScopedToken(record: TokenRecord): ScopedToken {
  return { tokenId: record.tokenId, hash: record.hash, agentId: record.agentId, scopes: record.scopes, revoked: record.revokedAt !== null };
}

export function createTokenService(
  store: TokenStore,
  authenticator: Authenticator,
  /** Closes the connections authenticated with a token; returns how many. */
  closeConnections: (tokenId: string) => number,
  /** The gateway's log: who may act changed, which its operator must be able to trace (operator QA). */
  log: (line: string) => void,
): TokenService {
  return {
    async create(params, by) {
      const token = `${TOKEN_PREFIX.scoped}${randomBytes(SECRET_BYTES).toString('base64url')}`;
      const record: TokenRecord = {
        tokenId: `tok_${randomBytes(TOKEN_ID_BYTES).toString('hex')}`,
        name: params.name?.trim() ?? null,
        agentId: params.agentId.toLowerCase(),
        scopes: [...(params.scopes ?? DEFAULT_SCOPES)].sort(),
        hash: hashToken(token),
        createdAt: Date.now(),
        revokedAt: null,
      };
      const stored = await store.createToken(record);
      authenticator.remember(toScopedToken(stored));
      log(`created token ${stored.tokenId}${stored.name === null ? '' : ` ("${printable(stored.name)}")`} for agent ${stored.agentId}, to ${stored.scopes.join(' and ')}, asked by ${by}`);
      return { ...toInfo(stored), token };
    },
    async list(options) {
      const page = await store.tokenPage(options);
      return page && { tokens: page.tokens.map(toInfo), more: page.more };
    },
    async revoke(tokenId, by) {
      const revocation = await store.revokeToken(tokenId);
      if (!revocation) return undefined;
      const { record, alreadyRevoked } = revocation;
      authenticator.remember(toScopedToken(record));
      const closedConnections = closeConnections(tokenId);
      if (!alreadyRevoked) log(`revoked token ${tokenId} of agent ${record.agentId}, asked by ${by}: ${closedConnections === 1 ? '1 connection' : `${closedConnections} connections`} of it closed`);
      return { tokenId, revoked: true, alreadyRevoked, revokedAt: new Date(record.revokedAt!).toISOString(), closedConnections };
    },
  };
}

function toInfo(record: TokenRecord): TokenInfo {
  return {
    tokenId: record.tokenId,
    name: record.name,
    agentId: record.agentId,
    scopes: record.scopes,
    createdAt: new Date(record.createdAt).toISOString(),
    revokedAt: record.revokedAt === null ? null : new Date(record.revokedAt).toISOString(),
  };
}
