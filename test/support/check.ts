/**
 * Small assertion helpers shared by the tests.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { isCuemuxError, type ErrorCode } from '../../src/common/errors';

/** MD5 of `b` in hex, as `ffmpeg -f framemd5` prints it. */
export const md5 = (b: Buffer | Uint8Array): string => createHash('md5').update(b).digest('hex');

/** Assert that `p` rejects with a CuemuxError of `code` whose message matches `mention`. */
export async function rejectsWith(p: Promise<unknown>, code: ErrorCode, mention: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isCuemuxError(e), `a CuemuxError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.match(e.message, mention);
    return true;
  });
}

/** Least-squares slope of y over x. */
export function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return num / den;
}

/**
 * Skip the running test, saying why: mocha's `this.skip()` takes no reason, so the reason goes into the title the
 * reporter prints for the pending test. Use where the thing a test checks cannot be observed (never return early).
 */
export function skipBecause(ctx: Mocha.Context, reason: string): never {
  if (ctx.test !== undefined) ctx.test.title += ` (skipped: ${reason})`;
  ctx.skip();
}
