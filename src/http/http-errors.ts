/**
 * The one mapping from domain errors to HTTP statuses (as status-mapping.ts is gRPC's): a refusal is a JSON body
 * `{ "error": CODE, "message": "... naming the file ..." }` with the status below.
 */
import type { FastifyReply } from 'fastify';
import { errorMessage, isCuemuxError, type ErrorCode } from '../common/errors';

const BY_CODE: Record<ErrorCode, number> = {
  NOT_FOUND: 404,
  PERMISSION_DENIED: 403,
  INVALID_ARGUMENT: 400,
  // Not media, or a codec the asked container cannot carry: the media type is what is refused.
  NOT_MEDIA: 415,
  NO_SUCH_STREAM: 404,
  MEDIA_DAMAGED: 422,
  INDEX_MISSING: 503,
  INDEX_STALE: 503,
  INDEX_CORRUPT: 500,
  LOCK_TIMEOUT: 503,
  RESOURCE_EXHAUSTED: 503,
  CLOSED: 503,
  WRONG_STATE: 409,
  INTERNAL: 500,
};

/** The HTTP status for an error: its `details.httpStatus`, else by its code (500 for anything that is not a CuemuxError). */
export function httpStatusFor(e: unknown): number {
  if (!isCuemuxError(e)) return 500;
  // A refusal may name a status of its own where HTTP tells more than the code (401: send a token).
  const own = e.details.httpStatus;
  return typeof own === 'number' ? own : BY_CODE[e.code];
}

/** Send `e` as the refusal of this request: its status, and a JSON body with its code and message. */
export function sendError(reply: FastifyReply, e: unknown): FastifyReply {
  const code = isCuemuxError(e) ? e.code : 'INTERNAL';
  return reply.code(httpStatusFor(e)).header('content-type', 'application/json; charset=utf-8')
    .send(JSON.stringify({ error: code, message: errorMessage(e) }));
}
