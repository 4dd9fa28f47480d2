/**
 * Which server a client command talks to: `--target HOST:PORT` (TCP), else the Unix socket of `--socket`, of
 * $CUEMUX_SOCKET, or the server's default socket path.
 */
import * as path from 'node:path';
import { defaultSocketPath } from '../server/server-config';

/** The gRPC target for the `--socket`/`--target` options of a client command. */
export function serverTarget(values: { socket?: string; target?: string }): string {
  return values.target ?? `unix://${path.resolve(values.socket ?? process.env.CUEMUX_SOCKET ?? defaultSocketPath())}`;
}
