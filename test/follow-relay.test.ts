/**
 * The player's Follow stream read on a thread of its own (src/players/follow-thread.ts, follow-relay.ts): the GO
 * reaches the presenting thread without the decode worker, which gets every event in order; and what the decode
 * worker gave of an adopted preroll after the presenting thread heard of the adoption is labelled with the segment.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import type { FollowThreadData, FromFollowThread, FromFollowThreadToDecoder, ToFollowThread, ToFollowThreadFromDecoder } from '../src/players/decode-worker-messages';
import { withBuffers } from '../src/players/follow-relay';
import { PrerollAdoptions } from '../src/players/preroll-adoptions';
import { goClip1080 } from './support/media';
import { d, killAll, s, Show } from './support/show-check';
import { waitFor } from './support/wait';

const FOLLOW_THREAD = path.join(__dirname, '..', 'src', 'players', 'follow-thread.js');

/** Every message waiting on `port`, without its event loop. */
function drain<T>(port: MessagePort): T[] {
  const out: T[] = [];
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) out.push(m.message as T);
  return out;
}

describe('follow relay (the player\'s follow thread)', function () {
  this.timeout(60_000);
  const children: ChildProcess[] = [];
  let show: Show | null = null;

  afterEach(async function () {
    show?.close();
    show = null;
    await killAll(children);
  });

  it('gives the presenting thread a prepared cue\'s GO (CueStarted and the adoption) while the decode side reads nothing; the decode side gets every event in order', async function () {
    const clip = await goClip1080();
    show = await Show.start({ 'go.mp4': clip }, children, 'follow-relay');
    await show.osc('/cuemux/cue/load', [s('Q'), s('go.mp4'), d(2.605), d(3.6)]);
    await show.osc('/cuemux/clock/play');
    const relay = new MessageChannel();
    const toPresenter = new MessageChannel();
    const data: FollowThreadData = { targets: [`unix:${show.socket}`], decoder: relay.port1, presenter: toPresenter.port2 };
    const thread = new Worker(FOLLOW_THREAD, { workerData: data, transferList: [relay.port1, toPresenter.port2] });
    const exited = new Promise<number>((resolve) => thread.once('exit', resolve));
    const shown: FromFollowThread[] = [];
    toPresenter.port1.on('message', (m: FromFollowThread) => shown.push(m));
    try {
      // The decode side asks to follow and takes what comes until the cue's whole preroll is there (the cue is
      // armed), then is wedged: it reads nothing from the GO on (until the end of the test).
      relay.port2.postMessage({ type: 'start', output: 'video', prepare: true } satisfies ToFollowThreadFromDecoder);
      const relayed: FromFollowThreadToDecoder[] = [];
      const isLastPreroll = (m: FromFollowThreadToDecoder): boolean => m.type === 'event' && m.event.event?.$case === 'preroll' && m.event.event.value.last;
      await waitFor('the cue\'s preroll on the decode side', () => {
        relayed.push(...drain<FromFollowThreadToDecoder>(relay.port2));
        return relayed.some(isLastPreroll);
      }, 20_000);
      assert.ok(shown.some((m) => m.type === 'loaded' && m.cue.cueId === 'Q'), 'the presenting side heard of the cue');
      await show.osc('/cuemux/cue/go', [s('Q')]);
      await waitFor('the GO and its adoption, heard by the presenting side', () => shown.some((m) => m.type === 'adopted'), 20_000);
      const started = shown.find((m) => m.type === 'started');
      const adopted = shown.find((m) => m.type === 'adopted');
      assert.ok(started?.type === 'started' && started.cue.cueId === 'Q', 'CueStarted of Q reached the presenting side');
      assert.ok(adopted?.type === 'adopted' && adopted.adopted.cueId === 'Q' && adopted.adopted.segment === started.cue.segment, 'the adoption names Q\'s segment');
      assert.ok(started.receivedNs <= adopted.adopted.receivedNs, 'CueStarted was read before the adopting batch');
      assert.ok(!shown.some((m) => (m.type as string) === 'event'), 'packets are not sent to the presenting side');

      // The decode side, read now: every event of the stream, in order, the preroll among them before the GO.
      relayed.push(...drain<FromFollowThreadToDecoder>(relay.port2));
      const kinds = relayed.map((m) => (m.type === 'event' ? m.event.event?.$case ?? '?' : m.type));
      const iLoaded = kinds.indexOf('loaded');
      const iPreroll = kinds.indexOf('preroll');
      const iStarted = kinds.indexOf('started');
      const adopting = relayed.findIndex((m) => m.type === 'event' && m.event.event?.$case === 'packets' && m.event.event.value.preroll !== 0);
      assert.ok(iLoaded >= 0 && iPreroll > iLoaded && iStarted > iPreroll && adopting > iStarted, `order on the decode side: ${kinds.slice(0, 12).join(', ')}`);
      const preroll = relayed[iPreroll];
      assert.ok(preroll.type === 'event' && preroll.event.event?.$case === 'preroll');
      assert.equal(adopted.adopted.preroll, preroll.event.event.value.preroll, 'the adoption names the preroll the decode side got');
      process.stdout.write(`      (${relayed.length} messages waited on the wedged decode side; the presenting side got ${shown.length})\n`);
    } finally {
      thread.postMessage({ type: 'stop' } satisfies ToFollowThread);
      // The decode side is told the follow ended, by a stop: nothing lost, no error.
      const code = await exited;
      assert.equal(code, 0);
      const last = drain<FromFollowThreadToDecoder>(relay.port2).pop();
      assert.deepEqual(last, { type: 'end', clientError: null, error: null });
      relay.port2.close();
      toPresenter.port1.close();
    }
  });

  it('a refusal a retry cannot fix reaches the decode side as the MediaClientError\'s data (an output name the server refuses)', async function () {
    const clip = await goClip1080();
    show = await Show.start({ 'go.mp4': clip }, children, 'follow-relay-bad');
    const relay = new MessageChannel();
    const toPresenter = new MessageChannel();
    const data: FollowThreadData = { targets: [`unix:${show.socket}`], decoder: relay.port1, presenter: toPresenter.port2 };
    const thread = new Worker(FOLLOW_THREAD, { workerData: data, transferList: [relay.port1, toPresenter.port2] });
    const ended = new Promise<FromFollowThreadToDecoder>((resolve) => relay.port2.on('message', (m: FromFollowThreadToDecoder) => {
      if (m.type === 'end') resolve(m);
    }));
    relay.port2.postMessage({ type: 'start', output: 'no such output!' } satisfies ToFollowThreadFromDecoder);
    const end = await ended;
    await new Promise((resolve) => thread.once('exit', resolve));
    relay.port2.close();
    toPresenter.port1.close();
    assert.ok(end.type === 'end' && end.clientError !== null, 'ended with a client error');
    assert.equal(end.clientError.code, 3); // INVALID_ARGUMENT
    assert.match(end.clientError.details, /no such output!/);
  });

  it('ends when stopped before the decode side asked it to follow (a decode worker that failed to start), telling the decode side', async function () {
    const relay = new MessageChannel();
    const toPresenter = new MessageChannel();
    // No server is needed: the thread never follows. A socket path that does not exist proves it never connects.
    const data: FollowThreadData = { targets: ['unix:/nonexistent/cuemux.sock'], decoder: relay.port1, presenter: toPresenter.port2 };
    const thread = new Worker(FOLLOW_THREAD, { workerData: data, transferList: [relay.port1, toPresenter.port2] });
    const ended = new Promise<FromFollowThreadToDecoder>((resolve) => relay.port2.once('message', resolve));
    await new Promise((resolve) => thread.once('online', resolve));
    thread.postMessage({ type: 'stop' } satisfies ToFollowThread);
    assert.deepEqual(await ended, { type: 'end', clientError: null, error: null });
    assert.equal(await new Promise((resolve) => thread.once('exit', resolve)), 0, 'the thread ended by itself');
    relay.port2.close();
    toPresenter.port1.close();
  });

  it('labels a preroll\'s late pictures with the segment that adopted it, only that preroll\'s, until the cue is unloaded or the call ends', function () {
    const a = new PrerollAdoptions();
    const late = (cueId: string, preroll: number): { cueId: string; segment: number; generation: bigint; preroll: number } => ({ cueId, segment: 0, generation: 0n, preroll });
    assert.deepEqual(a.relabel(late('Q', 3)), late('Q', 3), 'nothing adopted yet');
    a.adopted({ cueId: 'Q', preroll: 3, segment: 7, generation: 2n });
    assert.deepEqual(a.relabel(late('Q', 3)), { cueId: 'Q', segment: 7, generation: 2n, preroll: 0 });
    assert.deepEqual(a.relabel(late('Q', 4)), late('Q', 4), 'another preroll of the cue');
    assert.deepEqual(a.relabel(late('R', 3)), late('R', 3), 'the same number for another cue');
    const segment = { cueId: 'Q', segment: 9, generation: 2n, preroll: 0 };
    assert.deepEqual(a.relabel({ ...segment }), segment, 'a segment\'s picture keeps its label');
    for (let p = 10; p < 20; p++) a.adopted({ cueId: 'Q', preroll: p, segment: p, generation: 2n });
    assert.deepEqual(a.relabel(late('Q', 3)), late('Q', 3), 'old adoptions of a cue are let go (bounded)');
    assert.equal(a.relabel(late('Q', 19)).segment, 19);
    a.forget('Q');
    assert.deepEqual(a.relabel(late('Q', 19)), late('Q', 19), 'after an unload');
    a.adopted({ cueId: 'R', preroll: 1, segment: 1, generation: 1n });
    a.clear();
    assert.deepEqual(a.relabel(late('R', 1)), late('R', 1), 'after a reconnect');
  });

  it('gives back Buffers where a structured clone made plain Uint8Arrays (packet data, extradata), over the same bytes', function () {
    const sent: { packets: { data: Uint8Array; pts: bigint }[]; media: { streams: { extradata: Uint8Array }[] }; name: string } = {
      packets: [{ data: Buffer.from([1, 2, 3]), pts: 5n }], media: { streams: [{ extradata: Buffer.from([9]) }] }, name: 'x',
    };
    const cloned = structuredClone(sent);
    assert.ok(!Buffer.isBuffer(cloned.packets[0].data), 'a clone loses Buffer (what the relay has to undo)');
    const bytes = cloned.packets[0].data;
    const back = withBuffers(cloned);
    assert.ok(Buffer.isBuffer(back.packets[0].data) && Buffer.isBuffer(back.media.streams[0].extradata));
    assert.deepEqual([...back.packets[0].data], [1, 2, 3]);
    assert.equal(back.packets[0].data.buffer, bytes.buffer, 'a view, not a copy');
    assert.equal(back.packets[0].pts, 5n);
    assert.equal(back.name, 'x');
  });
});
