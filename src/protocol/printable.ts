/**
 * Text sent by someone else (a client, a gateway) made safe to show on one line of a terminal or
 * a log: the CLI's output, and the gateway's log lines that repeat what a client sent.
 */
/**
 * C0 controls, DEL and C1 controls: the characters a terminal acts on instead of showing. The line
 * and paragraph separators (U+2028, U+2029): editors, log viewers and JavaScript read a line break
 * there, so a text could fake a line of output in a log (QA). And the bidirectional formatting
 * characters (embeddings, overrides, isolates, marks): invisible, they reorder what follows them
 * on the line, so a text could show a key or a command other than the one it holds ("Trojan
 * Source"). Other invisible characters (zero-width joiners in emoji) stay.
 */
const CONTROL_CHARACTERS = /[\p{Cc}\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const NAMED_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * Text from elsewhere (event text, keys, token names, messages, a client's method name) as it may
 * go to a terminal or a log: every control character becomes a visible escape (`\n`, `\r`, `\t`, `\x1b`, `\x9b`, `\u202e`), so
 * the text can neither send escape sequences, fake further lines of output, nor reorder what is
 * shown. Everything else, backslashes included, is shown as it is.
 */
export function printable(text: string): string {
  return text.replace(CONTROL_CHARACTERS, (char) => NAMED_ESCAPES[char] ?? escapeOf(char.charCodeAt(0)));
}

function escapeOf(code: number): string {
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

