/**
 * The Content-Type of a media file, by its extension (what browsers and players go by), else by the container
 * FFmpeg found in it.
 */
import * as path from 'node:path';

const BY_EXTENSION: Record<string, string> = {
  '.mp4': 'video/mp4', '.m4v': 'video/mp4', '.m4a': 'audio/mp4', '.mov': 'video/quicktime', '.qt': 'video/quicktime',
  '.mkv': 'video/x-matroska', '.mka': 'audio/x-matroska', '.webm': 'video/webm', '.mxf': 'application/mxf',
  '.ts': 'video/mp2t', '.m2ts': 'video/mp2t', '.mts': 'video/mp2t', '.mpg': 'video/mpeg', '.mpeg': 'video/mpeg',
  '.avi': 'video/x-msvideo', '.wav': 'audio/wav', '.mp3': 'audio/mpeg', '.flac': 'audio/flac', '.ogg': 'audio/ogg',
  '.oga': 'audio/ogg', '.ogv': 'video/ogg', '.opus': 'audio/ogg', '.aac': 'audio/aac', '.aif': 'audio/aiff', '.aiff': 'audio/aiff',
  '.nut': 'application/octet-stream', '.y4m': 'video/x-yuv4mpeg',
};

const BY_FORMAT: Array<[RegExp, string]> = [
  [/(^|,)mp4(,|$)/, 'video/mp4'], [/(^|,)mov(,|$)/, 'video/quicktime'], [/matroska/, 'video/x-matroska'], [/(^|,)webm(,|$)/, 'video/webm'],
  [/^mxf/, 'application/mxf'], [/^mpegts/, 'video/mp2t'], [/^wav$/, 'audio/wav'], [/^mp3$/, 'audio/mpeg'], [/^flac$/, 'audio/flac'], [/^ogg$/, 'audio/ogg'],
];

/** Content-Type for the media at `file` whose FFmpeg format name is `formatName` (application/octet-stream when unknown). */
export function mediaContentType(file: string, formatName: string): string {
  const byExt = BY_EXTENSION[path.extname(file).toLowerCase()];
  if (byExt !== undefined) return byExt;
  for (const [re, type] of BY_FORMAT) if (re.test(formatName)) return type;
  return 'application/octet-stream';
}
