/**
 * grpc-js serializes every response and then copies it once more into a new buffer behind gRPC's 5-byte length
 * prefix (`BaseServerInterceptingCall.serializeMessage`). For ReadPackets, the largest messages the server sends, the
 * pump already builds the prefixed message in a reused buffer ({@link framedPacketBatch}); this hook hands that buffer
 * to HTTP/2 as is. The copy it saves cost as much as the rest of the hot path together (a fresh 1 MiB buffer per batch:
 * page faults, then garbage for the GC). The pump reuses a buffer only after grpc-js's write callback, i.e. after
 * HTTP/2 has written it out.
 *
 * grpc-js does not export that class from its public entry, so this reaches into its build. When the method is not
 * where expected (another grpc-js version), nothing is changed and framed batches go through the ordinary path
 * ({@link encodePacketBatch}), byte for byte the same on the wire, one copy slower.
 */
import { framedBytes } from './packet-batch';

let installed: boolean | undefined;

/** True when {@link installFramedSend} has installed the hook (several framed messages may then go in one write). */
export function framedSendActive(): boolean {
  return installed === true;
}

/** Install the hook once per process; true when it is active. */
export function installFramedSend(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require('@grpc/grpc-js/build/src/server-interceptors') as { BaseServerInterceptingCall?: { prototype: Record<string, unknown> } };
    const proto = mod.BaseServerInterceptingCall?.prototype;
    const original = proto?.serializeMessage;
    if (proto === undefined || typeof original !== 'function' || original.length !== 1) return false;
    const serializeMessage = function (this: unknown, value: unknown): Buffer {
      return framedBytes(value) ?? (original as (v: unknown) => Buffer).call(this, value);
    };
    proto.serializeMessage = serializeMessage;
    installed = true;
  } catch {
    // Not the grpc-js layout this was written for: keep its own path.
  }
  return installed;
}
