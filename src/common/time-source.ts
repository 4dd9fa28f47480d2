/**
 * The process's two clocks, tied together once: monotonic nanoseconds (process.hrtime.bigint(), which is
 * CLOCK_MONOTONIC on Linux and so comparable between processes of one machine) and Unix wall-clock nanoseconds
 * derived from it. Deriving the wall clock from the monotonic one, instead of reading Date.now() each time, keeps
 * the two anchors of a ClockState exactly consistent (Date.now() has only millisecond resolution).
 */

/** Monotonic clock now, in nanoseconds (arbitrary epoch, CLOCK_MONOTONIC). */
export function monoNs(): bigint {
  return process.hrtime.bigint();
}

/** Unix ns minus monotonic ns, measured at a millisecond edge of Date.now() so it is accurate to a few µs. */
function measureOffset(): bigint {
  const start = Date.now();
  let ms = start;
  let mono = process.hrtime.bigint();
  // Spin (at most ~1 ms, once per process) until Date.now() ticks: that instant is a whole millisecond.
  while (ms === start) {
    mono = process.hrtime.bigint();
    ms = Date.now();
  }
  return BigInt(ms) * 1_000_000n - mono;
}

let offset: bigint | null = null;

/** The Unix-epoch nanoseconds of monotonic instant `mono`. */
export function monoToUnixNs(mono: bigint): bigint {
  offset ??= measureOffset();
  return mono + offset;
}

/** The monotonic nanoseconds of Unix-epoch instant `unix`. */
export function unixToMonoNs(unix: bigint): bigint {
  offset ??= measureOffset();
  return unix - offset;
}

/** Unix wall clock now, in nanoseconds since the epoch (UTC). */
export function unixNs(): bigint {
  return monoToUnixNs(monoNs());
}
