import assert from 'node:assert/strict';
import {
  GRPC_PREFIX, decodePacketBatch, encodePacketBatch, framedBatchSize, framedBytes, framedPacketBatch, layoutFramedBatch, type WirePacketFields,
} from '../src/common/packet-batch-wire';
import { installFramedSend } from '../src/server/grpc-framed-send';
import { PacketBatch } from '../src/generated/cuemux/v1/media_server';

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
  });
});
