/**
 * bench:multi's report (./bench-multi): the inter-machine offsets, out-of-sync ticks, dry audio periods, the partition
 * and the failover, per-machine CPU and heartbeat gaps, against the issue's targets (PASS/MISS).
 */
import * as os from 'node:os';
import type { Show } from './bench-go-analysis';
import { busyIn, countByCommand, endAtNextCommand, judgeAudio, judgeVideo, maxStep, offsetsAgainst, outside, playerPending, type CpuSample, type PlayerLogs, type Sample, type Span } from './bench/multi-judge';
import type { RelayStats } from './bench/relay';
import { ms, passIf, pct } from './bench/stats';

/** `cpuS` CPU seconds over `wallS` as a percentage of one CPU. */
const pctOf = (cpuS: number, wallS: number): string => `${((100 * cpuS) / wallS).toFixed(0)} %`;

/** What the report is made of. */
export interface ReportInput {
  /** Show length asked, s. */
  duration: number;
  /** The control run: relays pass everything at once (no delay, no loss). */
  control: boolean;
  /** The players' display rate, ticks/s. */
  fps: number;
  /** Nice value the players' threads were held at (--players-nice), or null for their own. */
  playersNice: number | null;
  /** The players' Follow lead (--lead), s, or null (absent in older run records) for the server's 0.5. */
  lead?: number | null;
  logs: PlayerLogs[];
  show: Show;
  expected: (s: Show, mono: bigint) => string | null;
  firstGo: bigint;
  endMono: bigint;
  commands: bigint[];
  /** The instant the master applied each command (parallel to `commands`; see multi-judge's commandsApplied); default the commands'. */
  applied?: bigint[];
  partition: Span | null;
  failover: Span | null;
  takeoverMs: number;
  relayStats: RelayStats | null;
  cycles: number;
  /** Takeovers nobody caused (the machine's load held heartbeats past --takeover-ms): the new master and when. */
  falseTakeovers: string[];
  /** CPU time per machine over the run, s, by process (server, players, relay), and the run's wall time, s. */
  cpu: Map<string, Map<string, number>>;
  wallS: number;
  /** CPU time the whole machine was busy meanwhile, s (the run's processes and any others). */
  machineBusyS: number;
  /** The backup's largest gap between its master's states before the SIGKILL, ms (its log), and its --takeover-ms. */
  backupGapMs: number;
  takeoverMsSetting: number;
  /** Times the backup found its silent master answering GetRole and did not take over (its log). */
  spared: number;
  /** What each command was (its OSC address without /cuemux/, parallel to `commands`); absent in older run records. */
  commandNames?: string[];
  /** The machine's CPU use over the run, every 100 ms (absent in older run records). */
  cpuTimeline?: CpuSample[];
  /** The master's audio feed's lead at each segment batch (./bench-multi-feed; empty when the run kept none). */
  feed?: Array<{ mono: bigint; lead: number }>;
}

/** A feed batch arriving with less than this left before its data plays (s) is late for the players: half the server's 0.5 s lead. */
const FEED_SHORT_S = 0.25;

/** How long after the heal of the partition and after the takeover their spans run (bench-multi's), ns. */
const SETTLE_NS = 5_000_000_000n;

/** The report's lines. */
export function report(r: ReportInput): string[] {
  const out: string[] = [];
  const periodNs = 1e9 / r.fps;
  const from = r.firstGo + 1_000_000_000n; // after the first cue's first second: every player has reached it
  /** The peer's players' labels ("f1 peer"...): the machines bench-multi runs a peer pair on. */
  const peers = [...new Set(r.logs.filter((l) => l.label.endsWith(' peer')).map((l) => l.label))];
  const of = (label: string, kind: 'video' | 'audio'): PlayerLogs => r.logs.find((l) => l.label === label && l.kind === kind) as PlayerLogs;
  out.push(`bench:multi${r.control ? ' CONTROL RUN (relays pass everything at once: no delay, no loss)' : ''}: ${r.cycles} cycles of the show (${r.duration} s), `
    + `players at ${r.fps} ticks/s (video) and 10 ms periods (audio, 48 kHz)${r.playersNice === null ? '' : `, every player thread held at nice ${r.playersNice}`}, `
    + `Follow lead ${r.lead === null || r.lead === undefined ? 'the server\'s (0.5 s)' : `${r.lead} s`}`);
  const rs = r.relayStats;
  if (rs !== null) {
    out.push(`Relay (${r.control ? 'unshaped' : '0.2-2 ms one way with jitter, 1 % loss'}): ${rs.tcpConnections} TCP connections, ${rs.tcpChunks} shaped chunks, ${rs.tcpLost} lost (retransmitted 10 ms later); `
      + `delay given (arrival to delivery) p50 ${rs.delayP50Ms.toFixed(2)} ms, p99 ${rs.delayP99Ms.toFixed(2)} ms, max ${rs.delayMaxMs.toFixed(2)} ms`);
  }
  out.push('', `CPU per machine over the run (share of one CPU; the machine has ${os.cpus().length}):`);
  for (const [machine, byProc] of r.cpu) {
    const total = [...byProc.values()].reduce((a, b) => a + b, 0);
    out.push(`  ${machine.padEnd(4)} ${pctOf(total, r.wallS).padStart(6)}  (${[...byProc].map(([k, v]) => `${k} ${pctOf(v, r.wallS)}`).join(', ')})`);
  }
  const all = [...r.cpu.values()].flatMap((m) => [...m.values()]).reduce((a, b) => a + b, 0);
  out.push(`  all  ${pctOf(all, r.wallS).padStart(6)} of ${os.cpus().length * 100} %; processes not of this run (a shared machine): ${pctOf(Math.max(0, r.machineBusyS - all), r.wallS)}; `
    + `machine idle ${pctOf(Math.max(0, os.cpus().length * r.wallS - r.machineBusyS), r.wallS)}`);
  out.push('', 'Inter-machine presentation offset against the master machine\'s player (ms; video: the clock of each tick, audio: the media time of each period):');
  out.push(`${'player'.padEnd(16)}${'video p50'.padStart(11)}${'p99'.padStart(9)}${'max'.padStart(9)}${'audio p50'.padStart(11)}${'p99'.padStart(9)}${'max'.padStart(9)}`);
  const offs = new Map<string, Array<{ mono: bigint; offset: number }>>();
  const p99 = new Map<string, number>();
  const pendingOf = new Map(r.logs.map((l) => [`${l.label} ${l.kind}`, playerPending(r.show, l, r.commands, r.expected, r.applied ?? r.commands)]));
  /** A player's samples after `from` outside its pending spans (a command not yet presented is no offset). */
  const steady = (label: string, kind: 'video' | 'audio'): Sample[] => outside(of(label, kind).samples.filter((s) => s.mono >= from), pendingOf.get(`${label} ${kind}`) ?? []);
  for (const label of ['b', 'f1', 'f2', ...peers]) {
    const cells: string[] = [];
    for (const kind of ['video', 'audio'] as const) {
      const o = offsetsAgainst(steady('m', kind), steady(label, kind));
      offs.set(`${label} ${kind}`, o);
      const abs = o.map((x) => Math.abs(x.offset));
      p99.set(`${label} ${kind}`, pct(abs, 99));
      // No pair of full periods (or ticks) at the same instants: nothing to compare, said as such (not NaN).
      cells.push(...(o.length === 0 ? ['-', '-', '-'].map((x, k) => x.padStart(k === 0 ? 11 : 9))
        : [ms(pct(o.map((x) => x.offset), 50)).padStart(11), ms(pct(abs, 99)).padStart(9), ms(Math.max(0, ...abs)).padStart(9)]));
    }
    out.push(`${label.padEnd(16)}${cells.join('')}`);
  }
  out.push('', 'Out-of-sync video ticks (frame MD5 against FFmpeg\'s for the master\'s clock; a command up to the first in-sync tick once the master applied it not judged) and dry audio periods:');
  out.push(`${'player'.padEnd(16)}${'ticks'.padStart(8)}${'wrong'.padStart(7)}${'partition'.padStart(11)}${'failover'.padStart(10)}${'periods'.padStart(9)}${'dry'.padStart(6)}${'partition'.padStart(11)}${'failover'.padStart(10)}`);
  let wrongFollowers = 0;
  let wrongAll = 0;
  let wrongFailover = 0;
  let dryFailover = 0;
  let dryFollowersSteady = 0;
  let wrongFollowersSteady = 0;
  let wrongPartition = 0;
  const examples: string[] = [];
  // The partition's and the failover's wrong ticks and dry periods: up to the show's next command after the heal or
  // the takeover (multi-judge's endAtNextCommand says why); the partition's steps are still looked for over all of it.
  const partitionSpan = endAtNextCommand(r.partition, (r.partition?.to ?? 0n) - SETTLE_NS, r.commands);
  const failoverSpan = endAtNextCommand(r.failover, (r.failover?.to ?? 0n) - SETTLE_NS, r.commands);
  const wrongAt: bigint[] = [];
  const dryAt: bigint[] = [];
  for (const label of ['m', 'b', 'f1', 'f2', ...peers]) {
    const v = of(label, 'video');
    const a = of(label, 'audio');
    const jv = judgeVideo(r.show, v, from, pendingOf.get(`${label} video`) ?? [], periodNs, partitionSpan, failoverSpan);
    const ja = judgeAudio(a, from, pendingOf.get(`${label} audio`) ?? [], partitionSpan, failoverSpan);
    out.push(`${label.padEnd(16)}${String(jv.judged).padStart(8)}${String(jv.wrong).padStart(7)}${String(jv.inPartition).padStart(11)}${String(jv.inFailover).padStart(10)}`
      + `${String(ja.periods).padStart(9)}${String(ja.dry).padStart(6)}${String(ja.inPartition).padStart(11)}${String(ja.inFailover).padStart(10)}`);
    for (const e of jv.examples) examples.push(`  ${label}: ${e}`);
    if (!label.includes('peer')) {
      wrongAt.push(...jv.wrongAt);
      dryAt.push(...ja.dryAt);
      wrongAll += jv.wrong;
      wrongFailover += jv.inFailover;
      dryFailover += ja.inFailover;
      wrongPartition += jv.inPartition;
      if (label.startsWith('f')) {
        wrongFollowers += jv.wrong;
        wrongFollowersSteady += jv.wrong - jv.inPartition - jv.inFailover;
        dryFollowersSteady += ja.dry - ja.inPartition - ja.inFailover;
      }
    }
  }
  if (examples.length > 0) out.push('First out-of-sync ticks (s after the first GO + 1 s):', ...examples.slice(0, 12));
  out.push(...byCommand(r, wrongAt, dryAt));
  // A wrong tick or a dry period is a starved player or a wrong one: the presenting thread on time with no frame
  // decoded for the tick (held: the picture on screen stays) is the decoder or its data late; a presenting thread
  // late by more than a tick, or audio periods missed (xruns: held up past the 20 ms write-ahead), is the CPU.
  out.push('', 'Where the players\' time went: video ticks judged (after the first GO + 1 s, no command pending), the presenting thread\'s '
    + 'lateness p50/p99/max (ms) and those with no frame decoded for them (held); audio, periods missed over the run (xruns):');
  for (const label of ['m', 'b', 'f1', 'f2', ...peers]) {
    const ticks = outside(of(label, 'video').ticks.filter((t) => t.mono >= from), pendingOf.get(`${label} video`) ?? []);
    const late = ticks.map((t) => Number(t.mono - t.due) / 1e9);
    const xruns = of(label, 'audio').xruns;
    out.push(`  ${label.padEnd(8)} video late ${ms(pct(late, 50))}/${ms(pct(late, 99))}/${ms(Math.max(0, ...late))} ms, held ${ticks.filter((t) => t.extra?.held === true).length} of ${ticks.length} ticks; `
      + `audio xruns ${Number.isNaN(xruns) ? 'not logged' : `${xruns} periods`}`);
  }
  // The partition: f1's clock against the master's, from the cut to 5 s after the heal.
  let stepV = NaN;
  let stepA = NaN;
  if (r.partition !== null) {
    stepV = maxStep(offs.get('f1 video') ?? [], r.partition);
    stepA = maxStep(offs.get('f1 audio') ?? [], r.partition);
    out.push('', `Partition of f1 (link down 2 s, then 5 s after the heal): largest step of f1's offset to the master machine: video ${ms(stepV)} ms, audio ${ms(stepA)} ms; `
      + `out-of-sync ticks there (all machines but the peers): ${wrongPartition}`);
  }
  out.push(`Takeovers nobody caused (heartbeats held past --takeover-ms by the load): ${r.falseTakeovers.length === 0 ? 'none' : r.falseTakeovers.join(', ')}; `
    + `the backup's largest gap between its master's states before the SIGKILL: ${Number.isFinite(r.backupGapMs) ? `${r.backupGapMs} ms` : 'not logged'} `
    + `(heartbeat every ${Math.round(r.takeoverMsSetting / 3)} ms, --takeover-ms ${r.takeoverMsSetting}); silent past --takeover-ms but answering GetRole, so not taken over: ${r.spared} time(s)`);
  out.push(`Failover: the backup answered as master ${r.takeoverMs.toFixed(0)} ms after the SIGKILL (GetRole every 20 ms); from the SIGKILL to 5 s after that `
    + `or the show's next command, whichever first (${failoverSpan === null ? '-' : `${(Number(failoverSpan.to - failoverSpan.from) / 1e9).toFixed(2)} s`}): `
    + `${wrongFailover} out-of-sync ticks and ${dryFailover} dry audio periods on the four machines`);
  void wrongFollowers;
  const audioP99 = Math.max(...['b', 'f1', 'f2'].map((l) => p99.get(`${l} audio`) ?? NaN));
  const peerAudioP99 = Math.max(...peers.map((l) => p99.get(`${l} audio`) ?? NaN));
  const videoP99 = Math.max(...['b', 'f1', 'f2'].map((l) => p99.get(`${l} video`) ?? NaN));
  const peerVideoP99 = Math.max(...peers.map((l) => p99.get(`${l} video`) ?? NaN));
  out.push('', `Peer (the same players over TCP across the relay with the Ping offset, no local server): audio p99 ${ms(peerAudioP99)} ms vs followers ${ms(audioP99)} ms `
    + `(${(peerAudioP99 / audioP99).toFixed(1)}x), video p99 ${ms(peerVideoP99)} ms vs ${ms(videoP99)} ms`);
  out.push('', 'Targets:');
  const fullPeriods = ['m', 'b', 'f1', 'f2'].map((l) => `${l} ${of(l, 'audio').samples.length}/${of(l, 'audio').audio.length}`).join(', ');
  out.push(`  ${passIf(audioP99 <= 0.001)} inter-machine audio p99 <= 1 ms (worst machine: ${Number.isNaN(audioP99) ? 'not measurable' : `${ms(audioP99)} ms`}; `
    + `periods rendered in full, of all: ${fullPeriods})`);
  out.push(`  ${passIf(wrongAll === 0)} 0 out-of-sync video ticks on the four machines (${wrongAll})`);
  out.push(`  ${passIf(wrongFailover === 0 && dryFailover === 0 && Number.isFinite(r.takeoverMs))} failover: 0 out-of-sync ticks, no dry audio period (${wrongFailover}, ${dryFailover}; backup master after ${r.takeoverMs.toFixed(0)} ms)`);
  out.push(`  ${passIf(wrongPartition === 0 && stepV <= 0.001 && stepA <= 0.001)} partition: re-lock without a visible jump (0 out-of-sync ticks, steps <= 1 ms: ${wrongPartition}, ${ms(stepV)}, ${ms(stepA)} ms)`);
  out.push(`  ${passIf(wrongFollowersSteady === 0 && dryFollowersSteady === 0)} the 1 % loss link costs nothing visible on the followers outside the partition and the failover (${wrongFollowersSteady} ticks, ${dryFollowersSteady} dry periods)`);
  out.push(`Run span: ${(Number(r.endMono - r.firstGo) / 1e9).toFixed(1)} s of show.`);
  return out;
}


/**
 * Where the wrong ticks and dry periods of the four machines fall: by the kind of show command before them, with the
 * machine's CPU use in the second after each kind of command against the run's (the CPU timeline of the run record).
 * Why: the run's mean CPU use (137 % of 200 % in a full run) said nothing of the instants every player of every
 * "machine" acts on the same command at once.
 */
function byCommand(r: ReportInput, wrongAt: readonly bigint[], dryAt: readonly bigint[]): string[] {
  if (r.commandNames === undefined) return ['', 'Wrong ticks and dry periods by the command before them: not in this run record (commands not named)'];
  const names = r.commandNames;
  const ticks = countByCommand(wrongAt, r.commands, names);
  const dry = countByCommand(dryAt, r.commands, names);
  const cpu = r.cpuTimeline ?? [];
  const runBusy = cpu.length === 0 ? NaN : busyIn(cpu, r.firstGo, r.endMono);
  const feed = (r.feed ?? []).filter((f) => f.mono >= r.firstGo);
  const short = countByCommand(feed.filter((f) => f.lead < FEED_SHORT_S).map((f) => f.mono), r.commands, names);
  const out = ['', `Wrong ticks and dry periods of the four machines by the show command before them; the machine's CPU use in the second after each (mean of the kind), `
    + `against the run's (${Number.isNaN(runBusy) ? 'no CPU timeline' : `${(100 * runBusy).toFixed(0)} %`}); the master's audio feed's batches that arrived less than `
    + `${FEED_SHORT_S} s before their data plays (${feed.length === 0 ? 'no feed log' : `of ${feed.length}; lead p1 ${pct(feed.map((f) => f.lead), 1).toFixed(3)} s, min ${Math.min(...feed.map((f) => f.lead)).toFixed(3)} s`}):`];
  for (const name of [...new Set(names)]) {
    const after = r.commands.filter((_c, i) => names[i] === name).map((c) => busyIn(cpu, c, c + 1_000_000_000n)).filter((b) => !Number.isNaN(b));
    const busy = after.length === 0 ? '-' : `${(100 * after.reduce((a, b) => a + b, 0) / after.length).toFixed(0)} % (max ${(100 * Math.max(...after)).toFixed(0)} %)`;
    out.push(`  ${name.padEnd(12)} x${String(names.filter((n) => n === name).length).padEnd(4)} ticks ${String(ticks.get(name) ?? 0).padStart(5)}  dry ${String(dry.get(name) ?? 0).padStart(6)}  CPU ${busy}`
      + `${feed.length === 0 ? '' : `  feed short ${short.get(name) ?? 0}`}`);
  }
  return out;
}
