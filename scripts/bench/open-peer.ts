/**
 * The peer of the "first packet" figures: a player that opens the file itself with FFmpeg (in-process beamcoder),
 * seeks to the in-point and reads the first video packet, in a process of its own as a player is (its FFmpeg
 * allocations and collections land on no other process). Each round is prepared as the figure it is set against:
 * - `cold`: the file's pages dropped from the page cache first (not timed), then open + seek + first packet timed,
 *   the peer of a file not yet open;
 * - `pre-opened`: the file opened before (not timed), then seek + first packet timed, the peer of an armed cue.
 *
 * Run as a script: `node open-peer.js <rounds JSON>`; prints the times (ms) as a JSON array.
 */
import { monoNs } from '../../src/common/time-source';
import { openDemuxer } from '../../src/ffmpeg/demuxer';
import type { Demuxer } from '../../src/ffmpeg/types';
import { runBench } from './harness';
import { dropPageCache } from './page-cache';
import { runNodeJson } from './procs';

/** One timed round: `file` at `at` seconds, prepared as `prep`. */
export interface OpenRound {
  file: string;
  at: number;
  prep: 'cold' | 'pre-opened';
}

/** What the peer does, in one line (printed by the benchmarks beside its figures). */
export function openPeerLine(prep: OpenRound['prep']): string {
  return prep === 'cold'
    ? 'a player process opening the file itself with FFmpeg (beamcoder open + seek + first video packet), its page cache dropped first (posix_fadvise DONTNEED), as the server\'s'
    : 'a player process that opened the file with FFmpeg before the GO (not timed) and at the GO seeks + reads the first video packet (beamcoder), page cache warm as the server\'s';
}

async function seekAndRead(d: Demuxer, at: number): Promise<void> {
  const v = d.info.streams.find((s) => s.codecType === 'video');
  if (v === undefined) throw new Error('no video');
  await d.seek(v.index, Math.floor((at * v.timeBase.den) / v.timeBase.num));
  for (let p = await d.readPacket(); p !== null; p = await d.readPacket()) if (p.stream === v.index) break;
}

async function round(r: OpenRound): Promise<number> {
  if (r.prep === 'cold') {
    dropPageCache([r.file]);
    const t = monoNs();
    const d = await openDemuxer(r.file);
    try {
      await seekAndRead(d, r.at);
      return Number(monoNs() - t) / 1e6;
    } finally {
      await d.close();
    }
  }
  const d = await openDemuxer(r.file);
  try {
    const t = monoNs();
    await seekAndRead(d, r.at);
    return Number(monoNs() - t) / 1e6;
  } finally {
    await d.close();
  }
}

async function peerProcess(rounds: OpenRound[]): Promise<void> {
  // Warm FFmpeg's libraries and the JIT once, not timed (a cold round drops its file's pages again before it).
  await round({ ...rounds[0], prep: 'pre-opened' });
  const ms: number[] = [];
  for (const r of rounds) ms.push(await round(r));
  process.stdout.write(JSON.stringify(ms));
}

/** Run the peer process on `rounds` and resolve with its times (ms), in order. */
export function runOpenPeer(rounds: OpenRound[]): Promise<number[]> {
  return runNodeJson<number[]>([__filename, JSON.stringify(rounds)]);
}

if (require.main === module) runBench('open peer', () => peerProcess(JSON.parse(process.argv[2]) as OpenRound[]));
