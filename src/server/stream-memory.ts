/**
 * The server-wide budget of message-buffer memory that streaming calls may pin. A call (ReadPackets, Follow) holds
 * up to {@link BUFFERS_PER_CALL} batches in flight: one being filled while two are written out, and a client that
 * stops reading keeps them pinned for as long as its connection lives. Without a budget, sixteen stalled clients
 * asking the 8 MiB batch ceiling pinned 455 MB (issue 12's probe). Each call reserves what it can pin when it starts,
 * from one budget; a call that would pass it is refused at once with RESOURCE_EXHAUSTED naming the budget, so a
 * stalled client never takes memory from a running one, and the server's worst case is the budget, whatever the
 * clients do.
 */
import { CuemuxError } from '../common/errors';

/** Message buffers one streaming call may have in flight (ReadPackets' pool; Follow's two written plus one filled). */
export const BUFFERS_PER_CALL = 3;

/** Room in a message buffer beyond the batch size, for the packets' fields (48 counted per packet, up to ~70 used). */
export const BUFFER_SLACK = 4096;

/**
 * Default budget: 128 MiB, room for 84 calls at the default 512 KiB batch, or 21 at the 2 MiB ceiling. What a stalled
 * call pins beyond its buffers (HTTP/2 queues, about 6 MB per connection measured) is bounded by the call limits.
 */
export const DEFAULT_STREAM_MEMORY_BYTES = 128 << 20;

/** Bytes a streaming call with batches of `batchBytes` reserves. */
export function callReservation(batchBytes: number): number {
  return BUFFERS_PER_CALL * (batchBytes + BUFFER_SLACK);
}

const MiB = 1 << 20;

/** A reservation held by one call; release it once (more calls are harmless). */
export type StreamMemoryRelease = () => void;

/** The budget (one per server). */
export class StreamMemoryBudget {
  /** The budget in bytes. */
  readonly limit: number;
  #reserved = 0;
  #calls = 0;

  /** @param limit the budget in bytes (above 0). */
  constructor(limit: number) {
    this.limit = limit;
  }

  /** Bytes reserved by running calls. */
  get reserved(): number {
    return this.#reserved;
  }

  /** Running calls holding a reservation. */
  get calls(): number {
    return this.#calls;
  }

  /**
   * Reserve what a call with batches of `batchBytes` can pin; throws RESOURCE_EXHAUSTED (naming the budget, what is
   * in use and what the client can do) when it does not fit.
   */
  reserve(batchBytes: number, what: string): StreamMemoryRelease {
    const bytes = callReservation(batchBytes);
    if (this.#reserved + bytes > this.limit) {
      throw new CuemuxError('RESOURCE_EXHAUSTED',
        `${what}: the server's stream memory budget is used up (${(this.#reserved / MiB).toFixed(1)} of ${(this.limit / MiB).toFixed(0)} MiB `
        + `reserved by ${this.#calls} calls, this call needs ${(bytes / MiB).toFixed(1)} MiB for batches of ${batchBytes} bytes; `
        + 'ask a smaller max_batch_bytes, end idle calls, or raise --max-stream-memory)');
    }
    this.#reserved += bytes;
    this.#calls++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.#reserved -= bytes;
      this.#calls--;
    };
  }
}
