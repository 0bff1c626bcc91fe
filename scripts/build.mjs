/**
 * `npm run build`: compiles and bundles into dist.next, then puts it in dist's place (two renames,
 * microseconds apart). A CLI run from the checkout meanwhile (a cron job's, a build step's) finds
 * the old build or the new one: removing dist first left every call of the ~20 s the build takes
 * failing with MODULE_NOT_FOUND (QA). Plain JavaScript: it runs before anything is compiled.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

process.chdir(fileURLToPath(new URL('..', import.meta.url)));
const [DIST, NEXT, OLD] = ['dist', 'dist.next', 'dist.old'];
for (const dir of [NEXT, OLD]) fs.rmSync(dir, { recursive: true, force: true });

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--outDir', NEXT], { stdio: 'inherit' });
execFileSync(process.execPath, [`${NEXT}/scripts/bundle.js`], { stdio: 'inherit' });

try {
  if (fs.existsSync(DIST)) fs.renameSync(DIST, OLD);
} catch {
  // Windows refuses to rename a dir with a file in use: the build before this one goes first.
  fs.rmSync(DIST, { recursive: true, force: true });
}
fs.renameSync(NEXT, DIST);
fs.rmSync(OLD, { recursive: true, force: true });
