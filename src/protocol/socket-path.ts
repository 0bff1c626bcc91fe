/**
 * What a Unix socket path may be: for the gateway that makes one in its data dir and for the
 * clients that connect to it (a `unix:` gateway URL).
 */

/**
 * The longest path: sun_path holds 108 bytes on Linux and 104 on macOS and the BSDs, its NUL
 * included. libuv binds and connects to a longer path cut short, without an error: another file
 * than the one named.
 */
export const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

/** Windows has named pipes, not sockets in the file system: there the gateway serves none. */
export const HAS_UNIX_SOCKETS = process.platform !== 'win32';

/** Why `path` cannot name a Unix socket, or undefined when it can. */
export function socketPathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'a Unix socket path is absolute';
  if (path.includes('\0')) return 'a Unix socket path holds no NUL character';
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) return `a Unix socket path has at most ${MAX_SOCKET_PATH_BYTES} bytes`;
  return undefined;
}
