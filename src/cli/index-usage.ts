/**
 * The usage text of `cuemux index`, in its own module so `cuemux --help` does not load the index store and FFmpeg.
 */
import * as os from 'node:os';
import { defaultCacheDir } from '../index-store/index-location';

/** Usage text of `cuemux index`. */
export const INDEX_USAGE = `Usage: cuemux index <command> [options]

Commands:
  build <paths...>   Index media files; folders are searched recursively and media is recognised by probing.
      --jobs N           files indexed at once (default: ${Math.min(4, os.availableParallelism())})
      --force            rebuild even when a fresh index exists
      --cache-dir DIR    index folder for media in read-only folders (default $CUEMUX_CACHE_DIR or ${defaultCacheDir()})
      --lock-timeout S   seconds to wait for another process building the same index (default 300)
      --json             print one JSON report on stdout instead of lines
  check <paths...>   Exit 0 when every media file has a fresh index; else the worst of 3 stale, 4 missing, 5 corrupt.
      --cache-dir DIR, --json
  info <media>       Streams, packet and keyframe counts, duration, longest GOP, index path and size.
      --cache-dir DIR, --json
  dump <media>       One line per packet in file order: stream, pts, dts, duration, pos, size, key
      --stream N         only stream N
      --format F         jsonl (default) or csv
      --cache-dir DIR

Exit codes: 0 ok, 1 failures of different kinds, 2 usage, 3 stale, 4 missing, 5 corrupt, 6 not media,
            7 truncated/damaged media (readable part indexed), 8 path not found, 9 permission denied, 10 busy (lock timeout).
`;

