/**
 * bench:multi's feed log (./bench-multi): a Follow client on the master's server for one output (the audio one), as a
 * child process writing one JSON line per event to a file in the run's directory: every clock state, every
 * CueStarted, and every packet batch with the media time its last packet ends at. The judge reads it to say how far
 * ahead of the show clock the server's packets arrived (the feed's lead), next to the players' dry periods: a dry
 * period with the feed ahead is the player's decoding late; with the feed behind, the server's feed.
 *
 * Why: the players' sync logs say what they presented, not when their data came (a full run's dry audio after GOs and
 * locates could be either).
 *
 * Run as a script: `node bench-multi-feed.js <target> <output> <file>`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, promises as fsp } from 'node:fs';
import { once } from 'node:events';
import * as os from 'node:os';
import { MediaClient } from '../src/clients/media-client';
import { monoNs } from '../src/common/time-source';
import type { FollowEvent } from '../src/generated/cuemux/v1/media_server';

/** A line of the feed log. Instants are CLOCK_MONOTONIC ns as decimal strings. */
export type FeedLine =
  | { e: 'clock'; mono: string; gen: string; state: string; rate: number; pos: number; anchor: string }
  | { e: 'started'; mono: string; cue: string; seg: number; clock: number; media: number }
  /** A batch of a segment (`pre` 0) or a preroll: `to` the media time its last packet ends at, s. */
  | { e: 'batch'; mono: string; cue: string; seg: number; gen: string; pre: number; to: number };

async function feedProcess(target: string, output: string, file: string): Promise<void> {
  const client = new MediaClient(target);
  const out = createWriteStream(file);
  /** Each cue's streams' time bases (s per tick). */
  const tb = new Map<string, Map<number, number>>();
  const put = (l: FeedLine): void => {
    out.write(`${JSON.stringify(l)}\n`);
  };
  let ready = false;
  for await (const ev of client.follow({ output }) as AsyncIterable<FollowEvent>) {
    const mono = String(monoNs());
    if (!ready) {
      ready = true;
      process.stdout.write('ready\n');
    }
    const e = ev.event;
    if (e === undefined) continue;
    if (e.$case === 'clock') {
      const s = e.value;
      put({ e: 'clock', mono, gen: String(s.generation), state: s.state, rate: s.rate, pos: s.positionSeconds, anchor: String(s.anchorMonotonicNs) });
    } else if (e.$case === 'loaded') {
      tb.set(e.value.cueId, new Map((e.value.media?.streams ?? []).map((s) => [s.index, s.timeBaseNum / s.timeBaseDen])));
    } else if (e.$case === 'started') {
      const s = e.value;
      put({ e: 'started', mono, cue: s.cueId, seg: s.segment, clock: s.clockSeconds, media: s.mediaSeconds });
    } else if (e.$case === 'packets' && e.value.packets.length > 0) {
      const p = e.value;
      const last = p.packets[p.packets.length - 1];
      const base = tb.get(p.cueId)?.get(last.streamIndex);
      if (base === undefined || last.pts === undefined) continue;
      put({ e: 'batch', mono, cue: p.cueId, seg: p.segment, gen: String(p.generation), pre: p.preroll, to: Number(last.pts + last.duration) * base });
    }
  }
}

/** The feed log's child process, seen from the benchmark. */
export class FeedLog {
  readonly #child: ChildProcess;

  private constructor(child: ChildProcess) {
    this.#child = child;
  }

  /**
   * Start it on `output` of `target`, writing to `file`, at nice value `nice` (the players' start nice: at the
   * benchmark's own nice 10 its arrival instants were its own CPU starvation, 4.5 s behind in a loaded quick run);
   * resolves once its Follow stream is up.
   */
  static async start(target: string, output: string, file: string, nice: number): Promise<FeedLog> {
    const child = spawn('nice', ['-n', String(nice - os.getPriority()), process.execPath, __filename, target, output, file], { stdio: ['ignore', 'pipe', 'inherit'] });
    await Promise.race([once(child.stdout as NodeJS.ReadableStream, 'data'), once(child, 'exit').then(() => {
      throw new Error('the feed log process exited before its Follow stream was up');
    })]);
    return new FeedLog(child);
  }

  /** The process id. */
  get pid(): number {
    return this.#child.pid as number;
  }

  stop(): void {
    this.#child.kill();
  }
}

/** Read a feed log (empty when the run kept none). */
export async function readFeed(file: string): Promise<FeedLine[]> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as FeedLine);
}

/**
 * The feed's lead at each segment batch, s: the clock time its last packet plays at (the segment's CueStarted
 * mapping) minus the clock at its arrival (the clock state before it), for batches that arrived while the clock
 * ran in the batch's generation. Preroll batches are left out (ahead by design), and so are a past generation's
 * still in flight after a locate or a stop (planned for a timeline that is gone: the players drop them).
 */
export function feedLeads(lines: readonly FeedLine[]): Array<{ mono: bigint; lead: number }> {
  const out: Array<{ mono: bigint; lead: number }> = [];
  let clock: Extract<FeedLine, { e: 'clock' }> | null = null;
  const starts = new Map<string, Extract<FeedLine, { e: 'started' }>>();
  for (const l of lines) {
    if (l.e === 'clock') clock = l;
    else if (l.e === 'started') starts.set(`${l.cue}\0${l.seg}`, l);
    else if (l.pre === 0 && clock !== null && clock.state === 'playing' && l.gen === clock.gen) {
      const s = starts.get(`${l.cue}\0${l.seg}`);
      if (s === undefined) continue;
      const now = clock.pos + (clock.rate * Number(BigInt(l.mono) - BigInt(clock.anchor))) / 1e9;
      out.push({ mono: BigInt(l.mono), lead: s.clock + (l.to - s.media) - now });
    }
  }
  return out;
}

if (require.main === module) {
  const [target, output, file] = process.argv.slice(2);
  feedProcess(target, output, file).catch((e: unknown) => {
    process.stderr.write(`bench:multi feed log: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
