/**
 * The FFmpeg adapter's public entry, kept so importers elsewhere (`../ffmpeg/beamcoder-adapter`) need no edits while
 * the adapter is split by job: native.ts loads beamcoder (the only module that does) and types its surface;
 * native-error.ts translates native failures; native-lane.ts serialises each native object's calls and its release;
 * demuxer.ts, decoder.ts (with frames.ts) and resampler.ts are the three things the adapter does. New code may
 * import from those modules directly. The narrow interfaces they return are in types.ts.
 */
export { ffmpegVersion, libavformatVersion, loadFfmpeg } from './native';
export { hasMediaSignature, openDemuxer, packetAt } from './demuxer';
export { decoderConfigFromParams, openDecoder, type DecoderOptions } from './decoder';
export { openAudioResampler } from './resampler';
