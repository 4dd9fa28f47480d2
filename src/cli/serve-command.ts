/**
 * `cuemux serve`: the media server (gRPC over a Unix socket, optional TCP). The server itself is the next
 * milestone; until it lands this command prints what it will do with the given options and exits.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { CuemuxError } from '../common/errors';
import { defaultCacheDir } from '../index-store/index-location';
import { ExitCode, type ExitCodeValue } from './exit-codes';
import type { CliIo } from './cli-io';

/** The runtime directory for the default socket: $XDG_RUNTIME_DIR/cuemux, else the OS temp folder. */
export function defaultSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR) ? env.XDG_RUNTIME_DIR : os.tmpdir();
  return path.join(base, 'cuemux', 'cuemux.sock');
}

/** Run `cuemux serve <args>`. */
export function runServeCommand(io: CliIo, args: string[]): ExitCodeValue {
  let parsed;
  try {
    parsed = parseArgs({
      args, allowPositionals: false, strict: true,
      options: {
        socket: { type: 'string' }, listen: { type: 'string' }, 'media-root': { type: 'string', multiple: true },
        'cache-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new CuemuxError('INVALID_ARGUMENT', (e as Error).message);
  }
  const v = parsed.values;
  const socket = v.socket ?? defaultSocketPath();
  const roots = (v['media-root'] ?? [path.join(process.cwd(), 'media')]).map((r) => path.resolve(r));
  io.out([
    'cuemux serve — the gRPC media server is not built yet (next milestone). With these settings it will:',
    `  listen on the Unix socket unix://${socket} (mode 0660)${v.listen ? ` and on TCP ${v.listen}` : ' (no TCP port unless --listen HOST:PORT)'}`,
    `  serve media under ${roots.join(', ')}`,
    `  keep indexes beside the media, or in ${v['cache-dir'] ?? defaultCacheDir()} for read-only folders`,
    'Today you can already index media for the show:  cuemux index build <folder>',
    '',
  ].join('\n'));
  return ExitCode.OK;
}
