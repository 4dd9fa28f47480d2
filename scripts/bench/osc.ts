/**
 * OSC over UDP as a show controller sends it, for the benchmarks: string arguments, replies awaited as the server's
 * /cuemux/reply/... JSON. Encoded with cuemux's own OSC codec (the tests' independent peer stays in test/support).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import { createInterface } from 'node:readline';
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

/** A reply of {@link OscInNamespace.request}: the server's JSON, or the error. */
export type OscReply = Record<string, unknown> & { status: string };

/**
 * A show controller inside network namespace `ns` (another "machine", see ./netns), sending to 127.0.0.1:`port`
 * there: a child process (`ip netns exec`) of this module that takes one request per stdin line and prints each reply.
 */
export class OscInNamespace {
  readonly #child: ChildProcess;
  readonly #waiting: Array<(r: OscReply) => void> = [];

  private constructor(child: ChildProcess) {
    this.#child = child;
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => this.#waiting.shift()?.(JSON.parse(line) as OscReply));
  }

  /** Start the controller in `ns` for the server's OSC port `port`. */
  static start(ns: string, port: number): OscInNamespace {
    return new OscInNamespace(spawn('ip', ['netns', 'exec', ns, process.execPath, __filename, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] }));
  }

  /** Send `address` with string arguments; the reply (status 'error' with the message on an error reply or none in 30 s). */
  request(address: string, ...args: string[]): Promise<OscReply> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#child.stdin?.write(`${JSON.stringify([address, ...args])}\n`);
    });
  }

  close(): void {
    this.#child.kill();
  }
}

if (require.main === module) {
  void Osc.open(Number(process.argv[2])).then((osc) => {
    // One request at a time, in order, so replies come back in the order asked.
    let chain = Promise.resolve();
    createInterface({ input: process.stdin }).on('line', (line) => {
      const [address, ...args] = JSON.parse(line) as string[];
      chain = chain.then(() => osc.request(address, ...args).then((r) => ({ ...r, status: 'ok' }), (e: Error) => ({ status: 'error', error: e.message })))
        .then((r) => { process.stdout.write(`${JSON.stringify(r)}\n`); });
    }).on('close', () => osc.close());
  });
}
