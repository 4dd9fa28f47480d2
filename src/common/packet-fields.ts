/**
 * The fields of one compressed packet as the demuxer reported it: what an index entry stores (index-store) and what
 * the wire codec encodes (wire/packet-batch.ts). Here, below both, so neither has to extend the other's type.
 */

/** One packet's fields. Times in the stream's time-base ticks. */
export interface PacketFields {
  /** Stream index. */
  stream: number;
  /** Presentation timestamp in ticks, null where FFmpeg has none (absent on the wire). */
  pts: number | null;
  /** Decoding timestamp in ticks, null where FFmpeg has none (absent on the wire). */
  dts: number | null;
  /** Duration in ticks, null where FFmpeg has none (FFmpeg's 0). */
  duration: number | null;
  /** Byte offset of the packet in the file, null where FFmpeg has none (absent on the wire). */
  pos: number | null;
  /** Payload size in bytes. */
  size: number;
  /** Keyframe. */
  key: boolean;
  /** Flagged corrupt by the demuxer (flags bit 1 on the wire). */
  corrupt: boolean;
  /** Flagged for discard after decoding, e.g. priming samples (flags bit 2 on the wire). */
  discard: boolean;
}
