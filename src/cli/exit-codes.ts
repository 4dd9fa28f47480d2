/**
 * CLI exit codes: the one mapping from domain errors to process exit status. Documented in README.md.
 */
import { isCuemuxError, type ErrorCode } from '../common/errors';

/** Exit statuses of `cuemux`. */
export const ExitCode = {
  /** Everything asked was done. */
  OK: 0,
  /** Some files failed for different reasons, or an unexpected error. */
  FAILURE: 1,
  /** Bad command line (unknown option, a directory where a file is needed...). */
  USAGE: 2,
  /** `check`: an index exists but is stale. */
  STALE: 3,
  /** `check`: no index exists. */
  MISSING: 4,
  /** `check`: an index exists but is corrupt. */
  CORRUPT: 5,
  /** The file is not media FFmpeg can read (empty, text, unknown format). */
  NOT_MEDIA: 6,
  /** The media is truncated or damaged: what was readable is indexed, the rest is not. */
  DAMAGED: 7,
  /** A path does not exist. */
  NOT_FOUND: 8,
  /** Permission denied. */
  PERMISSION: 9,
  /** Busy: another process held the index build lock past --lock-timeout, or holds the server's socket or port. */
  BUSY: 10,
} as const;

/** A value of {@link ExitCode}. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

const BY_ERROR: Record<ErrorCode, ExitCodeValue> = {
  NOT_FOUND: ExitCode.NOT_FOUND,
  PERMISSION_DENIED: ExitCode.PERMISSION,
  INVALID_ARGUMENT: ExitCode.USAGE,
  NOT_MEDIA: ExitCode.NOT_MEDIA,
  NO_SUCH_STREAM: ExitCode.USAGE,
  MEDIA_DAMAGED: ExitCode.DAMAGED,
  INDEX_MISSING: ExitCode.MISSING,
  INDEX_STALE: ExitCode.STALE,
  INDEX_CORRUPT: ExitCode.CORRUPT,
  LOCK_TIMEOUT: ExitCode.BUSY,
  RESOURCE_EXHAUSTED: ExitCode.BUSY,
  CLOSED: ExitCode.FAILURE,
  WRONG_STATE: ExitCode.FAILURE,
  INTERNAL: ExitCode.FAILURE,
};

/** The exit code for an error (FAILURE for anything that is not a CuemuxError). */
export function exitCodeFor(e: unknown): ExitCodeValue {
  return isCuemuxError(e) ? BY_ERROR[e.code] : ExitCode.FAILURE;
}

/** One code for several failures: theirs when they agree, FAILURE otherwise; OK for none. */
export function combineExitCodes(codes: readonly ExitCodeValue[]): ExitCodeValue {
  if (codes.length === 0) return ExitCode.OK;
  return codes.every((c) => c === codes[0]) ? codes[0] : ExitCode.FAILURE;
}
