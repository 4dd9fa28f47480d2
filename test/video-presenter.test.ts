/**
 * The presenting rules of `VideoPlayer` that no decoder timing can show reliably, checked on a clock the test holds
 * still: the player's own display ticks run (real timers), and the follower is an emitter the test drives with
 * pictures placed on a segment. What each tick presented is read from a sink; nothing is timed.
 *
 * A GO's segment that adopted no preroll (unarmed) whose first pictures are already due shows its first picture only
 * once its pictures are decoded 0.25 s past the clock (or to its end): shown with little after it, a decoder that
 * stalls a moment leaves the ticks after it holding a picture whose time has passed (bench:go: 3-23 held ticks a run
 * after unarmed GOs of an intra-only 1080p cue). A prepared segment (it adopted a preroll) shows its picture at once.
 */
import assert from 'node:assert/strict';
import { TypedEmitter } from '../src/common/typed-emitter';
import type { DecodedVideoFrame } from '../src/ffmpeg/types';
import { ClockState, CueLoaded, CueStarted } from '../src/generated/cuemux/v1/media_server';
import type { OutputFollowerEvents } from '../src/players/follower';
import { VideoPlayer } from '../src/players/video-player';
import type { Picture, PresentInfo, VideoSink } from '../src/players/video-sinks';
import { waitFor } from './support/wait';

/** A tick as a sink saw it: the picture's media time (its pts in ms here), or null for black. */
interface Seen { pts: number | null; clock: number; held: boolean }

/** A sink that records every tick. */
function recordingSink(seen: Seen[]): VideoSink {
  return {
    present(picture: Picture | null, at: PresentInfo): void {
      const pts = picture === null ? null : (picture as DecodedVideoFrame).pts;
      seen.push({ pts, clock: at.clockSeconds, held: at.held === true });
    },
    close: () => Promise.resolve(),
    stats: { presented: 0, pictures: 0, black: 0, mismatched: 0, unsupported: 0, written: 0, dropped: 0, bytesWritten: 0 },
    error: null,
  };
}

/** A 2×2 picture whose pts (ms) names it. */
function frame(ms: number): DecodedVideoFrame {
  return {
    kind: 'video', pts: ms, bestEffortPts: ms, duration: 40, width: 2, height: 2, format: 'gray', planes: [Buffer.alloc(4)],
    keyFrame: false, sampleAspectRatio: { num: 1, den: 1 },
  };
}

describe('VideoPlayer presenting rules (a clock held still)', function () {
  let player: VideoPlayer | null = null;
  afterEach(() => {
    player?.stop();
    player = null;
  });

  /** A player at 100 ticks/s on a follower the test drives, the clock held at `clock.at` (s). */
  function start(): { source: TypedEmitter<OutputFollowerEvents>; seen: Seen[]; clock: { at: number } } {
    const source = new TypedEmitter<OutputFollowerEvents>();
    const seen: Seen[] = [];
    const clock = { at: 0 };
    player = new VideoPlayer(source, { fps: { num: 100, den: 1 }, sinks: [recordingSink(seen)], syncLog: null, clockAt: () => clock.at });
    player.start();
    source.safeEmit('clock', ClockState.fromPartial({ generation: 1n, state: 'playing', rate: 1, positionSeconds: 0 }));
    source.safeEmit('loaded', CueLoaded.fromPartial({
      cueId: 'X', streams: [0], inSeconds: 0, loop: false,
      media: { streams: [{ index: 0, codecType: 'video', timeBaseNum: 1, timeBaseDen: 1000 }] },
    }));
    return { source, seen, clock };
  }

  /** The picture at `ms` (40 ms long) of segment 1 (or of preroll `preroll`). */
  const picture = (ms: number, preroll = 0): OutputFollowerEvents['picture'][0] => ({
    cueId: 'X', segment: preroll === 0 ? 1 : 0, generation: preroll === 0 ? 1n : 0n, preroll, stream: 0, frame: frame(ms),
    mediaSeconds: ms / 1000, durationSeconds: 0.04,
  });

  /** Let `n` more ticks pass; returns them. */
  async function ticks(seen: Seen[], n: number): Promise<Seen[]> {
    const from = seen.length;
    await waitFor(`${n} ticks`, () => seen.length >= from + n, 10_000, 2);
    return seen.slice(from, from + n);
  }

  /** GO of X's segment 1 at clock 0 from media 0 to `endMedia` (s). */
  const go = (source: TypedEmitter<OutputFollowerEvents>, endMedia: number): void => {
    source.safeEmit('started', CueStarted.fromPartial({ cueId: 'X', segment: 1, clockSeconds: 0, mediaSeconds: 0, endMediaSeconds: endMedia }), process.hrtime.bigint());
  };

  /** After 2 ticks to settle, the next 3 show the picture at `ms`. */
  async function assertShows(seen: Seen[], ms: number): Promise<void> {
    await ticks(seen, 2);
    assert.deepEqual((await ticks(seen, 3)).map((x) => x.pts), [ms, ms, ms]);
  }

  it('an unarmed GO catching up shows its first picture only once its pictures are decoded 0.25 s ahead of the clock', async function () {
    const { source, seen, clock } = start();
    // GO "now" at clock 0 for media 0; the clock is at 0.1 s when the decoder gives the picture covering it (0.08-0.12).
    go(source, 10);
    clock.at = 0.1;
    source.safeEmit('picture', picture(80));
    const waiting = await ticks(seen, 5);
    assert.deepEqual(waiting.map((t) => t.pts), [null, null, null, null, null], 'black while only the picture for the clock is decoded');
    // Decoded through 0.32 s (0.22 s ahead of the clock): still waiting.
    for (let ms = 120; ms <= 280; ms += 40) source.safeEmit('picture', picture(ms));
    await ticks(seen, 2);
    assert.deepEqual((await ticks(seen, 3)).map((t) => t.pts), [null, null, null], 'black while less than 0.25 s is decoded ahead');
    // Through 0.36 s: shown.
    source.safeEmit('picture', picture(320));
    await ticks(seen, 2);
    const shown = await ticks(seen, 3);
    assert.deepEqual(shown.map((t) => t.pts), [80, 80, 80], 'the picture for the clock once 0.25 s is decoded ahead');
    // Once on screen, the rule is over: the picture for the clock is shown with none after it.
    clock.at = 0.33;
    await ticks(seen, 2);
    const last = await ticks(seen, 2);
    assert.deepEqual(last.map((t) => [t.pts, t.held]), [[320, false], [320, false]]);
  });

  it('the last picture of a segment is shown without one after it', async function () {
    const { source, seen, clock } = start();
    go(source, 0.12);
    clock.at = 0.1;
    source.safeEmit('picture', picture(80));
    await assertShows(seen, 80);
  });

  it('a prepared GO (its segment adopted a preroll) shows its in-point picture at once', async function () {
    const { source, seen, clock } = start();
    source.safeEmit('picture', picture(80, 7));
    go(source, 10);
    source.safeEmit('adopted', { cueId: 'X', preroll: 7, segment: 1, generation: 1n, receivedNs: process.hrtime.bigint() });
    clock.at = 0.1;
    await assertShows(seen, 80);
  });

  it('a picture left out between two decoded ones (skipped by the decoder) is not covered by the one before it', async function () {
    const { source, seen, clock } = start();
    go(source, 0.2); // a segment that ends with the 160 ms picture: shown without waiting for a lead beyond its end
    // Pictures at 80 and 160 ms; the one at 120 was never decoded (a catching-up intra-only segment left it out).
    source.safeEmit('picture', picture(80));
    source.safeEmit('picture', picture(160));
    clock.at = 0.1;
    await assertShows(seen, 80);
    // In the 120 ms picture's span: 80's has passed, so it is not shown as if it were 120 (the screen keeps it, counted held).
    clock.at = 0.13;
    await ticks(seen, 2);
    const gap = await ticks(seen, 3);
    assert.deepEqual(gap.map((t) => [t.pts, t.held]), [[80, true], [80, true], [80, true]], 'the picture kept on screen, as a held tick, not shown as in sync');
    clock.at = 0.17;
    await assertShows(seen, 160);
  });

  it('past the catch-up limit a picture is shown without one after it (a decoder slower than the clock)', async function () {
    const { source, seen, clock } = start();
    go(source, 10);
    clock.at = 0.61;
    source.safeEmit('picture', picture(600));
    await assertShows(seen, 600);
  });
});
