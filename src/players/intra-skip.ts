/**
 * Which pictures an intra-only video segment opened at its GO (no preroll) leaves out while its decoder catches up
 * with a running clock: one {@link IntraSkip} per such segment's stream, asked before each packet is decoded and told
 * of each picture given.
 *
 * Why: after an unarmed GO of a 1080p25 DNxHD cue (4 ms of CPU a picture) the decoder spent its first tenths of a
 * second on pictures already due, and its first in-sync picture came with 1-3 pictures decoded (bench:go): under load
 * the next one was late and the previous picture held. Only intra-only video: a skipped reference picture of an inter
 * codec would damage the pictures that follow. Never a preroll's (it is decoded before its time).
 */

/**
 * Frame durations past the presented clock position by which a catching-up picture must end not to be skipped, at
 * most: one for its decoding and hand-off, one for the presenter's next tick. The margin is the smaller of this and
 * the hand-off time ({@link DECODE_HANDOFF_SECONDS}, or longer as learnt) plus the presenter's tick.
 */
const SKIP_MARGIN_FRAMES = 2;

/**
 * Time to decode an intra-only picture and hand it to the presenter on a quiet machine, in seconds: 4-7 ms of CPU
 * for 1080p DNxHD and ProRes, and FFmpeg's frame threads give it out with the next packets (sent in the same burst at
 * a GO).
 *
 * Why not two frame durations: at a GO "now" the in-point picture ends one frame after the GO's instant, so a margin
 * of two frames always skipped it, and the next one too. The first picture shown was the third, two frames (80 ms at
 * 25 fps) after the datagram: bench:go's unarmed 1080p25 DNxHD GOs were 77-92 ms (p50 per cue) against 42-49 ms for
 * a player opening the file itself and decoding the in-point frame (session 12's quiet runs).
 */
const DECODE_HANDOFF_SECONDS = 0.008;

/**
 * How the learnt hand-off time fades per picture: the margin follows what decoding takes now. Why learnt: on a loaded
 * machine a picture took 30-60 ms from packet to hand-off (bench:go's decode worker, traced, with other work taking
 * 40 % of the machine), and deciding on a quiet machine's 8 ms decoded pictures that came after their time: ticks
 * held behind them.
 */
const HANDOFF_FADE = 0.8;

/** Packets whose decision instant is kept at most (a GO's burst is a few dozen). */
const DECIDED_KEPT = 64;

/**
 * Frame durations past the clock at which a catching-up decoder is ahead and skipping ends (the sync log's queued 3).
 * The presenter does not wait for 2 pictures before an unarmed segment's first: after the skips its first picture is
 * already due 1-2 frames later, so waiting would add a frame to every unarmed GO (its target: no slower than a player
 * opening the file itself), and the holds measured after it (quick bench:go, DNxHD) were stalls of 0.3-0.5 s of a
 * busy machine, which one picture more would not have covered.
 */
const AHEAD_FRAMES = 3;

/** The skipping of one catching-up intra-only segment's stream; see the module comment. */
export class IntraSkip {
  readonly #tickSeconds: number;
  /** Set while decoding is not yet ahead of the clock; afterwards only pictures whose whole span has passed are skipped. */
  #catchingUp = true;
  /** When each packet decoded while catching up was decided on (CLOCK_MONOTONIC ns), by pts. */
  readonly #decided = new Map<number, bigint>();
  /** The longest recent time from deciding to decode a packet to its picture given, fading, in seconds; 0 until known. */
  #handoffSeconds = 0;

  /** `tickSeconds`: the presenter's tick, in seconds (how soon a picture given is shown). */
  constructor(tickSeconds: number) {
    this.#tickSeconds = tickSeconds;
  }

  /** Still catching up with the clock. */
  get catchingUp(): boolean {
    return this.#catchingUp;
  }

  /**
   * Whether the packet of the picture `pts` (decoder ticks) ending at clock `end` (s), `duration` s long, is skipped,
   * the presenter being at clock `now` (s) at CLOCK_MONOTONIC `nowNs`. While catching up: when the picture ends before
   * the clock position the presenter will be at once it could be decoded and handed on; afterwards only when its whole
   * span has passed (the presenter never shows it: no held tick, and a decoder stalled by a busy machine catches up
   * sooner). A packet not skipped while catching up is remembered, to learn the hand-off time from its picture.
   */
  skips(pts: number, end: number, duration: number, now: number, nowNs: bigint): boolean {
    if (!this.#catchingUp) return end <= now;
    const handoff = Math.max(DECODE_HANDOFF_SECONDS, this.#handoffSeconds);
    if (end <= now + Math.min(SKIP_MARGIN_FRAMES * duration, handoff + this.#tickSeconds)) return true;
    if (this.#decided.size < DECIDED_KEPT) this.#decided.set(pts, nowNs);
    return false;
  }

  /**
   * The decoder gave the picture `pts` (null: unknown) ending at clock `end` (s), `duration` s long, at CLOCK_MONOTONIC
   * `nowNs`, the presenter being at clock `now` (null: not known yet). Its hand-off time is learnt; once a picture ends
   * {@link AHEAD_FRAMES} durations or more after the clock, catching up ends. Judged on pictures given, not packets
   * sent: FFmpeg's frame threads take a GO's burst of packets at once and give each picture 2 packets later (quick
   * bench:go under load 10, judged on packets sent: an unarmed DNxHD GO skipped 2 packets, judged itself ahead, and
   * showed its first picture 8 frames after the in-point with 1 decoded, then held it 0.5 s).
   */
  given(pts: number | null, end: number, duration: number, now: number | null, nowNs: bigint): void {
    if (!this.#catchingUp) return;
    const decided = pts === null ? undefined : this.#decided.get(pts);
    if (decided !== undefined) {
      this.#decided.delete(pts as number);
      this.#handoffSeconds = Math.max(Number(nowNs - decided) / 1e9, this.#handoffSeconds * HANDOFF_FADE);
    }
    if (now !== null && end >= now + AHEAD_FRAMES * duration) {
      this.#catchingUp = false;
      this.#decided.clear();
    }
  }
}
