/**
 * Real cuemux servers for tests: in-process (MediaServer on a temp Unix socket and TCP port 0) and as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { MediaServer } from '../../src/server/media-server';
import { defaultConfig, type ServerConfig } from '../../src/server/server-config';
import { MediaClient } from '../../src/clients/media-client';
import { CUEMUX_BIN } from './cli';
import { scratchDir } from './tmp';
import { startHttp, type HttpRoutes, type HttpServer } from '../../src/http/http-server';

/** A started in-process server and where to reach it. */
export interface TestServer {
  server: MediaServer;
  /** The media root. */
  root: string;
  /** Unix socket path. */
  socket: string;
  /** TCP host:port. */
  tcp: string;
  /** OSC UDP port (on 127.0.0.1), or 0 when OSC is off. */
  oscPort: number;
  /** A new client on the socket (or TCP with `tcp: true`); closed by stop(). */
  client(tcp?: boolean): MediaClient;
  /** Close clients and the server. */
  stop(): Promise<void>;
}

/** Start a server whose media root is a new scratch folder (fill it before opening media). */
export async function startServer(overrides: Partial<ServerConfig> = {}): Promise<TestServer> {
  const root = overrides.mediaRoots?.[0] ?? await scratchDir('srv-root');
  const run = await scratchDir('srv-run');
  await fsp.chmod(run, 0o700); // a socket folder others can write to is refused
  const config: ServerConfig = {
    ...defaultConfig({}),
    socket: path.join(run, 'cuemux.sock'),
    listen: '127.0.0.1:0',
    mediaRoots: [root],
    cacheDir: path.join(run, 'cache'),
    idleCloseMs: 60_000,
    shutdownGraceMs: 1_000,
    oscPort: 0, // tests run side by side: never the fixed default port
    ...overrides,
  };
  const server = await MediaServer.start(config, 'test');
  const clients: MediaClient[] = [];
  return {
    server, root, socket: server.addresses.socket as string, tcp: server.addresses.tcp as string,
    oscPort: Number(server.addresses.osc?.split(':').pop() ?? 0),
    client(tcp = false) {
      const c = new MediaClient(tcp ? (server.addresses.tcp as string) : (server.addresses.socket as string));
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients) c.close();
      await server.close(200);
    },
  };
}

/**
 * A `cuemux serve` child process, resolved once it prints its socket. With `nofile`, it runs under `ulimit -n NOFILE`
 * (bash sets the limit, then execs node: the child's pid is the server's).
 */
export function spawnServer(args: string[], env: Record<string, string> = {}, options: { nofile?: number; nice?: number } = {}): Promise<{ child: ChildProcess; stdout: () => string; stderr: () => string; oscPort: number | null }> {
  return new Promise((resolve, reject) => {
    // Tests run side by side: an ephemeral OSC port unless the test chooses one.
    const osc = args.includes('--osc-port') ? [] : ['--osc-port', '0'];
    const argv = [CUEMUX_BIN, 'serve', ...osc, ...args];
    // `nice -n` before exec, so that every thread of the server has it (Linux's nice is per thread; setpriority on the
    // pid after the start would leave V8's and libuv's threads at the old value). Without the right to lower the
    // value, nice says so on stderr and runs the server as it is.
    const limits = [
      ...(options.nofile === undefined ? [] : [`ulimit -n ${options.nofile}`]),
      `exec ${options.nice === undefined ? '' : `nice -n ${options.nice} `}"$0" "$@"`,
    ].join(' && ');
    const child = options.nofile === undefined && options.nice === undefined
      ? spawn(process.execPath, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', limits, process.execPath, ...argv], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (!out.includes('Stop with')) return;
      const osc = /OSC \(UDP\): +\S+:(\d+)/.exec(out);
      resolve({ child, stdout: () => out, stderr: () => err, oscPort: osc ? Number(osc[1]) : null });
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { err += d; });
    child.on('exit', (code) => reject(new Error(`cuemux serve exited with ${String(code)} before it was ready: ${err}`)));
  });
}

/**
 * A loopback HTTP listener (127.0.0.1, port 0) on `ts`'s server with `routes`, its media root as the only root;
 * `growingWaitMs` as `--growing-wait-ms`. Close it before `ts.stop()`.
 */
export async function startLoopbackHttp(ts: TestServer, routes: HttpRoutes[], growingWaitMs: number): Promise<HttpServer> {
  const h = await startHttp(ts.server, { http: '127.0.0.1:0', httpAllow: null, tokenFile: undefined, mediaRoots: [ts.root], growingWaitMs }, routes);
  if (h === null) throw new Error('startHttp gave no listener for --http 127.0.0.1:0');
  return h;
}
