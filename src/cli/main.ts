/**
 * The CLI's entry. A well-formed command line runs directly; anything else (help, version, an
 * error to explain, an unusual spelling) goes to cac. Loading cac and declaring every command
 * costs about a third of a one-shot command's own start-up, and a CLI called from every build
 * step should not pay it for nothing. One try/catch decides what is printed and the exit code.
 */
import { flagOption, joinCommandGroup, matchDirect, refuseNonUtf8Arguments } from './argv.js';
import { commandFirst, COMMANDS } from './commands.js';
import { ExitCode, isCliError, outputFailed } from './exit-codes.js';
import { writeLog, writeOut } from './output.js';
import { holdStopSignals } from './stop-signals.js';

async function main(argv: readonly string[]): Promise<ExitCode> {
  const args = joinCommandGroup(argv.slice(2));
  // Before anything of the gateway loads: a signal while it does must stop it gracefully too.
  // Options may come first (`--data-dir D gateway`); held for no other command, whose Ctrl-C must end it.
  if (commandFirst(args)[0] === 'gateway') holdStopSignals();
  try {
    refuseNonUtf8Arguments(argv.slice(2));
    if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) return await printVersion();
    const direct = matchDirect(args, COMMANDS);
    if (direct) return await (await direct.command.load())(args, direct.positionals);
    return await (await import('./cac-parser.js')).runWithCac(args);
  } catch (error) {
    if (!isCliError(error)) throw error;
    // --json promises one JSON object on stdout: a failed call's is its error (README.md). Best
    // effort: when stdout fails too, the message on stderr and the exit code still tell.
    if (error.json && flagOption(args, 'json')) writeLog(process.stdout, JSON.stringify({ error: error.json }));
    process.stderr.write(`switchboard: ${error.message}\n`);
    return error.exitCode;
  }
}

/**
 * The version alone, as scripts and bug reports ask for it: in cac's words (name/version platform
 * node), but without loading cac, which made it slower than a call to the gateway.
 */
async function printVersion(): Promise<ExitCode> {
  // Imported here: reading package.json is for this command only.
  const { VERSION } = await import('../version.js');
  const line = `switchboard/${VERSION} ${process.platform}-${process.arch} node-${process.version}\n`;
  // As for --help (cac-parser.ts): a reader that went away (`--version | true`) chose to stop
  // reading, which is no failure; a write that failed otherwise (a full disk) lost the version.
  await writeOut(process.stdout, line).catch((error: unknown) => {
    throw outputFailed('the version', error);
  });
  return ExitCode.OK;
}

main(process.argv).then(
  (code) => {
    // Exit as soon as output is flushed: open sockets or timers must not keep a one-shot CLI alive.
    if (code !== undefined) process.stdout.write('', () => process.exit(code));
  },
  (error: unknown) => {
    process.stderr.write(`switchboard: unexpected error: ${(error as Error)?.stack ?? String(error)}\n`);
    process.exit(ExitCode.GATEWAY_ERROR);
  },
);
