/**
 * import.meta.url for the CommonJS bin, which has no import.meta: bundle.ts has esbuild inject
 * this module and read `importMetaUrl` wherever bundled code reads import.meta.url (version.ts
 * finds package.json from it).
 */
import { pathToFileURL } from 'node:url';

export const importMetaUrl = pathToFileURL(__filename).href;
