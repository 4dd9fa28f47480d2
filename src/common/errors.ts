/**
 * The one small set of domain errors. Every failure that reaches a user (CLI exit code, gRPC status, OSC reply)
 * is a {@link CuemuxError} with a {@link ErrorCode}; the code is mapped to an exit code or a status in exactly one
 * function per surface (`src/cli/exit-codes.ts`, and the server's status mapping).
 */

/** What went wrong, independent of the surface that reports it. */
export type ErrorCode =
  /** The path does not exist. */
  | 'NOT_FOUND'
  /** The OS refused access, or the path lies outside the served media roots. */
  | 'PERMISSION_DENIED'
  /** The request itself is malformed (a directory where a file is needed, a bad number, an unknown option). */
  | 'INVALID_ARGUMENT'
  /** The file exists but FFmpeg does not recognise it as media (empty, text, unknown format). */
  | 'NOT_MEDIA'
  /** The media has no stream with the requested index. */
  | 'NO_SUCH_STREAM'
  /** The media could be opened but reading stopped early (truncated or damaged file). */
  | 'MEDIA_DAMAGED'
  /** No index exists for the media. */
  | 'INDEX_MISSING'
  /** An index exists but was built from a different version of the media. */
  | 'INDEX_STALE'
  /** An index file fails its checksum, magic, version or structure checks. */
  | 'INDEX_CORRUPT'
  /** Another process held a file lock (an index build's) for longer than the caller was willing to wait. */
  | 'LOCK_TIMEOUT'
  /** A configured limit (clients, open media, batch bytes) was reached. */
  | 'RESOURCE_EXHAUSTED'
  /** The object was closed or the server is shutting down. */
  | 'CLOSED'
  /** The object is not in a state that allows the action (e.g. pausing a cue that is not playing). */
  | 'WRONG_STATE'
  /** A bug or an unexpected failure of the platform; the message carries the detail. */
  | 'INTERNAL';

/** Options accepted by {@link CuemuxError}. */
export interface CuemuxErrorOptions {
  /** The file the error is about (media or index), absolute where known. */
  path?: string;
  /** The operation that failed, e.g. `open`, `read`, `seek`, `index build`. */
  operation?: string;
  /** The underlying error (native, fs, ...). */
  cause?: unknown;
  /** Extra machine-readable details (e.g. `{ stopPos: 1234 }`). */
  details?: Record<string, unknown>;
}

/**
 * A domain error. The message is written for the person at the console: it names the file and what is wrong.
 */
export class CuemuxError extends Error {
  /** What went wrong. */
  readonly code: ErrorCode;
  /** The file concerned, when there is one. */
  readonly path: string | undefined;
  /** The operation that failed, when known. */
  readonly operation: string | undefined;
  /** Machine-readable details. */
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: CuemuxErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CuemuxError';
    this.code = code;
    this.path = options.path;
    this.operation = options.operation;
    this.details = options.details ?? {};
  }
}

/** True when `e` is a {@link CuemuxError}, optionally of one of `codes`. */
export function isCuemuxError(e: unknown, ...codes: ErrorCode[]): e is CuemuxError {
  return e instanceof CuemuxError && (codes.length === 0 || codes.includes(e.code));
}

/** The message of anything thrown: an Error's message, else the value as a string. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** For logs of unexpected failures: an Error's stack (its message where it has none), else the value as a string. */
export function errorStack(e: unknown): string {
  return e instanceof Error ? e.stack ?? e.message : String(e);
}

/**
 * Turn a Node.js system error (`ENOENT`, `EACCES`, ...) raised while working on `path` into a {@link CuemuxError}.
 * Anything that is already a CuemuxError passes through unchanged.
 */
export function fromSystemError(e: unknown, path: string, operation: string): CuemuxError {
  if (e instanceof CuemuxError) return e;
  const errno = (e as NodeJS.ErrnoException | undefined)?.code;
  const reason = errorMessage(e);
  switch (errno) {
    case 'ENOENT':
    case 'ENOTDIR':
      return new CuemuxError('NOT_FOUND', `${path}: no such file or directory`, { path, operation, cause: e });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new CuemuxError('PERMISSION_DENIED', `${path}: permission denied (${operation})`, { path, operation, cause: e });
    case 'EISDIR':
      return new CuemuxError('INVALID_ARGUMENT', `${path}: is a directory, a media file is needed`, { path, operation, cause: e });
    case 'EMFILE':
    case 'ENFILE':
    case 'ENOSPC':
      return new CuemuxError('RESOURCE_EXHAUSTED', `${path}: ${operation} failed: ${reason}`, { path, operation, cause: e });
    default:
      return new CuemuxError('INTERNAL', `${path}: ${operation} failed: ${reason}`, { path, operation, cause: e });
  }
}
