/**
 * An independent OSC peer for tests: osc-js encodes and decodes (not our endpoint), bundles are built byte by byte,
 * and replies are awaited on a real UDP socket. Also helpers for liblo's oscsend/oscdump.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as readline from 'node:readline';
import { promisify } from 'node:util';
import OSC from 'osc-js';

const execFileAsync = promisify(execFile);

/** A typed OSC argument as osc-js takes it. */
export type Arg = { type: 'i' | 'f' | 'd'; value: number } | { type: 's'; value: string } | { type: 'T' | 'F' | 'N'; value: null };

/** A JSON reply body: {"address", "status", "data" | "error", "code"}. */
export interface Reply {
  address: string;
  status: 'ok' | 'error';
  data?: unknown;
  error?: string;
  code?: string;
}

/** A received message (address and decoded arguments). */
export interface Received {
  address: string;
  args: unknown[];
}

const NTP_UNIX_OFFSET_S = 2_208_988_800n;

/** Encode one message with osc-js. */
export function encode(address: string, args: Arg[] = []): Buffer {
  return Buffer.from(new OSC.TypedMessage(address, args as never[]).pack());
}

/** A bundle at Unix time `unixNs` (exact NTP fraction) holding `messages`. */
export function bundleAt(unixNs: bigint, messages: Buffer[]): Buffer {
  const head = Buffer.alloc(16);
  head.write('#bundle\0', 0, 'latin1');
  const seconds = unixNs / 1_000_000_000n + NTP_UNIX_OFFSET_S;
  const fraction = ((unixNs % 1_000_000_000n) << 32n) / 1_000_000_000n;
  head.writeUInt32BE(Number(seconds), 8);
  head.writeUInt32BE(Number(fraction), 12);
  const parts: Buffer[] = [head];
  for (const m of messages) {
    const size = Buffer.alloc(4);
    size.writeInt32BE(m.length);
    parts.push(size, m);
  }
  return Buffer.concat(parts);
}

function decode(buf: Buffer): Received {
  const copy = new Uint8Array(buf); // osc-js ignores byteOffset: give it its own buffer
  const m = new OSC.Message('/');
  m.unpack(new DataView(copy.buffer));
  return { address: m.address, args: m.args };
}

/** A UDP socket speaking OSC to a server on 127.0.0.1. */
export class OscPeer {
  readonly #socket: dgram.Socket;
  readonly #inbox: Received[] = [];
  #wake: (() => void) | null = null;

  private constructor(socket: dgram.Socket) {
    this.#socket = socket;
    socket.on('message', (buf: Buffer) => {
      try {
        this.#inbox.push(decode(buf));
      } catch {
        this.#inbox.push({ address: '<undecodable>', args: [] });
      }
      this.#wake?.();
    });
  }

  /** Bind a peer on an ephemeral port. */
  static async open(): Promise<OscPeer> {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
    return new OscPeer(s);
  }

  /** This peer's port. */
  get port(): number {
    return this.#socket.address().port;
  }

  /** Send raw bytes to `port`. */
  sendRaw(port: number, bytes: Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.#socket.send(bytes, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  }

  /** Send one message. */
  send(port: number, address: string, args: Arg[] = []): Promise<void> {
    return this.sendRaw(port, encode(address, args));
  }

  /** The next received message whose address matches, within `timeoutMs`. */
  async next(match: (m: Received) => boolean, timeoutMs = 5000): Promise<Received> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.#inbox.findIndex(match);
      if (i >= 0) return this.#inbox.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no OSC message matched within ${timeoutMs} ms (inbox: ${this.#inbox.map((m) => m.address).join(', ') || 'empty'})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = null;
    }
  }

  /** The JSON reply to the next message sent to `replyAddress`. */
  async reply(replyAddress: string, timeoutMs = 5000): Promise<Reply> {
    const m = await this.next((x) => x.address === replyAddress, timeoutMs);
    return JSON.parse(String(m.args[0])) as Reply;
  }

  /** Send `address` and return its reply (address /cuemux/... → /cuemux/reply/...). */
  async request(port: number, address: string, args: Arg[] = [], timeoutMs = 5000): Promise<Reply> {
    await this.send(port, address, args);
    return this.reply(address.replace(/^\/cuemux\//, '/cuemux/reply/'), timeoutMs);
  }

  /** Drop what was received so far. */
  clear(): void {
    this.#inbox.length = 0;
  }

  /** Close the socket. */
  close(): void {
    this.#socket.close();
  }
}

/** Run liblo's `oscsend 127.0.0.1 PORT ADDRESS [TYPES ARGS...]`. */
export async function oscsend(port: number, address: string, types = '', ...args: string[]): Promise<void> {
  await execFileAsync('oscsend', ['127.0.0.1', String(port), address, ...(types ? [types, ...args] : [])]);
}

/** liblo's `oscdump` listening on `port`, with its output lines. */
export interface OscDump {
  readonly child: ChildProcess;
  readonly lines: string[];
  /** The JSON reply of the next line for `address` (a line like `/cuemux/reply/x s "{...}"`). */
  reply(address: string, timeoutMs?: number): Promise<Reply>;
  stop(): void;
}

/** Start `oscdump -L PORT`. */
export function oscdump(port: number): OscDump {
  const child = spawn('oscdump', ['-L', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  readline.createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => lines.push(l));
  return {
    child, lines,
    async reply(address, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        // Line format: `<timetag> /address s "json"` (timetag first unless -L... both handled).
        const i = lines.findIndex((l) => l.split(' ').includes(address));
        if (i >= 0) {
          const line = lines.splice(i, 1)[0];
          const m = /"(.*)"$/.exec(line);
          if (m === null) throw new Error(`oscdump line without a string argument: ${line}`);
          return JSON.parse(m[1]) as Reply;
        }
        if (Date.now() > deadline) throw new Error(`oscdump showed no ${address} within ${timeoutMs} ms (lines: ${lines.join(' | ')})`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop() {
      child.kill();
    },
  };
}
