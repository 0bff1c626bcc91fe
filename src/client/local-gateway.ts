/**
 * The gateway of a data dir on this machine, reached the way the CLI reaches it: over the Unix
 * socket it serves in its data dir, with the admin token in its token file. Any local user can
 * listen on a TCP port while the gateway is down and be sent the token; only the data dir's owner
 * can make the socket, which is checked before every connection to it (see unixSocketRefusal).
 */
import { lstatSync, statSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { dataDirProblem, emptyVariableMessage, readToken, resolveDataDir, socketPath, TokenFileError, tokenPath } from '../config/data-dir.js';
import { DATA_FILES, DEFAULT_URL, ENV, UNIX_SCHEME } from '../protocol/constants.js';
import { HAS_UNIX_SOCKETS } from '../protocol/socket-path.js';
import { ConnectionError } from './errors.js';
import { unixSocketPath } from './gateway-url.js';

/**
 * The URL of the data dir's gateway: `unix:<dataDir>/gateway.sock`; on Windows, which has no such
 * sockets, DEFAULT_URL. See chosenDataDir for the default.
 */
export function localGatewayUrl(dataDir?: string): string {
  // Resolved on every platform, so that a SWITCHBOARD_DATA_DIR set but empty is refused on all.
  const dir = chosenDataDir(dataDir);
  return HAS_UNIX_SOCKETS ? `${UNIX_SCHEME}${socketPath(dir)}` : DEFAULT_URL;
}

/**
 * The admin token in the data dir's token file. A TokenFileError when there is none yet
 * (`TOKEN_FILE_MISSING`), or when it cannot be read or holds no token alone.
 */
export function localGatewayToken(dataDir?: string): string {
  const resolved = chosenDataDir(dataDir);
  const token = readToken(resolved);
  if (token === undefined) throw TokenFileError.missing(tokenPath(resolved));
  return token;
}

/**
 * The data dir given, else SWITCHBOARD_DATA_DIR's, else the platform's user data dir: as the
 * gateway and the CLI choose it, so that a program run beside them finds theirs. The variable set
 * but empty is an error, as it is to the CLI: most often an unset shell variable, and the default
 * data dir's admin token is not what was meant. So is a data dir given empty (that variable passed
 * on, say) or blank, which would resolve to the working directory (QA).
 */
function chosenDataDir(dataDir: string | undefined): string {
  const fromEnv = process.env[ENV.dataDir];
  if (dataDir === undefined && fromEnv === '') throw new TypeError(emptyVariableMessage(ENV.dataDir));
  const [given, from] = dataDir === undefined ? [fromEnv, ENV.dataDir] : [dataDir, 'dataDir'];
  const problem = given === undefined ? undefined : dataDirProblem(given);
  if (problem) throw new TypeError(`${from} ${JSON.stringify(given)} ${problem}, or ${dataDir === undefined ? 'unset it for the default' : `leave it out for ${ENV.dataDir}'s, else the default`}`);
  return resolveDataDir(given);
}

/**
 * Why a token must not be sent to the Unix socket `url` names, if it must not: the file there is
 * not a socket (the gateway never serves through a symlink, so it is not followed), or it belongs
 * to another user than its directory, as the gateway's own socket in its data dir never does. In a
 * directory others can add files to (a data dir shared with a group, say) another user could put
 * one there while the gateway is down, and be sent the token by the next call or reconnect.
 * Undefined for a URL that names no socket, and for a file that is not there: connecting says so.
 */
export function unixSocketRefusal(url: string): ConnectionError | undefined {
  const path = unixSocketPath(url);
  const socket = path === undefined ? undefined : statOrUndefined(lstatSync, path);
  if (path === undefined || socket === undefined) return undefined;
  if (!socket.isSocket()) return new ConnectionError('rejected', url, notASocket(path, socket));
  const dir = statOrUndefined(statSync, dirname(path));
  if (dir === undefined || dir.uid === socket.uid) return undefined;
  return new ConnectionError(
    'rejected',
    url,
    `${path} belongs to uid ${socket.uid}, not to uid ${dir.uid}, the owner of ${dirname(path)}: another user may have put it there, so the token is not sent to it; run the gateway as the directory's owner, and keep others from writing in a data dir (chmod 700)`,
  );
}

/**
 * What to do about a URL naming a file that is not a socket. At the socket's name it is likely a
 * stray file that keeps the gateway from making its socket there; anywhere else a mistyped URL
 * (the data dir, the token file), which is to be corrected, not removed.
 */
function notASocket(path: string, stats: Stats): string {
  const what = `${path} is not a socket, so no gateway serves it`;
  if (basename(path) === DATA_FILES.socket) return `${what}: move it out of the way, and restart the gateway to have it make its socket there`;
  const inDir = stats.isDirectory() ? `; the gateway of the data dir ${path} serves ${UNIX_SCHEME}${join(path, DATA_FILES.socket)}` : '';
  return `${what}: a gateway's socket is ${DATA_FILES.socket} in its data dir${inDir}`;
}

function statOrUndefined(stat: (path: string) => Stats, path: string): Stats | undefined {
  try {
    return stat(path);
  } catch {
    return undefined;
  }
}
