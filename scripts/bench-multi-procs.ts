/**
 * bench:multi's process helpers (./bench-multi): the machine's busy CPU time (and a timeline of it), the nice value of a process's every
 * thread, and polling until a condition holds.
 */
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { monoNs } from '../src/common/time-source';

/** CPU time the whole machine has been busy (all CPUs, not idle nor waiting for I/O), s, from /proc/stat. */
export function machineBusySeconds(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return (f.reduce((a, b) => a + b, 0) - f[3] - f[4]) / CLK_TCK;
}
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * Sample the machine's CPU use every `everyMs` until stopped: each sample the share of all CPUs busy since the one
 * before (/proc/stat counts in 10 ms ticks: a 100 ms sample of 2 CPUs is exact to 5 %). The run's mean hides the
 * instants when every player acts on the same command at once.
 */
export function sampleMachineBusy(everyMs: number): { samples: Array<{ mono: bigint; busy: number }>; stop(): void } {
  const samples: Array<{ mono: bigint; busy: number }> = [];
  const cpus = os.cpus().length;
  let last = { mono: monoNs(), busy: machineBusySeconds() };
  const timer = setInterval(() => {
    const now = { mono: monoNs(), busy: machineBusySeconds() };
    samples.push({ mono: now.mono, busy: (now.busy - last.busy) / (cpus * (Number(now.mono - last.mono) / 1e9)) });
    last = now;
  }, everyMs);
  return { samples, stop: () => clearInterval(timer) };
}

/** Poll `check` every `everyMs` until it is true; throws naming `what` after `ms`. */
export async function until(what: string, msMax: number, check: () => Promise<boolean>, everyMs = 100): Promise<void> {
  const end = Date.now() + msMax;
  for (;;) {
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out after ${msMax} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** CPU time of one process or thread from its `stat` file (utime + stime), in clock ticks, or null once it ended. */
function statTicks(file: string): { comm: string; ticks: number } | null {
  try {
    const s = readFileSync(file, 'utf8');
    const close = s.lastIndexOf(')');
    const f = s.slice(close + 2).split(' ');
    // Fields after "(comm) ": state is field 3, utime 14 and stime 15 (1-based, proc(5)).
    return { comm: s.slice(s.indexOf('(') + 1, close), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** A process the recorder samples: its label (machine and role), its pid, and whether its threads are sampled one by one. */
export interface SampledProcess {
  label: string;
  pid: number;
  threads: boolean;
}

/**
 * Record the CPU time of processes (and the threads of some) every `everyMs` as JSON lines into `file` until stopped:
 * `{"mono":"<ns>","p":{"<label>":ticks},"t":{"<label>":{"<tid> <comm>":ticks}}}`, ticks cumulative (CLK_TCK per s).
 * Why: the machine's busy share says when the CPUs were full, not who used them (the second after a GO, 81-83 %
 * busy, when the audio players' decoding fell behind); a kept run (--keep) carries this beside its logs.
 */
export function recordProcessCpu(file: string, everyMs: number, procs: () => readonly SampledProcess[]): { stop(): void } {
  const fd = openSync(file, 'w');
  const timer = setInterval(() => {
    const p: Record<string, number> = {};
    const t: Record<string, Record<string, number>> = {};
    for (const x of procs()) {
      const s = statTicks(`/proc/${x.pid}/stat`);
      if (s === null) continue;
      p[x.label] = s.ticks;
      if (!x.threads) continue;
      const byThread: Record<string, number> = {};
      let tids: string[] = [];
      try {
        tids = readdirSync(`/proc/${x.pid}/task`);
      } catch {
        // it ended
      }
      for (const tid of tids) {
        const ts = statTicks(`/proc/${x.pid}/task/${tid}/stat`);
        if (ts !== null) byThread[`${tid} ${ts.comm}`] = ts.ticks;
      }
      t[x.label] = byThread;
    }
    writeSync(fd, `${JSON.stringify({ mono: String(monoNs()), p, t })}\n`);
  }, everyMs);
  timer.unref();
  let stopped = false;
  return {
    stop: () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      closeSync(fd);
    },
  };
}
