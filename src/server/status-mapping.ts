/**
 * The one mapping from domain errors to gRPC status codes (documented in proto/cuemux/v1/media_server.proto).
 */
import { status, type ServiceError, Metadata } from '@grpc/grpc-js';
import { isCuemuxError, type ErrorCode, errorMessage } from '../common/errors';

const BY_CODE: Record<ErrorCode, status> = {
  NOT_FOUND: status.NOT_FOUND,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_MEDIA: status.FAILED_PRECONDITION,
  NO_SUCH_STREAM: status.FAILED_PRECONDITION,
  MEDIA_DAMAGED: status.DATA_LOSS,
  // The server builds missing/stale/corrupt indexes itself; these only surface if that is impossible.
  INDEX_MISSING: status.FAILED_PRECONDITION,
  INDEX_STALE: status.FAILED_PRECONDITION,
  INDEX_CORRUPT: status.INTERNAL,
  LOCK_TIMEOUT: status.UNAVAILABLE,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  CLOSED: status.UNAVAILABLE,
  WRONG_STATE: status.FAILED_PRECONDITION,
  INTERNAL: status.INTERNAL,
};

/** The gRPC status code for an error (INTERNAL for anything that is not a CuemuxError). */
export function grpcStatusFor(e: unknown): status {
  return isCuemuxError(e) ? BY_CODE[e.code] : status.INTERNAL;
}

/** A grpc-js ServiceError for `e`: its status code, its message, and `cuemux-error-code` metadata. */
export function toServiceError(e: unknown): Partial<ServiceError> {
  const metadata = new Metadata();
  metadata.set('cuemux-error-code', isCuemuxError(e) ? e.code : 'INTERNAL');
  const message = errorMessage(e);
  return { code: grpcStatusFor(e), details: message, message, metadata };
}
