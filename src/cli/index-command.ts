/**
 * `cuemux index build|check|info|dump`: the technician's tools around the index store.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CuemuxError, fromSystemError, isCuemuxError } from '../common/errors';
import { ticksToSeconds } from '../common/rational';
import { hasMediaSignature, openDemuxer } from '../ffmpeg/demuxer';
import { checkIndex, openIndex, type IndexState } from '../index-store/open-index';
import { isIndexArtifact } from '../index-store/index-location';
import type { MediaIndex } from '../index-store/media-index';
import { ExitCode, combineExitCodes, exitCodeFor, type ExitCodeValue } from './exit-codes';
import { followBuild, growthOf } from './index-follow';
import { ProgressBar } from './progress';
import { DEFAULT_GROWING_WAIT_MS } from '../index-store/growing-index';
import type { CliIo } from './cli-io';
import { DEFAULT_JOBS, DEFAULT_LOCK_TIMEOUT_SECONDS, INDEX_BUILD, INDEX_CHECK, INDEX_COMMANDS, INDEX_DUMP, INDEX_INFO, INDEX_USAGE } from './index-usage';
import { helpText, parseCommand, usageError, type CommandSpec, type ParsedOptions } from './options';

interface Input {
  file: string;
  /** Found by walking a folder (then non-media files are skipped, not failures). */
  fromDir: boolean;
  /** Set when the path itself could not be used (missing, unreadable folder). */
  error?: unknown;
}

/** Expand files and folders (recursively, sorted, hidden entries and index files skipped), in argument order. */
async function collect(paths: string[]): Promise<Input[]> {
  const inputs: Input[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (e) {
      inputs.push({ file: dir, fromDir: false, error: fromSystemError(e, dir, 'read folder') });
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const d of entries) {
      if (d.name.startsWith('.')) continue;
      const p = path.join(dir, d.name);
      // Follow symbolic links to files (media libraries often link shared clips); links to folders are not
      // followed, so a loop of links cannot make the walk endless.
      const isFile = d.isFile() || (d.isSymbolicLink() && (await fsp.stat(p).then((st) => st.isFile(), () => false)));
      if (d.isDirectory()) await walk(p);
      else if (isFile && !isIndexArtifact(p)) inputs.push({ file: p, fromDir: true });
    }
  };
  for (const raw of paths) {
    const p = path.resolve(raw);
    try {
      const st = await fsp.stat(p);
      if (st.isDirectory()) await walk(p);
      else inputs.push({ file: p, fromDir: false });
    } catch (e) {
      inputs.push({ file: p, fromDir: false, error: fromSystemError(e, p, 'open') });
    }
  }
  return inputs;
}

/** The message without a leading "<file>: " (lines already show the file). */
function detail(file: string, message: string): string {
  return message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message;
}

function errorJson(e: unknown): { code: string; message: string } {
  return isCuemuxError(e) ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: String(e) };
}

/** A usage error: with the subcommand's usage line and --help hint, or the list of subcommands. */
function usage(message: string, spec?: CommandSpec): CuemuxError {
  return spec !== undefined ? usageError(spec, message) : new CuemuxError('INVALID_ARGUMENT', `${message}\n\n${INDEX_USAGE}`);
}

/** Parse by the subcommand's option table (help was handled by runIndexCommand). */
function parse(args: string[], spec: CommandSpec): ParsedOptions {
  const parsed = parseCommand(spec, args);
  if (parsed === 'help') throw new Error('--help reached a subcommand'); // runIndexCommand answers it first
  return parsed;
}

/** Run `cuemux index <args>`; returns the exit code. */
export async function runIndexCommand(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const [sub, ...rest] = args;
  const spec = INDEX_COMMANDS.find((c) => c.command === `index ${sub}`);
  if (spec !== undefined && parseCommand(spec, rest) === 'help') {
    io.out(helpText(spec));
    return ExitCode.OK;
  }
  switch (sub) {
    case 'build': return build(io, rest);
    case 'check': return check(io, rest);
    case 'info': return info(io, rest);
    case 'dump': return dump(io, rest);
    case undefined: case '-h': case '--help': case 'help':
      io.out(INDEX_USAGE);
      return sub === undefined ? ExitCode.USAGE : ExitCode.OK;
    default:
      throw usage(`unknown index command "${sub}"`);
  }
}

type FileResult = {
  media: string;
  status: 'built' | 'fresh' | 'waited' | 'partial' | 'skipped' | 'failed';
  index?: string;
  packets?: number;
  indexBytes?: number;
  seconds?: number;
  partial?: { bytePos: number; mediaBytes: number; message: string };
  error?: { code: string; message: string };
  exitCode: ExitCodeValue;
};

async function build(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const options = parse(args, INDEX_BUILD);
  const { values, positionals } = options;
  if (positionals.length === 0) throw usage('index build needs at least one file or folder', INDEX_BUILD);
  const jobs = options.number('jobs') ?? DEFAULT_JOBS;
  const lockTimeout = options.number('lock-timeout') ?? DEFAULT_LOCK_TIMEOUT_SECONDS;
  const cacheDir = typeof values['cache-dir'] === 'string' ? path.resolve(values['cache-dir']) : undefined;
  const json = values.json === true;
  const waitMs = options.number('growing-wait-ms');
  if (values.follow === true) {
    if (positionals.length !== 1) throw usage('index build --follow takes exactly one media file', INDEX_BUILD);
    return followBuild(io, path.resolve(positionals[0]), { cacheDir, waitMs, json });
  }
  if (waitMs !== undefined) throw usage('--growing-wait-ms goes with --follow', INDEX_BUILD);
  const inputs = await collect(positionals);
  const results: Array<FileResult | undefined> = inputs.map(() => undefined);
  const sizes = await Promise.all(inputs.map(async (i) => (i.error ? 0 : (await fsp.stat(i.file).catch(() => ({ size: 0 }))).size)));
  const bar = new ProgressBar(io.stderr);
  const live = new Map<string, { packets: number; bytes: number }>();
  const state = { filesDone: 0, filesTotal: inputs.length, packetsDone: 0, bytesDone: 0, bytesTotal: sizes.reduce((a, b) => a + b, 0) };
  const redraw = (current: string, force = false): void => {
    let packets = state.packetsDone;
    let bytes = state.bytesDone;
    for (const v of live.values()) {
      packets += v.packets;
      bytes += v.bytes;
    }
    bar.update({ filesDone: state.filesDone, filesTotal: state.filesTotal, packets, bytesDone: bytes, bytesTotal: state.bytesTotal, current: path.basename(current) }, force);
  };
  const report = (k: number, r: FileResult): void => {
    results[k] = r;
    if (json) return;
    bar.clear();
    const why = detail(r.media, r.error?.message ?? '');
    switch (r.status) {
      case 'built': io.out(`built    ${r.media}  ${r.packets} packets in ${r.seconds?.toFixed(2)} s -> ${r.index}\n`); break;
      case 'waited': io.out(`waited   ${r.media}  another process built it -> ${r.index}\n`); break;
      case 'fresh': io.out(`fresh    ${r.media}  index up to date -> ${r.index}\n`); break;
      case 'partial': io.out(`PARTIAL  ${r.media}  ${r.packets} packets; ${why}\n`); break;
      case 'skipped': io.out(`skipped  ${r.media}  not media\n`); break;
      case 'failed': io.out(`FAILED   ${r.media}  ${why}\n`); break;
    }
  };
  inputs.forEach((i, k) => {
    if (i.error !== undefined) report(k, { media: i.file, status: 'failed', error: errorJson(i.error), exitCode: exitCodeFor(i.error) });
  });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < inputs.length) {
      const k = next++;
      const { file, fromDir, error } = inputs[k];
      if (error !== undefined) continue;
      const started = process.hrtime.bigint();
      let packets = 0;
      live.set(file, { packets: 0, bytes: 0 });
      try {
        const idx = await openIndex(file, {
          cacheDir, force: values.force === true, lockTimeoutMs: lockTimeout * 1000,
          onProgress: (p) => { live.set(file, { packets: p.packets, bytes: p.bytePos }); redraw(file); },
          onWait: (o) => {
            if (!json) { bar.clear(); io.err(`waiting  ${file}  being indexed by process ${o?.pid ?? '?'}\n`); }
          },
        });
        const r: FileResult = {
          media: file, status: idx.origin === 'built' ? 'built' : idx.origin === 'waited' ? 'waited' : 'fresh',
          index: idx.indexPath, packets: idx.packetCount, indexBytes: idx.byteLength,
          seconds: Number(process.hrtime.bigint() - started) / 1e9, exitCode: ExitCode.OK,
        };
        if (idx.partial) {
          r.status = 'partial';
          r.partial = { bytePos: idx.partial.bytePos, mediaBytes: sizes[k], message: idx.partial.message };
          const pct = sizes[k] > 0 ? ((100 * idx.partial.bytePos) / sizes[k]).toFixed(1) : '?';
          r.error = {
            code: 'MEDIA_DAMAGED',
            message: `truncated or damaged: FFmpeg stopped at byte ${idx.partial.bytePos} of ${sizes[k]} (${pct}%): ${idx.partial.message}; the readable part is indexed`,
          };
          r.exitCode = ExitCode.DAMAGED;
        }
        if (idx.origin === 'memory') {
          // Built, but no folder took the file (full disk...): nothing was indexed for the next process.
          r.status = 'failed';
          r.error = { code: 'RESOURCE_EXHAUSTED', message: 'the index was built but could not be written, neither beside the media nor in the cache folder (see the warning)' };
          r.exitCode = ExitCode.FAILURE;
        }
        packets = idx.packetCount;
        report(k, r);
      } catch (e) {
        // In a folder, a file FFmpeg cannot open is skipped, unless it looks like media: then it is damaged.
        if (fromDir && isCuemuxError(e, 'NOT_MEDIA') && !(await hasMediaSignature(file))) report(k, { media: file, status: 'skipped', exitCode: ExitCode.OK });
        else report(k, { media: file, status: 'failed', error: errorJson(e), exitCode: exitCodeFor(e) });
      } finally {
        live.delete(file);
        state.filesDone++;
        state.bytesDone += sizes[k];
        state.packetsDone += packets;
        redraw(file, true);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, inputs.length)) }, worker));
  bar.clear();
  const done = results.filter((r): r is FileResult => r !== undefined);
  const bad = done.filter((r) => r.exitCode !== ExitCode.OK);
  const exit = combineExitCodes(bad.map((r) => r.exitCode));
  if (json) {
    io.out(`${JSON.stringify({ ok: exit === ExitCode.OK, exitCode: exit, files: done }, null, 1)}\n`);
    return exit;
  }
  const count = (s: FileResult['status']): number => done.filter((r) => r.status === s).length;
  io.out(`\n${count('built')} built, ${count('fresh') + count('waited')} already fresh, ${count('partial')} partial, ` +
    `${count('skipped')} skipped (not media), ${count('failed')} failed\n`);
  if (bad.length > 0) {
    io.out('Problems:\n');
    for (const r of bad) io.out(`  ${r.media}: ${detail(r.media, r.error?.message ?? r.status)}\n`);
  }
  return exit;
}

const STATE_EXIT: Record<IndexState, ExitCodeValue> = { fresh: ExitCode.OK, stale: ExitCode.STALE, missing: ExitCode.MISSING, corrupt: ExitCode.CORRUPT };

async function isMedia(file: string): Promise<boolean> {
  try {
    await (await openDemuxer(file)).close();
    return true;
  } catch (e) {
    if (isCuemuxError(e, 'NOT_MEDIA')) return false;
    throw e;
  }
}

async function check(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const { values, positionals } = parse(args, INDEX_CHECK);
  if (positionals.length === 0) throw usage('index check needs at least one file or folder', INDEX_CHECK);
  const cacheDir = typeof values['cache-dir'] === 'string' ? path.resolve(values['cache-dir']) : undefined;
  const rows: Array<{ media: string; state: IndexState | 'error'; index?: string; reason?: string | null; exitCode: ExitCodeValue }> = [];
  for (const { file, fromDir, error } of await collect(positionals)) {
    if (error !== undefined) {
      rows.push({ media: file, state: 'error', reason: errorJson(error).message, exitCode: exitCodeFor(error) });
      continue;
    }
    try {
      const c = await checkIndex(file, { cacheDir });
      // A file with no index at all may simply not be media: probe before calling it missing.
      if (c.state === 'missing' && !(await isMedia(file))) {
        if (fromDir && !(await hasMediaSignature(file))) continue;
        await (await openDemuxer(file)).close(); // throws the reason (NOT_MEDIA) for an explicit or damaged file
      }
      rows.push({ media: c.media, state: c.state, index: c.indexPath, reason: c.reason, exitCode: STATE_EXIT[c.state] });
    } catch (e) {
      rows.push({ media: file, state: 'error', reason: errorJson(e).message, exitCode: exitCodeFor(e) });
    }
  }
  const exit = rows.reduce<ExitCodeValue>((w, r) => (r.exitCode > w ? r.exitCode : w), ExitCode.OK);
  if (values.json === true) {
    io.out(`${JSON.stringify({ ok: exit === ExitCode.OK, exitCode: exit, files: rows }, null, 1)}\n`);
  } else {
    for (const r of rows) io.out(`${r.state.padEnd(8)} ${r.media}${r.reason ? `  (${detail(r.media, r.reason)})` : ''}\n`);
  }
  return exit;
}

async function singleMedia(args: readonly string[], command: string): Promise<string> {
  if (args.length !== 1) throw usage(`index ${command} takes exactly one media file`, command === 'info' ? INDEX_INFO : INDEX_DUMP);
  const p = path.resolve(args[0]);
  const st = await fsp.stat(p).catch((e: unknown) => { throw fromSystemError(e, p, command); });
  if (st.isDirectory()) throw new CuemuxError('INVALID_ARGUMENT', `${p}: is a directory; index ${command} takes one media file`, { path: p });
  return p;
}

/** Facts `info` reports, computed from the index alone. */
export function describeIndex(idx: MediaIndex): Record<string, unknown> {
  const first = new Map<number, number>();
  const end = new Map<number, number>();
  for (const e of idx.entries()) {
    const t = e.pts ?? e.dts;
    if (t === null) continue;
    if (!first.has(e.stream) || t < (first.get(e.stream) ?? 0)) first.set(e.stream, t);
    const stop = t + (e.duration ?? 0);
    if (!end.has(e.stream) || stop > (end.get(e.stream) ?? 0)) end.set(e.stream, stop);
  }
  let duration = 0;
  const streams = idx.streams.map((s) => {
    const f = first.get(s.index);
    const d = f === undefined ? 0 : ticksToSeconds((end.get(s.index) ?? f) - f, s.timeBase);
    duration = Math.max(duration, d);
    const gopSeconds = s.codecType === 'video' && s.frameRate ? (s.longestGop * s.frameRate.den) / s.frameRate.num : null;
    return {
      index: s.index, type: s.codecType, codec: s.codecName, timeBase: `${s.timeBase.num}/${s.timeBase.den}`,
      ...(s.codecType === 'video' ? { frameRate: s.frameRate ? `${s.frameRate.num}/${s.frameRate.den}` : null, frames: s.frameCount } : {}),
      ...(s.codecType === 'audio' ? { sampleRate: s.sampleRate, channels: s.channels } : {}),
      packets: s.packetCount, keyframes: s.keyframeCount, longestGopPackets: s.longestGop, longestGopSeconds: gopSeconds,
      startPts: f ?? null, durationSeconds: d,
    };
  });
  return {
    media: idx.mediaPath, format: idx.formatName, durationSeconds: duration, packets: idx.packetCount,
    keyframes: idx.streams.reduce((a, s) => a + s.keyframeCount, 0),
    longestGopPackets: Math.max(0, ...idx.streams.filter((s) => s.codecType === 'video').map((s) => s.longestGop)),
    index: { path: idx.indexPath, bytes: idx.byteLength, bytesPerPacket: idx.byteLength / Math.max(1, idx.packetCount), built: new Date(idx.createdMs).toISOString(), origin: idx.origin },
    // How a server reads this file's packets: 'direct' (from the file at the indexed positions, verified at build)
    // or 'demux' (through FFmpeg's demuxer: more CPU and memory per client).
    serving: idx.params?.directReadable === true ? 'direct' : 'demux',
    partial: idx.partial, streams,
  };
}

async function info(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const options = parse(args, INDEX_INFO);
  const { values, positionals } = options;
  const waitMs = options.number('growing-wait-ms') ?? DEFAULT_GROWING_WAIT_MS;
  const media = await singleMedia(positionals, 'info');
  const cacheDir = typeof values['cache-dir'] === 'string' ? path.resolve(values['cache-dir']) : undefined;
  if (await growthOf(media, cacheDir, waitMs) === 'growing') {
    // Indexing it now would index a part and go stale: say so instead.
    const size = (await fsp.stat(media)).size;
    if (values.json === true) io.out(`${JSON.stringify({ media, growth: 'growing', writtenBytes: size }, null, 1)}\n`);
    else io.out(`media      ${media}\ngrowth     growing: the file is being written (${size} bytes so far); \`cuemux index build --follow\` or a server indexes it as it grows\n`);
    return ExitCode.OK;
  }
  const idx = await openIndex(media, { cacheDir, onWait: () => io.err(`waiting for another process to finish indexing ${media}\n`) });
  const d: Record<string, unknown> = { ...describeIndex(idx), growth: 'complete' };
  if (values.json === true) {
    io.out(`${JSON.stringify(d, null, 1)}\n`);
    return idx.partial ? ExitCode.DAMAGED : ExitCode.OK;
  }
  const ix = d.index as { path: string; bytes: number; bytesPerPacket: number; built: string };
  const lines = [
    `media      ${idx.mediaPath}`,
    `format     ${idx.formatName}`,
    `duration   ${(d.durationSeconds as number).toFixed(3)} s`,
    `packets    ${idx.packetCount} (${d.keyframes as number} keyframes)`,
    `longest GOP ${d.longestGopPackets as number} packets`,
    `index      ${ix.path} (${ix.bytes} bytes, ${ix.bytesPerPacket.toFixed(1)} bytes/packet, built ${ix.built})`,
    'growth     complete (the file is not being written; its index is final)',
    `serving    ${d.serving === 'direct' ? 'direct reads from the file (packet bytes verified at build)' : "through FFmpeg's demuxer (packets are not stored as plain bytes in this file)"}`,
  ];
  for (const s of d.streams as Array<Record<string, unknown>>) {
    const extra = s.type === 'video' ? `${String(s.frameRate)} fps, longest GOP ${String(s.longestGopPackets)} packets` +
      (s.longestGopSeconds !== null ? ` (${(s.longestGopSeconds as number).toFixed(3)} s)` : '')
      : s.type === 'audio' ? `${String(s.sampleRate)} Hz, ${String(s.channels)} ch` : '';
    lines.push(`stream ${String(s.index)}   ${String(s.type)} ${String(s.codec)}, time base ${String(s.timeBase)}, ${String(s.packets)} packets, ` +
      `${String(s.keyframes)} keyframes, ${(s.durationSeconds as number).toFixed(3)} s${extra ? `, ${extra}` : ''}`);
  }
  if (idx.partial) lines.push(`PARTIAL    FFmpeg stopped at byte ${idx.partial.bytePos}: ${idx.partial.message}`);
  io.out(`${lines.join('\n')}\n`);
  return idx.partial ? ExitCode.DAMAGED : ExitCode.OK;
}

async function dump(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const options = parse(args, INDEX_DUMP);
  const { values, positionals } = options;
  const stream = options.number('stream');
  const media = await singleMedia(positionals, 'dump');
  const format = options.string('format') ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'csv') throw usage(`--format must be jsonl or csv, got "${format}"`, INDEX_DUMP);
  const cacheDir = typeof values['cache-dir'] === 'string' ? path.resolve(values['cache-dir']) : undefined;
  const idx = await openIndex(media, { cacheDir });
  if (stream !== undefined) idx.stream(stream);
  const n = (v: number | null): string => (v === null ? (format === 'csv' ? '' : 'null') : String(v));
  let chunk = format === 'csv' ? 'stream,pts,dts,duration,pos,size,key\n' : '';
  for (const e of idx.entries(0, idx.packetCount, stream)) {
    chunk += format === 'csv'
      ? `${e.stream},${n(e.pts)},${n(e.dts)},${n(e.duration)},${n(e.pos)},${e.size},${e.key}\n`
      : `{"stream":${e.stream},"pts":${n(e.pts)},"dts":${n(e.dts)},"duration":${n(e.duration)},"pos":${n(e.pos)},"size":${e.size},"key":${e.key}}\n`;
    if (chunk.length > 1 << 16) {
      await io.write(chunk);
      chunk = '';
    }
  }
  await io.write(chunk);
  return ExitCode.OK;
}
