/**
 * The fault suite's measures of a server under attack (test/faults/*): its leaks, as what the second of two equal
 * halves of the work leaves alive after a full GC ({@link LeakProbe}, through scripts/bench/gc-probe.ts), and a
 * console's round trips idle and under attack in alternating phases of the same run ({@link PairedThumps}).
 */
import * as path from 'node:path';
import { gcProbeEnv, liveBytes, probeAfterGc } from '../../scripts/bench/gc-probe';
import { fdCount, percentile, type FaultRow, type ThumpConsole } from './faults';
import { scratchDir } from './tmp';

/** What is alive in a server after a full GC (scripts/bench/gc-probe.ts), and its fds, at one point of an attack. */
export interface MemoryPoint {
  /** Resident set size after the GC, MB. */
  rssMb: number;
  /**
   * The main thread's V8 heap used plus external memory (Buffers) after the GC, MB, less V8's compiled code (its code
   * spaces: a heap snapshot diff of row 1's halves found compiled code and deopt data most of what the second half added,
   * and code comes and goes as functions are optimised, whatever the server keeps).
   */
  liveMb: number;
  /** Open file descriptors. */
  fds: number;
}

/**
 * Live memory kept per half of an attack, the leak test of the fault suite: the attack's work runs in two equal
 * halves after a warm-up (of the same work), and the server's memory is measured after a full GC at the start, the
 * middle and the end. A heap that grew once (caches, buffers of the first calls, budgets filled: 64 ad-hoc cues, 1,024 timed bundles)
 * grows in the first half only; a leak grows with the work, as much in the second half as in the first. The leak is
 * the second half's growth, target 0 within {@link LEAK_BOUND_MB}.
 */
export class LeakProbe {
  readonly #file: string;
  #seq = 0;
  readonly points: MemoryPoint[] = [];

  private constructor(file: string) {
    this.#file = file;
  }

  /** A probe; start the server with {@link env} (merged into its environment; `nodeOptions` kept). */
  static async create(): Promise<LeakProbe> {
    return new LeakProbe(path.join(await scratchDir('fault-gc'), 'gc.json'));
  }

  /** The server's environment for the probe: the preload, and where it writes. */
  env(nodeOptions = ''): Record<string, string> {
    return gcProbeEnv(this.#file, nodeOptions);
  }

  /** Collect the garbage of server `pid` (SIGUSR2), then record and return what is left alive. */
  async measure(pid: number): Promise<MemoryPoint> {
    const m = await probeAfterGc(pid, this.#file, ++this.#seq);
    // A leaked fd stays open; one the server has open for a moment (a cue's file being opened) does not: the fewest
    // of five reads 50 ms apart.
    let fds = Infinity;
    for (let i = 0; i < 5; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 50));
      fds = Math.min(fds, await fdCount(pid));
    }
    const point = { rssMb: m.rss / 2 ** 20, liveMb: liveBytes(m) / 2 ** 20, fds };
    this.points.push(point);
    return point;
  }

  /** Growth of each half (second point minus first, third minus second), live MB, RSS MB and fds. */
  halves(): { live: [number, number]; rss: [number, number]; fds: [number, number] } {
    const [a, b, c] = this.points;
    if (c === undefined) throw new Error(`the leak probe has ${this.points.length} points, not 3`);
    return { live: [b.liveMb - a.liveMb, c.liveMb - b.liveMb], rss: [b.rssMb - a.rssMb, c.rssMb - b.rssMb], fds: [b.fds - a.fds, c.fds - b.fds] };
  }

  /** The table's note on the halves. */
  note(): string {
    const h = this.halves();
    const f = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
    return `after a full GC, first / second half: live heap ${f(h.live[0])} / ${f(h.live[1])} MB, RSS ${f(h.rss[0])} / ${f(h.rss[1])} MB, `
      + `fds ${f(h.fds[0]).replace('.00', '')} / ${f(h.fds[1]).replace('.00', '')}; leak bound ${LEAK_BOUND_MB} MB of live heap (compiled code left out) in the second half`;
  }
}

/**
 * Live memory a half of an attack may add without it being called a leak, MB. Between two probes of an idle server
 * with no work between them, live memory moved by under 1 KB (six probes 2 s apart: 15.1355-15.1360 MB); the
 * one-off growth of a first half (budgets filled, code compiled, grpc-js caches) measured 1.0-1.3 MB. A leak of 1 KB
 * per client cycle (500 a half) or of 10 bytes per datagram (50,000 a half) reaches this bound.
 */
export const LEAK_BOUND_MB = 0.5;

/**
 * A console's round trips taken in alternating phases — the attack's work with thumps running, then the same
 * console idle for a number of thumps at the same pacing — so that idle and attack are measured in the same minutes
 * of the same run: on a shared VM the rest of the machine's load changes from minute to minute, and an idle baseline
 * taken once before the attack compared the attack with another minute's machine. Each p99 comes from hundreds to
 * thousands of round trips (the idle phases together are sized for that).
 */
export class PairedThumps {
  readonly idle: number[] = [];
  readonly attack: number[] = [];
  readonly idleStatus: number[] = [];
  readonly attackStatus: number[] = [];
  unanswered = 0;
  statusUnanswered = 0;
  /** What each unanswered attack thump got. */
  readonly unansweredWhy: string[] = [];
  readonly #console: ThumpConsole;
  readonly #everyMs: number;

  /** `everyMs`: the pause after each probe, the same in both phases. */
  constructor(console_: ThumpConsole, everyMs = 20) {
    this.#console = console_;
    this.#everyMs = everyMs;
  }

  /** `n` idle probes. */
  async idlePhase(n: number): Promise<void> {
    this.idle.push(...await this.#console.sample(n, this.#everyMs));
    this.idleStatus.push(...this.#console.statusRtts);
  }

  /** Run `work` with the console probing; its probes are attack round trips. */
  async attackPhase<T>(work: () => Promise<T>): Promise<T> {
    this.startAttack();
    try {
      return await work();
    } finally {
      await this.stopAttack();
    }
  }

  /** The console probes from now on; {@link stopAttack} takes its probes as attack round trips. */
  startAttack(): void {
    this.#console.start(this.#everyMs);
  }

  /** End the attack phase begun by {@link startAttack}. */
  async stopAttack(): Promise<void> {
    this.attack.push(...await this.#console.stop());
    this.attackStatus.push(...this.#console.statusRtts);
    this.unanswered += this.#console.unanswered;
    this.statusUnanswered += this.#console.statusUnanswered;
    this.unansweredWhy.push(...this.#console.unansweredWhy);
  }

  /** The table's round-trip fields. */
  fields(): Pick<FaultRow, 'thumpIdleP99Ms' | 'thumpAttackP99Ms' | 'thumpUnanswered' | 'statusIdleP99Ms' | 'statusAttackP99Ms' | 'statusUnanswered'> {
    return {
      thumpIdleP99Ms: percentile(this.idle, 99), thumpAttackP99Ms: percentile(this.attack, 99), thumpUnanswered: this.unanswered,
      statusIdleP99Ms: percentile(this.idleStatus, 99), statusAttackP99Ms: percentile(this.attackStatus, 99), statusUnanswered: this.statusUnanswered,
    };
  }

  /** Sample counts, for the note. */
  counts(): string {
    const why = this.unansweredWhy.length === 0 ? '' : ` (unanswered: ${this.unansweredWhy.join('; ')})`;
    return `${this.idle.length} idle and ${this.attack.length} attack thumps${why}`;
  }
}
