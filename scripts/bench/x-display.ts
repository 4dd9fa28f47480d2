/**
 * An X display for the windows of bench:sync's real-output mode (Xvfb on a display number it picks free itself), and
 * the observer that watches windows on it change (window-observer.py, an X client of its own: the X server's damage
 * reports and the windows' pixels read back, never the players' bookkeeping).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startXvfb, stopXvfb } from '../../test/support/xvfb';
import { REPO } from './harness';

/** A running Xvfb. */
export interface XDisplay {
  /** `:N`. */
  display: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Start Xvfb with one `width`x`height` 24-bit screen (test/support/xvfb); resolves once it answers. */
export async function startDisplay(width: number, height: number): Promise<XDisplay> {
  const x = await startXvfb(width, height);
  return { ...x, stop: () => stopXvfb(x.child) };
}

/** One change of a watched window: when the X server had a new picture in it, and that picture, block-averaged. */
export interface WindowChange {
  /** CLOCK_MONOTONIC instant of the X server's damage report, ns. */
  monoNs: bigint;
  /** Index of the window in the observer's titles. */
  window: number;
  /** The X server's timestamp of the report, ms (32 bits, wrapping; Xvfb's clock is CLOCK_MONOTONIC). */
  serverMs: number;
  /** The picture averaged over squares of the observer's block, rgb24, row-major. */
  thumb: Uint8Array;
}

/** A running observer. */
export interface WindowObserver {
  child: ChildProcess;
  /** Stop it and read its changes (with its counters: damage reports and changes per window). */
  stop(): Promise<{ changes: WindowChange[]; counters: Record<string, { reports: number; changes: number }> }>;
}

/**
 * Watch the windows named `titles` on `display` (their top-left `width`x`height`), thumbnails of `block`-pixel
 * squares, recorded into `out`. Resolves once the first window is watched (the others are watched as they appear); the observer runs at SCHED_FIFO 20 where
 * allowed (above the players' presenting threads: it times, it must not wait for them).
 */
export async function observeWindows(display: string, out: string, titles: string[], width: number, height: number, block: number): Promise<WindowObserver> {
  const script = path.join(REPO, 'scripts', 'bench', 'window-observer.py');
  const rt = spawnSync('chrt', ['-f', '20', 'true']).status === 0;
  const args = [script, display, out, titles.join(','), String(width), String(height), String(block)];
  const child = spawn(rt ? 'chrt' : 'python3', rt ? ['-f', '20', 'python3', ...args] : args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let said = '';
  child.stdout?.setEncoding('utf8').on('data', (x: string) => { said += x; });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  for (;;) {
    if (said.includes('"ready"')) break;
    if (child.exitCode !== null) throw new Error(`the window observer exited ${String(child.exitCode)} before it watched ${titles.join(', ')}`);
    await sleep(50);
  }
  const thumbBytes = Math.floor(width / block) * Math.floor(height / block) * 3;
  return {
    child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const code = await exited;
      if (code !== 0) throw new Error(`the window observer exited ${String(code)}`);
      const counters = JSON.parse(said.trim().split('\n').at(-1) ?? '{}') as Record<string, { reports: number; changes: number }>;
      const b = await fsp.readFile(out);
      const changes: WindowChange[] = [];
      for (let at = 0; at + 16 + thumbBytes <= b.length; at += 16 + thumbBytes) {
        changes.push({ monoNs: b.readBigInt64LE(at), window: b.readInt32LE(at + 8), serverMs: b.readUInt32LE(at + 12), thumb: b.subarray(at + 16, at + 16 + thumbBytes) });
      }
      return { changes, counters };
    },
  };
}
