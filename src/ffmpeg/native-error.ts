/**
 * The one translator of native failures: beamcoder rejects with "In file ../src/demux.cc on line 58, found error:
 * Problem opening input format: No such file or directory"; this reads FFmpeg's reason out of that, maps it to an
 * {@link ErrorCode}, and words the {@link CuemuxError} the person at the console sees, naming the file (demuxer) or
 * the stream (decoder, resampler) and the operation. Demuxer, decoder and resampler all translate through here, so
 * the same FFmpeg message gives the same code and wording wherever it comes from.
 */
import { CuemuxError, type ErrorCode, errorMessage } from '../common/errors';

/**
 * What a native object works on, for error messages: a media file (a demuxer; the error carries its `path`) or a
 * named stream (a decoder or resampler, e.g. `"/show/act1.mov stream 1"`; the error carries `details.name`).
 */
export type NativeSubject = { readonly path: string } | { readonly name: string };

/** An error about `subject`: `"<path or name>: <message>"`, with the operation and cause attached. */
export function subjectError(subject: NativeSubject, code: ErrorCode, message: string, operation: string, cause?: unknown): CuemuxError {
  return 'path' in subject
    ? new CuemuxError(code, `${subject.path}: ${message}`, { path: subject.path, operation, cause })
    : new CuemuxError(code, `${subject.name}: ${message}`, { operation, cause, details: { name: subject.name } });
}

/**
 * FFmpeg's reason in a beamcoder rejection, without beamcoder's source location and its "Problem <doing>: " preface
 * (the message we build names the operation already); null when `e` is not a beamcoder rejection (a bug of ours or
 * of the binding, not something FFmpeg said about the media).
 */
export function ffmpegReason(e: unknown): string | null {
  if (!(e instanceof Error) || !e.message.startsWith('In file ')) return null;
  return e.message.replace(/^In file .*? found error: /, '').replace(/^Problem [^:]*: /, '');
}

/** `e`'s message: FFmpeg's reason for a beamcoder rejection, else the error's own message. */
export function nativeMessage(e: unknown): string {
  return ffmpegReason(e) ?? (errorMessage(e));
}

/**
 * A failure of native call `operation` on `subject` as a CuemuxError. A CuemuxError passes through; a beamcoder
 * rejection gets the code FFmpeg's reason implies (no such file, permission, a directory, and, when opening, data
 * FFmpeg cannot read: NOT_MEDIA), else `fallback`; anything else is INTERNAL.
 */
export function translateNativeError(e: unknown, subject: NativeSubject, operation: string, fallback: ErrorCode): CuemuxError {
  if (e instanceof CuemuxError) return e;
  const reason = ffmpegReason(e);
  if (reason === null) return subjectError(subject, 'INTERNAL', `${operation} failed: ${nativeMessage(e)}`, operation, e);
  let code: ErrorCode = fallback;
  if (/No such file/i.test(reason)) code = 'NOT_FOUND';
  else if (/Permission denied|Operation not permitted/i.test(reason)) code = 'PERMISSION_DENIED';
  else if (/Is a directory/i.test(reason)) code = 'INVALID_ARGUMENT';
  else if (/Invalid data found|End of file/i.test(reason) && operation === 'open') code = 'NOT_MEDIA';
  // FFmpeg cannot say "truncated" for an MP4/MOV whose moov (at the end) is missing: hint at it by name.
  const file = 'path' in subject ? subject.path : '';
  const hint = code === 'NOT_MEDIA' && /\.(mp4|m4a|m4v|mov|3gp)$/i.test(file) ? '; an MP4/MOV cut short before its index (moov) looks like this' : '';
  const what = code === 'NOT_MEDIA' ? `not a media file FFmpeg can read${hint}` : `${operation} failed`;
  return subjectError(subject, code, `${what} (FFmpeg: ${reason})`, operation, e);
}
