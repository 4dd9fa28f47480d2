/**
 * `cuemux status`: ask a running server what it is doing (open media, clients, bytes read), the technician's view.
 */
import * as grpc from '@grpc/grpc-js';
import { parseArgs } from 'node:util';
import { CuemuxError } from '../common/errors';
import { GetStatusRequest, MediaServerClient, type ServerStatus } from '../generated/cuemux/v1/media_server';
import { ExitCode, type ExitCodeValue } from './exit-codes';
import type { CliIo } from './cli-io';
import { serverTarget } from './server-target';

function mb(n: bigint): string {
  return `${(Number(n) / 1e6).toFixed(1)} MB`;
}

/** Run `cuemux status`. */
export async function runStatusCommand(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const { values } = parseArgs({ args, strict: true, options: { socket: { type: 'string' }, target: { type: 'string' }, json: { type: 'boolean' } } });
  const target = serverTarget(values);
  const client = new MediaServerClient(target, grpc.credentials.createInsecure());
  try {
    const st = await new Promise<ServerStatus>((resolve, reject) => {
      client.getStatus(GetStatusRequest.create(), new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err, res) => (err ? reject(err) : resolve(res)));
    }).catch((e: unknown) => {
      throw new CuemuxError('CLOSED', `no cuemux server answers at ${target}: ${(e as Error).message}`);
    });
    if (values.json === true) {
      io.out(`${JSON.stringify(st, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v), 1)}\n`);
      return ExitCode.OK;
    }
    const lines = [`cuemux ${st.version} (FFmpeg ${st.ffmpegVersion}), up ${st.uptimeSeconds.toFixed(0)} s`,
      `Active: ${st.media.length} media open, ${st.clients.length} streams`];
    for (const m of st.media) lines.push(`  ${m.path}  opens ${m.openCount}, clients ${m.clients}, read ${mb(m.bytesReadFromFile)} of the file`);
    for (const c of st.clients) {
      // WatchClock calls have neither media nor output; Follow calls name their output.
      if (c.mediaId === '' && c.output === '') {
        lines.push(`  client ${c.peer}  watching the clock`);
        continue;
      }
      if (c.output !== '') lines.push(`  client ${c.peer}  following output ${c.output}`);
      if (c.mediaId === '') continue;
      lines.push(`  client ${c.peer}  media ${c.mediaId} streams [${c.streams.join(',') || 'all'}] at ${c.positionSeconds.toFixed(3)} s, ` +
        `buffer ${mb(c.bytesQueued)}, sent ${mb(c.bytesSent)}`);
    }
    io.out(`${lines.join('\n')}\n`);
    return ExitCode.OK;
  } finally {
    client.close();
  }
}
