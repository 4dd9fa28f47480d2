/**
 * FFmpeg's packets of a file, the reference bench:progressive judges the packets it received against: where each
 * packet is (`ffprobe -show_packets`) and the MD5 of each packet's bytes (`ffmpeg -c copy -f framemd5`). Only the
 * columns the bench compares are read (the full parsers are the tests' own, test/support/ffmpeg-reference.ts, which a
 * benchmark may not import).
 */
import { execFile } from 'node:child_process';

/** One packet as ffprobe lists it (file order). Times in the stream's time base; null where ffprobe prints N/A. */
export interface RefPacket {
  /** Stream index. */
  stream: number;
  /** Presentation time, ticks. */
  pts: number | null;
  /** Presentation time, seconds (ffprobe's pts_time). */
  ptsSeconds: number | null;
  /** Byte offset in the file. */
  pos: number | null;
  /** Bytes. */
  size: number;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { maxBuffer: 1 << 30 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

const orNull = (v: string | undefined): number | null => (v === undefined || v === '' || v === 'N/A' ? null : Number(v));

/** Every packet of `file` in file order, from `ffprobe -show_entries packet=stream_index,pts,pts_time,pos,size -of csv`. */
export async function probePackets(file: string): Promise<RefPacket[]> {
  const out = await run('ffprobe', ['-v', 'error', '-show_entries', 'packet=stream_index,pts,pts_time,pos,size', '-of', 'csv=p=0:nk=0', file]);
  return out.split('\n').filter((l) => l !== '').map((line) => {
    const f = new Map(line.split(',').map((kv) => kv.split('=') as [string, string]));
    return { stream: Number(f.get('stream_index')), pts: orNull(f.get('pts')), ptsSeconds: orNull(f.get('pts_time')), pos: orNull(f.get('pos')), size: Number(f.get('size')) };
  });
}

/**
 * The MD5 of every packet's bytes of `file`, per stream in stream order (framemd5 interleaves its lines by dts, not
 * in file order, so packets are compared stream by stream). `-copyinkf` keeps packets before a stream's first
 * keyframe; `-copyts` keeps the demuxer's timestamps.
 */
export async function packetMd5s(file: string): Promise<Map<number, string[]>> {
  const out = await run('ffmpeg', ['-v', 'error', '-nostdin', '-copyts', '-i', file, '-map', '0', '-c', 'copy', '-copyinkf', '-f', 'framemd5', '-']);
  const byStream = new Map<number, string[]>();
  for (const line of out.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cols = line.split(',').map((c) => c.trim());
    const s = Number(cols[0]);
    const list = byStream.get(s) ?? [];
    list.push(cols[5]);
    byStream.set(s, list);
  }
  return byStream;
}
