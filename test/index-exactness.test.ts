/**
 * FFmpeg is the reference: every index entry equals `ffprobe -show_packets`, and the lookups agree with a brute-force
 * search over ffprobe's packet list, on a corpus of real containers (MP4/B-frames, MOV ProRes, MKV VP9/Opus, MPEG-TS,
 * WAV, FLAC, MP3, VFR MP4, audio-only, video-only).
 */
import assert from 'node:assert/strict';
import { assertPayloadsAtPositions, ffprobePackets, ffprobeStreams, type ProbePacket, type ProbeStream } from './support/ffmpeg-reference';
import { skipBecause } from './support/check';
import { CORPUS_NAMES, ensureCorpus, makeMedia } from './support/media';
import { runCli } from './support/cli';
import { copyInto, scratchDir } from './support/tmp';
import { openIndex } from '../src/index-store/open-index';
import type { MediaIndex } from '../src/index-store/media-index';

interface DumpRow { stream: number; pts: number | null; dts: number | null; duration: number | null; pos: number | null; size: number; key: boolean }

function reference(p: ProbePacket): DumpRow {
  return { stream: p.stream, pts: p.pts, dts: p.dts, duration: p.duration, pos: p.pos, size: p.size, key: p.key };
}

/** Deterministic pseudo-random numbers (xorshift), so a failure can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

/**
 * Containers beyond the corpus that exercise rarer paths: no pts or dts at all (raw H.264), AVI with B-frames
 * (pts missing on some packets), ADTS AAC, six streams (the stream-index escape in the entry coding).
 */
const EDGE: Record<string, { file: string; args: string[] }> = {
  'h264-raw': { file: 'edge-raw.h264', args: ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-t', '3', '-c:v', 'libx264', '-bf', '2', '-g', '25', '-pix_fmt', 'yuv420p', '-f', 'h264'] },
  'avi-bframes': { file: 'edge-bframes.avi', args: ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25', '-f', 'lavfi', '-i', 'sine', '-t', '3', '-c:v', 'mpeg4', '-bf', '2', '-c:a', 'libmp3lame'] },
  'aac-adts': { file: 'edge-adts.aac', args: ['-f', 'lavfi', '-i', 'sine', '-t', '3', '-c:a', 'aac'] },
  'mkv-six-streams': { file: 'edge-six.mkv', args: ['-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25',
    ...[200, 300, 400, 500, 600].flatMap((f) => ['-f', 'lavfi', '-i', `sine=f=${f}`]), '-t', '3',
    ...[0, 1, 2, 3, 4, 5].flatMap((i) => ['-map', String(i)]), '-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-c:a', 'libopus'] },
};

const NAMES: string[] = [...CORPUS_NAMES, ...Object.keys(EDGE)];

describe('index exactness against FFmpeg', function () {
  const media: Record<string, string> = {};
  let cacheDir: string;
  const probes = new Map<string, ProbePacket[]>();
  const streamProbes = new Map<string, ProbeStream[]>();

  before(async function () {
    this.timeout(10 * 60_000);
    const corpus: Record<string, string> = await ensureCorpus();
    for (const [name, e] of Object.entries(EDGE)) corpus[name] = await makeMedia(e.file, e.args);
    const dir = await scratchDir('exact');
    cacheDir = await scratchDir('exact-cache');
    for (const name of NAMES) {
      media[name] = await copyInto(corpus[name], dir, `${name}${corpus[name].slice(corpus[name].lastIndexOf('.'))}`);
      probes.set(name, await ffprobePackets(media[name]));
      streamProbes.set(name, await ffprobeStreams(media[name]));
    }
  });

  it('the edge files really exercise their paths', function () {
    assert.ok((probes.get('h264-raw') ?? []).every((p) => p.pts === null && p.dts === null), 'raw H.264: no timestamps');
    assert.ok((probes.get('avi-bframes') ?? []).some((p) => p.pts === null), 'AVI: some packets without pts');
    assert.equal(new Set((probes.get('mkv-six-streams') ?? []).map((p) => p.stream)).size, 6);
  });

  for (const name of NAMES) {
    describe(name, function () {
      let idx: MediaIndex;
      before(async function () {
        idx = await openIndex(media[name], { cacheDir });
      });

      it('`cuemux index dump` prints exactly ffprobe -show_packets, and nothing else on stdout', async function () {
        const r = await runCli(['index', 'dump', media[name]], { env: { CUEMUX_CACHE_DIR: cacheDir } });
        assert.equal(r.code, 0, r.stderr);
        const lines = r.stdout.split('\n').filter((l) => l !== '');
        const rows = lines.map((l) => JSON.parse(l) as DumpRow);
        for (const row of rows) assert.deepEqual(Object.keys(row), ['stream', 'pts', 'dts', 'duration', 'pos', 'size', 'key']);
        const expected = (probes.get(name) ?? []).map(reference);
        assert.ok(expected.length > 0);
        assert.deepEqual(rows, expected);
      });

      it('a server reads packets straight from the file only where every packet\'s bytes there are FFmpeg\'s', async function () {
        const params = idx.params;
        assert.ok(params);
        // Which containers are read directly (see index-builder.ts): MPEG-TS never is; the rest here are.
        assert.equal(params.directReadable, name !== 'ts-h264-mp2', 'serving mode');
        if (!params.directReadable) return;
        await assertPayloadsAtPositions(media[name], idx.entries(), params.dataOffsets, name);
      });

      it('entries keep "no value" distinct from 0 and flags as FFmpeg reports them', function () {
        const expected = probes.get(name) ?? [];
        const got = [...idx.entries()];
        assert.equal(got.length, expected.length);
        got.forEach((e, i) => {
          assert.equal(e.index, i);
          assert.equal(e.discard, expected[i].discard, `discard flag of packet ${i}`);
        });
      });

      it('keyframeAtOrBefore equals a brute-force search of ffprobe packets at random times', function () {
        const expected = probes.get(name) ?? [];
        const rand = rng(0xc0ffee + name.length);
        for (const st of idx.streams) {
          const mine = expected.map((p, i) => ({ ...p, i })).filter((p) => p.stream === st.index);
          const keyed = mine.filter((p) => p.key && (p.pts ?? p.dts) !== null);
          if (keyed.length === 0) {
            assert.equal(idx.keyframeAtOrBefore(st.index, 0), null, 'no timestamped keyframe: nothing to find');
            continue;
          }
          const times = mine.map((p) => p.pts ?? p.dts).filter((t): t is number => t !== null);
          const lo = Math.min(...times) - 10;
          const hi = Math.max(...times) + 10;
          for (let k = 0; k < 200; k++) {
            const t = Math.floor(lo + rand() * (hi - lo));
            let best: { i: number; t: number } | null = null;
            for (const p of keyed) {
              const pt = (p.pts ?? p.dts) as number;
              if (pt <= t && (best === null || pt > best.t || (pt === best.t && p.i < best.i))) best = { i: p.i, t: pt };
            }
            const got = idx.keyframeAtOrBefore(st.index, t);
            assert.deepEqual(got === null ? null : { i: got.entry, t: got.pts }, best, `stream ${st.index} at ${t}`);
          }
          // Exactly at every keyframe time, too.
          for (const p of keyed.slice(0, 50)) {
            assert.equal(idx.keyframeAtOrBefore(st.index, (p.pts ?? p.dts) as number)?.pts, p.pts ?? p.dts);
          }
        }
      });

      it('frame number <-> pts follows presentation order of the video packets', function () {
        for (const st of idx.streams.filter((s) => s.codecType === 'video')) {
          const pts = (probes.get(name) ?? []).filter((p) => p.stream === st.index && p.pts !== null && !p.discard)
            .map((p) => p.pts as number).sort((a, b) => a - b);
          assert.equal(idx.frameCount(st.index), pts.length);
          pts.forEach((t, n) => {
            assert.equal(idx.frameToPts(st.index, n), t);
            assert.equal(idx.ptsToFrame(st.index, t), n);
          });
          assert.equal(idx.ptsToFrame(st.index, pts[0] - 1), -1);
          if (pts.length > 1) assert.equal(idx.ptsToFrame(st.index, pts[1] - 1), 0);
        }
      });

      it('packetsInRange starts each stream at its keyframe at or before t0 and ends before t1, in file order', function () {
        const all = probes.get(name) ?? [];
        if (all.every((p) => p.pts === null && p.dts === null)) skipBecause(this, `${name}: no packet has a timestamp, so there is no time range`);
        const rand = rng(42 + name.length);
        // The reference is ffprobe's packets and time bases alone. Times are whole multiples of 1/1024 s, so
        // "tick T of time base num/den is before t = q/1024 s" is exact in integers: T * num * 1024 < q * den.
        const tb = new Map((streamProbes.get(name) ?? []).map((st) => [st.index, st.timeBase]));
        const base = (stream: number): { num: bigint; den: bigint } => {
          const b = tb.get(stream);
          assert.ok(b !== undefined, `ffprobe lists no stream ${stream}`);
          return { num: BigInt(b.num), den: BigInt(b.den) };
        };
        const atOrBefore = (stream: number, ticks: number, q: number): boolean => {
          const b = base(stream);
          return BigInt(ticks) * b.num * 1024n <= BigInt(q) * b.den;
        };
        const timed = all.filter((p) => (p.pts ?? p.dts) !== null);
        const q1024 = timed.map((p) => (((p.pts ?? p.dts) as number) * Number(base(p.stream).num) * 1024) / Number(base(p.stream).den));
        const lo = Math.floor(Math.min(...q1024));
        const hi = Math.ceil(Math.max(...q1024));
        for (let k = 0; k < 20; k++) {
          const q0 = lo + Math.floor(rand() * (hi - lo));
          const q1 = q0 + 205 + Math.floor(rand() * 820);
          const t0 = q0 / 1024;
          const t1 = q1 / 1024;
          const got = [...idx.packetsInRange([], t0, t1)];
          const indices = got.map((e) => e.index);
          assert.deepEqual(indices, [...indices].sort((a, b) => a - b), 'file order');
          for (const st of idx.streams) {
            const mine = got.filter((e) => e.stream === st.index).map((e) => e.index);
            const ofStream = all.map((p, i) => ({ p, i })).filter(({ p }) => p.stream === st.index);
            // Its last keyframe (by pts, else dts; the first of equal times) at or before t0, else its first packet.
            let start = ofStream.length > 0 ? ofStream[0].i : -1;
            let best: number | null = null;
            for (const { p, i } of ofStream) {
              const t = p.pts ?? p.dts;
              if (!p.key || t === null || !atOrBefore(st.index, t, q0)) continue;
              if (best === null || t > best) {
                best = t;
                start = i;
              }
            }
            // [t0, t1): a packet ends the stream's run once its decode time (dts, else pts) is not before t1.
            const after = ofStream.filter(({ i }) => i >= start);
            const stop = after.findIndex(({ p }) => {
              const t = p.dts ?? p.pts;
              return t !== null && !(BigInt(t) * base(st.index).num * 1024n < BigInt(q1) * base(st.index).den);
            });
            const want = (stop < 0 ? after : after.slice(0, stop)).map(({ i }) => i);
            assert.deepEqual(mine, want, `stream ${st.index} [${t0}, ${t1})`);
          }
        }
      });

      it('packetsInRangeSteps: the same packets, with a null after every N entries scanned without one', function () {
        for (const st of idx.streams) {
          const step = 3;
          const steps = [...idx.packetsInRangeSteps([st.index], -1e9, undefined, step)];
          const found = steps.filter((e) => e !== null);
          assert.deepEqual(found, [...idx.packetsInRange([st.index], -1e9)]);
          // Between two packets of the stream d entries apart, the scan paused floor(d / step) times.
          let last: number | null = null;
          let nulls = 0;
          for (const e of steps) {
            if (e === null) {
              nulls++;
              continue;
            }
            if (last !== null) assert.equal(nulls, Math.floor((e.index - last) / step), `stream ${st.index}, entries ${last}..${e.index}`);
            last = e.index;
            nulls = 0;
          }
        }
      });
    });
  }

  it('`dump --format csv --stream N` prints the header and one row per packet of that stream', async function () {
    const r = await runCli(['index', 'dump', media['mp4-h264-aac'], '--format', 'csv', '--stream', '1'], { env: { CUEMUX_CACHE_DIR: cacheDir } });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'stream,pts,dts,duration,pos,size,key');
    const expected = (probes.get('mp4-h264-aac') ?? []).filter((p) => p.stream === 1);
    assert.equal(lines.length - 1, expected.length);
    const n = (v: number | null): string => (v === null ? '' : String(v));
    expected.forEach((p, i) => assert.equal(lines[i + 1], `1,${n(p.pts)},${n(p.dts)},${n(p.duration)},${n(p.pos)},${p.size},${p.key}`));
  });

  it('stays within 16 bytes per packet on every corpus file', async function () {
    for (const name of NAMES) {
      const idx = await openIndex(media[name], { cacheDir });
      // Small files carry a fixed header and stream table; judge the per-packet part on files with enough packets.
      if (idx.packetCount < 100) continue;
      assert.ok(idx.byteLength / idx.packetCount <= 16, `${name}: ${idx.byteLength} bytes for ${idx.packetCount} packets`);
    }
  });
});
