/**
 * What a cue is, as written by a show technician (cue list file or OSC `load`), validated into a CueDefinition with
 * errors that name the cue and the field. Times may be seconds or timecode; they are resolved to seconds here with
 * the show's timecode rate, so the engine only ever sees seconds.
 */
import { CuemuxError, errorMessage } from '../common/errors';
import type { MediaStream } from '../media/open-media';
import { parseTimePosition, type TimecodeRate } from './timecode';

/** A stream selector: "video", "audio", "subtitle", "data", optionally ":N" (the Nth of that type, from 0), or an absolute stream index. */
export type StreamSelector = string | number;

/** One cue, validated. Times are seconds from the start of the media (0 = its first frame). */
export interface CueDefinition {
  /** Unique cue id (e.g. "1", "12.5", "intro"). */
  readonly id: string;
  /** Optional human name, for status and logs. */
  readonly name: string;
  /** Media path, relative to a media root (or absolute inside one). */
  readonly media: string;
  /** In-point: seconds from the start of the media. Default 0. */
  readonly inSeconds: number;
  /** Out-point: seconds from the start of the media, after inSeconds; null = the end of the media. */
  readonly outSeconds: number | null;
  /** Loop from out-point back to in-point until stopped. Default false. */
  readonly loop: boolean;
  /** Output name → streams of the media it gets. */
  readonly outputs: ReadonlyMap<string, readonly StreamSelector[]>;
  /** Auto-follow: start this cue, gaplessly, when the cue before it in the list ends. Default false. */
  readonly follow: boolean;
}

/** Outputs used when a cue names none: the first video stream to "video", the first audio stream to "audio". */
export const DEFAULT_OUTPUTS: ReadonlyMap<string, readonly StreamSelector[]> = new Map([['video', ['video']], ['audio', ['audio']]]);

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const OUTPUT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KNOWN_FIELDS = new Set(['id', 'name', 'media', 'in', 'out', 'loop', 'outputs', 'follow']);

function bad(where: string, message: string): CuemuxError {
  return new CuemuxError('INVALID_ARGUMENT', `${where}: ${message}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate a cue id (letters, digits, ".", "_", "-"; at most 64). */
export function checkCueId(id: unknown, where: string): string {
  const s = typeof id === 'number' && Number.isFinite(id) ? String(id) : id;
  if (typeof s !== 'string' || !ID_RE.test(s)) {
    throw bad(where, `cue id must be 1-64 letters, digits, ".", "_" or "-", got ${JSON.stringify(id)}`);
  }
  return s;
}

function time(v: unknown, field: string, where: string, rate: TimecodeRate | null): number {
  if (typeof v !== 'number' && typeof v !== 'string') throw bad(where, `"${field}" must be seconds or a timecode, got ${JSON.stringify(v)}`);
  let seconds: number;
  try {
    seconds = parseTimePosition(v, rate);
  } catch (e) {
    throw bad(where, `"${field}": ${errorMessage(e)}`);
  }
  if (seconds < 0) throw bad(where, `"${field}" must not be negative, got ${JSON.stringify(v)}`);
  return seconds;
}

function selectors(v: unknown, output: string, where: string): StreamSelector[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw bad(where, `output "${output}" lists no streams`);
  return list.map((sel) => {
    if (typeof sel === 'number' && Number.isInteger(sel) && sel >= 0) return sel;
    if (typeof sel === 'string' && /^(video|audio|subtitle|data)(:\d+)?$/.test(sel)) return sel;
    throw bad(where, `output "${output}": stream selector must be "video", "audio", "subtitle", "data" (optionally ":N") or a stream index, got ${JSON.stringify(sel)}`);
  });
}

/**
 * Validate one cue from JSON. `where` names it in errors (e.g. `cue list /show/cues.json, cues[3]`); `rate` resolves
 * timecode strings (null: timecodes are refused with a message saying so).
 */
export function parseCueDefinition(raw: unknown, where: string, rate: TimecodeRate | null): CueDefinition {
  if (!isRecord(raw)) throw bad(where, `a cue must be a JSON object, got ${JSON.stringify(raw)}`);
  const id = checkCueId(raw.id, where);
  const at = `${where} (cue "${id}")`;
  for (const k of Object.keys(raw)) {
    if (!KNOWN_FIELDS.has(k)) throw bad(at, `unknown field "${k}" (known: ${[...KNOWN_FIELDS].join(', ')})`);
  }
  if (typeof raw.media !== 'string' || raw.media === '') throw bad(at, '"media" must be the path of a media file');
  const inSeconds = raw.in === undefined ? 0 : time(raw.in, 'in', at, rate);
  const outSeconds = raw.out === undefined || raw.out === null ? null : time(raw.out, 'out', at, rate);
  if (outSeconds !== null && outSeconds <= inSeconds) throw bad(at, `"out" (${outSeconds} s) must be after "in" (${inSeconds} s)`);
  for (const k of ['loop', 'follow'] as const) {
    if (raw[k] !== undefined && typeof raw[k] !== 'boolean') throw bad(at, `"${k}" must be true or false`);
  }
  if (raw.name !== undefined && typeof raw.name !== 'string') throw bad(at, '"name" must be a string');
  let outputs = DEFAULT_OUTPUTS;
  if (raw.outputs !== undefined) {
    if (!isRecord(raw.outputs) || Object.keys(raw.outputs).length === 0) {
      throw bad(at, '"outputs" must be an object mapping output names to streams, e.g. {"stage": ["video"], "main": ["audio"]}');
    }
    const m = new Map<string, StreamSelector[]>();
    for (const [name, v] of Object.entries(raw.outputs)) {
      if (!OUTPUT_RE.test(name)) throw bad(at, `output name must be 1-64 letters, digits, ".", "_" or "-", got ${JSON.stringify(name)}`);
      m.set(name, selectors(v, name, at));
    }
    outputs = m;
  }
  return {
    id, name: typeof raw.name === 'string' ? raw.name : '', media: raw.media, inSeconds, outSeconds,
    loop: raw.loop === true, outputs, follow: raw.follow === true,
  };
}

/** True when two definitions describe the same cue (so an armed cue need not be re-armed after a cue list edit). */
export function sameCue(a: CueDefinition, b: CueDefinition): boolean {
  const outs = (d: CueDefinition): string => JSON.stringify([...d.outputs.entries()]);
  return a.id === b.id && a.media === b.media && a.inSeconds === b.inSeconds && a.outSeconds === b.outSeconds &&
    a.loop === b.loop && a.follow === b.follow && a.name === b.name && outs(a) === outs(b);
}

/**
 * Resolve a cue's outputs against its media's streams: output name → ascending stream indexes. Selectors that match
 * no stream are an error naming the cue, the media and the selector — except in the default assignment, where a
 * missing type is simply not routed (an audio-only file has no "video" output).
 */
export function resolveOutputs(def: CueDefinition, streams: readonly MediaStream[], mediaPath: string): Map<string, number[]> {
  const isDefault = def.outputs === DEFAULT_OUTPUTS;
  const out = new Map<string, number[]>();
  for (const [name, sels] of def.outputs) {
    const picked = new Set<number>();
    for (const sel of sels) {
      let s: MediaStream | undefined;
      if (typeof sel === 'number') {
        s = streams.find((x) => x.index === sel);
      } else {
        const [type, n] = sel.split(':');
        s = streams.filter((x) => x.codecType === type)[Number(n ?? 0)];
      }
      if (s === undefined) {
        if (isDefault) continue;
        const have = streams.map((x) => `${x.index}:${x.codecType}`).join(', ');
        throw new CuemuxError('NO_SUCH_STREAM', `cue "${def.id}": ${mediaPath} has no stream "${String(sel)}" for output "${name}" (it has ${have})`, { path: mediaPath });
      }
      picked.add(s.index);
    }
    if (picked.size > 0) out.set(name, [...picked].sort((a, b) => a - b));
  }
  if (out.size === 0) {
    throw new CuemuxError('NO_SUCH_STREAM', `cue "${def.id}": ${mediaPath} has no stream for any output of the cue`, { path: mediaPath });
  }
  return out;
}
