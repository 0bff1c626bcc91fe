/**
 * Whether loading the gateway failed for want of better-sqlite3, the optional dependency npm
 * leaves out when it cannot build it: the CLI explains it, the build goes on without the code
 * cache. Its own module: the CLI's bundle holds no store code.
 */
export function isStoreModuleMissing(error: unknown): boolean {
  const { code, message } = error as NodeJS.ErrnoException;
  // CommonJS (the bundles) says MODULE_NOT_FOUND, ES modules (dist/src run as they are) ERR_MODULE_NOT_FOUND.
  return (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && typeof message === 'string' && message.includes("'better-sqlite3'");
}
