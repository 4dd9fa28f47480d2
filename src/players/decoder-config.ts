/**
 * A decoder's parameters from the wire: what a player gets in `CueLoaded.media.streams` (or OpenMedia) is enough to
 * create a decoder without touching the file.
 */
import type { DecoderConfig } from '../ffmpeg/types';
import type { StreamInfo } from '../generated/cuemux/v1/media_server';

/** The {@link DecoderConfig} of a `StreamInfo` message (field for field; unknown values become "unknown"). */
export function decoderConfigFromStreamInfo(s: StreamInfo): DecoderConfig {
  return {
    codecName: s.codecName,
    codecId: s.codecId,
    extradata: s.extradata.length > 0 ? s.extradata : null,
    timeBase: { num: s.timeBaseNum, den: s.timeBaseDen },
    width: s.width,
    height: s.height,
    format: s.format,
    sampleRate: s.sampleRate,
    channels: s.channels,
    channelLayout: s.channelLayout,
    bitsPerCodedSample: s.bitsPerCodedSample,
    blockAlign: s.blockAlign,
    frameSize: s.frameSize,
    profile: s.profileName !== '' ? s.profileName : (s.profile ?? null),
    level: s.level,
    codecTag: s.codecTag,
    sampleAspectRatio: { num: s.sampleAspectRatioNum, den: s.sampleAspectRatioDen },
    bitRate: Number(s.bitRate),
    initialPadding: s.initialPadding,
  };
}
