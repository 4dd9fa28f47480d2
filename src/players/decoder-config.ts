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

/**
 * Intra-only video codecs whose FFmpeg decoder has frame threads (or is cheap enough alone): every picture decodes
 * on its own, so a frame thread buys no parallelism a picture needs, only delay.
 */
const INTRA_ONLY = new Set(['dnxhd', 'prores', 'mjpeg', 'utvideo', 'huffyuv', 'ffvhuff', 'v210']);

/** True for a video stream whose every packet is a keyframe ({@link INTRA_ONLY}): a picture may be left out. */
export function isIntraOnlyVideo(s: Pick<StreamInfo, 'codecType' | 'codecName'>): boolean {
  return s.codecType === 'video' && INTRA_ONLY.has(s.codecName);
}

/**
 * Most pixels per second decoded on one thread (1080p60): measured on this 2-vCPU VM, one thread decodes a 1080p
 * DNxHD 36 picture in 4 ms, ProRes 422 HQ in 6.7 ms and a 4K DNxHR SQ one in 20 ms of CPU, so up to 1080p60 one
 * thread needs at most 40 % of a core; beyond it FFmpeg's threads are kept for throughput.
 */
const ONE_THREAD_PIXELS_PER_SECOND = 1920 * 1080 * 60;

/**
 * Decoder threads for a prepared cue's stream (its preroll's decoder, which the GO's segment adopts): `requested`
 * when it is not 0 (a user's `--threads N`); for 0 (auto), 1 for an intra-only video codec up to 1080p60
 * ({@link ONE_THREAD_PIXELS_PER_SECOND}), else 0 (FFmpeg's choice, CPU count + 1).
 *
 * Why: FFmpeg's frame threads hold back one picture per extra thread (2 on 2 CPUs) until later packets are sent, so
 * a 1080p25 DNxHD preroll (0.25 s past the in-point: 7 pictures) had only 5 ready at the GO and the next 2 waited for
 * the segment's packets. One thread gives each picture with its own packet, for the same CPU (an intra-only picture
 * decodes alone: frame threads only overlap whole pictures). A segment opened at an unarmed GO keeps FFmpeg's
 * threads: it catches up with a burst of packets under a running clock, where decoding pictures side by side counts
 * (measured in bench:go under load: one thread there gave more late ticks after unarmed DNxHD GOs).
 */
export function decoderThreadsFor(s: Pick<StreamInfo, 'codecType' | 'codecName' | 'width' | 'height' | 'frameRateNum' | 'frameRateDen'>, requested: number): number {
  if (requested !== 0 || !isIntraOnlyVideo(s)) return requested;
  const fps = s.frameRateNum > 0 && s.frameRateDen > 0 ? s.frameRateNum / s.frameRateDen : 60;
  return s.width * s.height * fps <= ONE_THREAD_PIXELS_PER_SECOND ? 1 : 0;
}
