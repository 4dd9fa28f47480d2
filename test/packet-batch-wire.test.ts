import assert from 'node:assert/strict';
import { decodePacketBatch, encodePacketBatch } from '../src/common/packet-batch-wire';
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
});
