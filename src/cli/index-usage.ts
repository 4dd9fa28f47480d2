/**
 * The option tables of `cuemux index build|check|info|dump` (their parser and `--help` are made from them), in their
 * own module so `cuemux --help` does not load the index store and FFmpeg.
 */
import * as os from 'node:os';
import { defaultCacheDir } from '../index-store/index-location';
import type { CommandSpec, OptionSpec } from './options';

/** Files `index build` indexes at once when --jobs is not given: up to 4, never more than the CPUs. */
export const DEFAULT_JOBS = Math.min(4, os.availableParallelism());
/** Seconds `index build` waits for another process building the same index (--lock-timeout default). */
export const DEFAULT_LOCK_TIMEOUT_SECONDS = 300;

const CACHE_DIR: OptionSpec = {
  name: 'cache-dir', arg: 'DIR', help: 'index folder for media in read-only folders',
  default: () => `$CUEMUX_CACHE_DIR or ${defaultCacheDir()}`,
};
const JSON_OPTION: OptionSpec = { name: 'json', type: 'boolean', help: 'print one JSON report on stdout instead of lines' };
const GROWING_WAIT: OptionSpec = {
  name: 'growing-wait-ms', arg: 'N', help: 'a file that changes within this long is growing (being written); it is complete once unchanged this long',
  number: { kind: 'integer', min: 1, unit: 'ms' }, default: '5000',
};

const EXIT_CODES = `Exit codes: 0 ok, 1 failures of different kinds, 2 usage, 3 stale, 4 missing, 5 corrupt, 6 not media,
            7 truncated/damaged media (readable part indexed), 8 path not found, 9 permission denied, 10 busy (lock timeout).`;

/** `cuemux index build`. */
export const INDEX_BUILD: CommandSpec = {
  command: 'index build', synopsis: '[options] <paths...>', positionals: true,
  summary: 'Index media files; folders are searched recursively (hidden entries skipped) and media is recognised by probing, not by extension.',
  options: [
    { name: 'jobs', arg: 'N', help: 'files indexed at once', number: { kind: 'integer', min: 1, max: 256 }, default: String(DEFAULT_JOBS) },
    { name: 'force', type: 'boolean', help: 'rebuild even when a fresh index exists' },
    { name: 'follow', type: 'boolean', help: 'one file that may still be being written: index it as it grows, exit 0 once it is complete and its index written (Ctrl-C writes nothing)' },
    GROWING_WAIT,
    CACHE_DIR,
    {
      name: 'lock-timeout', arg: 'S', help: 'how long to wait for another process building the same index',
      number: { kind: 'integer', min: 1, unit: 'seconds' }, default: String(DEFAULT_LOCK_TIMEOUT_SECONDS),
    },
    JSON_OPTION,
  ],
  footer: EXIT_CODES,
};

/** `cuemux index check`. */
export const INDEX_CHECK: CommandSpec = {
  command: 'index check', synopsis: '[options] <paths...>', positionals: true,
  summary: 'Exit 0 when every media file has a fresh index; else the worst of 3 stale, 4 missing, 5 corrupt.',
  options: [CACHE_DIR, JSON_OPTION],
  footer: EXIT_CODES,
};

/** `cuemux index info`. */
export const INDEX_INFO: CommandSpec = {
  command: 'index info', synopsis: '[options] <media>', positionals: true,
  summary: 'Streams, packet and keyframe counts, duration, longest GOP, index path and size, how a server reads the file, and whether it is still growing.',
  options: [CACHE_DIR, GROWING_WAIT, JSON_OPTION],
  footer: EXIT_CODES,
};

/** `cuemux index dump`. */
export const INDEX_DUMP: CommandSpec = {
  command: 'index dump', synopsis: '[options] <media>', positionals: true,
  summary: 'One line per packet in file order: stream, pts, dts, duration, pos, size, key.',
  options: [
    { name: 'stream', arg: 'N', help: 'only the stream with this index', number: { kind: 'integer', min: 0 }, default: 'every stream' },
    { name: 'format', arg: 'F', help: 'jsonl or csv', default: 'jsonl' },
    CACHE_DIR,
  ],
  footer: EXIT_CODES,
};

/** Every `cuemux index` subcommand, in help order. */
export const INDEX_COMMANDS: readonly CommandSpec[] = [INDEX_BUILD, INDEX_CHECK, INDEX_INFO, INDEX_DUMP];

/** Usage text of `cuemux index` (the subcommands; each has its own `--help`). */
export const INDEX_USAGE = `Usage: cuemux index <command> [options]

Commands:
${INDEX_COMMANDS.map((c) => `  ${`${c.command.slice('index '.length)} ${c.synopsis.replace('[options] ', '')}`.padEnd(18)} ${c.summary}`).join('\n')}

Run "cuemux index <command> --help" for the options of each, their units and defaults.

${EXIT_CODES}
`;
