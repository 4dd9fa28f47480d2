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
  const dir = path.dirname(socketPath);
  await fsp.mkdir(dir, { recursive: true, mode: 0o770 }).catch((e: unknown) => {
    throw fromSystemError(e, dir, 'create socket folder');
  });
  // Whoever controls the folder controls the socket: it must be ours (or root's), and not writable by everyone
  // unless sticky (like /tmp, where others cannot remove or replace our files).
  const d = await fsp.lstat(dir);
  const uid = process.getuid?.() ?? 0;
  const worldWritable = (d.mode & 0o002) !== 0 && (d.mode & 0o1000) === 0;
  if (!d.isDirectory() || (d.uid !== uid && d.uid !== 0 && (d.mode & 0o1000) === 0) || worldWritable) {
    throw new CuemuxError('PERMISSION_DENIED', `${dir}: the socket folder must be owned by this user and not writable by everyone (it is ${d.isDirectory() ? `owned by uid ${d.uid}, mode ${(d.mode & 0o7777).toString(8)}` : 'not a folder'})`,
      { path: dir });
  }
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
