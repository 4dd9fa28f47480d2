/**
 * A player's Follow stream read on a thread of its own (the follow thread, `follow-thread.ts`) and relayed: every
 * event to the decode worker in stream order, and the show's events (clock, cues loaded, started, stopped, unloaded,
 * a preroll's adoption, a reconnect) straight to the presenting thread as well.
 *
 * Why a thread of its own: the decode worker read the GO (CueStarted and the batch adopting the preroll) between its
 * own work, copying pictures into the pool and collecting their garbage, its event loop 80-100 % busy in the 200 ms
 * before a late read (CUEMUX_TRACE_WORKER). In bench:go (session 18, nine runs) it read CueStarted p99 26-61 ms after
 * the datagram at 50 ticks/s and 38-122 ms at 60, while the benchmark's own Follow client read it at p99 11-41 ms: a
 * prepared cue then showed its in-point 3-8 ticks after the GO, the most frequent miss of the "2 ticks" target. The
 * follow thread does nothing but read and forward, so the GO waits for no picture.
 */
import * as grpc from '@grpc/grpc-js';
import type { MessagePort } from 'node:worker_threads';
import { MediaClientError } from '../clients/media-client';
import type { ResilientFollowOptions } from '../clients/resilient-follow';
import type { FollowEvent } from '../generated/cuemux/v1/media_server';
import type { ClientErrorData, ToFollowThreadFromDecoder, FromFollowThreadToDecoder } from './decode-worker-messages';

/**
 * Where a follower's events come from: resilientFollow over gRPC, or (in a decode worker) the follow thread's relay.
 * `options.onReconnect` is called in stream order, before the new call's first event.
 */
export type FollowEventSource = (options: ResilientFollowOptions, signal: AbortSignal) => AsyncIterable<FollowEvent>;

/** A MediaClientError as it crosses threads. */
export function clientErrorData(e: MediaClientError): ClientErrorData {
  return { method: e.method, code: e.code, details: e.details, errorCode: e.errorCode };
}

/** The MediaClientError a {@link ClientErrorData} stands for. */
export function clientErrorOf(d: ClientErrorData): MediaClientError {
  const metadata = new grpc.Metadata();
  if (d.errorCode !== undefined) metadata.set('cuemux-error-code', d.errorCode);
  return new MediaClientError(d.method, Object.assign(new Error(d.details), { code: d.code, details: d.details, metadata }));
}

/**
 * `x` with every Uint8Array in it (in place) a Buffer over the same bytes, as the generated types say they are: a
 * structured clone gives a Buffer back as a plain Uint8Array (packet data, a stream's extradata), and the FFmpeg
 * wrapper takes Buffers.
 */
export function withBuffers<T>(x: T): T {
  if (x === null || typeof x !== 'object') return x;
  const o = x as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    const v = o[k];
    if (v instanceof Uint8Array) {
      if (!Buffer.isBuffer(v)) o[k] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    } else if (v !== null && typeof v === 'object') {
      withBuffers(v);
    }
  }
  return x;
}

/**
 * The decode worker's side: a {@link FollowEventSource} reading the follow thread's relay on `port`. Asks the follow
 * thread to start following when it is called (after FFmpeg is loaded: see OutputFollower.run); ends when the relay
 * does, throwing what ended it (a MediaClientError for a refusal a retry cannot fix), or when `signal` aborts.
 */
export function relayedFollow(port: MessagePort): FollowEventSource {
  return (options, signal) => ({
    [Symbol.asyncIterator]: () => {
      const queue: FromFollowThreadToDecoder[] = [];
      let wake: (() => void) | null = null;
      let closed = false;
      const push = (m: FromFollowThreadToDecoder): void => {
        queue.push(m);
        wake?.();
      };
      const onClose = (): void => {
        closed = true;
        wake?.();
      };
      const onAbort = (): void => wake?.();
      port.on('message', push);
      port.once('close', onClose);
      signal.addEventListener('abort', onAbort, { once: true });
      const stop = (): void => {
        port.off('message', push);
        port.off('close', onClose);
        signal.removeEventListener('abort', onAbort);
      };
      port.postMessage({ type: 'start', output: options.output, leadSeconds: options.leadSeconds, prepare: options.prepare } satisfies ToFollowThreadFromDecoder);
      return {
        next: async (): Promise<IteratorResult<FollowEvent>> => {
          for (;;) {
            if (signal.aborted) {
              stop();
              return { done: true, value: undefined };
            }
            const m = queue.shift();
            if (m === undefined) {
              if (closed) {
                stop();
                throw new Error('the follow thread ended without saying why');
              }
              await new Promise<void>((resolve) => {
                wake = resolve;
              });
              wake = null;
              continue;
            }
            switch (m.type) {
              case 'event': return { done: false, value: withBuffers(m.event) };
              case 'reconnect': options.onReconnect?.(clientErrorOf(m.error), m.attempt); break;
              case 'end':
                stop();
                if (m.clientError !== null) throw clientErrorOf(m.clientError);
                if (m.error !== null) throw new Error(`follow thread: ${m.error}`);
                return { done: true, value: undefined };
            }
          }
        },
        return: (): Promise<IteratorResult<FollowEvent>> => {
          stop();
          return Promise.resolve({ done: true, value: undefined });
        },
      };
    },
  });
}
