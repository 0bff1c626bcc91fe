#!/usr/bin/env node
/**
 * The `switchboard` bin: runs the CLI bundle beside it, cli.cjs, compiled with the code cache the
 * build made for it (see code-cache.ts). The bundle runs as it would if required: its own
 * __filename (version.ts finds package.json from it) and a require that resolves from it.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { compileBundle, writeCacheOnExit } from './code-cache.js';

const bundle = join(__dirname, 'cli.cjs');
const script = compileBundle(bundle);
writeCacheOnExit(script);
const exports = {};
script.runInThisContext()(exports, createRequire(bundle), { exports }, bundle, dirname(bundle));
