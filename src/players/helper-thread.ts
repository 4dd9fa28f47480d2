/**
 * A player's helper thread (the picture hasher, the frame pool's allocator): started on first use, never what keeps
 * the process running, and reported once when it fails or exits, so its owner does the work itself from then on.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { errorMessage } from '../common/errors';

/**
 * Start `file` (a module of this folder, compiled) as a worker thread, unref'd: its messages go to `onMessage`; an
 * error, or an exit while it is `current()`, goes to `onFail` with why. Returns null (after `onFail`) when it cannot
 * start.
 */
export function startHelperThread<T>(file: string, onMessage: (m: T) => void, onFail: (why: string) => void, current: (w: Worker) => boolean): Worker | null {
  try {
    const w = new Worker(path.join(__dirname, file));
    w.unref();
    w.on('message', onMessage);
    w.on('error', (e) => onFail(errorMessage(e)));
    w.on('exit', (code) => {
      if (current(w)) onFail(`exited with code ${code}`);
    });
    return w;
  } catch (e) {
    onFail(errorMessage(e));
    return null;
  }
}
