/**
 * Clock quality of a follower server (`cuemux serve --follow`), measured, not assumed. The follower maps the master's
 * clock through `anchor_unix_ns` onto its own wall clock, so the two machines' wall clocks must agree (chrony or PTP:
 * docs/multi-machine.md). This module measures how far they disagree: a burst of `Ping`s to the master every few
 * seconds, the offset of the fastest round trip kept (the least queueing noise), its uncertainty half that round trip
 * (the offset is exact when both legs take equally long, and off by at most half the round trip when one leg took it
 * all). Beyond `--max-clock-offset-ms` it says so loudly, once per change, naming both machines and what to do, and by
 * `--clock-offset-policy` plays on shifted (`warn`), corrects the mapping by the measured offset (`correct`), or
 * refuses to play (`refuse`). The show mirror asks it through {@link ClockMapping} only.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { monoNs } from '../common/time-source';
import type { ClockQuality as ClockQualityMessage } from '../generated/cuemux/v1/media_server';

const log = getLogger('clock-quality');

/** What a follower does when its wall clock is beyond --max-clock-offset-ms from the master's. */
export type ClockOffsetPolicy = 'warn' | 'correct' | 'refuse';

/** Every policy, in help order. */
export const CLOCK_OFFSET_POLICIES: readonly ClockOffsetPolicy[] = ['warn', 'correct', 'refuse'];

/**
 * How the two wall clocks agree: `unmeasured` (no Ping has answered yet), `within` the threshold, or `beyond` it
 * (the offset is beyond the threshold even at the favourable end of its uncertainty).
 */
export type ClockAgreement = 'unmeasured' | 'within' | 'beyond';

/** One Ping exchange (MediaClient.ping): round trip and master-minus-this wall-clock offset, in ns. */
export interface ClockSample {
  roundTripNs: bigint;
  offsetNs: bigint;
}

/** The best sample of a burst as an estimate. */
export interface ClockEstimate {
  /** The master's wall clock minus this machine's, in ns (positive: the master's clock is ahead). */
  offsetNs: bigint;
  /** Half the round trip of the sample: the true offset is within offsetNs ± this, in ns. */
  uncertaintyNs: bigint;
}

/**
 * The agreement an estimate shows, with hysteresis so that an offset near the threshold does not flap: it becomes
 * `beyond` only when |offset| − uncertainty > max (surely beyond), `within` again only when |offset| + uncertainty
 * ≤ max (surely within); in between it keeps `previous` (`within` for a first estimate: not proven beyond).
 */
export function assessOffset(estimate: ClockEstimate, previous: ClockAgreement, maxOffsetNs: bigint): ClockAgreement {
  const abs = estimate.offsetNs < 0n ? -estimate.offsetNs : estimate.offsetNs;
  if (abs - estimate.uncertaintyNs > maxOffsetNs) return 'beyond';
  if (abs + estimate.uncertaintyNs <= maxOffsetNs) return 'within';
  return previous === 'unmeasured' ? 'within' : previous;
}

/** Milliseconds of `ns` with µs precision, for messages. */
export function formatMs(ns: bigint | number): string {
  return `${(Number(ns) / 1e6).toFixed(3)} ms`;
}

/** What the show mirror asks of the clock quality (src/server/show-mirror.ts). */
export interface ClockMapping {
  /** The master's anchor (its wall clock, ns since the epoch) on this machine's wall clock: minus the correction. */
  mapAnchor(masterUnixNs: bigint): bigint;
  /** Why cues must not play here now (policy refuse, clocks beyond the threshold or not measured), or null. */
  refusal(): string | null;
  /** Resolves once the first burst of pings has finished (answered or not), or at close. Never rejects. */
  ready(): Promise<void>;
}

/** The clock quality in status (GetStatus ShowStatus.clock_quality, OSC /cuemux/status follower.clock). */
export interface ClockQualityStatus {
  /** The master's address (--follow). */
  master: string;
  /** How the wall clocks agree. */
  agreement: ClockAgreement;
  /** Master minus this machine's wall clock, in ns; null while unmeasured. */
  offsetNs: number | null;
  /** Half the round trip of the sample the offset comes from, in ns; null while unmeasured. */
  uncertaintyNs: number | null;
  /** Round trip of that sample, in ns; null while unmeasured. */
  roundTripNs: number | null;
  /** Age of the estimate (since its burst finished), in ms; null while unmeasured. */
  ageMs: number | null;
  /** Pings per burst (the fastest is kept). */
  samples: number;
  /** A new burst this often, in ms. */
  refreshMs: number;
  /** The threshold, --max-clock-offset-ms, in ns. */
  maxOffsetNs: number;
  /** --clock-offset-policy. */
  policy: ClockOffsetPolicy;
  /** Subtracted from the master's anchors (policy correct, beyond the threshold), in ns; 0 otherwise. */
  correctionNs: number;
  /** Why this follower plays no cue (policy refuse), or null when it plays. */
  refusing: string | null;
  /** Why the last burst got no answer, or null when it did. */
  lastError: string | null;
}

/** Options of {@link ClockQuality}. */
export interface ClockQualityOptions {
  /** The master's address (--follow), for messages. */
  master: string;
  /** This follower's name (host name and where it serves), for messages. */
  self: string;
  /** --max-clock-offset-ms, in ns. */
  maxOffsetNs: bigint;
  /** --clock-offset-policy. */
  policy: ClockOffsetPolicy;
  /** One Ping to the master (MediaClient.ping); rejects when it fails. */
  ping: (options: { timeout: number; signal: AbortSignal }) => Promise<ClockSample>;
  /** Pings per burst. Default 8 (the fastest of 8 on a quiet LAN is within a few µs of the path's floor). */
  samples?: number;
  /** Time between bursts, in ms. Default 5000: an undisciplined quartz drifts ~10–50 ppm, 0.05–0.25 ms in 5 s. */
  refreshMs?: number;
  /** Deadline of one Ping, in ms. Default 1000. */
  pingTimeoutMs?: number;
}

/** What to do about clocks beyond the threshold (the log and the docs say the same). */
const ADVICE = 'discipline every machine\'s clock: chrony (or linuxptp with hardware timestamping) on the show LAN, '
  + 'with the master\'s machine (or one time server) as the source; see docs/multi-machine.md';

/** Measures the wall-clock offset to the master continuously and applies --clock-offset-policy. */
export class ClockQuality implements ClockMapping {
  readonly #o: Required<ClockQualityOptions>;
  readonly #stop = new AbortController();
  #agreement: ClockAgreement = 'unmeasured';
  #estimate: (ClockEstimate & { roundTripNs: bigint; atMonoNs: bigint }) | null = null;
  #correctionNs = 0n;
  /** The estimate that found the clocks beyond the threshold (the refusal quotes it: one message per change). */
  #beyondAt: ClockEstimate | null = null;
  #lastError: string | null = null;
  #onChange: () => void = () => undefined;
  readonly #ready: Promise<void>;
  #readyResolve: () => void = () => undefined;
  #started = false;

  constructor(options: ClockQualityOptions) {
    this.#o = { samples: 8, refreshMs: 5000, pingTimeoutMs: 1000, ...options };
    this.#ready = new Promise((resolve) => { this.#readyResolve = resolve; });
  }

  /** Start measuring; `onChange` is called when the correction or the refusal changes (the mirror re-applies). */
  start(onChange: () => void): void {
    if (this.#started) return;
    this.#started = true;
    this.#onChange = onChange;
    void this.#run();
  }

  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    while (!signal.aborted) {
      await this.#burst(signal);
      this.#readyResolve();
      await sleep(this.#o.refreshMs, undefined, { signal, ref: false }).catch(() => undefined);
    }
    this.#readyResolve();
  }

  /** One burst: the fastest of `samples` pings, then the agreement, the correction and the refusal updated. */
  async #burst(signal: AbortSignal): Promise<void> {
    let best: ClockSample | null = null;
    let error: unknown = null;
    for (let i = 0; i < this.#o.samples && !signal.aborted; i++) {
      try {
        const s = await this.#o.ping({ timeout: this.#o.pingTimeoutMs, signal });
        if (best === null || s.roundTripNs < best.roundTripNs) best = s;
      } catch (e) {
        error = e;
      }
    }
    if (signal.aborted) return;
    if (best === null) {
      const message = errorMessage(error);
      if (this.#lastError === null) log.warn(`cannot measure the clock offset to the master ${this.#o.master}: ${message}; retrying every ${this.#o.refreshMs} ms`);
      this.#lastError = message;
      return;
    }
    this.#lastError = null;
    const refusedBefore = this.refusal();
    const estimate = { offsetNs: best.offsetNs, uncertaintyNs: best.roundTripNs / 2n, roundTripNs: best.roundTripNs, atMonoNs: monoNs() };
    const previous = this.#agreement;
    this.#estimate = estimate;
    this.#agreement = assessOffset(estimate, previous, this.#o.maxOffsetNs);
    if (this.#agreement !== previous) {
      this.#beyondAt = this.#agreement === 'beyond' ? estimate : null;
      this.#say(previous);
    }
    const correction = this.#wantedCorrection(estimate);
    if (correction !== this.#correctionNs) {
      log.info(`clock correction for the master ${this.#o.master}: ${formatMs(correction)} (was ${formatMs(this.#correctionNs)})`,
        { master: this.#o.master, correctionNs: String(correction), uncertaintyNs: String(estimate.uncertaintyNs) });
    }
    const changed = correction !== this.#correctionNs || this.refusal() !== refusedBefore;
    this.#correctionNs = correction;
    if (changed) this.#onChange();
  }

  /**
   * The correction for a new estimate: the measured offset (policy correct, beyond the threshold), else 0. A new
   * estimate within its uncertainty of the correction in effect keeps it: moving the mapping by noise would only
   * make the followers' players re-time for nothing.
   */
  #wantedCorrection(e: ClockEstimate): bigint {
    if (this.#o.policy !== 'correct' || this.#agreement !== 'beyond') return 0n;
    const moved = e.offsetNs - this.#correctionNs;
    return (moved < 0n ? -moved : moved) > e.uncertaintyNs ? e.offsetNs : this.#correctionNs;
  }

  /** The log line of a change of agreement (once per change: loud beyond, calm back within). */
  #say(previous: ClockAgreement): void {
    const e = this.#estimate;
    if (e === null) return;
    const { master, self, maxOffsetNs, policy } = this.#o;
    const meta = { master, follower: self, offsetNs: String(e.offsetNs), uncertaintyNs: String(e.uncertaintyNs), policy };
    const measured = `${formatMs(e.offsetNs < 0n ? -e.offsetNs : e.offsetNs)} ± ${formatMs(e.uncertaintyNs)}`;
    const side = e.offsetNs < 0n ? 'ahead of' : 'behind';
    if (this.#agreement === 'beyond') {
      const action = policy === 'correct' ? 'correcting the master\'s anchors by the measured offset (--clock-offset-policy correct)'
        : policy === 'refuse' ? 'playing no cue until they agree (--clock-offset-policy refuse)'
          : 'playing on shifted by that much (--clock-offset-policy warn)';
      log.error(`CLOCKS NOT DISCIPLINED: the wall clock of this follower ${self} is ${measured} ${side} the master ${master}'s, `
        + `beyond --max-clock-offset-ms ${formatMs(maxOffsetNs)}; ${action}. Fix: ${ADVICE}`, meta);
    } else if (previous === 'beyond') {
      log.info(`the wall clocks of this follower ${self} and the master ${master} agree again: ${measured}, within ${formatMs(maxOffsetNs)}`, meta);
    } else {
      log.info(`wall clock of this follower ${self} measured against the master ${master}: ${measured} ${side}, within ${formatMs(maxOffsetNs)}`, meta);
    }
  }

  mapAnchor(masterUnixNs: bigint): bigint {
    return masterUnixNs - this.#correctionNs;
  }

  refusal(): string | null {
    if (this.#o.policy !== 'refuse') return null;
    if (this.#estimate === null) return `the wall-clock offset to the master ${this.#o.master} is not measured yet${this.#lastError === null ? '' : ` (${this.#lastError})`} (--clock-offset-policy refuse)`;
    const e = this.#beyondAt;
    if (e === null) return null;
    return `the wall clocks of this follower and the master ${this.#o.master} differ by ${formatMs(e.offsetNs)} ± ${formatMs(e.uncertaintyNs)}, `
      + `beyond --max-clock-offset-ms ${formatMs(this.#o.maxOffsetNs)} (--clock-offset-policy refuse): ${ADVICE}`;
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  /** Where the clocks stand, for status. */
  status(): ClockQualityStatus {
    const e = this.#estimate;
    return {
      master: this.#o.master, agreement: this.#agreement,
      offsetNs: e === null ? null : Number(e.offsetNs), uncertaintyNs: e === null ? null : Number(e.uncertaintyNs),
      roundTripNs: e === null ? null : Number(e.roundTripNs), ageMs: e === null ? null : Number(monoNs() - e.atMonoNs) / 1e6,
      samples: this.#o.samples, refreshMs: this.#o.refreshMs, maxOffsetNs: Number(this.#o.maxOffsetNs), policy: this.#o.policy,
      correctionNs: Number(this.#correctionNs), refusing: this.refusal(), lastError: this.#lastError,
    };
  }

  /** Stop measuring (a burst in flight is aborted). Idempotent. */
  close(): void {
    this.#stop.abort();
    this.#readyResolve();
  }
}

/** The GetStatus message of a status (ShowStatus.clock_quality); undefined (absent) for null: no master followed. */
export function clockQualityMessage(s: ClockQualityStatus | null): ClockQualityMessage | undefined {
  if (s === null) return undefined;
  const ns = (v: number | null): bigint | undefined => (v === null ? undefined : BigInt(v));
  return {
    master: s.master, agreement: s.agreement, offsetNs: ns(s.offsetNs), uncertaintyNs: ns(s.uncertaintyNs), roundTripNs: ns(s.roundTripNs),
    ageMs: s.ageMs ?? undefined, samples: s.samples, refreshMs: s.refreshMs, maxOffsetNs: BigInt(s.maxOffsetNs), policy: s.policy,
    correctionNs: BigInt(s.correctionNs), refusing: s.refusing ?? '', lastError: s.lastError ?? '',
  };
}
