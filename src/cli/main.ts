/**
 * The `cuemux` command line: entry point. Configures logging (the only place besides the server's main), runs a
 * command, and maps any error to an exit code with a message that names the file and the problem.
 */
import { parseArgs } from 'node:util';
import { isCuemuxError } from '../common/errors';
import { configureLogging } from '../common/log-setup';
import type { LogLevel } from '../common/logger';
import { processIo, StdoutClosed, type CliIo } from './cli-io';
import { cuemuxVersion } from '../common/version';
import { ExitCode, exitCodeFor, type ExitCodeValue } from './exit-codes';
import { INDEX_USAGE } from './index-usage';

const USAGE = `Usage: cuemux [--log-level error|warn|info|debug] [--log-format text|json] [--log-file FILE] <command>

Commands:
  index build|check|info|dump   Build and inspect the shared frame index (cuemux index --help)
  serve                         Run the media server (cuemux serve --help)
  status [--socket P|--target HOST:PORT] [--json]   What a running server is doing
  play-audio --output NAME [--sink wav:F|raw:F|null]  Reference audio player (cuemux play-audio --help)
  play-video --output NAME [--sink y4m:F|raw:F|hash:F|null]  Reference video composer (cuemux play-video --help)
  version                       Print versions

${INDEX_USAGE}`;


/** Run the CLI with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<ExitCodeValue> {
  // Global options come before the command; everything after the command belongs to it.
  const cmdAt = argv.findIndex((a, i) => !a.startsWith('-') && !['--log-level', '--log-format', '--log-file'].includes(argv[i - 1] ?? ''));
  const globalArgs = cmdAt < 0 ? argv : argv.slice(0, cmdAt);
  const [command, ...rest] = cmdAt < 0 ? [] : argv.slice(cmdAt);
  let closeLogs: (() => Promise<void>) | undefined;
  try {
    const { values } = parseArgs({
      args: globalArgs, strict: true, allowPositionals: false,
      options: {
        'log-level': { type: 'string' }, 'log-format': { type: 'string' }, 'log-file': { type: 'string' },
        help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' },
      },
    });
    const level = (values['log-level'] ?? process.env.CUEMUX_LOG_LEVEL ?? 'warn') as LogLevel;
    if (!['error', 'warn', 'info', 'debug'].includes(level)) {
      io.err(`cuemux: --log-level must be error, warn, info or debug\n`);
      return ExitCode.USAGE;
    }
    const format = values['log-format'] as 'text' | 'json' | undefined;
    closeLogs = configureLogging({ level, format, file: values['log-file'] });
    if (values.version === true || command === 'version') {
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
        io.out(USAGE);
        return command === undefined && values.help !== true ? ExitCode.USAGE : ExitCode.OK;
      default:
        io.err(`cuemux: unknown command "${command}"\n\n${USAGE}`);
        return ExitCode.USAGE;
    }
  } catch (e) {
    if (e instanceof StdoutClosed) return ExitCode.OK; // `| head`: the reader has what it wanted
    const msg = isCuemuxError(e) ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    io.err(`cuemux: ${msg}\n`);
    return isCuemuxError(e) ? exitCodeFor(e) : ExitCode.FAILURE;
  } finally {
    await closeLogs?.();
  }
}
