/**
 * Exact audio starts, codec by codec: a chirp (no two stretches alike, so a sample offset anywhere shows) encoded as
 * AAC, MP3, MP2, Vorbis, Opus, AC-3, FLAC and 16/24-bit PCM, a cue started mid-file over OSC and played by the
 * in-process audio player into a WAV sink; every sample it presented is compared with FFmpeg's continuous decode of
 * the file at the same media time (`ffmpeg [DECODER CHOICE] -i FILE -map 0:a -af aresample=48000 -f f32le -`, with the
 * decoder and options the players choose for exact starts: `-c:a mp2float` for MP2, `-cons_noisegen 1` for AC-3;
 * see EXACT_START_DECODERS in src/ffmpeg/decoder.ts for why FFmpeg's defaults cannot be repeated from mid-file).
 *
 * Bit-exact for every codec but Opus, whose decoder only converges (see audioPrerollSeconds in src/ffmpeg/decoder.ts):
 * CELT predicts each band's energy from the previous frame's, and a difference halves every 20-ms frame. Measured
 * (10 in-points of this chirp): after 100 ms of decoding the first sample is off by at most 2.8e-2, after 180 ms
 * 1.8e-3, after 300 ms 2.8e-5; from ~0.6 s of decoding on every sample is FFmpeg's. So the bound for Opus is that
 * envelope, 2 · 2^(−d / 20 ms) at d seconds of decoding (d ≥ 0.1 s: the pre-roll every audio start gets) but at
 * least 2^-22 (a few float roundings), and bit-exact from audioPrerollSeconds('opus') (1 s) of decoding on: a server
 * that pre-rolls Opus by that makes it bit-exact from the in-point, and this test passes either way.
 * No timing assertions: periods a loaded machine made the player miss are skipped (xruns), every rendered one is
 * checked. The codecs play {@link AT_ONCE} at a time, each cue on an output of its own with its own player and OSC
 * peer (one after the other they took 2.4 s each, mostly the 1 s cue in real time and the GO 0.5 s ahead).
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { wavSamples } from './support/audio';
import { ffprobeStreams } from './support/ffmpeg-reference';
import { chirpAac, chirpWav, makeMedia } from './support/media';
import { OscPeer, type Reply } from './support/osc';
import { startServer, type TestServer } from './support/server';
import { firstAudioSeconds, mediaStart } from './support/show-check';
import { copyInto, scratchDir } from './support/tmp';
import { audioPrerollSeconds, BASE_AUDIO_PREROLL_SECONDS, EXACT_START_DECODERS } from '../src/ffmpeg/decoder';
import { AudioPlayer } from '../src/players/audio-player';
import { openAudioSink } from '../src/players/audio-sinks';
import { OutputFollower } from '../src/players/output-follower';
import { readSyncLog, SyncLog } from '../src/players/sync-log';
import { clockPositionAt } from '../src/clients/clock-position';

const run = promisify(execFile);

/** The chirp of test/support/media.ts: mono 48 kHz, 0.5 peak, `seconds` long. */
function chirp(seconds: number): string[] {
  return ['-f', 'lavfi', '-i', `aevalsrc=exprs=0.5*sin(2*PI*(300*t+40*t*t)):s=48000:d=${seconds}`];
}

/** A codec under test: its media and how close the player must come to FFmpeg's continuous decode. */
interface Codec {
  name: string;
  media: () => Promise<string>;
  /** Largest |player − FFmpeg| allowed on the sample `n` samples after the in-point (0: bit-exact). */
  bound: (n: number) => number;
}

const EXACT = (): number => 0;

/** Opus: the decoder's convergence after `BASE_AUDIO_PREROLL_SECONDS` of pre-roll (see the file comment). */
function opusBound(n: number): number {
  const decoded = BASE_AUDIO_PREROLL_SECONDS + n / 48000;
  // Floored at 2^-22 (4 ulps at the chirp's 0.5): the last differences are rounding's, after the energies agree.
  return decoded >= audioPrerollSeconds('opus') ? 0 : Math.max(2 * 2 ** (-decoded / 0.02), 2 ** -22);
}

const CODECS: Codec[] = [
  { name: 'AAC', media: chirpAac, bound: EXACT },
  { name: 'MP3', media: () => makeMedia('chirp-mp3-8s.mp3', [...chirp(8), '-c:a', 'libmp3lame', '-b:a', '128k']), bound: EXACT },
  { name: 'MP2', media: () => makeMedia('chirp-mp2-8s.mp2', [...chirp(8), '-c:a', 'mp2', '-b:a', '192k']), bound: EXACT },
  { name: 'Vorbis', media: () => makeMedia('chirp-vorbis-8s.ogg', [...chirp(8), '-c:a', 'libvorbis', '-q:a', '5']), bound: EXACT },
  { name: 'Opus', media: () => makeMedia('chirp-opus-8s.opus', [...chirp(8), '-c:a', 'libopus', '-b:a', '96k']), bound: opusBound },
  { name: 'AC-3', media: () => makeMedia('chirp-ac3-8s.ac3', [...chirp(8), '-c:a', 'ac3', '-b:a', '192k']), bound: EXACT },
  { name: 'FLAC', media: () => makeMedia('chirp-flac-8s.flac', [...chirp(8), '-c:a', 'flac']), bound: EXACT },
  { name: 'PCM 16', media: chirpWav, bound: EXACT },
  { name: 'PCM 24', media: () => makeMedia('chirp-pcm24-8s.wav', [...chirp(8), '-c:a', 'pcm_s24le']), bound: EXACT },
];

/**
 * FFmpeg's continuous decode of `file`'s audio as the player decodes it: with the decoder and options the players
 * choose for exact starts (EXACT_START_DECODERS: e.g. `-c:a mp2float`, `-cons_noisegen 1`), resampled to 48 kHz float
 * as the player's resampler does, interleaved.
 */
async function exactReference(file: string): Promise<Float32Array> {
  const [stream] = (await ffprobeStreams(file)).filter((s) => s.codecType === 'audio');
  const exact = EXACT_START_DECODERS[stream.codecName ?? ''];
  const before = [
    ...(exact?.decoder === undefined ? [] : ['-c:a', exact.decoder]),
    ...Object.entries(exact?.options ?? {}).flatMap(([k, v]) => [`-${k}`, v ? '1' : '0']),
  ];
  const { stdout } = await run('ffmpeg', ['-v', 'error', ...before, '-i', file, '-map', `0:${stream.index}`, '-af', 'aresample=48000', '-f', 'f32le', '-'],
    { encoding: 'buffer', maxBuffer: 1 << 30 });
  const b = Buffer.from(stdout);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

/**
 * Codecs played at the same time (each with its own player, output and OSC peer): three 1-s cues side by side are a
 * small load (decoding 1 s of audio takes milliseconds), and a period a loaded machine makes a player miss is only
 * left out of the comparison (at least 4,800 samples must still be compared).
 */
const AT_ONCE = 3;

/** The cue: mid-file, on no frame boundary of any of the codecs. */
const IN = 3.3;
const OUT = 4.3;

/** How the presented samples of a cue compare with FFmpeg's. */
interface Comparison {
  /** Samples compared. */
  compared: number;
  /** Samples not bit-identical. */
  differing: number;
  /** Largest |player − FFmpeg|. */
  maxError: number;
  /** Samples from the in-point to the last differing one + 1 (0: exact from the first sample). */
  exactAfter: number;
  /** Samples beyond the codec's bound, the first few described. */
  beyond: number;
  firstBeyond: string[];
  /** Media time (s, cue-relative to the media start) of the first sample presented. */
  firstMedia: number;
}

describe('exact audio starts: a cue started mid-file equals FFmpeg\'s continuous decode, codec by codec', function () {
  this.timeout(120_000);
  let srv: TestServer;
  let dir: string;
  const results: Array<{ codec: string } & Comparison> = [];
  /** `address` sent by `peer` (one per player: replies are told apart by their address only); its reply's data. */
  const osc = async (peer: OscPeer, address: string, args: Parameters<OscPeer['request']>[2] = []): Promise<unknown> => {
    const r: Reply = await peer.request(srv.oscPort, address, args);
    assert.equal(r.status, 'ok', `${address}: ${JSON.stringify(r)}`);
    return r.data;
  };

  before(async function () {
    srv = await startServer({ prefetchSeconds: 1 });
    dir = await scratchDir('audio-starts');
    const peer = await OscPeer.open();
    try {
      await osc(peer, '/cuemux/clock/play');
    } finally {
      peer.close();
    }
  });

  after(async function () {
    await srv.stop();
    // The figures of every codec (for a report): CUEMUX_AUDIO_STARTS_REPORT=1.
    if (process.env.CUEMUX_AUDIO_STARTS_REPORT !== undefined) process.stdout.write(`${JSON.stringify(results)}\n`);
  });

  /** Play [IN, OUT) of `file` (named `name` in the media root) and compare every presented sample with FFmpeg's. */
  async function playAndCompare(name: string, file: string, bound: (n: number) => number): Promise<Comparison> {
    await copyInto(file, srv.root, name);
    const id = name.replace(/\W/g, '_');
    // The cue's audio on an output named after it: the players of the codecs playing at the same time follow one each.
    const follower = new OutputFollower(srv.client(), { output: id, kind: 'audio', audioOutput: { sampleRate: 48000, channels: 1 } });
    const peer = await OscPeer.open();
    const wav = path.join(dir, `${id}.wav`);
    const syncFile = path.join(dir, `${id}.jsonl`);
    const sink = await openAudioSink(`wav:${wav}`, { sampleRate: 48000, channels: 1, name: 'test' });
    const log = await SyncLog.open(syncFile);
    const player = new AudioPlayer(follower, { sampleRate: 48000, channels: 1, periodFrames: 480, sinks: [sink], syncLog: log, clockAt: clockPositionAt });
    const ctl = new AbortController();
    const stopped = new Promise<void>((resolve) => follower.on('stopped', (s) => { if (s.cueId === id) resolve(); }));
    const running = follower.run(ctl.signal);
    player.start();
    let goClock = Number.NaN;
    let xruns = 0;
    try {
      await osc(peer, '/cuemux/cue/load', [{ type: 's', value: id }, { type: 's', value: JSON.stringify({ media: name, in: IN, out: OUT, outputs: { [id]: ['audio'] } }) }]);
      // GO 0.5 s ahead on the clock: the start is planned, its first packets decoded before it is due.
      const { clock } = await osc(peer, '/cuemux/status') as { clock: { positionSeconds: number } };
      goClock = clock.positionSeconds + 0.5;
      await osc(peer, '/cuemux/cue/go', [{ type: 's', value: id }, { type: 'd', value: goClock }]);
      await stopped;
      await new Promise((resolve) => setTimeout(resolve, 100));
    } finally {
      xruns = player.stats.xruns;
      player.stop();
      ctl.abort();
      await running;
      await Promise.all([sink.close(), log.close()]);
      await osc(peer, '/cuemux/cue/unload', [{ type: 's', value: id }]).catch(() => undefined);
      peer.close();
    }
    const [ref, first, start] = await Promise.all([exactReference(file), firstAudioSeconds(file), mediaStart(file)]);
    const out = await wavSamples(wav);
    const rendered = (await readSyncLog(syncFile)).filter((r) => r.extra.cue === id);
    assert.ok(rendered.length > 0, 'nothing of the cue was presented');
    const inMedia = start + IN;
    const late = Number(rendered[0].extra.media_seconds) - inMedia;
    if (xruns === 0 || Math.abs(late) < 0.5 / 48000) {
      assert.ok(Math.abs(late) < 0.5 / 48000, `the first sample presented is at media ${String(rendered[0].extra.media_seconds)} s, the in-point is ${inMedia} s`);
    } else {
      // A loaded machine held the player up past its first periods (xruns: the device played silence, and the cue
      // restarts on the sample the clock asks for): the first sample presented is then the one the in-point, placed
      // at the GO's clock position, puts at that period's clock position, to half a sample.
      const want = rendered[0].clockSeconds - goClock;
      assert.ok(Math.abs(late - want) < 0.5 / 48000,
        `after ${xruns} missed periods the first sample presented is ${late.toFixed(6)} s past the in-point, at ${want.toFixed(6)} s past the GO on the clock`);
    }
    const c: Comparison = { compared: 0, differing: 0, maxError: 0, exactAfter: 0, beyond: 0, firstBeyond: [], firstMedia: Number(rendered[0].extra.media_seconds) - start };
    const inIdx = Math.round((inMedia - first) * 48000);
    for (const r of rendered) {
      if (Number(r.extra.underrun) > 0) continue;
      const at = Number(r.extra.device_sample);
      const from = Math.round((Number(r.extra.media_seconds) - first) * 48000);
      for (let i = 0; i < Number(r.extra.samples); i++) {
        const e = Math.abs(out[at + i] - ref[from + i]);
        c.compared++;
        if (out[at + i] !== ref[from + i]) {
          c.differing++;
          c.maxError = Math.max(c.maxError, Number.isNaN(e) ? Infinity : e);
          c.exactAfter = Math.max(c.exactAfter, from + i - inIdx + 1);
          if (!(e <= bound(from + i - inIdx)) && c.beyond++ < 5) {
            c.firstBeyond.push(`sample ${from + i - inIdx} after the in-point: ${out[at + i]} != FFmpeg's ${ref[from + i]} (bound ${bound(from + i - inIdx).toExponential(2)})`);
          }
        }
      }
    }
    return c;
  }

  /**
   * Each codec's comparison, all started by the first test that asks: codec i starts once codec i − AT_ONCE is done
   * (whether it passed or not), so AT_ONCE play at a time and each test still fails on its own codec only.
   */
  let comparisons: Map<Codec, Promise<Comparison>> | undefined;
  function comparisonOf(codec: Codec): Promise<Comparison> {
    if (comparisons === undefined) {
      const started = new Map<Codec, Promise<Comparison>>();
      CODECS.forEach((c, i) => {
        const turn = i < AT_ONCE ? Promise.resolve() : started.get(CODECS[i - AT_ONCE])?.then(() => undefined, () => undefined);
        const p = (turn ?? Promise.resolve()).then(async () => {
          const file = await c.media();
          return playAndCompare(`${c.name.replace(/\W/g, '')}${path.extname(file)}`, file, c.bound);
        });
        p.catch(() => undefined); // reported by the codec's own test
        started.set(c, p);
      });
      comparisons = started;
    }
    const p = comparisons.get(codec);
    assert.ok(p !== undefined, codec.name);
    return p;
  }

  for (const codec of CODECS) {
    it(`${codec.name}: every sample from the in-point on ${codec.bound === EXACT ? 'is FFmpeg\'s' : 'is within the decoder\'s convergence bound of FFmpeg\'s'}`, async function () {
      const c = await comparisonOf(codec);
      results.push({ codec: codec.name, ...c });
      const summary = `${c.differing} of ${c.compared} samples differ, by at most ${c.maxError.toExponential(2)}, up to sample ${c.exactAfter} after the in-point`;
      assert.ok(c.compared >= 4800, `only ${c.compared} samples presented: ${summary}`);
      assert.equal(c.beyond, 0, `${codec.name}: ${summary}; ${c.beyond} beyond the bound:\n  ${c.firstBeyond.join('\n  ')}`);
    });
  }
});
