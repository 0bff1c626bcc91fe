/**
 * The gateway the examples call: SWITCHBOARD_URL with SWITCHBOARD_TOKEN, else the Unix socket and
 * the token file of the data dir (SWITCHBOARD_DATA_DIR, or the default). The library sends whatever
 * token it is given wherever it is told; the data dir's admin token belongs with its own socket,
 * so a URL given needs its own token. The CLI is a little less strict: it also sends the data
 * dir's token to a unix: URL of the user's own socket, and on Windows to ws://127.0.0.1:18790.
 */
import { localGatewayToken, localGatewayUrl } from '../src/index.js';

export function gatewayFromEnvironment(): { url: string; token: string } {
  const url = process.env['SWITCHBOARD_URL'];
  const token = process.env['SWITCHBOARD_TOKEN'];
  // Given no data dir, these take SWITCHBOARD_DATA_DIR's, and refuse it set but empty.
  if (url === undefined) return { url: localGatewayUrl(), token: token ?? localGatewayToken() };
  if (token === undefined) {
    throw new Error(`SWITCHBOARD_URL is set (${url}): set SWITCHBOARD_TOKEN to that gateway's token as well; the data dir's admin token goes to its own socket only`);
  }
  return { url, token };
}
