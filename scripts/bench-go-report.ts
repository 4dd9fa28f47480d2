/**
 * bench:go's judge and report: every GO's first in-sync picture and sample against FFmpeg, the peers, the players'
 * own logs beside each miss, and the targets with PASS or MISS (the run itself: scripts/bench-go.ts).
 */
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import {
  byPeriod, checkAudioLine, frameNames, judgeAudioGo, judgeFirstPicture, judgeTicks, judgeVideoGo, readAudioLines, readFirstPictures, ShowClock, Timeline,
  type AudioGo, type AudioLine, type FirstPicture, type FirstPictureLine, type GoTrace, type Show, type VideoGo, type Win, type WrongTick,
} from './bench-go-analysis';
import { SERVER_NICE } from './bench/harness';
import { readTicks, wavSamples, type Tick } from './bench/presented';
import { frameAt, type RefAudio, type RefVideo } from './bench/reference';
import type { FollowLine } from './bench-go-procs';
import { PERIOD_FRAMES, SAMPLE_RATE, type CueDef, type Go, type Options, type PlayerRun } from './bench-go-model';

const maxBig = (...xs: bigint[]): bigint => xs.reduce((a, b) => (b > a ? b : a));

interface Judged {
  go: Go;
  run: Win | null;
  video: VideoGo | null;
  /** When its first picture was decoded and ready (`--first-pictures`; GOs that adopted no preroll), null: not logged. */
  first: FirstPicture | null;
  audio: AudioGo | null;
  /** Datagram → first packet at the Follow client, ms. */
  peerA: number | null;
  /**
   * Peer (b)'s time put on this GO's player's display ticks: datagram → the first tick at or after datagram + peer
   * (b)'s open-seek-decode time, ms (a player that opened the file itself could show the frame no sooner); null
   * without a peer (b) time.
   */
  peerBTick: number | null;
  /** How long before the datagram each player said it had the cue prepared (its log), ms; null: not prepared. */
  preparedMs: { video: number | null; audio: number | null };
}

/** A player's 'cue prepared' / 'cue X loaded' log line, placed on CLOCK_MONOTONIC. */
interface PlayerEvent {
  what: 'prepared' | 'loaded';
  cue: string;
  mono: bigint;
}

/** The 'cue prepared' and 'cue X loaded' lines of a player's log (JSON lines; wall clock ms). */
async function preparedLog(file: string, wallMinusMono: bigint): Promise<PlayerEvent[]> {
  const out: PlayerEvent[] = [];
  for (const line of (await fsp.readFile(file, 'utf8')).split('\n')) {
    if (!line.startsWith('{')) continue;
    const o = JSON.parse(line) as { message?: string; cue?: string; timestamp?: string };
    const mono = BigInt(Date.parse(o.timestamp ?? '')) * 1_000_000n - wallMinusMono;
    if (o.message === 'cue prepared' && o.cue !== undefined) out.push({ what: 'prepared', cue: o.cue, mono });
    const m = /^cue (\S+) loaded$/.exec(o.message ?? '');
    if (m !== null) out.push({ what: 'loaded', cue: m[1], mono });
  }
  return out;
}

/**
 * How long before `send` the player last said cue `cue` was prepared, ms (log lines have millisecond times), or null
 * when it was not prepared then: never, or loaded again since, or prepared before `since` (the cue's GO before, which
 * used it, or the unload before an unarmed GO).
 */
function preparedBefore(events: readonly PlayerEvent[], cue: string, send: bigint, since: bigint): number | null {
  let last: PlayerEvent | null = null;
  for (const e of events) {
    if (e.cue !== cue || e.mono > send) continue;
    if (e.what === 'loaded') last = null;
    else last = e;
  }
  if (last === null || last.mono < since) return null;
  return Number(send - last.mono) / 1e6;
}

export interface ReportInput {
  opts: Options;
  tree: string;
  wall: number;
  stealPct: number;
  cpuText: string;
  /** Wall clock minus CLOCK_MONOTONIC, ns (to place the players' log lines). */
  wallMinusMono: bigint;
  cues: CueDef[];
  gos: Go[];
  players: PlayerRun[];
  follow: FollowLine[];
  refV: Record<'h264' | 'dnxhd', RefVideo>;
  refA: Record<'h264' | 'dnxhd', RefAudio>;
}

/** A figure, ∞ for never, — for no sample. */
const fmt = (x: number, f: (v: number) => string): string => (Number.isNaN(x) ? '—' : Number.isFinite(x) ? f(x) : '∞');
const f0 = (x: number): string => fmt(x, String);
const f1 = (x: number): string => fmt(x, (v) => v.toFixed(1));
const f2 = (x: number): string => fmt(x, (v) => v.toFixed(2));
/** p50/p99/max (nearest rank, as bench-server's pct) of xs; null counts as never: infinite. */
function stats(xs: Array<number | null>): { n: number; p50: number; p99: number; max: number } {
  const v = xs.map((x) => (x === null ? Infinity : x));
  if (v.length === 0) return { n: 0, p50: NaN, p99: NaN, max: NaN };
  // Sorted with a comparison, not by subtraction: ∞ − ∞ is NaN, which would leave an order with several ∞ undefined.
  const sorted = [...v].sort((a, b) => (a === b ? 0 : a < b ? -1 : 1));
  const at = (p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  return { n: v.length, p50: at(50), p99: at(99), max: sorted[sorted.length - 1] };
}
const triple = (s: ReturnType<typeof stats>, f: (x: number) => string): string => `${f(s.p50)} / ${f(s.p99)} / ${f(s.max)}`;
const ratio = (a: number, b: number): string => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '—');

export async function report(r: ReportInput): Promise<void> {
  const { gos, cues } = r;
  const clock = new ShowClock(r.follow);
  const timeline = new Timeline(r.follow);
  const show: Show = {
    clock, timeline,
    video: new Map(cues.map((c) => [c.id, r.refV[c.file]])),
    audio: new Map(cues.map((c) => [c.id, r.refA[c.file]])),
    frameNames: frameNames([r.refV.h264, r.refV.dnxhd]),
  };
  const ticksOf = new Map<PlayerRun, Tick[]>();
  const firstOf = new Map<PlayerRun, FirstPictureLine[]>();
  const audioOf = new Map<PlayerRun, { lines: AudioLine[]; periods: Map<number, AudioLine[]>; wav: Float32Array | null }>();
  const statsLine = new Map<PlayerRun, { video: string; audio: string }>();
  const prepOf = new Map<PlayerRun, { video: PlayerEvent[]; audio: PlayerEvent[] }>();
  for (const p of r.players) {
    ticksOf.set(p, await readTicks(p.files.vhash, p.files.vsync));
    firstOf.set(p, p.files.vfirst === undefined ? [] : await readFirstPictures(p.files.vfirst));
    const lines = await readAudioLines(p.files.async);
    audioOf.set(p, { lines, periods: byPeriod(lines, PERIOD_FRAMES), wav: await wavSamples(p.files.awav).catch(() => null) });
    prepOf.set(p, { video: await preparedLog(p.files.vlog, r.wallMinusMono), audio: await preparedLog(p.files.alog, r.wallMinusMono) });
    const last = async (f: string): Promise<string> => (await fsp.readFile(f, 'utf8')).split('\n').filter((l) => l.startsWith('cuemux play-')).pop() ?? '(no stats line)';
    statsLine.set(p, { video: await last(p.files.vlog), audio: await last(p.files.alog) });
  }
  // Each GO's run: the first CueStarted of its cue received after its datagram.
  const used = new Set<Win>();
  const judged: Judged[] = gos.map((go, k) => {
    const run = timeline.wins.find((w) => w.first && w.cue === go.cue && w.mono >= go.send && !used.has(w)) ?? null;
    if (run !== null) used.add(run);
    const limit = k + 1 < gos.length && gos[k + 1].players === go.players ? gos[k + 1].send : go.players.endMono;
    const period = 1e9 / go.players.fps;
    const video = run === null ? null : judgeVideoGo(show, ticksOf.get(go.players) as Tick[], run, go.send, limit, period);
    const first = run === null ? null : judgeFirstPicture(show, firstOf.get(go.players) ?? [], run, go.send, limit);
    const a = audioOf.get(go.players);
    const audio = run === null || a === undefined ? null : judgeAudioGo(show, a.lines, a.periods, run, go.send, limit, a.wav, PERIOD_FRAMES, SAMPLE_RATE);
    const pk = run === null ? undefined : r.follow.find((l) => l.e === 'packets' && l.cue === go.cue && l.seg === run.seg && BigInt(l.mono) >= go.send);
    const prev = [...gos.slice(0, k)].reverse().find((g) => g.cue === go.cue && g.players === go.players);
    const since = maxBig(prev?.send ?? 0n, go.armed ? 0n : go.unloaded ?? 0n);
    const prep = prepOf.get(go.players);
    const pb = go.peerVideo?.ms;
    const pbTick = pb === undefined ? undefined : (ticksOf.get(go.players) ?? []).find((t) => t.mono >= go.send + BigInt(Math.round(pb * 1e6)));
    return {
      go, run, video, first, audio, peerA: pk === undefined ? null : Number(BigInt(pk.mono) - go.send) / 1e6,
      peerBTick: pbTick === undefined ? null : Number(pbTick.mono - go.send) / 1e6,
      preparedMs: { video: preparedBefore(prep?.video ?? [], go.cue, go.send, since), audio: preparedBefore(prep?.audio ?? [], go.cue, go.send, since) },
    };
  });
  // Out-of-sync ticks: every tick outside the GOs' pending spans.
  const wrong: Array<WrongTick & { players: PlayerRun }> = [];
  let judgedTicks = 0;
  let skippedSlots = 0;
  let clockDiff = 0;
  for (const p of r.players) {
    const ticks = ticksOf.get(p) as Tick[];
    for (const t of ticks) if (timeline.activeAt(clock.at(t.mono)).length > 0) clockDiff = Math.max(clockDiff, Math.abs(t.clock - clock.at(t.mono)));
    const pending = judged.filter((j) => j.go.players === p && j.video !== null).map((j) => [j.go.send, (j.video as VideoGo).pendingUntil] as [bigint, bigint]);
    const w = judgeTicks(show, ticks, pending, 1e9 / p.fps);
    judgedTicks += w.judged;
    skippedSlots += w.skipped;
    for (const x of w.wrong) wrong.push({ ...x, players: p });
  }
  // Seams: segments that no datagram started (loop passes, auto-follow starts).
  const goRuns = new Set(judged.map((j) => j.run).filter((w): w is Win => w !== null));
  const seams = timeline.wins.filter((w) => !goRuns.has(w));
  const seamWrong = { loop: 0, follow: 0, loopTicks: 0, followTicks: 0, loopSeams: 0, followSeams: 0, audioBad: 0, audioPeriods: 0, detail: [] as string[] };
  for (const s of seams) {
    const kind = s.cue === 'LOOP' ? 'loop' : 'follow';
    const p = r.players.find((x) => x.startMono <= s.mono && s.mono <= x.endMono);
    if (p === undefined) continue;
    if (kind === 'loop') seamWrong.loopSeams++;
    else seamWrong.followSeams++;
    const period = 1 / p.fps;
    const inWindow = (c: number): boolean => c >= s.clock - 2 * period && c < s.clock + 3 * period;
    const n = (ticksOf.get(p) as Tick[]).filter((t) => inWindow(clock.at(t.mono))).length;
    const bad = wrong.filter((w) => w.players === p && inWindow(w.clock));
    if (kind === 'loop') {
      seamWrong.loopTicks += n;
      seamWrong.loop += bad.length;
    } else {
      seamWrong.followTicks += n;
      seamWrong.follow += bad.length;
    }
    for (const b of bad.slice(0, 2)) seamWrong.detail.push(`${kind} seam of ${s.cue} seg ${s.seg} at clock ${s.clock.toFixed(3)}: tick at ${(b.clock - s.clock) * 1e3 >= 0 ? '+' : ''}${((b.clock - s.clock) * 1e3).toFixed(1)} ms showed ${b.shown}, FFmpeg's ${b.expected}${b.held ? ' (player: held)' : ''}`);
    // Audio: the periods of the new segment's first 30 ms.
    const a = audioOf.get(p);
    if (a !== undefined) {
      const lines = a.lines.filter((l) => l.cue === s.cue && l.seg === s.seg).slice(0, 3);
      for (const l of lines) {
        seamWrong.audioPeriods++;
        const why = a.wav === null ? 'no WAV' : checkSeamLine(show, l, s, a.periods, a.wav);
        if (why !== null) {
          seamWrong.audioBad++;
          if (seamWrong.detail.length < 12) seamWrong.detail.push(`audio at the ${kind} seam of ${s.cue} seg ${s.seg}: ${why}`);
        }
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------------
  const out: string[] = [];
  const put = (s = ''): void => {
    out.push(s);
  };
  const nGos = gos.length;
  const loaded = stats(gos.map((g) => g.loadedCues ?? null).filter((x) => x !== null));
  put('');
  put(`bench:go — tree ${r.tree}; ${os.cpus().length} vCPUs; whole run ${r.wall.toFixed(0)} s; steal time (CPU time the hypervisor gave to other guests) ${r.stealPct.toFixed(1)}%`);
  put(r.cpuText);
  put(`Processes: cuemux serve (every thread at nice ${String(SERVER_NICE).replace('-', '−')}, as docs/systemd/cuemux.service); play-video (--fps ${r.opts.fps.join(' then ')}; presenting thread SCHED_FIFO 10 as by default, its decode worker ${r.opts.workerRtPriority === null ? 'at nice −5 as by default' : `--worker-rt-priority ${r.opts.workerRtPriority}`}, FFmpeg's decoding threads at normal priority) and play-audio, both restarted ` +
    `${r.opts.restarts}× per phase${r.opts.prepare !== null ? `, --prepare ${r.opts.prepare}` : ''}; peer (a) a Follow client process; peer (b) a process of its own at normal priority (nice 0, as the players' decoders), not decoding the non-reference pictures before the in-point, as the players do not.`);
  put('Page cache: every media file read once before the run and nothing dropped: the server and peer (b) read from memory alike. Peer (b) was asked 0.5 s after each GO, between GOs, while the players played.');
  put('Cues (H.264: 1080p25, 3 B-frames, open GOPs, a keyframe every 2 s, 12 Mb/s, AAC; DNxHD 36: 1080p25 intra, PCM):');
  for (const c of cues) put(`  ${c.id.padEnd(5)} ${c.file.padEnd(6)} ${c.in.toFixed(3).padStart(7)}–${c.out.toFixed(3).padEnd(7)} s  ${c.what}${c.loop === true ? ' (loops)' : ''}`);
  put(`GOs: ${nGos} (${gos.filter((g) => g.armed).length} armed, ${gos.filter((g) => !g.armed).length} unarmed, ${gos.filter((g) => g.fresh).length} the first of fresh players)` +
    `; cues loaded on the server 0.25 s after a GO: p50 ${f0(loaded.p50)}, max ${f0(loaded.max)}` +
    `; failed GOs: ${gos.filter((g) => g.error !== null).length}; GOs with no CueStarted seen: ${judged.filter((j) => j.run === null).length}. ` +
    `Clock: ${clock.generations} generation(s); players' clock vs the ClockState's at their instants (ticks with a cue on): max ${(clockDiff * 1e6).toFixed(1)} µs.`);
  put('');
  put('Video — datagram → first in-sync picture (the tick whose MD5 is FFmpeg\'s frame for its clock); ticks = display slots after the datagram, 1 = the first');
  put('  kind                        n   ticks p50/p99/max     ms p50/p99/max            never   peer (a) 1st packet ms p50/p99   ×(a) p50   peer (b) open+decode ms p50/p99   ×(b) p50');
  const kinds: Array<[string, (g: Go) => boolean]> = [
    ['armed', (g) => g.armed && !g.fresh && g.special === null], ['armed, fresh player', (g) => g.armed && g.fresh],
    ['unarmed', (g) => !g.armed && !g.fresh], ['unarmed, fresh player', (g) => !g.armed && g.fresh],
  ];
  const vrow = (label: string, js: Judged[]): void => {
    const t = stats(js.map((j) => j.video?.ticks ?? null));
    const ms = stats(js.map((j) => j.video?.ms ?? null));
    const a = stats(js.map((j) => j.peerA));
    const b = stats(js.map((j) => j.go.peerVideo?.ms ?? null).filter((x) => x !== null));
    put(`  ${label.padEnd(26)} ${String(t.n).padStart(3)}   ${triple(t, f0).padEnd(18)} ${triple(ms, f1).padEnd(24)} ${String(js.filter((j) => j.video?.ticks == null).length).padStart(5)}   ` +
      `${`${f2(a.p50)} / ${f2(a.p99)}`.padEnd(29)} ${ratio(ms.p50, a.p50).padStart(9)}   ${`${f1(b.p50)} / ${f1(b.p99)}`.padEnd(32)} ${ratio(ms.p50, b.p50).padStart(8)}`);
  };
  for (const fps of r.opts.fps) {
    put(` at ${fps} ticks/s:`);
    for (const [label, f] of kinds) vrow(label, judged.filter((j) => j.go.fps === fps && f(j.go)));
    vrow('loop / chain heads (armed)', judged.filter((j) => j.go.fps === fps && j.go.special !== null));
  }
  const pre = judged.flatMap((j) => j.video?.pre ?? []);
  const count = (k: string): number => pre.filter((x) => x === k).length;
  put(`  Ticks between a datagram and its first in-sync picture: ${pre.length} (held ${count('held')}, black ${count('black')}, the cue under it in sync ${count('under')}, ` +
    `wrong: a frame of the GO'd cue's file not for the clock ${count('wrong-new')}, any other ${count('wrong')})`);
  put(`  Out-of-sync ticks after a GO's first in-sync picture (all ticks with a cue on, ${judgedTicks} judged): ${wrong.length}` +
    (wrong.length > 0 ? ` (showing: the picture of the tick before ${wrong.filter((w) => w.kind === 'repeated').length}, black ${wrong.filter((w) => w.kind === 'black').length}, ` +
      `the cue under it ${wrong.filter((w) => w.kind === 'under').length}, another frame ${wrong.filter((w) => w.kind === 'other').length}; held by the player's own account: ${wrong.filter((w) => w.held).length}; display slots the player skipped, the picture before staying on screen: ${wrong.filter((w) => w.skipped).length} of ${skippedSlots} skipped; at 50: ${wrong.filter((w) => w.players.fps === 50).length}, at 60: ${wrong.filter((w) => w.players.fps === 60).length})` : ''));
  if (wrong.length > 0) {
    const byCue = new Map<string, number>();
    for (const w of wrong) byCue.set(w.cue, (byCue.get(w.cue) ?? 0) + 1);
    put(`  Out-of-sync ticks by cue: ${[...byCue].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ')}`);
  }
  // Counts that explain out-of-sync ticks after a GO under any load: the decode-ahead the player had at the GO's
  // first in-sync tick, and the out-of-sync ticks in the 0.5 s after it, by file and armed or not.
  for (const file of ['h264', 'dnxhd'] as const) {
    const parts = [true, false].map((armed) => {
      const js = judged.filter((j) => j.go.special === null && j.go.armed === armed && cues.find((c) => c.id === j.go.cue)?.file === file && j.video?.ticks != null);
      const qs = js.map((j) => j.video?.queued ?? null).filter((x): x is number => x !== null);
      const q = stats(qs);
      const soon = wrong.filter((w) => js.some((j) => j.go.players === w.players && w.mono >= (j.video as VideoGo).pendingUntil && w.mono < (j.video as VideoGo).pendingUntil + 500_000_000n)).length;
      return `${armed ? 'armed' : 'unarmed'} ${js.length} GOs: decode-ahead p50 ${f0(q.p50)}, min ${f0(q.n > 0 ? Math.min(...qs) : NaN)} pictures; out-of-sync ticks in the 0.5 s after it ${soon}`;
    });
    put(`  ${file === 'h264' ? 'H.264' : 'DNxHD'} at the first in-sync tick (player's sync log): ${parts.join('; ')}`);
  }
  // Where an armed GO's time went, hop by hop: the Follow client's CueStarted, and the player's GO trace at its first
  // in-sync tick (sync log: when its follow thread read the GO and its presenting thread got it).
  for (const fps of r.opts.fps) {
    const js = judged.filter((j) => j.go.fps === fps && j.go.armed && j.run !== null && j.video?.ms != null && j.video.trace !== null);
    const at = (f: (v: VideoGo, t: GoTrace) => number | null): string => triple(stats(js.map((j) => {
      const v = j.video as VideoGo;
      const x = f(v, v.trace as GoTrace);
      return x === null ? null : (v.ms as number) - x;
    })), f1);
    const client = triple(stats(js.map((j) => Number((j.run as Win).mono - j.go.send) / 1e6)), f1);
    put(`  Armed GOs at ${fps} ticks/s, ms after the datagram p50/p99/max (n ${js.length}): the Follow client read CueStarted ${client}; the player's follow thread read it ${at((_v, t) => t.read)}, ` +
      `its presenting thread got it ${at((_v, t) => t.heard)}; the adoption: read ${at((_v, t) => t.adoptRead)}, got ${at((_v, t) => t.adoptHeard)}; first in-sync tick ${at(() => 0)}; ` +
      `got at a tick's poll (not from the event loop): ${js.filter((j) => j.video?.trace?.polled === true).length}; adoption got ≥ 1 period before the tick: ${js.filter((j) => (j.video?.trace?.adoptHeard ?? 0) * fps >= 1e3).length}`);
  }
  put(`  Loop seams: ${seamWrong.loopSeams} seams, ${seamWrong.loopTicks} ticks within −2/+3 ticks of them, ${seamWrong.loop} wrong; auto-follow transitions: ${seamWrong.followSeams}, ${seamWrong.followTicks} ticks, ${seamWrong.follow} wrong; ` +
    `audio periods at those seams not in sync: ${seamWrong.audioBad} of ${seamWrong.audioPeriods}`);
  put('');
  put('Audio — datagram → the cue\'s first sample at the device, and → its first in-sync sample (WAV samples = FFmpeg\'s for the clock at their device instant)');
  put('  kind                        n   1st sample ms p50/p99/max   in-sync ms p50/p99/max    1st period not in sync   samples not FFmpeg\'s (player: underrun)   ×(a) p50   peer (b) ms p50/p99   ×(b) p50');
  const arow = (label: string, js: Judged[]): void => {
    const first = stats(js.map((j) => j.audio?.firstMs ?? null));
    const sync = stats(js.map((j) => j.audio?.syncMs ?? null));
    const a = stats(js.map((j) => j.peerA));
    const b = stats(js.map((j) => j.go.peerAudio?.ms ?? null).filter((x) => x !== null));
    put(`  ${label.padEnd(26)} ${String(first.n).padStart(3)}   ${triple(first, f1).padEnd(25)} ${triple(sync, f1).padEnd(25)} ${String(js.filter((j) => j.audio?.firstOk !== true).length).padStart(6)}` +
      `                   ${`${js.reduce((s, j) => s + (j.audio?.bad ?? 0), 0)} (${js.reduce((s, j) => s + (j.audio?.underrun ?? 0), 0)})`.padStart(20)}                 ${ratio(sync.p50, a.p50).padStart(9)}   ${`${f1(b.p50)} / ${f1(b.p99)}`.padEnd(20)} ${ratio(sync.p50, b.p50).padStart(8)}`);
  };
  for (const [label, f] of kinds) arow(label, judged.filter((j) => j.go.special === null && f(j.go)));
  arow('loop / chain heads (armed)', judged.filter((j) => j.go.special !== null));
  put('');
  put('Per cue (video, both rates): armed ticks p50/max · unarmed ms p50/max · peer (b) ms p50');
  for (const c of cues.filter((x) => x.follow !== true)) {
    const js = judged.filter((j) => j.go.cue === c.id);
    if (js.length === 0) continue;
    const ar = stats(js.filter((j) => j.go.armed).map((j) => j.video?.ticks ?? null));
    const un = stats(js.filter((j) => !j.go.armed).map((j) => j.video?.ms ?? null));
    const pb = stats(js.map((j) => j.go.peerVideo?.ms ?? null).filter((x) => x !== null));
    put(`  ${c.id.padEnd(5)} armed n ${String(ar.n).padStart(2)} ticks ${ar.n > 0 ? `${f0(ar.p50)}/${f0(ar.max)}` : '—'}`.padEnd(34) +
      `unarmed n ${String(un.n).padStart(2)} ms ${un.n > 0 ? `${f1(un.p50)}/${f1(un.max)}` : '—'}`.padEnd(30) + `peer (b) ${f1(pb.p50)}   ${c.what}`);
  }
  const misses = judged.filter((j) => j.go.armed && (j.video?.ticks == null || j.video.ticks > 2));
  // Armed GOs over another cue still playing, and over nothing.
  const over = (j: Judged): boolean => j.run !== null && timeline.activeAt(j.run.clock).some((w) => w.cue !== j.go.cue);
  put('');
  for (const [label, prepared] of [['prepared before the datagram by the video player\'s own log', true], ['not prepared by then (its log)', false]] as const) {
    const js = judged.filter((j) => j.go.armed && (j.preparedMs.video !== null) === prepared);
    const t = stats(js.map((j) => j.video?.ticks ?? null));
    put(`Armed GOs ${label}: ${js.length}, ticks p50/p99/max ${triple(t, f0)}, ${js.filter((j) => (j.video?.ticks ?? Infinity) > 2).length} over 2 ticks` +
      (prepared ? ` (prepared p50 ${f0(Math.round(stats(js.map((j) => j.preparedMs.video)).p50))} ms before)` : ''));
  }
  // How each armed GO's cue came to be loaded: loaded (CueLoaded) since its previous run began, or still loaded
  // from that run (which an armed or an unarmed GO started).
  const how = (j: Judged): string => {
    const prev = [...judged.slice(0, j.go.i)].reverse().find((x) => x.go.cue === j.go.cue);
    const from = prev?.run?.mono ?? 0n;
    const anew = r.follow.some((l) => l.e === 'loaded' && l.cue === j.go.cue && BigInt(l.mono) > from && BigInt(l.mono) < j.go.send);
    return anew ? 'loaded anew for it' : prev?.go.armed === true ? 'still loaded since an armed GO of it' : 'still loaded since an unarmed GO of it';
  };
  const hows = new Map<string, Judged[]>();
  for (const j of judged.filter((x) => x.go.armed)) hows.set(how(j), [...(hows.get(how(j)) ?? []), j]);
  put(`Armed GOs by how their cue was loaded: ${[...hows].map(([h, js]) => {
    const t = stats(js.map((j) => j.video?.ticks ?? null));
    return `${h} ${js.length} (ticks p50/p99 ${f0(t.p50)}/${f0(t.p99)}, prepared by the video player ${js.filter((j) => j.preparedMs.video !== null).length})`;
  }).join('; ')}`);
  for (const [label, prepared] of [['prepared before the datagram by the audio player\'s own log', true], ['not prepared by the audio player', false]] as const) {
    const js = judged.filter((j) => j.go.armed && j.go.special === null && (j.preparedMs.audio !== null) === prepared);
    const sync = stats(js.map((j) => j.audio?.syncMs ?? null));
    put(`Armed GOs ${label}: ${js.length}, first period not in sync ${js.filter((j) => j.audio?.firstOk !== true).length}, in-sync sample ms p50/p99 ${f1(sync.p50)}/${f1(sync.p99)}`);
  }
  const unPrepared = judged.filter((j) => !j.go.armed && (j.preparedMs.video !== null || j.preparedMs.audio !== null)).length;
  if (unPrepared > 0) put(`Unarmed GOs whose cue a player said was prepared (should be none): ${unPrepared}`);
  for (const [label, pickOver] of [['over another cue still playing', true], ['with nothing else playing', false]] as const) {
    const js = judged.filter((j) => j.go.armed && over(j) === pickOver);
    const t = stats(js.map((j) => j.video?.ticks ?? null));
    put(`Armed GOs ${label}: ${js.length}, ticks p50/p99/max ${triple(t, f0)}, ${js.filter((j) => (j.video?.ticks ?? Infinity) > 2).length} over 2 ticks; ` +
      `audio first period not in sync ${js.filter((j) => j.audio?.firstOk !== true).length}`);
  }
  put(`Armed GOs not in sync by the 2nd tick: ${misses.length} of ${judged.filter((j) => j.go.armed).length}${misses.length > 0 ? '; the first ones, with what the ticks after the datagram showed:' : ''}`);
  const shownMisses = [...misses.slice(0, 8), ...misses.slice(8).filter((j) => j.go.fresh || j.go.special !== null).slice(0, 6)];
  for (const j of shownMisses) {
    const v = j.video;
    put(`  GO ${j.go.i} ${j.go.cue} (${j.go.fps}/s${j.go.fresh ? ', fresh player' : ''}${j.go.special !== null ? `, ${j.go.special}` : ''}): ${v?.ticks == null ? 'never in sync' : `in sync at tick ${v.ticks} (${f1(v.ms as number)} ms, ${v.firstFrame} for in-point ${v.inPointFrame})`}; ` +
      `${j.preparedMs.video === null ? 'not prepared at the GO' : `prepared ${f0(Math.round(j.preparedMs.video))} ms before`} (player's log); ` +
      `before: ${(v?.preText ?? []).slice(0, 4).join('; ')}${(v?.preText.length ?? 0) > 4 ? `; … ${(v?.preText.length ?? 0) - 4} more` : ''}`);
  }
  const wrongPre = judged.filter((j) => (j.video?.pre ?? []).some((k) => k.startsWith('wrong')));
  if (wrongPre.length > 0) {
    put(`GOs with a wrong picture before their first in-sync one: ${wrongPre.length}; e.g.`);
    for (const j of wrongPre.slice(0, 5)) put(`  GO ${j.go.i} ${j.go.cue}${j.go.armed ? ' armed' : ' unarmed'}: ${(j.video?.preText ?? []).filter((t) => t.startsWith('wrong')).slice(0, 3).join('; ')}`);
  }
  if (wrong.length > 0) {
    put(`Out-of-sync ticks, the first ones:`);
    for (const w of wrong.slice(0, 10)) {
      const go = [...gos].reverse().find((g) => g.send <= w.mono);
      put(`  ${w.players.tag} clock ${w.clock.toFixed(3)} (${go === undefined ? '' : `${((Number(w.mono - go.send)) / 1e6).toFixed(0)} ms after GO ${go.i} ${go.cue}`}): cue ${w.cue} showed ${w.shown}, FFmpeg's ${w.expected}${w.held ? ' (player: held)' : ''}${w.skipped ? ' (a skipped slot)' : ''}`);
    }
  }
  if (seamWrong.detail.length > 0) for (const d of seamWrong.detail.slice(0, 8)) put(`  ${d}`);
  const audioBad = judged.filter((j) => j.audio !== null && !j.audio.firstOk);
  if (audioBad.length > 0) {
    put(`Audio GOs whose first period was not in sync: ${audioBad.length}; e.g.`);
    for (const j of audioBad.slice(0, 6)) put(`  GO ${j.go.i} ${j.go.cue}${j.go.armed ? ' armed' : ' unarmed'}${j.go.fresh ? ' (fresh)' : ''}: ${j.audio?.firstWhy}`);
  }
  const peerErr = gos.filter((g) => g.peerVideo?.done.error !== undefined || g.peerAudio?.done.error !== undefined);
  const peerWrong = gos.filter((g) => {
    const d = g.peerVideo?.done;
    if (d === undefined || d.md5 === null) return false;
    const ref = show.video.get(g.cue) as RefVideo;
    const run = judged[g.i].run;
    return run !== null && ref.md5[frameAt(ref, run.media)] !== d.md5;
  });
  put(`Peer (b): ${gos.filter((g) => g.peerVideo !== null).length} video and ${gos.filter((g) => g.peerAudio !== null).length} audio decodes; errors ${peerErr.length}; ` +
    `video frames not FFmpeg's in-point frame ${peerWrong.length}; seeks back past an open-GOP leading picture ${gos.filter((g) => (g.peerVideo?.done.reseeks ?? 0) > 0).length}`);
  // The players' own counters at exit, summed over the player processes of the run.
  const sum = (kind: 'video' | 'audio'): string => {
    const total = new Map<string, number>();
    for (const p of r.players) {
      const line = statsLine.get(p)?.[kind] ?? '';
      const json = line.slice(line.indexOf('{'));
      if (!json.startsWith('{')) continue;
      for (const [k, v] of Object.entries(JSON.parse(json) as Record<string, unknown>)) {
        if (typeof v === 'number') total.set(k, (total.get(k) ?? 0) + v);
        // The real-time guard's counters (rt-guard.ts): how often, and how long, a presenting thread was put back.
        if (k === 'rtGuard' && typeof v === 'object' && v !== null) {
          for (const [gk, gv] of Object.entries(v as Record<string, unknown>)) if (typeof gv === 'number' && (gk === 'demotions' || gk === 'demotedMs')) total.set(`rtGuard.${gk}`, (total.get(`rtGuard.${gk}`) ?? 0) + gv);
        }
      }
    }
    return [...total].map(([k, v]) => `${k} ${v}`).join(', ');
  };
  put(`Players' own counters at exit (all ${r.players.length} of each): play-video ${sum('video')}; play-audio ${sum('audio')}`);

  // Targets.
  put('');
  put('Targets:');
  const target = (name: string, value: string, ok: boolean): void => put(`  ${ok ? 'PASS' : 'MISS'}  ${name}: ${value}`);
  for (const fps of r.opts.fps) {
    const a = stats(judged.filter((j) => j.go.fps === fps && j.go.armed).map((j) => j.video?.ticks ?? null));
    target(`armed GOs (fresh players included) at ${fps} ticks/s: first in-sync picture p99 ≤ 2 ticks after the datagram`,
      `p50 ${f0(a.p50)}, p99 ${f0(a.p99)}, max ${f0(a.max)} ticks (n ${a.n}; ${judged.filter((j) => j.go.fps === fps && j.go.armed && (j.video?.ticks ?? Infinity) > 2).length} over 2)`, a.p99 <= 2);
  }
  target('out-of-sync ticks after a GO\'s first in-sync picture, all runs', `${wrong.length} of ${judgedTicks}`, wrong.length === 0);
  target('wrong (stale or out-of-sync) pictures between a datagram and its first in-sync picture', `${count('wrong') + count('wrong-new')} ticks in ${wrongPre.length} GOs`, count('wrong') + count('wrong-new') === 0);
  for (const [label, armed] of [['armed', true], ['unarmed', false]] as const) {
    const au = judged.filter((j) => j.go.armed === armed);
    const bad = au.reduce((s, j) => s + (j.audio?.bad ?? 0), 0);
    const unverifiable = au.reduce((s, j) => s + (j.audio?.unverifiable ?? 0), 0);
    const underrun = au.reduce((s, j) => s + (j.audio?.underrun ?? 0), 0);
    if (armed) {
      target(`audio of ${label} GOs in sync from its first period`, `${au.filter((j) => j.audio?.firstOk !== true).length} of ${au.length} GOs not`, au.every((j) => j.audio?.firstOk === true));
      target(`samples missing or wrong at ${label} GOs (the first 0.5 s of each cue, against FFmpeg)`,
        `${bad} (the players counted ${underrun} underrun samples; ${unverifiable} periods mixed with an incomplete one, not checked)`, bad === 0 && underrun === 0);
    } else {
      // An unarmed GO's audio is decoded after the GO: the issue asks for silence until then, never stale samples.
      target(`samples at ${label} GOs neither FFmpeg's nor the silence of samples not decoded yet (the first 0.5 s of each cue)`,
        `${Math.max(0, bad - underrun)} (${bad} not FFmpeg's, of which ${underrun} silence the players counted as underrun; ${au.filter((j) => j.audio?.firstOk !== true).length} of ${au.length} GOs start with silence)`, bad - underrun <= 0);
    }
  }
  const un = judged.filter((j) => !j.go.armed);
  const up = stats(un.map((j) => j.video?.ms ?? null));
  const low = stats(un.map((j) => j.video?.readyAfterMs ?? null));
  // The issue's target: datagram → the in-point frame decoded and ready, against peer (b)'s open-seek-decode to the
  // same frame. The first in-sync tick cannot say when that was: the clock moves on while an unarmed GO's in-point is
  // decoded, so that tick shows a later frame (a catch-up of several more pictures that peer (b) does not decode).
  // The player's --first-pictures line says when the segment's first picture reached its presenting thread, ready to
  // be shown, with its MD5, checked here against FFmpeg's frame for its media time; that is the in-point's frame, or,
  // for an intra-only cue catching up, the first picture it did not skip (one decode, as peer (b)'s one). A GO with no
  // such line counts at its first in-sync tick. The first in-sync tick (and peer (b) on the same ticks) is printed
  // beside it as information.
  const readyMs = (j: Judged): number | null => j.first?.ms ?? j.video?.ms ?? null;
  const ur = stats(un.map(readyMs));
  const firsts = un.filter((j) => j.first !== null);
  const firstWrong = firsts.filter((j) => j.first?.correct !== true);
  const firstInPoint = firsts.filter((j) => j.first?.inPoint === true).length;
  const pb = stats(un.map((j) => j.go.peerVideo?.ms ?? null).filter((x) => x !== null));
  const pt = stats(un.map((j) => j.peerBTick).filter((x) => x !== null));
  put(`Unarmed GOs' first pictures (--first-pictures): ${firsts.length} of ${un.length} logged (${firstInPoint} the in-point's frame, the others the first a catching-up intra-only cue did not skip); ` +
    `MD5 not FFmpeg's: ${firstWrong.length}${firstWrong.length > 0 ? ` (${firstWrong.slice(0, 3).map((j) => `GO ${j.go.i} ${j.first?.frame ?? ''}`).join(', ')})` : ''}; ` +
    `ready ms p50/p99 ${f1(stats(firsts.map((j) => j.first?.ms ?? null)).p50)}/${f1(stats(firsts.map((j) => j.first?.ms ?? null)).p99)}; ` +
    `first in-sync tick ms p50/p99 ${f1(up.p50)}/${f1(up.p99)} (${f1(low.p50)}/${f1(low.p99)} at the tick before; peer (b) on the same ticks ${f1(pt.p50)}/${f1(pt.p99)}, ${ratio(up.p50, pt.p50)} at p50)`);
  target('unarmed GOs: datagram → in-point frame decoded and ready, p50 ≤ peer (b)\'s (the same cues)',
    `p50 ${f1(ur.p50)} ms vs peer (b) ${f1(pb.p50)} ms: ${ratio(ur.p50, pb.p50)}`, ur.p50 <= pb.p50 && firstWrong.length === 0);
  target('unarmed GOs: datagram → in-point frame decoded and ready, p99 ≤ peer (b)\'s (the same cues)',
    `p99 ${f1(ur.p99)} ms vs peer (b) ${f1(pb.p99)} ms: ${ratio(ur.p99, pb.p99)}`, ur.p99 <= pb.p99 && firstWrong.length === 0);
  const unWrong = un.filter((j) => (j.video?.pre ?? []).some((k) => k.startsWith('wrong'))).length;
  target('unarmed GOs in sync from their first shown frame', `${unWrong} of ${un.length} showed a frame out of sync first`, unWrong === 0);
  target('wrong ticks at loop seams', `${seamWrong.loop} of ${seamWrong.loopTicks} ticks at ${seamWrong.loopSeams} seams`, seamWrong.loop === 0 && seamWrong.loopSeams > 0);
  target('wrong ticks at auto-follow transitions', `${seamWrong.follow} of ${seamWrong.followTicks} ticks at ${seamWrong.followSeams} transitions`, seamWrong.follow === 0 && seamWrong.followSeams > 0);
  put('');
  process.stdout.write(`${out.join('\n')}\n`);
}

/** An audio line at a seam: in sync against its own segment's place on the clock. */
function checkSeamLine(show: Show, l: AudioLine, seg: Win, periods: ReadonlyMap<number, AudioLine[]>, wav: Float32Array): string | null {
  return checkAudioLine(show, l, seg, periods.get(Math.floor(l.deviceSample / PERIOD_FRAMES)) ?? [l], wav, SAMPLE_RATE).why;
}
