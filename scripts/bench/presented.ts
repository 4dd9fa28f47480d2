/**
 * What the players presented, as their outputs recorded it: a hash sink's log of every presented picture (joined
 * with the sync log for the tick's display instant) and the samples an audio sink wrote to a WAV file.
 */
import { promises as fsp } from 'node:fs';
import { readSyncLog, type SyncRecord } from '../../src/players/sync-log';

/** One presented video tick. */
export interface Tick {
  /** Presentation instant (CLOCK_MONOTONIC ns). */
  mono: bigint;
  /** The tick's display instant (mono − late_ns from the sync log; mono when unknown). */
  due: bigint;
  md5: string | null;
  /** The player's own clock for the tick (cross-checked, not used for judging). */
  clock: number;
  /** The player's sync-log fields for the tick (diagnostics only). */
  extra: SyncRecord['extra'] | null;
}

/** A video player's ticks: its hash sink joined with its sync log by instant. */
export async function readTicks(hashFile: string, syncFile: string | null): Promise<Tick[]> {
  const hashes = await readSyncLog(hashFile);
  const sync = new Map<bigint, SyncRecord>();
  if (syncFile !== null) for (const r of await readSyncLog(syncFile)) sync.set(r.monoNs, r);
  return hashes.map((h) => {
    const s = sync.get(h.monoNs) ?? null;
    const late = s !== null && typeof s.extra.late_ns === 'number' ? BigInt(Math.round(s.extra.late_ns)) : 0n;
    return { mono: h.monoNs, due: h.monoNs - late, md5: typeof h.extra.md5 === 'string' ? h.extra.md5 : null, clock: h.clockSeconds, extra: s?.extra ?? null };
  });
}

/** The samples of a float WAV file (the wav sink's; the data chunk found by name, cut to what was written). */
export async function wavSamples(file: string): Promise<Float32Array> {
  const b = await fsp.readFile(file);
  let at = 12;
  while (at + 8 <= b.length) {
    const id = b.toString('ascii', at, at + 4);
    const size = b.readUInt32LE(at + 4);
    if (id === 'data') {
      const n = Math.floor(Math.min(size === 0 ? Infinity : size, b.length - at - 8) / 4);
      const copy = new Uint8Array(n * 4);
      copy.set(b.subarray(at + 8, at + 8 + n * 4));
      return new Float32Array(copy.buffer);
    }
    at += 8 + size + (size & 1);
  }
  throw new Error(`${file}: no data chunk`);
}
