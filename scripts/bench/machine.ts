/**
 * The machine under a benchmark, from /proc: steal time and load average over a run (a shared or virtual machine's
 * figures are read with them), a process's CPU time and the scheduling it runs under.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';

/** Clock ticks per second of /proc times. */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU time counters of the whole machine, from /proc/stat (clock ticks): all of it, and what the hypervisor took. */
interface CpuTicks {
  total: number;
  steal: number;
}

function cpuTicks(): CpuTicks {
  // "cpu  user nice system idle iowait irq softirq steal guest guest_nice"
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return { total: f.reduce((a, b) => a + b, 0), steal: f[7] };
}

/**
 * Start watching the machine's steal time: the returned function says what share of the CPU time since then the
 * hypervisor gave to other guests, in percent. On a virtual machine this is time every process here was runnable
 * and not running: it shows in latency tails (a 1 ms timer loop on an idle 2-vCPU guest was late by more than 3 ms
 * 30-60 times in 20 s), and a benchmark's figures are read with it.
 */
export function watchSteal(): () => number {
  const start = cpuTicks();
  return () => {
    const now = cpuTicks();
    return now.total === start.total ? 0 : (100 * (now.steal - start.steal)) / (now.total - start.total);
  };
}

const loadText = (): string => os.loadavg().map((x) => x.toFixed(2)).join('/');

/**
 * Start watching the machine for a run: `startLine` says its CPUs and load average now (print it first), `endLine()`
 * the load average then and the steal time since the start (print it last).
 */
export function watchMachine(): { startLine: string; endLine(): string } {
  const steal = watchSteal();
  const load0 = loadText();
  return {
    startLine: `Machine at start: ${os.cpus().length} CPUs, load average (1/5/15 min) ${load0}`,
    endLine: () => `Machine at end: load average ${loadText()} (at start ${load0}); steal time (CPU time the hypervisor gave to other guests) during the run: ${steal().toFixed(1)}%`,
  };
}

/** The fields of /proc/PID/stat after the command name (fields[0] is the state, field 3 of proc(5)). */
function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU time (user + system, all threads) of a live process so far, in seconds. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** How the kernel schedules a process's main thread (its presenting thread, for a player): e.g. "SCHED_FIFO 10" or "nice -10". */
export function schedulingOf(pid: number): string {
  const f = statFields(pid);
  const policy = Number(f[38]);
  const names = ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', '', 'SCHED_IDLE', 'SCHED_DEADLINE'];
  return policy === 1 || policy === 2 ? `${names[policy]} ${f[37]}` : `${names[policy] ?? `policy ${policy}`} nice ${f[16]}`;
}
