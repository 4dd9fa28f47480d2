/**
 * The follow thread's entry point (run by {@link WorkerFollower} with `new Worker`, never imported): it reads the
 * output's Follow stream (resilientFollow, across reconnects and servers) and relays it (see follow-relay.ts): every
 * event to the decode worker, and the show's events to the presenting thread too, as soon as they are read.
 */
import * as os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { postingSink, setLogSink } from '../common/logger';
import { errorStack } from '../common/errors';
import { MediaClient, MediaClientError } from '../clients/media-client';
import { resilientFollow } from '../clients/resilient-follow';
import type { FollowEvent } from '../generated/cuemux/v1/media_server';
import type { FollowThreadData, FromFollowThread, FromFollowThreadToDecoder, ToFollowThread, ToFollowThreadFromDecoder } from './decode-worker-messages';
import { clientErrorData } from './follow-relay';

/**
 * Nice value of this thread when allowed (root, CAP_SYS_NICE): above the decode worker (−5) and FFmpeg's decoding
 * threads (0). It sleeps but for a read and a post per message, and its reads are the GO.
 */
const FOLLOW_NICE = -10;

function main(port: NonNullable<typeof parentPort>, data: FollowThreadData): void {
  const toPresenter = (m: FromFollowThread): void => data.presenter.postMessage(m);
  const toDecoder = (m: FromFollowThreadToDecoder): void => data.decoder.postMessage(m);
  setLogSink(postingSink((r) => toPresenter({ type: 'log', ...r })));
  try {
    os.setPriority(FOLLOW_NICE);
  } catch {
    // Not allowed: this thread stays at the nice value it inherited (the presenting thread's, or 0).
  }
  const stop = new AbortController();
  let started = false;
  port.on('message', (m: ToFollowThread) => {
    if (m.type !== 'stop') return;
    stop.abort();
    // Stopped before the decode worker asked to follow (it failed to start): nothing runs that would end this thread.
    if (!started) end(null, null);
  });
  const clients = data.targets.map((t) => new MediaClient(t, data.client));
  const end = (clientError: MediaClientError | null, error: string | null): void => {
    for (const c of clients) c.close();
    try {
      toDecoder({ type: 'end', clientError: clientError === null ? null : clientErrorData(clientError), error });
    } catch {
      // the decode worker is gone
    }
    port.unref();
    data.presenter.unref();
    data.decoder.unref();
  };
  // Follow once the decode worker asks (FFmpeg loaded: a player is ready before it follows).
  data.decoder.once('message', (start: ToFollowThreadFromDecoder) => {
    if (stop.signal.aborted) return;
    started = true;
    relay(clients, start, stop.signal, toDecoder, toPresenter).then(() => end(null, null), (e: unknown) => {
      if (e instanceof MediaClientError) end(e, null);
      else end(null, errorStack(e));
    });
  });
}

/** Read the Follow stream and pass each event on: all to the decode worker, the show's to the presenting thread too. */
async function relay(clients: MediaClient[], start: ToFollowThreadFromDecoder, signal: AbortSignal, toDecoder: (m: FromFollowThreadToDecoder) => void, toPresenter: (m: FromFollowThread) => void): Promise<void> {
  let generation: bigint | null = null;
  const events = resilientFollow(clients.length === 1 ? clients[0] : clients, {
    output: start.output, leadSeconds: start.leadSeconds, prepare: start.prepare,
    onReconnect: (e, attempt) => {
      const error = clientErrorData(e);
      toDecoder({ type: 'reconnect', error, attempt });
      toPresenter({ type: 'reconnect', error, attempt });
    },
  }, { signal });
  for await (const e of events) {
    const receivedNs = process.hrtime.bigint();
    toDecoder({ type: 'event', event: e });
    const show = showEvent(e, receivedNs, generation);
    if (show === null) continue;
    if (show.type === 'clock') generation = show.state.generation;
    toPresenter(show);
  }
}

/**
 * The presenting thread's message for a Follow event, or null for what only the decoder needs (packets, prerolls,
 * re-arms, failures). A batch adopting a preroll (FollowPackets.preroll) is the adoption, unless planned for a
 * generation before the clock's (`generation`: the latest ClockState's), which the decoder drops too.
 */
function showEvent(e: FollowEvent, receivedNs: bigint, generation: bigint | null): FromFollowThread | null {
  const ev = e.event;
  switch (ev?.$case) {
    case 'clock': return { type: 'clock', state: ev.value };
    case 'loaded': return { type: 'loaded', cue: ev.value };
    case 'started': return { type: 'started', cue: ev.value, receivedNs };
    case 'stopped': return { type: 'stopped', cue: ev.value };
    case 'unloaded': return { type: 'unloaded', cueId: ev.value.cueId };
    case 'packets': {
      const b = ev.value;
      if (b.preroll === 0 || (generation !== null && b.generation < generation)) return null;
      return { type: 'adopted', adopted: { cueId: b.cueId, preroll: b.preroll, segment: b.segment, generation: b.generation, receivedNs } };
    }
    default: return null;
  }
}

if (parentPort !== null) main(parentPort, workerData as FollowThreadData);
