/**
 * Where a media file's index lives: `<media>.idx` beside the media when its directory is writable, otherwise in a
 * cache directory under a name derived from the media's absolute path (so two files with the same base name in
 * different folders never collide). The index's own header carries the fingerprint that decides freshness.
 */
import { createHash } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Default cache directory: $CUEMUX_CACHE_DIR, else $XDG_CACHE_HOME/cuemux/index, else ~/.cache/cuemux/index. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CUEMUX_CACHE_DIR) return path.resolve(env.CUEMUX_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME && path.isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : path.join(os.homedir(), '.cache');
  return path.join(xdg, 'cuemux', 'index');
}

/** The two places an index of `media` (absolute) may live. */
export interface IndexLocations {
  /** `<media>.idx`. */
  beside: string;
  /** `<cacheDir>/<sha256(abs path) prefix>-<basename>.idx`. */
  cache: string;
}

/** Both candidate locations of the index of `media`. */
export function indexLocations(media: string, cacheDir: string): IndexLocations {
  const abs = path.resolve(media);
  const key = createHash('sha256').update(abs).digest('hex').slice(0, 24);
  // Keep the cache name readable for a technician browsing the folder, but bounded in length.
  const base = path.basename(abs).slice(0, 80);
  return { beside: `${abs}.idx`, cache: path.join(cacheDir, `${key}-${base}.idx`) };
}

/** True when new files can be created in `dir` (EROFS and EACCES both say no). */
export async function dirWritable(dir: string): Promise<boolean> {
  try {
    await fsp.access(dir, fsc.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Files that belong to the index machinery and are never media: skipped when scanning folders. */
export function isIndexArtifact(file: string): boolean {
  return /\.idx(\.lock(\.takeover|\.\d+\.\w+)?|\.tmp-[\w-]+)?$/.test(file);
}
