/**
 * `openIndex(media)`: load the media's index when it is fresh, otherwise build it, exactly once across processes.
 * `checkIndex(media)`: say whether a fresh index exists, without building.
 */
import { promises as fsp } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { CuemuxError, fromSystemError, isCuemuxError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { removeDeadTemps } from '../common/atomic-file';
import { ownerAlive, type LockOwner } from '../common/file-lock';
import { libavformatVersion } from '../ffmpeg/native';
import { acquireBuildLock, type BuildLock } from './build-lock';
import { fingerprint, staleReason } from './fingerprint';
import { parseIndex, parseIndexUnverified, type ParsedIndex, type SourceIdentity } from './idx-format';
import { buildIndexBytes, type BuildProgress } from './index-builder';
import { loadIndexFile, maxIndexBytes, publishIndexFile } from './index-file';
import { defaultCacheDir, dirWritable, indexLocations } from './index-location';
import { MediaIndex } from './media-index';

const log = getLogger('index-store');

/** Options for {@link openIndex} and {@link checkIndex}. */
export interface OpenIndexOptions {
  /** Where indexes of media in read-only folders go (default {@link defaultCacheDir}: $CUEMUX_CACHE_DIR or XDG cache). */
  cacheDir?: string;
  /** Build when there is no fresh index (default true). With false, INDEX_MISSING / INDEX_STALE / INDEX_CORRUPT. */
  build?: boolean;
  /** Rebuild even when a fresh index exists (default false). */
  force?: boolean;
  /** How long to wait for another process's build, in ms (default 300000). */
  lockTimeoutMs?: number;
  /** Build progress. */
  onProgress?: (p: BuildProgress) => void;
  /** Called when another process is building this index and we wait for it. */
  onWait?: (owner: LockOwner | null) => void;
  /** Abort a wait or a build. */
  signal?: AbortSignal;
  /**
   * The media, already open (by the server, beneath its media root): its fingerprint and every byte the build reads
   * come from this handle, never from the path (which only locates the index files and names the media). Left open.
   */
  file?: FileHandle;
  /**
   * The media's folder, as a path that reaches that very folder (the server's `/proc/self/fd/N` of the folder it
   * opened with the media): the index beside the media, its lock and its temporary files are read and written
   * through it, never through the media's path (whose folders may have been swapped for links since). Messages and
   * the index path reported name the folder by its real path.
   */
  folder?: string;
}

/** Freshness of an index, as `cuemux index check` reports it. */
export type IndexState = 'fresh' | 'stale' | 'missing' | 'corrupt';

/** Result of {@link checkIndex}. */
export interface IndexCheck {
  /** Absolute media path. */
  media: string;
  /** The verdict. */
  state: IndexState;
  /** The index file examined (the fresh one, else the first found, else where it would be built). */
  indexPath: string;
  /** Why it is not fresh (null when fresh). */
  reason: string | null;
}

type Found =
  | { state: 'fresh'; file: string; parsed: ParsedIndex }
  | { state: 'stale' | 'corrupt'; file: string; reason: string }
  | { state: 'missing'; file: null; reason: string };

function lavfCode(): number {
  const v = libavformatVersion();
  return (v.major << 16) | (v.minor << 8) | v.micro;
}

async function statMedia(abs: string, file?: FileHandle): Promise<void> {
  const st = await (file?.stat() ?? fsp.stat(abs)).catch((e: unknown) => { throw fromSystemError(e, abs, 'open media'); });
  if (st.isDirectory()) throw new CuemuxError('INVALID_ARGUMENT', `${abs}: is a directory, a media file is needed`, { path: abs, operation: 'open media' });
  if (!st.isFile()) throw new CuemuxError('NOT_MEDIA', `${abs}: not a regular file`, { path: abs, operation: 'open media' });
}

/**
 * Look for a fresh index in both locations; report the most useful reason when there is none. An index file is
 * hostile input: anything but a regular file, or larger than any index of a media file of this size can be, is
 * refused before it is read (corrupt, so it is rebuilt), and it is read off the event loop.
 */
async function findFresh(candidates: string[], identity: SourceIdentity): Promise<Found> {
  let worst: Found = { state: 'missing', file: null, reason: 'no index has been built' };
  for (const file of candidates) {
    let parsed: ParsedIndex;
    try {
      parsed = await loadIndexFile(file, maxIndexBytes(identity.size));
    } catch (e) {
      if (isCuemuxError(e, 'NOT_FOUND')) continue;
      if (isCuemuxError(e, 'INDEX_CORRUPT', 'INDEX_STALE', 'PERMISSION_DENIED')) {
        const state = isCuemuxError(e, 'INDEX_STALE') ? 'stale' : 'corrupt';
        if (worst.state === 'missing' || state === 'corrupt') worst = { state, file, reason: e.message };
        continue;
      }
      throw e;
    }
    const why = parsed.params === null
      ? 'built by an earlier cuemux, without codec parameters'
      : parsed.lavfVersion !== lavfCode()
      ? `built with libavformat ${parsed.lavfVersion >>> 16}.${(parsed.lavfVersion >>> 8) & 0xff}, this is ${lavfCode() >>> 16}.${(lavfCode() >>> 8) & 0xff}`
      : staleReason(parsed.identity, identity);
    if (why === null) return { state: 'fresh', file, parsed };
    if (worst.state === 'missing') worst = { state: 'stale', file, reason: why };
  }
  return worst;
}

/** Say whether `media` has a fresh index, without building one. Errors only for the media itself (NOT_FOUND...). */
export async function checkIndex(media: string, options: Pick<OpenIndexOptions, 'cacheDir'> = {}): Promise<IndexCheck> {
  const abs = path.resolve(media);
  await statMedia(abs);
  const locs = indexLocations(abs, options.cacheDir ?? defaultCacheDir());
  const found = await findFresh([locs.beside, locs.cache], await fingerprint(abs));
  return {
    media: abs,
    state: found.state,
    indexPath: found.file ?? locs.beside,
    reason: found.state === 'fresh' ? null : found.reason,
  };
}

/** `bytes` in a buffer of its own at offset 0 (parseIndex views 8-byte tables in place). */
function aligned(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes.length);
  out.set(bytes);
  return out;
}

/**
 * Publish a built index at `target`, else in the cache folder; returns the file and the index parsed from it (and
 * verified), or null when neither could be written (a warning says where it failed and why).
 */
async function publishBuilt(abs: string, target: string, cacheTarget: string, cacheDir: string, bytes: Uint8Array,
  shown: (s: string) => string): Promise<{ file: string; parsed: ParsedIndex } | null> {
  const tried: string[] = [];
  for (const file of target === cacheTarget ? [target] : [target, cacheTarget]) {
    try {
      if (file === cacheTarget) await fsp.mkdir(cacheDir, { recursive: true });
      await publishIndexFile(file, bytes);
      if (tried.length > 0) log.warn(`${abs}: index written to the cache folder instead (${shown(tried.join('; '))})`, { media: abs, index: file });
      // Parsed from the bytes just encoded, not read back: a read-back comes from the page cache (it proves nothing
      // about the disk), and the check of every entry guards against hostile files, which these bytes are not.
      // Reading back and checking cost 17 ms of a 310 ms CLI build of a 60 s 1080p MP4 and 30 ms of 810 ms on a
      // 20-minute MKV (86k packets).
      return { file, parsed: parseIndexUnverified(aligned(bytes), file) };
    } catch (e) {
      const why = errorMessage(e);
      tried.push(why.startsWith(file) ? why : `${file}: ${why}`);
    }
  }
  log.warn(`${abs}: the index could not be written (${shown(tried.join('; '))}): serving the index built in memory; it will be built again on the next start`,
    { media: abs, index: shown(target) });
  return null;
}

const inflight = new Map<string, Promise<MediaIndex>>();

/**
 * Load the index of `media`, building it first when it is missing, stale or corrupt (unless `build: false`).
 * Concurrent calls in this process share one promise; across processes one builds and the others wait
 * (bounded by `lockTimeoutMs`) and then load its result.
 */
export function openIndex(media: string, options: OpenIndexOptions = {}): Promise<MediaIndex> {
  const abs = path.resolve(media);
  // Share only between calls that ask the same thing; a caller with its own abort signal (or its own open file)
  // waits on its own.
  if (options.force || options.signal || options.file) return openUncached(abs, options);
  const key = JSON.stringify([abs, options.cacheDir ?? defaultCacheDir(), options.build !== false, options.lockTimeoutMs ?? null]);
  const pending = inflight.get(key);
  if (pending) return pending;
  const p = openUncached(abs, options).finally(() => inflight.delete(key));
  inflight.set(key, p);
  return p;
}

async function openUncached(abs: string, options: OpenIndexOptions): Promise<MediaIndex> {
  const folder = options.folder;
  if (folder === undefined) return openIn(abs, options, (s) => s);
  // Paths through `folder` are shown as paths in the media's folder.
  const shown = (s: string): string => s.split(`${folder}/`).join(`${path.dirname(abs)}/`);
  try {
    return await openIn(abs, options, shown);
  } catch (e) {
    if (e instanceof Error) e.message = shown(e.message);
    throw e;
  }
}

async function openIn(abs: string, options: OpenIndexOptions, shown: (s: string) => string): Promise<MediaIndex> {
  const file = options.file;
  await statMedia(abs, file);
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const locs = indexLocations(abs, cacheDir);
  if (options.folder !== undefined) locs.beside = path.join(options.folder, `${path.basename(abs)}.idx`);
  const candidates = [locs.beside, locs.cache];
  const identity = await fingerprint(file ?? abs, abs);
  if (!options.force) {
    const found = await findFresh(candidates, identity);
    if (found.state === 'fresh') return new MediaIndex(found.parsed, abs, shown(found.file), 'loaded');
    if (options.build === false) {
      const code = found.state === 'missing' ? 'INDEX_MISSING' : found.state === 'stale' ? 'INDEX_STALE' : 'INDEX_CORRUPT';
      throw new CuemuxError(code, `${abs}: ${found.reason}; run \`cuemux index build ${abs}\``, { path: abs, operation: 'index open' });
    }
    if (found.state === 'corrupt') log.warn(`rebuilding index: ${shown(found.reason)}`, { media: abs, index: shown(found.file) });
    else if (found.state === 'stale') log.info(`rebuilding index: ${shown(found.reason)}`, { media: abs, index: shown(found.file) });
  }

  const useCache = async (): Promise<string> => {
    await fsp.mkdir(cacheDir, { recursive: true }).catch((e: unknown) => { throw fromSystemError(e, cacheDir, 'create cache directory'); });
    return locs.cache;
  };
  let target = (await dirWritable(options.folder ?? path.dirname(abs))) ? locs.beside : await useCache();
  const lockOptions = { timeoutMs: options.lockTimeoutMs, onWait: options.onWait, signal: options.signal, subject: abs };
  let lock: BuildLock | null = null;
  try {
    lock = await acquireBuildLock(`${target}.lock`, lockOptions);
  } catch (e) {
    // access(W_OK) can say yes where creating files fails (NFS root_squash, ACLs, read-only bind mounts), and a
    // full disk (ENOSPC: RESOURCE_EXHAUSTED) takes no lock file either.
    if (!isCuemuxError(e, 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED')) throw e;
    let why = errorMessage(e);
    if (target !== locs.cache) {
      log.info('media folder refused the index: using the cache folder', { media: abs, reason: shown(why) });
      try {
        target = await useCache();
        lock = await acquireBuildLock(`${target}.lock`, lockOptions);
      } catch (e2) {
        if (!isCuemuxError(e2, 'RESOURCE_EXHAUSTED')) throw e2;
        why = e2.message;
      }
    } else if (!isCuemuxError(e, 'RESOURCE_EXHAUSTED')) {
      throw e;
    }
    // No room anywhere for even a lock file: built without one (another process may build it too), served from memory.
    if (lock === null) log.warn(`${abs}: no room for the index build lock (${shown(why)}): building without it`, { media: abs });
  }
  try {
    if (lock !== null && (lock.waited || !options.force)) {
      // Someone may have finished a build while we waited for (or raced to) the lock.
      const found = await findFresh(candidates, lock.waited ? await fingerprint(file ?? abs, abs) : identity);
      if (found.state === 'fresh' && !(options.force && !lock.waited)) {
        return new MediaIndex(found.parsed, abs, shown(found.file), lock.waited ? 'waited' : 'loaded');
      }
    }
    await removeDeadTemps(target, (pid) => ownerAlive({ pid, host: os.hostname(), startTicks: 0, since: '' }));
    const started = process.hrtime.bigint();
    const built = await buildIndexBytes(abs, { onProgress: options.onProgress, signal: options.signal, identity: lock?.waited === true ? undefined : identity, file });
    // The built index is served whatever happens to its file: a full disk (ENOSPC), a quota, a read-only remount, a
    // folder in the way. The cache folder is tried next; failing that, it is kept in memory only (and built again
    // by the next process that opens the media), and the warning says so.
    const published = await publishBuilt(abs, target, locs.cache, cacheDir, built.bytes, shown);
    const parsed = published?.parsed ?? parseIndex(aligned(built.bytes), shown(target));
    log.info('index built', {
      media: abs, index: published === null ? null : shown(published.file), packets: built.packets, bytes: built.bytes.length,
      ms: Number(process.hrtime.bigint() - started) / 1e6,
    });
    return new MediaIndex(parsed, abs, shown(published?.file ?? target), published === null ? 'memory' : 'built');
  } finally {
    await lock?.release();
  }
}
