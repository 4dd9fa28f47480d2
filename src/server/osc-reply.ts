/**
 * The shape of an OSC reply, shared by the show's thread (osc-control.ts, which builds the answers) and the OSC thread
 * (osc-worker.ts, which sends them and answers a few addresses itself): QLab-style /cuemux/reply/<address> carrying a
 * JSON string {"address", "status", "data"|"error", "code"}, never more than one datagram, at most
 * {@link MAX_REPLIES_PER_DATAGRAM} per datagram received.
 */
import { errorMessage, errorStack, isCuemuxError } from '../common/errors';
import type { Logger } from '../common/logger';
import type { RateLimitedLog } from '../common/rate-limited-log';
import type { OscPeer } from './osc-endpoint';

/** Most replies sent for one datagram (a bundle of many messages); the rest of its messages run unanswered. */
export const MAX_REPLIES_PER_DATAGRAM = 16;

/**
 * Largest reply datagram, in bytes. UDP over loopback carries 64 KB, but a reply crossing a LAN is fragmented into
 * IP packets of the path MTU and lost whole if one fragment is: 8000 bytes is 6 fragments on Ethernet, and fits the
 * 8 KB receive buffers of small OSC consoles. /cuemux/status pages its cues to stay under it.
 */
export const MAX_REPLY_BYTES = 8000;

/** Largest reply JSON, in bytes: a reply datagram less room for its OSC address (≤ 215 bytes), type tag and padding. */
export const REPLY_JSON_BYTES = MAX_REPLY_BYTES - 300;

/** A reply body: `{status: 'ok', data}` or `{status: 'error', error, code}` (plus a note the sender may add). */
export type ReplyBody = Record<string, unknown>;

/** An OSC address fit to be echoed in a reply (a hostile one may be 64 KB long or hold characters no address may). */
export function boundedAddress(address: string): string {
  return /^\/[\x21-\x7e]{0,200}$/.test(address) && !address.includes('#') && !address.includes(',') && !address.endsWith('/') ? address : '/cuemux/invalid';
}

/** The reply JSON, never more than one reply datagram: an oversized body is replaced by an error saying so. */
export function boundedReply(address: string, body: ReplyBody): string {
  const limit = REPLY_JSON_BYTES;
  const json = JSON.stringify({ address, ...body });
  if (Buffer.byteLength(json) <= limit) return json;
  const shortAddress = address.length > 200 ? `${address.slice(0, 200)}…` : address;
  const error = typeof body.error === 'string' ? body.error.slice(0, 1200) : null;
  return JSON.stringify(error !== null
    ? { address: shortAddress, status: body.status, error: `${error}… (cut to fit one ${MAX_REPLY_BYTES}-byte reply)`, code: body.code }
    : { address: shortAddress, status: 'error', error: `the reply (${json.length} bytes) does not fit one ${MAX_REPLY_BYTES}-byte datagram`, code: 'RESOURCE_EXHAUSTED' });
}

/**
 * The error reply to a message whose command failed, logged on the way: a bug (not a CuemuxError) at error level with
 * its stack, a refusal as a warning at most once per sender, code and address per `warnings` interval (a flood of bad
 * commands is not a flood of log lines).
 */
export function errorReply(e: unknown, req: { address: string; from: OscPeer }, warnings: RateLimitedLog, log: Logger): { status: 'error'; error: string; code: string } {
  const error = errorMessage(e);
  const code = isCuemuxError(e) ? e.code : 'INTERNAL';
  if (code === 'INTERNAL') log.error('OSC command failed', { address: req.address, error: errorStack(e) });
  else {
    warnings.log(`refused ${req.from.address} ${code} ${req.address.slice(0, 64)}`, (suppressed) => log.warn('OSC command refused',
      { address: req.address.slice(0, 200), from: `${req.from.address}:${req.from.port}`, error: error.slice(0, 400), ...(suppressed > 0 ? { suppressedSinceLast: suppressed } : {}) }));
  }
  return { status: 'error', error, code };
}
