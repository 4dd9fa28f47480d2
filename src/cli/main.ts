/**
 * The `cuemux` command line: entry point. Configures logging (the only place besides the server's main), runs a
 * command, and maps any error to an exit code with a message that names the file and the problem.
 */
import { isCuemuxError, errorStack } from '../common/errors';
import { configureLogging } from '../common/log-setup';
import type { LogLevel } from '../common/logger';
import { processIo, StdoutClosed, type CliIo } from './cli-io';
import { cuemuxVersion } from '../common/version';
import { ExitCode, exitCodeFor, type ExitCodeValue } from './exit-codes';
import { helpText, parseCommand, usageHint, type CommandSpec } from './options';

/** The commands, one line each, for `cuemux --help` (each command has its own `--help`). */
const COMMANDS: ReadonlyArray<[string, string]> = [
  ['index build|check|info|dump', 'Build and inspect the shared frame index'],
  ['serve', 'Run the media server'],
  ['status', 'What a running server is doing: the show (clock, standby, cues), media and clients'],
  ['play-audio', 'Reference audio player: follows an output of a server'],
  ['play-video', 'Reference video composer: follows a layer of a server'],
  ['version', 'Print versions'],
];

/** `cuemux` itself: the global options, given before the command. */
export const MAIN: CommandSpec = {
  command: '', synopsis: '[global options] <command> [options]',
  summary: 'cuemux: a media sidecar for live shows. One open per media file, a shared exact frame index, packets over gRPC, one show clock.',
  options: [
    { name: 'log-level', arg: 'L', help: 'error, warn, info or debug', default: '$CUEMUX_LOG_LEVEL or warn (serve: info)' },
    { name: 'log-format', arg: 'F', help: 'text or json', default: 'text on a terminal, else json' },
    { name: 'log-file', arg: 'FILE', help: 'write the log to FILE', default: 'stderr' },
    { name: 'version', type: 'boolean', help: 'print versions and exit' },
  ],
  footer: `Commands:
${COMMANDS.map(([c, what]) => `  ${c.padEnd(28)} ${what}`).join('\n')}

Run "cuemux <command> --help" (or "cuemux index <command> --help") for the options of each, their units and defaults.`,
};

/** `cuemux version`. */
export const VERSION: CommandSpec = { command: 'version', synopsis: '', summary: 'Print the versions of cuemux and Node.', options: [] };

/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<ExitCodeValue> {
  // Global options come before the command; everything after the command belongs to it.
  const cmdAt = argv.findIndex((a, i) => !a.startsWith('-') && !['--log-level', '--log-format', '--log-file'].includes(argv[i - 1] ?? ''));
  const globalArgs = cmdAt < 0 ? argv : argv.slice(0, cmdAt);
  const [command, ...rest] = cmdAt < 0 ? [] : argv.slice(cmdAt);
  let closeLogs: (() => Promise<void>) | undefined;
  try {
    const parsed = parseCommand(MAIN, globalArgs);
    if (parsed === 'help') {
      io.out(helpText(MAIN));
      return ExitCode.OK;
    }
    const values = { 'log-level': parsed.string('log-level'), 'log-format': parsed.string('log-format'), 'log-file': parsed.string('log-file'), version: parsed.flag('version') };
    const level = (values['log-level'] ?? process.env.CUEMUX_LOG_LEVEL ?? 'warn') as LogLevel;
    if (!['error', 'warn', 'info', 'debug'].includes(level)) {
      io.err(`cuemux: --log-level must be error, warn, info or debug\n`);
      return ExitCode.USAGE;
    }
    const format = values['log-format'] as 'text' | 'json' | undefined;
    closeLogs = configureLogging({ level, format, file: values['log-file'] });
    if (command === 'version' && parseCommand(VERSION, rest) === 'help') {
      io.out(helpText(VERSION));
      return ExitCode.OK;
    }
    if (values.version || command === 'version') {
      io.out(`cuemux ${cuemuxVersion()} (node ${process.versions.node})\n`);
      return ExitCode.OK;
    }
    switch (command) {
      // Commands load their modules on use: `cuemux index` must not pay for gRPC, nor `cuemux status` for FFmpeg.
      /* eslint-disable @typescript-eslint/no-require-imports */
      case 'index': return await (require('./index-command') as typeof import('./index-command')).runIndexCommand(io, rest);
      case 'serve': return await (require('./serve-command') as typeof import('./serve-command')).runServeCommand(io, rest);
      case 'status': return await (require('./status-command') as typeof import('./status-command')).runStatusCommand(io, rest);
      case 'play-audio': return await (require('./play-command') as typeof import('./play-command')).runPlayCommand(io, 'audio', rest);
      case 'play-video': return await (require('./play-command') as typeof import('./play-command')).runPlayCommand(io, 'video', rest);
      /* eslint-enable @typescript-eslint/no-require-imports */
      case 'help': case undefined:
        // `cuemux` alone is a usage error (2) that shows the help; `cuemux help` asked for it.
        io.out(helpText(MAIN));
        return command === undefined ? ExitCode.USAGE : ExitCode.OK;
      default:
        io.err(`cuemux: unknown command "${command}"\n\n${usageHint(MAIN)}\n`);
        return ExitCode.USAGE;
    }
  } catch (e) {
    if (e instanceof StdoutClosed) return ExitCode.OK; // `| head`: the reader has what it wanted
    const msg = isCuemuxError(e) ? e.message : errorStack(e);
    io.err(`cuemux: ${msg}\n`);
    return isCuemuxError(e) ? exitCodeFor(e) : ExitCode.FAILURE;
  } finally {
    await closeLogs?.();
  }
}
