/** What every part gets from the runner. */
export interface PartContext {
  /** When set, servers under test write CPU profiles here. */
  profileDir: string | undefined;
  /** Lines for the report's notes (e.g. a figure measured with fewer connections than asked). */
  notes: string[];
  log(line: string): void;
}
