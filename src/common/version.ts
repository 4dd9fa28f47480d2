/**
 * cuemux's own version (package.json), read once.
 */
let cached: string | undefined;

/** The version of this cuemux, e.g. `0.1.0`. */
export function cuemuxVersion(): string {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  cached ??= (require('../../../package.json') as { version: string }).version;
  return cached;
}
