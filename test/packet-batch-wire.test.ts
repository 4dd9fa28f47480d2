import assert from 'node:assert/strict';
import {
  GRPC_PREFIX, decodeFollowEvent, decodePacketBatch, encodeFollowEvent, encodePacketBatch, followPacketsFrame, cuePrerollFrame, framedBatchSize, framedBytes,
  framedFollowEvent, framedMessage, framedPacketBatch, layoutFramedBatch, type FollowWirePacket, type WirePacketFields,
} from '../src/wire/packet-batch';
import { framedSendActive, installFramedSend } from '../src/wire/grpc-framed-send';
import { giveSpareFrame, takeSpareFrame } from '../src/server/packet-stream';
import { FollowEvent, PacketBatch } from '../src/generated/cuemux/v1/media_server';

describe('hand-written PacketBatch wire codec', function () {
  const batch: PacketBatch = {
    packets: [
      { streamIndex: 0, pts: -9223372036854775807n, dts: 0n, duration: 512n, pos: 48n, key: true, data: Buffer.from('abc'), flags: 1, entry: 0n },
      { streamIndex: 1, pts: undefined, dts: -1024n, duration: 0n, pos: undefined, key: false, data: Buffer.alloc(0), flags: 4, entry: 0n },
      { streamIndex: 7, pts: 2n ** 53n, dts: 2n ** 62n, duration: 1n, pos: 300_000_000_000n, key: false, data: Buffer.alloc(70_000, 7), flags: 0, entry: 0n },
    ],
  };

  it('produces exactly the bytes ts-proto produces', function () {
    assert.deepEqual(encodePacketBatch(batch), Buffer.from(PacketBatch.encode(batch).finish()));
  });

  it('handles negative int32 as proto3 does, and rejects lengths that run past the message', function () {
    const neg: PacketBatch = { packets: [{ streamIndex: -1, pts: undefined, dts: undefined, duration: 0n, pos: undefined, key: false, data: Buffer.from('x'), flags: 0, entry: 0n }] };
    const bytes = encodePacketBatch(neg);
    assert.deepEqual(bytes, Buffer.from(PacketBatch.encode(neg).finish()));
    assert.equal(decodePacketBatch(bytes).packets[0].streamIndex, -1);
    const lying = Buffer.from([0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x08, 0x01]);
    assert.throws(() => decodePacketBatch(lying), RangeError);
    assert.throws(() => decodePacketBatch(Buffer.from([0x0a, 0x03, 0x3a, 0x7f, 0x00])), RangeError);
  });

  it('decodes what ts-proto encodes, absent fields absent and payloads as views', function () {
    const bytes = Buffer.from(PacketBatch.encode(batch).finish());
    const decoded = decodePacketBatch(bytes);
    assert.deepEqual(decoded, PacketBatch.decode(bytes));
    assert.equal(decoded.packets[2].data.buffer, bytes.buffer, 'no copy');
    assert.deepEqual(decodePacketBatch(Buffer.alloc(0)), { packets: [] });
  });

  it('lays out a batch from index fields with holes for the payloads: the same bytes, behind the gRPC prefix', function () {
    const fields: WirePacketFields[] = [
      { stream: 0, pts: -1024, dts: -2048, duration: 1024, pos: 48, size: 3, key: true, corrupt: false, discard: true },
      { stream: 1, pts: null, dts: null, duration: null, pos: null, size: 0, key: false, corrupt: true, discard: false },
      { stream: 7, pts: 2 ** 53, dts: 2 ** 40, duration: 0, pos: 300_000_000_000, size: 70_000, key: false, corrupt: false, discard: false },
      { stream: 200, pts: 0, dts: 0, duration: 1, pos: 0, size: 200, key: true, corrupt: true, discard: true },
    ];
    const payloads = fields.map((f, i) => Buffer.alloc(f.size, i + 1));
    const expected = encodePacketBatch({
      packets: fields.map((f, i) => ({
        streamIndex: f.stream, pts: f.pts === null ? undefined : BigInt(f.pts), dts: f.dts === null ? undefined : BigInt(f.dts),
        duration: BigInt(f.duration ?? 0), pos: f.pos === null ? undefined : BigInt(f.pos), key: f.key, data: payloads[i],
        flags: (f.key ? 1 : 0) | (f.corrupt ? 2 : 0) | (f.discard ? 4 : 0), entry: 0n,
      })),
    });
    const size = framedBatchSize(fields);
    assert.equal(size, expected.length + GRPC_PREFIX);
    const buf = Buffer.alloc(size + 100, 0xee); // a reused buffer is larger than the batch
    const frame = buf.subarray(0, size);
    const at = layoutFramedBatch(frame, fields);
    payloads.forEach((p, i) => p.copy(frame, at[i]));
    assert.deepEqual(frame.subarray(GRPC_PREFIX), expected);
    assert.equal(frame[0], 0, 'not compressed');
    assert.equal(frame.readUInt32BE(1), expected.length);
    assert.ok(buf.subarray(size).every((b) => b === 0xee), 'nothing written past the batch');

    const batch = framedPacketBatch(frame);
    assert.equal(framedBytes(batch), frame);
    assert.deepEqual(encodePacketBatch(batch), expected, 'the ordinary serializer sends the same bytes');
    assert.deepEqual(batch.packets, decodePacketBatch(expected).packets, 'packets can be looked at');
    assert.equal(framedBytes({ packets: [] }), null);
  });

  it('the grpc-js hook that sends framed batches without a copy is active with the grpc-js we ship', function () {
    assert.equal(installFramedSend(), true);
    assert.equal(framedSendActive(), true);
  });
});

describe('hand-written Follow packets wire codec', function () {
  const fields: Array<WirePacketFields & { index: number }> = [
    { index: 0, stream: 0, pts: -1024, dts: -2048, duration: 1024, pos: 48, size: 3, key: true, corrupt: false, discard: true },
    { index: 1, stream: 1, pts: null, dts: null, duration: null, pos: null, size: 0, key: false, corrupt: true, discard: false },
    { index: 300_000, stream: 7, pts: 2 ** 53, dts: 2 ** 40, duration: 0, pos: 300_000_000_000, size: 70_000, key: false, corrupt: false, discard: false },
    { index: 2 ** 40, stream: 200, pts: 0, dts: 0, duration: 1, pos: 0, size: 200, key: true, corrupt: true, discard: true },
  ];
  const packets: FollowWirePacket[] = fields.map((e, i) => ({ e, data: Buffer.alloc(e.size, i + 1) }));
  /** What ts-proto encodes for the same FollowEvent, behind the gRPC prefix. */
  const wirePackets = packets.map(({ e, data }) => ({
    streamIndex: e.stream, pts: e.pts === null ? undefined : BigInt(e.pts), dts: e.dts === null ? undefined : BigInt(e.dts),
    duration: BigInt(e.duration ?? 0), pos: e.pos === null ? undefined : BigInt(e.pos), key: e.key, data: data as Buffer,
    flags: (e.key ? 1 : 0) | (e.corrupt ? 2 : 0) | (e.discard ? 4 : 0), entry: BigInt(e.index),
  }));
  const expected = (cueId: string, segment: number, generation: number, last: boolean, preroll = 0): Buffer => framedMessage(FollowEvent.encode({
    event: { $case: 'packets', value: { cueId, segment, generation: BigInt(generation), last, preroll, packets: wirePackets } },
  }).finish());
  const write = (frame: ReturnType<typeof followPacketsFrame>): Buffer => {
    const buf = Buffer.alloc(frame.size + 50, 0xee); // a reused buffer is larger than the message
    const n = frame.writeInto(buf);
    assert.equal(n, frame.size);
    assert.ok(buf.subarray(n).every((b) => b === 0xee), 'nothing written past the message');
    return buf.subarray(0, n);
  };

  it('frames exactly the bytes ts-proto produces, zero fields left out and entry numbers included', function () {
    for (const [cueId, segment, generation, last] of [['A', 0, 0, false], ['cue ☃ 7', 3, 2 ** 33, true], ['', 0xffffffff, 1, false]] as const) {
      assert.deepEqual(write(followPacketsFrame({ cueId, segment, generation, last }, packets)), expected(cueId, segment, generation, last), cueId);
    }
    assert.deepEqual(write(followPacketsFrame({ cueId: 'A', segment: 4, generation: 9, last: false, preroll: 300 }, packets)), expected('A', 4, 9, false, 300));
    assert.deepEqual(write(followPacketsFrame({ cueId: 'A', segment: 4, generation: 9, last: true, preroll: 1 }, [])), framedMessage(FollowEvent.encode({
      event: { $case: 'packets', value: { cueId: 'A', segment: 4, generation: 9n, last: true, preroll: 1, packets: [] } },
    }).finish()));
    assert.throws(() => followPacketsFrame({ cueId: 'A', segment: -1, generation: 0, last: false }, packets), RangeError);
    assert.throws(() => followPacketsFrame({ cueId: 'A', segment: 0, generation: 0, last: false }, [{ e: fields[0], data: Buffer.alloc(2) }]), RangeError);
  });

  it('frames CuePreroll exactly as ts-proto does, and decodes it as ts-proto does', function () {
    for (const [cueId, preroll, last] of [['A', 1, false], ['cue ☃ 7', 0xffffffff, true]] as const) {
      const framed = write(cuePrerollFrame({ cueId, preroll, last }, packets));
      const want = framedMessage(FollowEvent.encode({ event: { $case: 'preroll', value: { cueId, preroll, last, packets: wirePackets } } }).finish());
      assert.deepEqual(framed, want, cueId);
      const body = framed.subarray(GRPC_PREFIX);
      const decoded = decodeFollowEvent(body);
      assert.deepEqual(decoded, FollowEvent.decode(body));
      assert.ok(decoded.event?.$case === 'preroll');
      assert.equal(decoded.event.value.packets[0].data.buffer, body.buffer, 'no copy');
    }
    assert.throws(() => cuePrerollFrame({ cueId: 'A', preroll: 0, last: false }, packets), RangeError);
  });

  it('puts framed messages before the packets in the same buffer, each decoded as sent', function () {
    const started: FollowEvent = { event: { $case: 'started', value: { cueId: 'A', segment: 3, clockSeconds: 10, mediaSeconds: 2.5, endMediaSeconds: 9 } } };
    const before = framedMessage(FollowEvent.encode(started).finish());
    const both = write(followPacketsFrame({ cueId: 'A', segment: 3, generation: 5, last: false }, packets, before));
    assert.deepEqual(both, Buffer.concat([before, expected('A', 3, 5, false)]));
    // As a gRPC client reads them: length-prefixed messages one after the other.
    const first = both.subarray(GRPC_PREFIX, GRPC_PREFIX + both.readUInt32BE(1));
    assert.deepEqual(decodeFollowEvent(first), started);
    const rest = both.subarray(before.length);
    assert.deepEqual(decodeFollowEvent(rest.subarray(GRPC_PREFIX)), FollowEvent.decode(rest.subarray(GRPC_PREFIX)));
  });

  it('the Follow serializer sends framed events as they are, others through ts-proto; two messages need the hook', function () {
    const frame = write(followPacketsFrame({ cueId: 'A', segment: 1, generation: 2, last: true }, packets));
    assert.deepEqual(encodeFollowEvent(framedFollowEvent(frame)), frame.subarray(GRPC_PREFIX));
    assert.equal(framedBytes(framedFollowEvent(frame)), frame);
    const unloaded: FollowEvent = { event: { $case: 'unloaded', value: { cueId: 'A' } } };
    assert.deepEqual(encodeFollowEvent(unloaded), Buffer.from(FollowEvent.encode(unloaded).finish()));
    assert.throws(() => encodeFollowEvent(framedFollowEvent(frame, 2)), RangeError);
  });

  it('decodes FollowEvents as ts-proto does, packet payloads as views of the message', function () {
    const body = expected('cue', 4, 9, true).subarray(GRPC_PREFIX);
    const decoded = decodeFollowEvent(body);
    assert.deepEqual(decoded, FollowEvent.decode(body));
    assert.ok(decoded.event?.$case === 'packets');
    assert.equal(decoded.event.value.packets[2].data.buffer, body.buffer, 'no copy');
    const others: FollowEvent[] = [
      { event: { $case: 'stopped', value: { cueId: 'B', reason: 'stop', clockSeconds: 1, mediaSeconds: 2 } } },
      { event: { $case: 'packets', value: { cueId: '', segment: 0, generation: 0n, packets: [], last: false, preroll: 0 } } },
      { event: { $case: 'preroll', value: { cueId: '', preroll: 0, packets: [], last: false } } },
      { event: undefined },
    ];
    for (const e of others) {
      const bytes = Buffer.from(FollowEvent.encode(e).finish());
      assert.deepEqual(decodeFollowEvent(bytes), FollowEvent.decode(bytes));
    }
    // Two packets fields in one message (the last one wins in protobuf): left to ts-proto.
    const twice = Buffer.concat([body, body]);
    assert.deepEqual(decodeFollowEvent(twice), FollowEvent.decode(twice));
  });

  it('message buffers come back from the shared spares: the usual size, and oversize batches by powers of two', function () {
    const usual = takeSpareFrame(1000, 68 << 10);
    assert.equal(usual.length, 68 << 10);
    const big = takeSpareFrame(100_000, 68 << 10);
    assert.equal(big.length, 128 << 10);
    giveSpareFrame(usual);
    giveSpareFrame(big);
    assert.equal(takeSpareFrame(120_000, 68 << 10), big, 'reused, not allocated again');
    assert.equal(takeSpareFrame(5, 68 << 10), usual);
    assert.equal(takeSpareFrame(3 << 20, 68 << 10).length, 3 << 20, 'too large to be kept: exactly its size');
  });
});
