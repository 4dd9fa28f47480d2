/**
 * Xvfb for the window tests and bench:sync's real-output mode: an X server on a display number it picks free itself
 * (`-displayfd`), with one 24-bit screen, stopped with SIGTERM (it then removes its lock file and socket, which SIGKILL
 * would leave behind).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { killChild } from './wait';

/** Start Xvfb with a `width`x`height` screen (default 1280x720); resolves once it answers (`xwd -root`). */
export async function startXvfb(width = 1280, height = 720): Promise<{ display: string; child: ChildProcess }> {
  const child = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', `${width}x${height}x24`, '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (x: string) => { err += x; });
  const fd = child.stdio[3];
  if (fd === null || fd === undefined || !('on' in fd)) throw new Error('Xvfb: no pipe for -displayfd');
  const n = await new Promise<string>((resolve, reject) => {
    let out = '';
    fd.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolve(out.trim());
    });
    child.once('exit', (code) => reject(new Error(`Xvfb exited (${String(code)}) before it picked a display: ${err}`)));
  });
  const display = `:${n}`;
  for (let i = 0; i < 100; i++) {
    if (spawnSync('xwd', ['-root', '-display', display, '-silent'], { stdio: 'ignore' }).status === 0) return { display, child };
    await sleep(50);
  }
  await stopXvfb(child);
  throw new Error(`Xvfb on ${display} does not answer: ${err}`);
}

/** SIGTERM Xvfb and wait for it. */
export function stopXvfb(child: ChildProcess): Promise<void> {
  return killChild(child, 'SIGTERM');
}
