/**
 * `cuemux index build --follow FILE`: index a file that is still being written (copied, rendered) as it grows, until
 * it is complete; and the growth line of `cuemux index info`.
 */
import { CuemuxError, isCuemuxError } from '../common/errors';
import { DEFAULT_GROWING_WAIT_MS, GrowingIndex, watchGrowth } from '../index-store/growing-index';
import type { MediaIndex } from '../index-store/media-index';
import { openIndex } from '../index-store/open-index';
import type { CliIo } from './cli-io';
import { ExitCode, exitCodeFor, type ExitCodeValue } from './exit-codes';

/** Options of {@link followBuild}. */
export interface FollowOptions {
  /** Index cache folder (see OpenIndexOptions.cacheDir). */
  cacheDir?: string;
  /** The file is complete once it has not changed for this long, in ms (default DEFAULT_GROWING_WAIT_MS). */
  waitMs?: number;
  /** One JSON report on stdout instead of lines. */
  json: boolean;
}

/** Least time between two progress lines, in ms. */
const PROGRESS_MS = 1000;

/** The fresh index of `media`, or null when it has none (missing, stale or corrupt). */
export async function freshIndex(media: string, cacheDir?: string): Promise<MediaIndex | null> {
  return openIndex(media, { cacheDir, build: false })
    .catch((e: unknown) => { if (isCuemuxError(e, 'INDEX_MISSING', 'INDEX_STALE', 'INDEX_CORRUPT')) return null; throw e; });
}

/**
 * Follow `media` until it is complete, printing progress; resolves to the exit code (0 once its index is final and
 * written). Ctrl-C (SIGINT) stops it with nothing written (the final index is only ever published whole: a temporary
 * file renamed into place). An MP4 that is not playable until complete is waited for, then indexed.
 */
export async function followBuild(io: CliIo, media: string, options: FollowOptions): Promise<ExitCodeValue> {
  const waitMs = options.waitMs ?? DEFAULT_GROWING_WAIT_MS;
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  const say = (line: string): void => { if (!options.json) io.err(`${line}\n`); };
  const started = process.hrtime.bigint();
  try {
    let idx = await freshIndex(media, options.cacheDir);
    let grew = false;
    while (idx === null && !stop.signal.aborted && await watchGrowth(media, waitMs, stop.signal)) {
      grew = true;
      let growth: GrowingIndex;
      try {
        growth = await GrowingIndex.start(media, { cacheDir: options.cacheDir, waitMs, signal: stop.signal, onProgress: progress(say) });
      } catch (e) {
        if (!isCuemuxError(e, 'WRONG_STATE') || e.details.growth !== 'not-playable') throw e;
        say(`waiting  ${e.message}`);
        // Not playable until complete: wait for the file to be still, then index it whole.
        while (!stop.signal.aborted && await watchGrowth(media, waitMs, stop.signal)) await new Promise((r) => setTimeout(r, 100));
        break;
      }
      say(`growing  ${media}  indexing as it is written; complete once unchanged for ${waitMs} ms`);
      const aborted = new Promise<never>((_, reject) => stop.signal.addEventListener('abort', () => reject(new CuemuxError('CLOSED', `${media}: stopped`)), { once: true }));
      idx = await Promise.race([growth.done, aborted]);
    }
    if (stop.signal.aborted) throw new CuemuxError('CLOSED', `${media}: stopped (Ctrl-C): no index written`, { path: media });
    idx ??= await openIndex(media, { cacheDir: options.cacheDir, signal: stop.signal });
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const exit = idx.partial ? ExitCode.DAMAGED : ExitCode.OK;
    if (options.json) {
      io.out(`${JSON.stringify({ ok: exit === ExitCode.OK, exitCode: exit, media, growth: 'complete', grew, index: idx.indexPath, packets: idx.packetCount, seconds, partial: idx.partial })}\n`);
    } else {
      io.out(`complete ${media}  ${idx.packetCount} packets${grew ? ' (followed while it grew)' : ''} in ${seconds.toFixed(2)} s -> ${idx.indexPath}\n`);
      if (idx.partial) io.out(`PARTIAL  ${media}  FFmpeg stopped at byte ${idx.partial.bytePos}: ${idx.partial.message}\n`);
    }
    return exit;
  } catch (e) {
    if (options.json) io.out(`${JSON.stringify({ ok: false, exitCode: exitCodeFor(e), media, error: { code: isCuemuxError(e) ? e.code : 'INTERNAL', message: String((e as Error).message ?? e) } })}\n`);
    else io.out(`FAILED   ${(e as Error).message ?? String(e)}\n`);
    return exitCodeFor(e);
  } finally {
    process.off('SIGINT', onSignal);
  }
}

/** A progress printer: a line at most every PROGRESS_MS while growing. */
function progress(say: (line: string) => void): (p: { media: string; packets: number; totalBytes: number; state: string }) => void {
  let last = 0;
  return (p) => {
    if (p.state === 'growing' && Date.now() - last < PROGRESS_MS) return;
    last = Date.now();
    say(`${p.state.padEnd(8)} ${p.media}  ${p.packets} packets, ${p.totalBytes} bytes written`);
  };
}

/**
 * The growth of `media` for `index info`: 'growing' when it has no fresh index and changes within `waitMs`, else
 * 'complete'.
 */
export async function growthOf(media: string, cacheDir: string | undefined, waitMs: number): Promise<'growing' | 'complete'> {
  if (await freshIndex(media, cacheDir) !== null) return 'complete';
  return (await watchGrowth(media, waitMs)) ? 'growing' : 'complete';
}
