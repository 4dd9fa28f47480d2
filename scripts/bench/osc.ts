/**
 * OSC over UDP as a show controller sends it, for the benchmarks: string arguments, replies awaited as the server's
 * /cuemux/reply/... JSON. Encoded with cuemux's own OSC codec (the tests' independent peer stays in test/support).
 */
import * as dgram from 'node:dgram';
import { encodeMessage } from '../../src/wire/osc-codec';

/** A controller's UDP socket speaking OSC to a server on 127.0.0.1:`port`. */
export class Osc {
  readonly #s = dgram.createSocket('udp4');
  readonly #port: number;
  readonly #waiting = new Map<string, (json: Record<string, unknown>) => void>();

  private constructor(port: number) {
    this.#port = port;
    this.#s.on('message', (buf) => {
      // Replies carry one JSON string; the address names the request.
      const address = buf.subarray(0, buf.indexOf(0)).toString();
      const json = JSON.parse(buf.subarray(buf.indexOf('{'), buf.lastIndexOf('}') + 1).toString()) as Record<string, unknown>;
      this.#waiting.get(address)?.(json);
    });
  }

  /** Bind a socket on an ephemeral port, sending to `port`. */
  static async open(port: number): Promise<Osc> {
    const o = new Osc(port);
    await new Promise<void>((r) => o.#s.bind(0, '127.0.0.1', r));
    return o;
  }

  /** The datagram of a message with string arguments. */
  static encode(address: string, ...args: string[]): Uint8Array {
    return encodeMessage(address, args.map((value) => ({ type: 's' as const, value })));
  }

  /** Send a datagram from {@link encode}. */
  sendEncoded(datagram: Uint8Array): void {
    this.#s.send(datagram, this.#port, '127.0.0.1');
  }

  /** Send `address` with string arguments and resolve with its reply's JSON; rejects on an error reply or none in 30 s. */
  request(address: string, ...args: string[]): Promise<Record<string, unknown>> {
    const reply = address.replace('/cuemux/', '/cuemux/reply/');
    const p = new Promise<Record<string, unknown>>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply to ${address}`)), 30_000);
      this.#waiting.set(reply, (json) => {
        clearTimeout(t);
        this.#waiting.delete(reply);
        if (json.status !== 'ok') reject(new Error(`${address} ${args.join(' ')}: ${String(json.error)}`));
        else resolve(json);
      });
    });
    this.sendEncoded(Osc.encode(address, ...args));
    return p;
  }

  close(): void {
    this.#s.close();
  }
}
