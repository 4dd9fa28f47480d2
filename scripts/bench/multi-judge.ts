/**
 * bench:multi's judge: what the players on every "machine" presented, from their sync logs and hash sinks (every
 * namespace shares CLOCK_MONOTONIC, so the logs of two machines compare at the same instants exactly), against the
 * master machine's players (the inter-machine offsets) and against FFmpeg's frames for the master's show clock (the
 * out-of-sync ticks; bench:go's judge, ../bench-go-analysis).
 */
import { promises as fsp } from 'node:fs';
import { judgeTicks, readAudioLines, type AudioLine, type Show } from '../bench-go-analysis';
import { readTicks, type Tick } from './presented';
import { readSyncLog } from '../../src/players/sync-log';
import type { FollowLine } from '../bench-go-procs';

/** A value a player presented at an instant: its clock (video ticks) or the media time on the show timeline (audio periods). */
export interface Sample {
  mono: bigint;
  value: number;
}

/** The largest gap between two samples of a reference that are interpolated between, ns (video ticks are 40 ms apart). */
const MAX_GAP_NS = 100_000_000n;

/** How far a step between two reference samples may depart from the elapsed time (or none: stopped) and still be one run of the clock, s. */
const RUN_SLACK_S = 0.005;

/**
 * The offsets of `xs` against reference samples `ref` (both sorted by instant), s: for each x, x.value minus the
 * reference's value at x's instant, interpolated between the reference's samples around it. Samples with no
 * reference around them within 100 ms, or where the reference jumps between them (a locate), are left out.
 */
export function offsetsAgainst(refIn: readonly Sample[], xsIn: readonly Sample[]): Array<{ mono: bigint; offset: number }> {
  const byMono = (a: Sample, b: Sample): number => (a.mono < b.mono ? -1 : a.mono > b.mono ? 1 : 0);
  const ref = [...refIn].sort(byMono);
  const xs = [...xsIn].sort(byMono);
  const out: Array<{ mono: bigint; offset: number }> = [];
  let j = 0;
  for (const x of xs) {
    while (j + 1 < ref.length && ref[j + 1].mono <= x.mono) j++;
    const a = ref[j];
    const b = ref[j + 1];
    if (a === undefined || b === undefined || a.mono > x.mono || b.mono - a.mono > MAX_GAP_NS) continue;
    const dt = Number(b.mono - a.mono) / 1e9;
    const dv = b.value - a.value;
    if (dv !== 0 && Math.abs(dv - dt) > RUN_SLACK_S) continue;
    out.push({ mono: x.mono, offset: x.value - (a.value + (dt === 0 ? 0 : (dv * Number(x.mono - a.mono)) / 1e9 / dt)) });
  }
  return out;
}

/** One player's logs, read. */
export interface PlayerLogs {
  /** Machine and role, e.g. "f1" or "f1 peer". */
  label: string;
  kind: 'video' | 'audio';
  ticks: Tick[];
  audio: AudioLine[];
  /** Its presentations as samples: tick clock (video), period pts (audio, periods rendered in full). */
  samples: Sample[];
  /** Audio: the periods its presenting thread was held up past the write-ahead for (xruns: the player's exit stats; NaN unknown). */
  xruns: number;
}

/** Read a video player's hash sink and sync log. */
export async function readVideoPlayer(label: string, hashFile: string, syncFile: string): Promise<PlayerLogs> {
  const ticks = await readTicks(hashFile, syncFile);
  const samples = (await readSyncLog(syncFile)).map((r) => ({ mono: r.monoNs, value: r.clockSeconds }));
  return { label, kind: 'video', ticks, audio: [], samples, xruns: 0 };
}

/** Read an audio player's sync log, and its log's exit stats (`cuemux play-audio: {..."xruns":N...}`) when `logFile` is given. */
export async function readAudioPlayer(label: string, syncFile: string, logFile?: string): Promise<PlayerLogs> {
  const audio = await readAudioLines(syncFile);
  const samples = audio.filter((l) => l.underrun === 0 && Number.isFinite(l.pts)).map((l) => ({ mono: l.mono, value: l.pts }));
  const log = logFile === undefined ? '' : await fsp.readFile(logFile, 'utf8').catch(() => '');
  const xruns = Number(/"xruns":(\d+)/.exec(log)?.[1] ?? NaN);
  return { label, kind: 'audio', ticks: [], audio, samples, xruns };
}

/** A span of the run, [from, to) in CLOCK_MONOTONIC ns. */
export interface Span {
  from: bigint;
  to: bigint;
}

const inSpan = (s: Span | null, mono: bigint): boolean => s !== null && s.from <= mono && mono < s.to;

/** A video player's out-of-sync ticks, judged outside `pending` (a command up to the player's first in-sync tick). */
export interface VideoJudgement {
  judged: number;
  wrong: number;
  /** Of them, in the partition span and in the failover span. */
  inPartition: number;
  inFailover: number;
  /** Their instants (CLOCK_MONOTONIC ns). */
  wrongAt: bigint[];
  /** Descriptions of the first few. */
  examples: string[];
}

/**
 * The instant the master applied each command: the first change of its show the judge's Follow client received
 * after the command and before the next one (a new clock generation: a locate, a stop, a play; a cue started or
 * stopped), or the command instant when it changed nothing seen there (a load, an unload).
 *
 * Why: a player's first in-sync sample after the command instant ended its pending span, but until the master
 * applies the command the old picture is still the right one (a paused frame before a play, the frame before a
 * locate): the span ended at once, and the ticks the player took to reach the new position were judged out of sync
 * (a full run: m's clock still stopped 360 ms after a play while the master's ran; f1 5 s behind for a few ticks at
 * a locate inside the partition window, read as a 4,985 ms "step"). A command's span now ends at the player's first
 * in-sync sample once the master has applied it, as bench:go's judge counts from the GO the master applied.
 */
export function commandsApplied(commands: readonly bigint[], lines: readonly FollowLine[]): bigint[] {
  const changes: bigint[] = [];
  let gen: string | null = null;
  for (const l of [...lines].sort((a, b) => (BigInt(a.mono) < BigInt(b.mono) ? -1 : 1))) {
    if (l.e === 'clock') {
      if (gen !== null && l.gen !== gen) changes.push(BigInt(l.mono));
      gen = l.gen;
    } else if (l.e === 'started' || l.e === 'stopped') {
      changes.push(BigInt(l.mono));
    }
  }
  const sorted = [...commands].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return commands.map((s) => {
    const next = sorted.find((x) => x > s);
    return changes.find((c) => c >= s && (next === undefined || c < next)) ?? s;
  });
}

/**
 * The span from each command instant to `player`'s first tick that shows FFmpeg's frame for the clock, at or after
 * the instant the master applied the command (`applied`, parallel to `commands`; default the command instant).
 */
export function pendingSpans(show: Show, ticks: readonly Tick[], commands: readonly bigint[], expected: (show: Show, mono: bigint) => string | null,
  applied: readonly bigint[] = commands): Array<[bigint, bigint]> {
  return commands.map((s, i) => {
    const from = applied[i] ?? s;
    const t = ticks.find((x) => x.mono > s && x.mono >= from && x.md5 !== null && x.md5 === expected(show, x.mono));
    return [s, t?.mono ?? s] as [bigint, bigint];
  });
}

/**
 * The spans from each command instant to the player's first sample in sync again once the master applied it
 * (`applied`, see {@link commandsApplied}): video, the first tick showing FFmpeg's frame for the clock; audio, the
 * first period rendered in full.
 */
export function playerPending(show: Show, p: PlayerLogs, commands: readonly bigint[], expected: (show: Show, mono: bigint) => string | null,
  applied: readonly bigint[] = commands): Array<[bigint, bigint]> {
  if (p.kind === 'video') return pendingSpans(show, p.ticks, commands, expected, applied);
  return commands.map((s, i) => [s, p.audio.find((l) => l.mono > s && l.mono >= (applied[i] ?? s) && l.underrun === 0)?.mono ?? s] as [bigint, bigint]);
}

/** `xs` without those inside any of `spans` (open intervals). */
export function outside<T extends { mono: bigint }>(xs: readonly T[], spans: ReadonlyArray<readonly [bigint, bigint]>): T[] {
  return xs.filter((x) => !spans.some(([a, b]) => a < x.mono && x.mono < b));
}

/** Judge a video player's ticks after `from` (the show's first GO). */
export function judgeVideo(show: Show, p: PlayerLogs, from: bigint, pending: ReadonlyArray<[bigint, bigint]>, periodNs: number, partition: Span | null, failover: Span | null): VideoJudgement {
  const ticks = p.ticks.filter((t) => t.mono >= from);
  const r = judgeTicks(show, ticks, pending, periodNs);
  return {
    judged: r.judged, wrong: r.wrong.length, wrongAt: r.wrong.map((w) => w.mono),
    inPartition: r.wrong.filter((w) => inSpan(partition, w.mono)).length,
    inFailover: r.wrong.filter((w) => inSpan(failover, w.mono)).length,
    examples: r.wrong.slice(0, 4).map((w) => `${(Number(w.mono - from) / 1e9).toFixed(3)} s: ${w.kind} ${w.shown} for ${w.expected}`),
  };
}

/** An audio player's periods that ran dry (underrun), outside `pending` spans. */
export interface AudioJudgement {
  periods: number;
  dry: number;
  drySamples: number;
  /** The dry periods' instants (CLOCK_MONOTONIC ns). */
  dryAt: bigint[];
  inPartition: number;
  inFailover: number;
}

/** Count the audio player's dry periods after `from`, outside the spans from each command to its first full period. */
export function judgeAudio(p: PlayerLogs, from: bigint, pending: ReadonlyArray<readonly [bigint, bigint]>, partition: Span | null, failover: Span | null): AudioJudgement {
  const lines = p.audio.filter((l) => l.mono >= from);
  const dry = outside(lines.filter((l) => l.underrun > 0), pending);
  return {
    periods: lines.length, dry: dry.length, dryAt: dry.map((l) => l.mono), drySamples: dry.reduce((n, l) => n + l.underrun, 0),
    inPartition: dry.filter((l) => inSpan(partition, l.mono)).length,
    inFailover: dry.filter((l) => inSpan(failover, l.mono)).length,
  };
}

/** The largest step between consecutive offsets inside `span`, s (a jump of the clock; 0 with fewer than two). */
export function maxStep(offsets: ReadonlyArray<{ mono: bigint; offset: number }>, span: Span): number {
  const xs = offsets.filter((o) => inSpan(span, o.mono));
  let m = 0;
  for (let i = 1; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i].offset - xs[i - 1].offset));
  return m;
}

/**
 * `span` ended at the show's first command after `after` (the heal of a partition, the takeover of a failover), when
 * that comes before the span's end.
 *
 * Why: what follows a command is that command's. In a full run all 119 dry audio periods of the failover span (four
 * machines) began 2.07-2.09 s after the SIGKILL, 70-90 ms after the show's locate at +2.00 s, as after every other
 * locate of the run (5-80 dry periods each, on every machine and on the peer, which has no failover to go through):
 * counted as the failover's, they hid what the failover itself cost (nothing) and took the locate's periods out of
 * the 1 % loss line. Nothing is left uncounted: what follows the command is judged with the rest of the run (the loss
 * line counts the followers' periods outside these spans).
 */
export function endAtNextCommand(span: Span | null, after: bigint, commands: readonly bigint[]): Span | null {
  if (span === null) return null;
  const next = commands.filter((c) => c >= after && c < span.to).sort((a, b) => (a < b ? -1 : 1))[0];
  return next === undefined ? span : { from: span.from, to: next };
}

/** A sample of the machine's CPU use: the share of all its CPUs busy (0-1) from the sample before up to `mono`. */
export interface CpuSample {
  mono: bigint;
  busy: number;
}

/** The mean busy share of the samples in [from, to), or NaN with none. */
export function busyIn(samples: readonly CpuSample[], from: bigint, to: bigint): number {
  const xs = samples.filter((s) => s.mono > from && s.mono <= to);
  return xs.length === 0 ? NaN : xs.reduce((n, s) => n + s.busy, 0) / xs.length;
}

/** How many of `monos` follow each kind of command (`names`, parallel to `commands`): the name of the last command at or before each. */
export function countByCommand(monos: readonly bigint[], commands: readonly bigint[], names: readonly string[]): Map<string, number> {
  const order = commands.map((c, i) => ({ c, name: names[i] ?? 'command' })).sort((a, b) => (a.c < b.c ? -1 : 1));
  const counts = new Map<string, number>();
  for (const m of monos) {
    let name = 'before the show';
    for (const x of order) {
      if (x.c > m) break;
      name = x.name;
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}
