/** Text as a log file shows it: without the ANSI colour codes uvu writes, piped or not. */
export function withoutColours(text: string): string {
  return text.replace(/\u001b\[[0-9;]*m/g, '');
}
