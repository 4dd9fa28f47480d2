/**
 * The media path of a request URL (`/media/<path>`, `/preview/<path>`), checked before anything is opened: what
 * MediaRoots.open then enforces (beneath a root, no symbolic link out) is the real guard; this refuses early, with a
 * clear message, what no honest client sends.
 */
import { CuemuxError } from '../common/errors';

/**
 * The relative media path after `prefix` (e.g. `/media/`) in the raw request `url`, percent-decoded.
 *
 * @throws CuemuxError INVALID_ARGUMENT for an encoded slash, backslash or NUL (one path could then be read two ways),
 *   malformed percent-encoding, an empty, `.` or `..` segment, or an empty path.
 */
export function mediaPathOf(url: string, prefix: string): string {
  const rawPath = url.slice(prefix.length).split('?', 1)[0];
  const refuse = (why: string): CuemuxError => new CuemuxError('INVALID_ARGUMENT', `${prefix}${rawPath}: ${why}`, { path: rawPath });
  if (/%(2f|5c|00)/i.test(rawPath) || rawPath.includes('\\')) throw refuse('an encoded slash, a backslash or a NUL is not accepted in a media path');
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    throw refuse('malformed percent-encoding');
  }
  if (decoded === '') throw refuse('no media path (e.g. /media/show/clip.mp4, relative to a media root)');
  if (decoded.split('/').some((s) => s === '' || s === '.' || s === '..')) throw refuse('a media path is relative to a media root, without empty, "." or ".." segments');
  return decoded;
}
