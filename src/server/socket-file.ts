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

/** `uid (name)` from /etc/passwd, or the bare uid when it has no entry there. */
async function describeUser(uid: number): Promise<string> {
  const passwd = await fsp.readFile('/etc/passwd', 'utf8').catch(() => '');
  const name = passwd.split('\n').map((l) => l.split(':')).find((f) => f.length > 2 && f[2] === String(uid))?.[0];
  return name === undefined || name === '' ? `uid ${uid}` : `uid ${uid} (${name})`;
}

/**
 * Create the socket folder if needed, then refuse it unless this server controls it: whoever controls the folder
 * can remove the socket and bind their own (and read what players send), and replace the lock and the state file
 * kept beside it. So it must be a real folder (not a link) owned by this server's user, sticky or not, and not
 * writable by everyone unless sticky. Called before anything is created in it (the socket's `.lock` first).
 */
export async function checkSocketFolder(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 }).catch((e: unknown) => {
    throw fromSystemError(e, dir, 'create socket folder');
  });
  const d = await fsp.lstat(dir).catch((e: unknown) => {
    throw fromSystemError(e, dir, 'check socket folder');
  });
  const uid = process.getuid?.() ?? 0;
  if (!d.isDirectory()) {
    throw new CuemuxError('PERMISSION_DENIED', `${dir}: the socket folder must be a folder owned by this user (it is ${d.isSymbolicLink() ? 'a symbolic link' : 'not a folder'}); choose another --socket`,
      { path: dir, operation: 'check socket folder' });
  }
  if (d.uid !== uid) {
    throw new CuemuxError('PERMISSION_DENIED', `${dir}: the socket folder is owned by ${await describeUser(d.uid)}, not by this server's user (${await describeUser(uid)}), mode ${(d.mode & 0o7777).toString(8)}: `
      + 'its owner could replace the socket and read what players send; refused without creating anything in it. Use a folder of your own (--socket)',
    { path: dir, operation: 'check socket folder' });
  }
  if ((d.mode & 0o002) !== 0 && (d.mode & 0o1000) === 0) {
    throw new CuemuxError('PERMISSION_DENIED', `${dir}: the socket folder must be owned by this user and not writable by everyone (it is owned by ${await describeUser(d.uid)}, mode ${(d.mode & 0o7777).toString(8)})`,
      { path: dir, operation: 'check socket folder' });
  }
}

/** Make `socketPath` bindable: check its folder; remove a stale socket; refuse when a live server owns it. */
export async function prepareSocketPath(socketPath: string): Promise<void> {
  await checkSocketFolder(path.dirname(socketPath));
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
