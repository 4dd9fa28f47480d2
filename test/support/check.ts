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
