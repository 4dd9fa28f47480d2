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

/** Millisecond edges of Date.now() used to pair the clocks (each costs up to 1 ms of spinning, once per process). */
const EDGES = 5;

/**
 * Unix ns minus monotonic ns, from millisecond edges of Date.now(): at an edge the wall clock is exactly a whole
 * millisecond, and the monotonic reading just before the last Date.now() that still showed the previous millisecond
 * bounds it. A preemption between the reads can only make that bound too high, so the smallest of several edges is
 * kept. Measured: processes of one machine agree within a few µs (one edge alone was ~300 µs off in one process of
 * six; Node's performance.timeOrigin was 1-2 ms off Date.now()).
 */
function measureOffset(): bigint {
  let best: bigint | null = null;
  for (let i = 0; i < EDGES; i++) {
    const start = Date.now();
    let ms = start;
    let before = process.hrtime.bigint();
    let mono = before;
    while (ms === start) {
      before = mono;
      mono = process.hrtime.bigint();
      ms = Date.now();
    }
    const bound = BigInt(ms) * 1_000_000n - before;
    if (best === null || bound < best) best = bound;
  }
  return best as bigint;
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
