/**
 * `play-video --window [fullscreen|WxH[+X+Y]]`: a video sink that shows each tick's picture in a real window, through
 * cuemux's SDL2 addon (native/sdl, built at `npm ci` against Debian's libsdl2-dev).
 *
 * The addon's render thread owns the window, an SDL renderer (vsync where the display has it) and a streaming
 * texture of the decoded format (yuv420p as IYUV, nv12/nv21, packed RGB), and copies it scaled into the window,
 * letterboxed. Each tick hands its picture to that thread through a one-slot mailbox: the tick never waits for an
 * upload or a vsync, and a tick not presented yet when the next comes is replaced by it (counted). The planes are not
 * copied: the picture is retained until the render thread says it has uploaded it.
 *
 * Each presentation is measured on CLOCK_MONOTONIC: from the tick (its sync-log `mono_ns`) to SDL_RenderPresent
 * returning (`present_ns`), the part spent in SDL_RenderPresent (`swap_ns`: the vsync wait when there is one). A
 * tick's sync-log line carries the latest presentation finished by then, naming the tick it presented
 * (`present_of_ns`, that tick's `mono_ns`).
 */
import * as path from 'node:path';
import { CuemuxError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import type { Picture, PresentInfo, VideoSink, VideoSinkStats } from './video-sinks';

const log = getLogger('play-video');

/** Where and how big the window is. */
export type WindowGeometry = { fullscreen: true } | { fullscreen: false; width: number; height: number; x: number | null; y: number | null };

/** The default `--window`: 960x540 at the screen's top left. */
export const DEFAULT_WINDOW = '960x540+0+0';

/**
 * Parse `--window`'s value: `fullscreen`, `WxH` (a decorated window where the window manager puts it) or `WxH+X+Y`
 * (a borderless window at X,Y: a show output). INVALID_ARGUMENT otherwise.
 */
export function parseWindowSpec(spec: string): WindowGeometry {
  if (spec === 'fullscreen') return { fullscreen: true };
  const m = /^(\d{1,5})x(\d{1,5})(?:([+-]\d{1,5})([+-]\d{1,5}))?$/.exec(spec);
  const width = Number(m?.[1]);
  const height = Number(m?.[2]);
  if (m === null || !(width > 0 && height > 0)) {
    throw new CuemuxError('INVALID_ARGUMENT', `--window must be fullscreen, WxH or WxH+X+Y (e.g. ${DEFAULT_WINDOW}), got "${spec}"`);
  }
  return { fullscreen: false, width, height, x: m[3] === undefined ? null : Number(m[3]), y: m[4] === undefined ? null : Number(m[4]) };
}

/** The addon's window (native/sdl/cuemux_sdl.cc). */
interface SdlWindow {
  info(): WindowInfo;
  present(tickNs: bigint, kind: 0 | 2): void;
  present(tickNs: bigint, kind: 1, seq: number, format: string, width: number, height: number, sar: number, planes: Buffer[]): void;
  released(): number;
  /** Presentations, {@link RECORD_FIELDS} numbers each: tick, taken, uploaded, copied, presented (ns), seq, kind, replaced. */
  drain(): Float64Array;
  stats(): { presented: number; replaced: number; uploads: number; uploadErrors: number; droppedRecords: number; userClosed: boolean; lastError: string };
  closed(): boolean;
  close(): void;
}

interface SdlWindowOptions {
  title?: string;
  x?: number;
  y?: number;
  width?: number;
  height?: number;
  fullscreen?: boolean;
  borderless?: boolean;
  vsync?: boolean;
  scale?: 'nearest' | 'linear' | 'best';
  driver?: string;
  videoDrivers?: string;
}

interface SdlAddon {
  SdlWindow: new (options: SdlWindowOptions) => SdlWindow;
  formats: string[];
}

const RECORD_FIELDS = 8;

/** The addon's path: built by scripts/build-addons.js sdl. */
export const SDL_ADDON = path.resolve(__dirname, '..', '..', '..', 'native', 'sdl', 'build', 'Release', 'cuemux_sdl.node');

/** Load the addon; an INTERNAL CuemuxError when it is not built. */
export function sdlAddon(): SdlAddon {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(SDL_ADDON) as SdlAddon;
  } catch (e) {
    throw new CuemuxError('INTERNAL', `the SDL window addon is not built (${SDL_ADDON}): run scripts/setup.sh (installs libsdl2-dev and builds it)`, { cause: e });
  }
}

/** Options of {@link openVideoWindow}. */
export interface VideoWindowOptions {
  /** Output name for log lines and the window title. */
  name: string;
  /** Ask for vsync (default true; granted where the display and renderer have it). */
  vsync?: boolean;
  /** Texture scaling: `linear` (default) or `nearest`. */
  scale?: 'nearest' | 'linear';
  /** Called once when the window is closed by its user (window manager, SDL_QUIT): the player should stop. */
  onClosed?: () => void;
}

/** Presentation figures of a window, ns. */
export interface PresentFigures {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

/** Counters of a window sink. */
export interface VideoWindowStats extends VideoSinkStats {
  /** Presentations done by the render thread. */
  presentations: number;
  /** Ticks replaced in the mailbox by the next before the render thread took them. */
  replaced: number;
  /** Pictures uploaded into the texture. */
  uploads: number;
  /** Tick (`mono_ns`) → SDL_RenderPresent returned. */
  presentNs: PresentFigures;
  /** Time inside SDL_RenderPresent (the vsync wait, when there is one). */
  swapNs: PresentFigures;
  renderer: string;
  vsync: boolean;
}

function figures(sorted: Float64Array): PresentFigures {
  const n = sorted.length;
  const at = (q: number): number => (n === 0 ? 0 : sorted[Math.min(n - 1, Math.floor(q * n))]);
  return { count: n, p50: at(0.5), p99: at(0.99), max: n === 0 ? 0 : sorted[n - 1] };
}

/** Figures kept for the final stats (a day at 60 ticks/s fits 5.2M; only the last this many are kept). */
const KEEP = 1 << 20;

/** What {@link openVideoWindow} returns. */
export interface VideoWindowSink extends VideoSink {
  readonly info: Readonly<WindowInfo>;
  readonly stats: VideoWindowStats;
}

/** What the window got: SDL's video driver and renderer, whether vsync was granted, the output size. */
export interface WindowInfo {
  renderer: string;
  videoDriver: string;
  vsync: boolean;
  accelerated: boolean;
  width: number;
  height: number;
  refreshHz: number;
}

/** The window sink. */
class VideoWindow implements VideoWindowSink {
  readonly #win: SdlWindow;
  readonly #o: VideoWindowOptions;
  readonly #formats: Set<string>;
  readonly #info: WindowInfo;
  /** Pictures lent to the render thread, by sequence number, and how to let go of each. */
  readonly #inFlight = new Map<number, () => void>();
  #seq = 0;
  /** The picture last handed over (a tick presenting it again sends no planes). */
  #last: Picture | null = null;
  #closed = false;
  #toldClosed = false;
  #error: CuemuxError | null = null;
  readonly #unsupportedLogged = new Set<string>();
  #presented = 0;
  #pictures = 0;
  #black = 0;
  #unsupported = 0;
  /** The latest presentation finished: the tick it presented, tick → present returned, time in present. */
  #latest: { ofNs: number; presentNs: number; swapNs: number; replaced: number } | null = null;
  readonly #presentNs: number[] = [];
  readonly #swapNs: number[] = [];

  constructor(win: SdlWindow, formats: string[], options: VideoWindowOptions) {
    this.#win = win;
    this.#o = options;
    this.#formats = new Set(formats);
    this.#info = win.info();
  }

  get info(): Readonly<WindowInfo> {
    return this.#info;
  }

  get error(): CuemuxError | null {
    return this.#error;
  }

  get stats(): VideoWindowStats {
    this.#collect();
    const s = this.#closed ? null : this.#win.stats();
    return {
      presented: this.#presented, pictures: this.#pictures, black: this.#black, mismatched: 0, unsupported: this.#unsupported,
      written: s?.presented ?? this.#final.presented, dropped: s?.replaced ?? this.#final.replaced, bytesWritten: 0,
      presentations: s?.presented ?? this.#final.presented, replaced: s?.replaced ?? this.#final.replaced, uploads: s?.uploads ?? this.#final.uploads,
      presentNs: figures(Float64Array.from(this.#presentNs).sort()), swapNs: figures(Float64Array.from(this.#swapNs).sort()),
      renderer: this.#info.renderer, vsync: this.#info.vsync,
    };
  }

  #final = { presented: 0, replaced: 0, uploads: 0 };

  present(picture: Picture | null, at: PresentInfo): void {
    this.#presented++;
    if (this.#closed) return;
    this.#releaseDone();
    if (this.#win.closed() && !this.#toldClosed) {
      this.#toldClosed = true;
      log.info('the window was closed: the player stops', { output: this.#o.name });
      const cb = this.#o.onClosed;
      if (cb !== undefined) setImmediate(cb);
    }
    if (picture !== null && !this.#formats.has(picture.format)) {
      this.#unsupported++;
      if (!this.#unsupportedLogged.has(picture.format)) {
        this.#unsupportedLogged.add(picture.format);
        this.#error = new CuemuxError('INVALID_ARGUMENT', `video window ${this.#o.name}: pixel format ${picture.format} cannot be shown (supported: ${[...this.#formats].join(', ')}); black is shown instead`);
        log.error(this.#error.message, { output: this.#o.name });
      }
      picture = null;
    }
    if (picture === null) {
      this.#black++;
      this.#last = null;
      this.#win.present(at.monoNs, 0);
      return;
    }
    this.#pictures++;
    if (picture === this.#last) {
      this.#win.present(at.monoNs, 2);
      return;
    }
    const seq = ++this.#seq;
    const sar = picture.sampleAspectRatio !== undefined && picture.sampleAspectRatio.num > 0 && picture.sampleAspectRatio.den > 0
      ? picture.sampleAspectRatio.num / picture.sampleAspectRatio.den : 1;
    const release = picture.retain?.();
    try {
      this.#win.present(at.monoNs, 1, seq, picture.format, picture.width, picture.height, sar, picture.planes);
    } catch (e) {
      release?.();
      this.#unsupported++;
      this.#last = null;
      if (this.#error === null) {
        this.#error = new CuemuxError('INVALID_ARGUMENT', `video window ${this.#o.name}: a ${picture.width}x${picture.height} ${picture.format} picture cannot be shown (${errorMessage(e)})`);
        log.error(this.#error.message, { output: this.#o.name });
      }
      this.#win.present(at.monoNs, 0);
      return;
    }
    if (release !== undefined) this.#inFlight.set(seq, release);
    this.#last = picture;
  }

  /** Fields for the tick's sync-log line: the latest presentation finished. */
  syncFields(): Record<string, string | number | boolean | null> {
    this.#collect();
    const l = this.#latest;
    return l === null ? {} : { present_of_ns: l.ofNs, present_ns: l.presentNs, swap_ns: l.swapNs, ...(l.replaced > 0 ? { replaced: l.replaced } : {}) };
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#collect();
      const s = this.#win.stats();
      this.#final = { presented: s.presented, replaced: s.replaced, uploads: s.uploads };
      if (s.lastError !== '') log.warn(`SDL reported an error while presenting: ${s.lastError}`, { output: this.#o.name });
      this.#closed = true;
      this.#win.close();
      this.#releaseDone();
    }
    return Promise.resolve();
  }

  /** Let go of the pictures the render thread has uploaded (or passed over). */
  #releaseDone(): void {
    const done = this.#closed ? Infinity : this.#win.released();
    for (const [seq, release] of this.#inFlight) {
      if (seq > done) break;
      release();
      this.#inFlight.delete(seq);
    }
  }

  #collect(): void {
    if (this.#closed) return;
    const d = this.#win.drain();
    for (let i = 0; i + RECORD_FIELDS <= d.length; i += RECORD_FIELDS) {
      const tick = d[i];
      const presented = d[i + 4];
      const l = { ofNs: tick, presentNs: presented - tick, swapNs: presented - d[i + 3], replaced: d[i + 7] };
      this.#latest = l;
      if (this.#presentNs.length >= KEEP) {
        this.#presentNs.splice(0, KEEP / 2);
        this.#swapNs.splice(0, KEEP / 2);
      }
      this.#presentNs.push(l.presentNs);
      this.#swapNs.push(l.swapNs);
    }
  }
}

/**
 * Open the window of `play-video --window SPEC`. Rejects with a CuemuxError: INVALID_ARGUMENT for a malformed spec,
 * INTERNAL when the addon is not built, WRONG_STATE when there is no display to open it on (naming $DISPLAY).
 */
export function openVideoWindow(spec: string, options: VideoWindowOptions): VideoWindowSink {
  const g = parseWindowSpec(spec);
  const addon = sdlAddon();
  let win: SdlWindow;
  try {
    win = new addon.SdlWindow({
      title: `cuemux ${options.name}`, vsync: options.vsync ?? true, scale: options.scale ?? 'linear',
      ...(g.fullscreen ? { fullscreen: true } : { width: g.width, height: g.height, x: g.x ?? undefined, y: g.y ?? undefined, borderless: g.x !== null }),
      ...(process.env.SDL_VIDEODRIVER !== undefined ? { videoDrivers: process.env.SDL_VIDEODRIVER } : {}),
    });
  } catch (e) {
    const display = process.env.DISPLAY;
    const wayland = process.env.WAYLAND_DISPLAY;
    throw new CuemuxError('WRONG_STATE', `cannot open a window: ${errorMessage(e)} (DISPLAY=${display === undefined ? '(unset)' : JSON.stringify(display)}`
      + `${wayland === undefined ? '' : `, WAYLAND_DISPLAY=${JSON.stringify(wayland)}`}; is an X server running there and may this user use it?)`, { cause: e });
  }
  const sink = new VideoWindow(win, addon.formats, options);
  const i = sink.info;
  // SDL grants SDL_RENDERER_PRESENTVSYNC on displays that have no vertical blank (Xvfb: refresh rate 0): then presents
  // wait for nothing, which the log says.
  const vsync = !i.vsync ? 'off' : i.refreshHz > 0 ? `on (${i.refreshHz} Hz)` : 'requested, but the display reports no refresh rate (no vertical blank to wait for, e.g. Xvfb)';
  log.info(`video window open: ${i.width}x${i.height}, SDL ${i.videoDriver} ${i.renderer} renderer, vsync ${vsync}`, {
    output: options.name, window: spec, ...i, scale: options.scale ?? 'linear',
  });
  return sink;
}
