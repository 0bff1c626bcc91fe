/**
 * import.meta for the CommonJS bin, which has none: bundle.ts has esbuild inject this module and
 * read `importMeta` wherever bundled code reads import.meta (version.ts finds package.json from its
 * url). A getter, so that a command that never asks pays nothing at start-up.
 */
import { pathToFileURL } from 'node:url';

export const importMeta = {
  get url(): string {
    return pathToFileURL(__filename).href;
  },
};
