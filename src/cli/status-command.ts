/**
 * `cuemux status`: ask a running server what it is doing — the show (clock, cue list, standby cue, loaded cues), open
 * media, clients, bytes read — the technician's view.
 */
import * as grpc from '@grpc/grpc-js';
import { CuemuxError, errorMessage } from '../common/errors';
import { GetStatusRequest, MediaServerClient, type ClockQuality, type ServerStatus, type ShowStatus } from '../generated/cuemux/v1/media_server';
import { ExitCode, type ExitCodeValue } from './exit-codes';
import type { CliIo } from './cli-io';
import { connectionValues, STATUS } from './client-options';
import { helpText, parseCommand } from './options';
import { clientCredentials } from '../clients/media-client';
import { connectionOptions, serverTarget } from './server-target';

function mb(n: bigint): string {
  return `${(Number(n) / 1e6).toFixed(1)} MB`;
}

function seconds(s: number): string {
  return `${s.toFixed(3)} s`;
}

function ms(ns: bigint): string {
  return `${(Number(ns) / 1e6).toFixed(3)} ms`;
}

/** A follower's clock quality: the measured offset to its master, and what it does about it. */
export function clockQualityLines(q: ClockQuality): string[] {
  const head = `Clock vs master ${q.master}:`;
  const error = q.lastError === '' ? '' : ` (last measure failed: ${q.lastError})`;
  if (q.offsetNs === undefined || q.uncertaintyNs === undefined) return [`${head} not measured yet${error}`, ...(q.refusing === '' ? [] : [`  NOT PLAYING: ${q.refusing}`])];
  const side = q.offsetNs < 0n ? 'this clock ahead' : q.offsetNs > 0n ? 'this clock behind' : 'equal';
  const lines = [`${head} offset ${ms(q.offsetNs)} ± ${ms(q.uncertaintyNs)} (${side}), round trip ${ms(q.roundTripNs ?? 0n)}, `
    + `measured ${((q.ageMs ?? 0) / 1000).toFixed(1)} s ago (best of ${q.samples} pings every ${(q.refreshMs / 1000).toFixed(0)} s)${error}`];
  const limit = `--max-clock-offset-ms ${ms(q.maxOffsetNs)}`;
  if (q.agreement !== 'beyond') lines.push(`  within ${limit}`);
  else if (q.refusing !== '') lines.push(`  BEYOND ${limit}: NOT PLAYING (policy refuse): ${q.refusing}`);
  else if (q.policy === 'correct') lines.push(`  BEYOND ${limit}: clocks not disciplined; correcting the master's clock by ${ms(q.correctionNs)} (policy correct)`);
  else lines.push(`  BEYOND ${limit}: clocks not disciplined; playing shifted by the offset (policy ${q.policy})`);
  return lines;
}

/** The show lines: clock, clock quality (a follower), cue list, each loaded cue. */
export function showLines(show: ShowStatus): string[] {
  const lines: string[] = [];
  const c = show.clock;
  if (c !== undefined) {
    const chase = c.source === 'external' ? `, chasing external timecode (${show.chaseLocked ? 'locked' : 'not locked'})` : '';
    lines.push(`Show clock: ${c.state} at rate ${c.rate}, ${c.timecode} @ ${c.timecodeRate} (${seconds(c.positionSeconds)}), generation ${c.generation}${chase}`);
  }
  if (show.clockQuality !== undefined) lines.push(...clockQualityLines(show.clockQuality));
  const list = show.cueList;
  if (list === undefined || (list.path === '' && list.cueIds.length === 0)) {
    lines.push('Cue list: none');
  } else {
    lines.push(`Cue list: ${list.path || '(not from a file)'}, ${list.cueIds.length} cues, standby ${list.standby === undefined ? 'none (end of the list)' : `"${list.standby}"`}, ` +
      `${list.reloads} edits applied`);
    if (list.lastError !== '') lines.push(`  LAST EDIT NOT APPLIED: ${list.lastError}`);
  }
  lines.push(`Cues loaded: ${show.cues.length}`);
  for (const q of show.cues) {
    const where = q.state === 'armed' ? '' : ` at ${q.positionSeconds === undefined ? '?' : seconds(q.positionSeconds)} of the media`;
    const span = `in ${seconds(q.inSeconds)}, out ${q.outSeconds === undefined ? 'end' : seconds(q.outSeconds)}${q.loop ? ', looping' : ''}`;
    const outputs = q.outputs.map((o) => `${o.output}[${o.streams.join(',')}]`).join(' ');
    lines.push(`  cue "${q.id}"${q.name ? ` (${q.name})` : ''}  ${q.state}${where}; ${q.media}, ${span}; outputs ${outputs || 'none'}; ` +
      `prefetch ${q.prefetchBytes > 0n ? mb(q.prefetchBytes) : 'none'}`);
  }
  if (show.problems.length > 0) {
    lines.push(`Cue problems: ${show.problems.length}`);
    for (const p of show.problems) lines.push(`  cue "${p.cueId}": ${p.during} failed at ${new Date(Number(p.unixNs / 1_000_000n)).toISOString()}: ${p.message}`);
  }
  return lines;
}

/** Run `cuemux status`. */
export async function runStatusCommand(io: CliIo, args: string[]): Promise<ExitCodeValue> {
  const options = parseCommand(STATUS, args);
  if (options === 'help') {
    io.out(helpText(STATUS));
    return ExitCode.OK;
  }
  const connection = connectionValues(options);
  const target = serverTarget(connection);
  const { credentials, channelOptions } = clientCredentials(target, connectionOptions(connection));
  const client = new MediaServerClient(target, credentials, channelOptions);
  try {
    const st = await new Promise<ServerStatus>((resolve, reject) => {
      client.getStatus(GetStatusRequest.create(), new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err, res) => (err ? reject(err) : resolve(res)));
    }).catch((e: unknown) => {
      // A server that answered but refused the token is not a server that is down: exit 9 (permission), not 1.
      if ((e as Partial<grpc.ServiceError>).code === grpc.status.UNAUTHENTICATED) {
        throw new CuemuxError('PERMISSION_DENIED', `the cuemux server at ${target} refused the call: ${errorMessage(e)}`);
      }
      throw new CuemuxError('CLOSED', `no cuemux server answers at ${target}: ${errorMessage(e)}`);
    });
    if (options.flag('json')) {
      io.out(`${JSON.stringify(st, (_k, v: unknown) => (typeof v === 'bigint' ? Number(v) : v), 1)}\n`);
      return ExitCode.OK;
    }
    const lines = [`cuemux ${st.version} (FFmpeg ${st.ffmpegVersion}), up ${st.uptimeSeconds.toFixed(0)} s`];
    // Main/backup failover: what this server is, since when and why (a plain server: master of term 0, said anyway).
    const r = st.role;
    if (r !== undefined && r.role !== '') {
      lines.push(`Role: ${r.role}${r.master === '' ? '' : ` of ${r.master}`}, failover term ${r.term}, since ${new Date(Number(r.sinceUnixNs / 1_000_000n)).toISOString()}: ${r.reason}`);
    }
    // A server older than the show status sends none: say so rather than show an empty show.
    if (st.show !== undefined) lines.push(...showLines(st.show));
    else lines.push('Show: not reported by this server');
    lines.push(`Active: ${st.media.length} media open, ${st.clients.length} streams`);
    for (const m of st.media) lines.push(`  ${m.path}  opens ${m.openCount}, clients ${m.clients}, read ${mb(m.bytesReadFromFile)} of the file`);
    for (const c of st.clients) {
      // WatchClock calls have neither media nor output; Follow calls name their output.
      if (c.mediaId === '' && c.output === '') {
        lines.push(`  client ${c.peer}  watching the clock`);
        continue;
      }
      if (c.output !== '') lines.push(`  client ${c.peer}  following output ${c.output}`);
      if (c.mediaId === '') continue;
      lines.push(`  client ${c.peer}  media ${c.mediaId} streams [${c.streams.join(',') || 'all'}] at ${c.positionSeconds.toFixed(3)} s, ` +
        `buffer ${mb(c.bytesQueued)}, sent ${mb(c.bytesSent)}`);
    }
    io.out(`${lines.join('\n')}\n`);
    return ExitCode.OK;
  } finally {
    client.close();
  }
}
