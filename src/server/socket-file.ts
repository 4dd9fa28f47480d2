/**
 * The Unix socket file: a socket left by a killed server is detected (nothing accepts on it) and replaced; a live
 * server's socket is never taken.
 */
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { CuemuxError, fromSystemError } from '../common/errors';
import { getLogger } from '../common/logger';

const log = getLogger('socket');

function accepts(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    // Only "connection refused" proves nobody listens; EACCES and the like say nothing about liveness.
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code !== 'ECONNREFUSED'));
    s.setTimeout(1000, () => done(true)); // a busy live server, not a dead one
  });
}

/** Make `socketPath` bindable: create its folder; remove a stale socket; refuse when a live server owns it. */
export async function prepareSocketPath(socketPath: string): Promise<void> {
  await fsp.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o770 }).catch((e: unknown) => {
    throw fromSystemError(e, path.dirname(socketPath), 'create socket folder');
  });
  const st = await fsp.lstat(socketPath).catch(() => null);
  if (st === null) return;
  if (!st.isSocket()) {
    throw new CuemuxError('INVALID_ARGUMENT', `${socketPath}: exists and is not a socket; choose another --socket`, { path: socketPath });
  }
  if (await accepts(socketPath)) {
    throw new CuemuxError('RESOURCE_EXHAUSTED', `${socketPath}: another server is listening on this socket; stop it or choose another --socket`,
      { path: socketPath });
  }
  log.warn('removing a stale socket left by a server that is gone', { socket: socketPath });
  await fsp.rm(socketPath, { force: true });
}
