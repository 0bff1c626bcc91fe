/**
 * Whether loading the gateway failed for want of better-sqlite3, the optional dependency npm
 * leaves out when it cannot build it, and how to get it built: the CLI explains it, the build goes
 * on without the code cache and says so. Its own module: the CLI's bundle holds no store code.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

export function isStoreModuleMissing(error: unknown): boolean {
  const { code, message } = error as NodeJS.ErrnoException;
  // CommonJS (the bundles) says MODULE_NOT_FOUND, ES modules (dist/src run as they are) ERR_MODULE_NOT_FOUND.
  return (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') && typeof message === 'string' && message.includes("'better-sqlite3'");
}

/**
 * What building better-sqlite3 needs, and the install that gives it. node-gyp downloads Node.js's
 * C headers from nodejs.org unless told where they are: without that access the build failed, and
 * "install python3, make and g++" sent a user who had them round the same failure (QA). Debian's
 * nodejs and Node.js's own tarballs put the headers beside the binary, in <prefix>/include/node.
 */
export function storeBuildAdvice(execPath = process.execPath): string {
  const prefix = path.resolve(path.dirname(execPath), '..');
  const needs = "building it needs python3, make and g++, and Node.js's C headers, which node-gyp downloads from nodejs.org unless told where they are";
  const install = existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))
    ? `\`npm_config_nodedir=${prefix} npm install\` (this Node.js has its headers in ${path.join(prefix, 'include', 'node')})`
    : '`npm install` with nodejs.org reachable';
  return `${needs}: run ${install} where switchboard is installed (\`--foreground-scripts\` shows why a build fails)`;
}
