/**
 * The wire form of an open media (MediaInfo, what OpenMedia returns and a Follow call's CueLoaded carries): made once
 * per open media, from its container and stream parameters and its index.
 */
import type { MediaGrowth, MediaInfo, StreamInfo } from '../generated/cuemux/v1/media_server';
import type { StreamParams } from '../ffmpeg/types';
import type { MediaIndex } from '../index-store/media-index';
import { streamType, type OpenMedia } from '../media/open-media';

/** A nullable tick/byte value as a proto3 optional int64 (absent = FFmpeg's "no value"). */
export function optionalInt64(v: number | null): bigint | undefined {
  return v === null ? undefined : BigInt(v);
}

const FIELD_ORDER: Record<string, string> = {
  'top coded first, top displayed first': 'tt',
  'bottom coded first, bottom displayed first': 'bb',
  'top coded first, bottom displayed first': 'tb',
  'bottom coded first, top displayed first': 'bt',
};

function streamInfo(p: StreamParams, index: MediaIndex): StreamInfo {
  const st = index.streams[p.index];
  return {
    index: p.index, codecType: streamType(p),
    codecName: p.codecName, timeBaseNum: p.timeBase.num, timeBaseDen: p.timeBase.den,
    startPts: optionalInt64(p.startPts), durationPts: optionalInt64(p.durationPts), packetCount: BigInt(st?.packetCount ?? 0),
    frameRateNum: p.frameRate?.num ?? 0, frameRateDen: p.frameRate?.den ?? 0, sampleRate: p.sampleRate, channels: p.channels,
    channelLayout: p.channelLayout, width: p.width, height: p.height, format: p.format, bitRate: BigInt(p.bitRate),
    extradata: p.extradata, codecId: p.codecId, codecTag: p.codecTag,
    profile: typeof p.profile === 'number' ? p.profile : undefined, profileName: typeof p.profile === 'string' ? p.profile : '',
    level: p.level === -99 ? undefined : p.level,
    sampleAspectRatioNum: p.sampleAspectRatio.num, sampleAspectRatioDen: p.sampleAspectRatio.den,
    fieldOrder: FIELD_ORDER[p.fieldOrder] ?? p.fieldOrder, colorRange: p.color.range, colorPrimaries: p.color.primaries,
    colorTransfer: p.color.transfer, colorSpace: p.color.space, chromaLocation: '', frameSize: p.frameSize,
    blockAlign: p.blockAlign, bitsPerCodedSample: p.bitsPerCodedSample, bitsPerRawSample: 0, initialPadding: p.initialPadding,
    trailingPadding: 0, seekPreroll: 0, videoDelay: 0, declaredFrames: BigInt(p.declaredFrames), disposition: 0,
  };
}

const made = new WeakMap<OpenMedia, MediaInfo>();

/** Where `media` stands as a file being written (MediaGrowth), now. */
export function mediaGrowthOf(media: OpenMedia): MediaGrowth {
  const g = media.growth;
  return {
    state: media.growthState, indexedPackets: BigInt(media.index.packetCount),
    writtenBytes: BigInt(g?.writtenBytes ?? media.index.identity.size), reason: g?.error?.message ?? '',
  };
}

/** The MediaInfo of `media` (the same object every time, but for its growth: a file being written changes). */
export function mediaInfoOf(media: OpenMedia): MediaInfo {
  let info = made.get(media);
  if (info === undefined) {
    const c = media.info;
    info = {
      mediaId: media.id, path: media.path, durationSeconds: media.durationSeconds, streams: c.streams.map((s) => streamInfo(s, media.index)),
      formatName: c.formatName, startSeconds: c.startSeconds ?? undefined, bitRate: BigInt(c.bitRate),
      growth: mediaGrowthOf(media),
    };
    made.set(media, info);
  }
  return media.growth === null ? info : { ...info, durationSeconds: media.durationSeconds, growth: mediaGrowthOf(media) };
}
