/**
 * Which pictures an intra-only video segment opened at its GO (no preroll), or adopted from a preroll (which leaves out
 * none when it was decoded in time), leaves out while its decoder catches up with a running clock: one {@link IntraSkip} per such segment's stream, asked before each packet is decoded and told
 * of each picture given.
 *
 * Why: after an unarmed GO of a 1080p25 DNxHD cue (4 ms of CPU a picture) the decoder spent its first tenths of a
 * second on pictures already due, and its first in-sync picture came with 1-3 pictures decoded (bench:go): under load
 * the next one was late and the previous picture held. Only intra-only video: a skipped reference picture of an inter
 * codec would damage the pictures that follow. Never a preroll's packets (decoded before their time).
 */

/**
 * Frame durations past the presented clock position by which a catching-up picture must end not to be skipped: one
 * for its decoding and hand-off (4-7 ms of CPU for 1080p DNxHD and ProRes, more on a busy machine, and FFmpeg's frame
 * threads give a picture out two packets later), one for the presenter's next tick.
 *
 * At a GO "now" this leaves out the in-point picture and the next (the first shown is the third, 80 ms after the
 * datagram at 25 fps), and that was measured as the better choice. Session 13 tried a margin of a quiet machine's
 * hand-off (8 ms) plus a tick, learnt upwards from the segment's own pictures: the in-point picture was shown (unarmed
 * DNxHD GOs 16-56 ms instead of 77-92 ms, p50 per cue), but the pictures after it were then late: bench:go's first quiet
 * run held 3 ticks 59-153 ms after unarmed DNxHD GOs, and quick runs 2-7 ticks, with one decoder thread or FFmpeg's
 * (its target: no out-of-sync tick after the first in-sync one). Two frames gave none in session 12's quiet runs.
 */
const SKIP_MARGIN_FRAMES = 2;

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
  /** Set while decoding is not yet ahead of the clock; afterwards only pictures whose whole span has passed are skipped. */
  #catchingUp = true;

  /** Still catching up with the clock. */
  get catchingUp(): boolean {
    return this.#catchingUp;
  }

  /**
   * Whether the packet of the picture ending at clock `end` (s), `duration` s long, is skipped, the presenter being at
   * clock `now` (s). While catching up: when the picture ends before the clock position the presenter will be at
   * {@link SKIP_MARGIN_FRAMES} frame durations from now (it could not be decoded and handed on before its time);
   * afterwards only when its whole span has passed (the presenter never shows it: no held tick, and a decoder stalled
   * by a busy machine catches up sooner).
   */
  skips(end: number, duration: number, now: number): boolean {
    return end <= now + (this.#catchingUp ? SKIP_MARGIN_FRAMES * duration : 0);
  }

  /**
   * The decoder gave a picture ending at clock `end` (s), `duration` s long, the presenter being at clock `now` (null:
   * not known yet): once one ends {@link AHEAD_FRAMES} durations or more after the clock, catching up ends. Judged on
   * pictures given, not packets sent: FFmpeg's frame threads take a GO's burst of packets at once and give each
   * picture 2 packets later (quick bench:go under load 10, judged on packets sent: an unarmed DNxHD GO skipped 2
   * packets, judged itself ahead, and showed its first picture 8 frames after the in-point with 1 decoded, then held it
   * 0.5 s).
   */
  given(end: number, duration: number, now: number | null): void {
    if (now !== null && end >= now + AHEAD_FRAMES * duration) this.#catchingUp = false;
  }
}
