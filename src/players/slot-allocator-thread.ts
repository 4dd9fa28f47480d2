/**
 * The frame pool's allocating thread (run by {@link SlotAllocator} (slot-allocator.ts) with `new Worker`, never
 * imported): makes SharedArrayBuffers of the size asked for and writes one byte of every page of them, so the kernel
 * maps and zeroes their memory here, then hands them over. The decode worker copies pictures into them without a
 * page fault (see slot-allocator.ts for what that costs on its thread).
 */
import * as os from 'node:os';
import { parentPort } from 'node:worker_threads';
import type { SlotRequest, SlotSupply } from './slot-allocator';

/** Bytes between two writes that map a buffer's memory: the smallest page size Linux uses. */
const PAGE_BYTES = 4096;

try {
  // Created by the decode worker (nice -5): back to normal priority, beside the decoders, never ahead of the worker.
  os.setPriority(0);
} catch {
  // Keeping the creator's nice value is harmless.
}

const port = parentPort;
port?.on('message', (req: SlotRequest) => {
  const buffers: SharedArrayBuffer[] = [];
  for (let i = 0; i < req.count; i++) {
    const b = new SharedArrayBuffer(req.bytes);
    const u = new Uint8Array(b);
    for (let at = 0; at < u.length; at += PAGE_BYTES) u[at] = 0;
    buffers.push(b);
  }
  const supply: SlotSupply = { bytes: req.bytes, buffers };
  port.postMessage(supply);
});
