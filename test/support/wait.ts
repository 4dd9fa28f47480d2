/**
 * Waiting for things to happen, never for time to pass: a test waits for the event it needs with a generous
 * deadline (a loaded 2-core machine may take seconds), then checks order, counts and values.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/**
 * Poll `probe` every `everyMs` until it gives a value other than `undefined` or `false`, and return that value;
 * fail naming `what` (and the probe's last error, if it threw: a probe that throws is asked again, e.g. /proc of a
 * process still starting) when `timeoutMs` passes first (a deadline, not a measurement).
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) assert.fail(`no ${what} within ${timeoutMs} ms${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
    await sleep(everyMs);
  }
}

/** The exit of `child` (code and signal), at once if it already exited. */
export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Send `signal` (default SIGKILL) to `child` if it still runs, and wait until it is gone (for afterEach). */
export async function killChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = exitOf(child);
  child.kill(signal);
  await gone;
}

/**
 * The child processes of a describe block: returns the list to push them to, and registers an afterEach (call it in
 * the describe's body) that sends `signal` (default SIGKILL) to those still running and waits until they are gone.
 */
export function childrenKilledAfterEach(signal: NodeJS.Signals = 'SIGKILL'): ChildProcess[] {
  const children: ChildProcess[] = [];
  afterEach(async function () {
    for (const c of children.splice(0)) await killChild(c, signal);
  });
  return children;
}

/**
 * `work` for each of `items`, at most `atOnce` at a time (e.g. server processes started side by side: each start is
 * mostly one core's work, so two or three at once use a 2-core machine that one at a time leaves half idle). Resolves
 * once all are done; rejects with the first failure, after the ones already running have ended.
 */
export async function eachAtOnce<T>(items: readonly T[], atOnce: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < items.length && failure === undefined) {
      const i = next++;
      try {
        await work(items[i], i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(atOnce, items.length) }, lane));
  if (failure !== undefined) throw failure.error;
}
