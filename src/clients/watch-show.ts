/**
 * WatchShow that survives the master going away (a follower server's feed): when the stream ends, fails or falls
 * silent (no state, not even a heartbeat, for `silenceMs`), it calls again with a short backoff. Nothing is resumed:
 * every ShowState is the whole show, so the first state of a new call is all the follower needs. Given several servers
 * (a main and its backup), it watches the master among them (server-choice.ts), as resilientFollow does.
 */
import * as grpc from '@grpc/grpc-js';
import { SilenceTimer } from '../common/silence-timer';
import type { ShowState } from '../generated/cuemux/v1/media_server';
import { MediaClientError, type MediaClient } from './media-client';
import { findMaster, nextServer } from './server-choice';

/** Options of {@link resilientWatchShow}. */
export interface ResilientWatchShowOptions {
  /** Heartbeat asked of the master, in seconds. Default 0.25. */
  heartbeatSeconds?: number;
  /** A stream without any message for this long is given up and called again, in ms. Default 2000. */
  silenceMs?: number;
  /** First reconnect delay in ms, doubled up to `maxBackoffMs`. Default 50. */
  initialBackoffMs?: number;
  /** Longest reconnect delay in ms. Default 500. */
  maxBackoffMs?: number;
  /** The stream delivers (true, at its first state) or was lost (false, with the error). */
  onConnection?: (connected: boolean, error: Error | null) => void;
  /** With several servers: called when the watch moves to another one (its index in the list). */
  onServer?: (index: number) => void;
}

/** Errors a new call cannot fix (a wrong token, a master too old to have WatchShow). */
const FATAL = new Set([grpc.status.UNAUTHENTICATED, grpc.status.PERMISSION_DENIED, grpc.status.UNIMPLEMENTED, grpc.status.INVALID_ARGUMENT]);

/**
 * The master's ShowStates (of `client`, or of the master among several), across reconnects, until `signal` aborts
 * (then it returns) or a fatal error (thrown).
 */
export async function* resilientWatchShow(client: MediaClient | readonly MediaClient[], options: ResilientWatchShowOptions = {}, signal?: AbortSignal): AsyncGenerator<ShowState> {
  const clients = Array.isArray(client) ? client as readonly MediaClient[] : [client as MediaClient];
  let current = clients.length > 1 ? (await findMaster(clients, { signal })) ?? 0 : 0;
  if (clients.length > 1) options.onServer?.(current);
  const silenceMs = options.silenceMs ?? 2000;
  const initial = options.initialBackoffMs ?? 50;
  const max = options.maxBackoffMs ?? 500;
  let backoff = initial;
  const stopped = (): boolean => signal?.aborted === true;
  while (!stopped()) {
    const call = new AbortController();
    const abort = (): void => call.abort();
    signal?.addEventListener('abort', abort, { once: true });
    // Judged after pending input is read: a follower busy loading a cue must not drop a live stream.
    const watchdog = new SilenceTimer(silenceMs, () => call.abort());
    let connected = false;
    let error: Error | null = null;
    try {
      for await (const state of clients[current].watchShow({ heartbeatSeconds: options.heartbeatSeconds ?? 0.25 }, { signal: call.signal })) {
        watchdog.touch();
        if (!connected) {
          connected = true;
          backoff = initial;
          options.onConnection?.(true, null);
        }
        yield state;
      }
      error = new Error('the master ended the WatchShow stream');
    } catch (e) {
      if (e instanceof MediaClientError && FATAL.has(e.code)) throw e;
      error = e instanceof Error ? e : new Error(String(e));
    } finally {
      watchdog.stop();
      signal?.removeEventListener('abort', abort);
    }
    if (stopped()) return;
    if (connected) options.onConnection?.(false, error);
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, backoff);
      signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
    backoff = Math.min(max, backoff * 2);
    if (stopped()) return;
    const next = await nextServer(clients, current, signal);
    if (next !== current) options.onServer?.(next);
    current = next;
  }
}
