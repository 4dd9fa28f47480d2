/**
 * Which server a client command talks to, and how: `--target HOST:PORT` (TCP), else the Unix socket of `--socket`,
 * of $CUEMUX_SOCKET, or the server's default socket path; over TCP, TLS and a bearer token from `--tls-ca` and
 * `--token-file` (or $CUEMUX_TLS_CA, $CUEMUX_TOKEN_FILE).
 */
import * as path from 'node:path';
import { CuemuxError } from '../common/errors';
import { loadClientCredentials, targetOf, type MediaClientOptions } from '../clients/media-client';
import { defaultSocketPath } from '../server/server-config';

/** The gRPC target for the `--socket`/`--target` options of a client command. */
export function serverTarget(values: { socket?: string; target?: string }): string {
  return values.target ?? `unix://${path.resolve(values.socket ?? process.env.CUEMUX_SOCKET ?? defaultSocketPath())}`;
}

/**
 * The gRPC targets of a player given several servers (a main and its backup): `--target A,B` or `--socket P,Q`,
 * comma-separated; one target otherwise (as {@link serverTarget}).
 */
export function serverTargets(values: { socket?: string; target?: string }): string[] {
  if (values.target !== undefined) return values.target.split(',').filter((t) => t !== '');
  if (values.socket !== undefined && values.socket.includes(',')) return values.socket.split(',').filter((t) => t !== '').map((p) => serverTarget({ socket: p }));
  return [serverTarget(values)];
}

/** The values a client command parsed for its connection. */
export interface ConnectionArgs {
  /** `--socket PATH`. */
  socket?: string;
  /** `--target HOST:PORT`. */
  target?: string;
  /** `--tls-ca FILE`: CA certificate(s) of the server's TLS certificate (PEM). */
  'tls-ca'?: string;
  /** `--token-file FILE`: the bearer token of the server's `--token-file`. */
  'token-file'?: string;
}

/**
 * The MediaClient options (TLS, token) for the command's connection. Over TCP: `--tls-ca` / `--token-file`, else
 * $CUEMUX_TLS_CA / $CUEMUX_TOKEN_FILE; either turns TLS on (a token alone: TLS with the system's roots); neither:
 * plaintext, as a loopback `--listen` without TLS serves. The Unix socket gets none: it is never TLS, and the
 * variables, set for TCP clients, must not break a command that uses the socket.
 *
 * @throws CuemuxError naming the file (missing, unreadable, not PEM, empty).
 */
export function connectionOptions(values: ConnectionArgs, env: NodeJS.ProcessEnv = process.env): MediaClientOptions {
  const targets = serverTargets(values);
  const target = targets.join(',');
  if (targets.every((t) => targetOf(t).startsWith('unix:'))) {
    const flag = values['tls-ca'] !== undefined ? '--tls-ca' : values['token-file'] !== undefined ? '--token-file' : null;
    if (flag !== null) throw new CuemuxError('INVALID_ARGUMENT', `${flag} is for a server over TCP (--target HOST:PORT); the Unix socket ${target} uses neither TLS nor a token`);
    return {};
  }
  const pick = (flag: string | undefined, name: string): string | undefined => {
    const v = flag ?? env[name];
    return v === undefined || v === '' ? undefined : path.resolve(v);
  };
  return loadClientCredentials({ caFile: pick(values['tls-ca'], 'CUEMUX_TLS_CA'), tokenFile: pick(values['token-file'], 'CUEMUX_TOKEN_FILE') });
}
