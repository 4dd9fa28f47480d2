/**
 * `cuemux serve --http HOST:PORT`: the HTTP listener. It carries route sets (the media and preview routes, the
 * operator page) given as {@link HttpRoutes}: each is a function of the fastify app and the {@link HttpContext}, so
 * another set plugs in without editing this file.
 *
 * Why fastify (5.x): a well-kept framework (OpenJS foundation, regular releases) whose router, query and header
 * parsing, HEAD handling and error paths we would otherwise write and get wrong by hand; its routes take JSON schemas
 * (the operator page's actions are validated before a handler runs); streaming replies are plain Node streams (the
 * media routes stream from the file handle without buffering it); and its close() drains in-flight requests, which
 * the shutdown below builds on. Its per-request cost is small next to a file read (its own benchmarks: ~10 µs a
 * request on a laptop against ~20 µs for express).
 *
 * Access: loopback clients always; others only from --http-allow with the bearer token (http-access.ts), checked in
 * an onRequest hook before any route runs, so a route added later cannot forget it.
 */
import { setMaxListeners } from 'node:events';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AddressInfo } from 'node:net';
import { CuemuxError, errorMessage } from '../common/errors';
import { getLogger, type Logger } from '../common/logger';
import type { ServerStatus } from '../generated/cuemux/v1/media_server';
import type { MediaRegistry } from '../server/media-registry';
import type { OscControl } from '../server/osc-control';
import { MIN_TOKEN_LENGTH } from '../server/grpc-security';
import { listenHost, type ServerConfig } from '../server/server-config';
import { readSecretFile } from '../common/secret-file';
import type { Show } from '../show/show';
import { MediaCache } from './media-cache';
import { HttpAccess, type HttpAccessOptions } from './http-access';
import { sendError } from './http-errors';

const log = getLogger('http');

/** What every route set is given: the server's media, show and status, and the listener's life. */
export interface HttpContext {
  /** The server's open media: every file is opened through it (beneath a media root, once; see MediaRegistry.open). */
  readonly registry: MediaRegistry;
  /** The media roots (absolute), for listings and messages. */
  readonly mediaRoots: readonly string[];
  /** The show: clock, cues, cue list (its events drive live views). */
  readonly show: Show;
  /** Show control (OSC), whose commands and replies page actions share; null when the server runs without OSC. */
  readonly osc: () => OscControl | null;
  /** The status GetStatus reports (open media, clients, buffers). */
  readonly status: () => ServerStatus;
  /** How long a reader at a growing file's written end waits for more, in ms (--growing-wait-ms). */
  readonly growingWaitMs: number;
  /** The media requests name, kept open between requests (through the registry; see media-cache.ts). */
  readonly media: MediaCache;
  /** Aborted when the listener's grace period is over: long responses (a growing file, live updates) end then. */
  readonly closing: AbortSignal;
  /** The HTTP logger. */
  readonly log: Logger;
}

/** A set of routes: registers them on `app` (called once, before the listener starts). */
export type HttpRoutes = (app: FastifyInstance, ctx: HttpContext) => void | Promise<void>;

/** What {@link HttpServer.start} takes. */
export interface HttpServerOptions extends HttpAccessOptions {
  /** `HOST:PORT` to listen on (port 0: any free port). */
  listen: string;
  /** The route sets, registered in order. */
  routes: readonly HttpRoutes[];
}

/** The HTTP listener of a media server. */
export class HttpServer {
  readonly #app: FastifyInstance;
  readonly #closing: AbortController;
  readonly #media: MediaCache;
  /** `host:port` bound (the real port when 0 was asked). */
  readonly address: string;
  #closed: Promise<void> | null = null;

  private constructor(app: FastifyInstance, closing: AbortController, media: MediaCache, address: string) {
    this.#app = app;
    this.#closing = closing;
    this.#media = media;
    this.address = address;
  }

  /**
   * Register the route sets and listen. The context is `base` plus the listener's closing signal, logger and media
   * cache.
   *
   * @throws CuemuxError RESOURCE_EXHAUSTED when the address cannot be bound (in use, not local), naming it.
   */
  static async start(base: Omit<HttpContext, 'closing' | 'log' | 'media'>, options: HttpServerOptions): Promise<HttpServer> {
    const access = new HttpAccess(options);
    const closing = new AbortController();
    // Every request in flight listens to it (media-routes.ts): no "possible leak" warning past Node's default of 10.
    setMaxListeners(0, closing.signal);
    const ctx: HttpContext = { ...base, closing: closing.signal, log, media: new MediaCache(base.registry, base.mediaRoots) };
    const app = Fastify({
      logger: false,
      // Media paths are long; the default (100 characters) would answer 404 to a deep folder.
      routerOptions: { maxParamLength: 4096 },
      // Close idle keep-alive connections at close(); busy ones get the grace period (close below).
      forceCloseConnections: 'idle',
      return503OnClosing: true,
    });
    // A callback hook, not an async one: no promise per request on the path of every /media range.
    app.addHook('onRequest', (req, reply, done) => {
      try {
        const query = req.query as Record<string, unknown> | undefined;
        const token = typeof query?.access_token === 'string' ? query.access_token : undefined;
        access.check(req.socket.remoteAddress, req.headers.authorization, token);
      } catch (e) {
        log.debug('HTTP request refused', { peer: req.socket.remoteAddress, url: req.url, error: errorMessage(e) });
        sendError(reply, e);
        return;
      }
      done();
    });
    app.setErrorHandler((e, _req, reply) => {
      // fastify's own refusals (a malformed URL, a body over its limit) carry a statusCode; ours are CuemuxErrors.
      const status = (e as { statusCode?: unknown }).statusCode;
      if (typeof status === 'number' && !(e instanceof CuemuxError)) return reply.code(status).send({ error: 'INVALID_ARGUMENT', message: errorMessage(e) });
      if (!(e instanceof CuemuxError)) log.error('HTTP route failed', { error: errorMessage(e) });
      return sendError(reply, e);
    });
    for (const routes of options.routes) await routes(app, ctx);
    const host = listenHost(options.listen);
    const port = Number(options.listen.slice(options.listen.lastIndexOf(':') + 1));
    try {
      await app.listen({ host, port });
    } catch (e) {
      await app.close().catch(() => undefined);
      throw new CuemuxError('RESOURCE_EXHAUSTED', `cannot listen for HTTP on ${options.listen}: ${errorMessage(e)}`, { cause: e });
    }
    const a = app.server.address() as AddressInfo;
    const address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    log.info(`HTTP on http://${address}`, { allow: options.allow ?? 'loopback only', token: options.token !== null });
    return new HttpServer(app, closing, ctx.media, address);
  }

  /**
   * Stop: refuse new requests (503), let running responses finish for `graceMs`, then end them (their `closing`
   * signal aborts and every connection is closed). Idempotent: every call returns the same promise.
   */
  close(graceMs: number): Promise<void> {
    this.#closed ??= (async () => {
      let timer: NodeJS.Timeout | undefined;
      const forced = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          log.warn('HTTP shutdown grace period over: ending running responses');
          this.#closing.abort(new CuemuxError('CLOSED', 'server is shutting down'));
          this.#app.server.closeAllConnections();
          resolve();
        }, graceMs);
        timer.unref();
      });
      const drained = this.#app.close();
      await Promise.race([drained, forced]);
      clearTimeout(timer);
      this.#closing.abort(new CuemuxError('CLOSED', 'server is shutting down'));
      await drained;
      this.#media.close();
    })();
    return this.#closed;
  }
}

/** What {@link startHttp} needs of the media server (MediaServer has it). */
export interface HttpHost {
  /** The server's open media. */
  readonly registry: MediaRegistry;
  /** The show. */
  readonly show: Show;
  /** Show control, or null. */
  readonly osc: OscControl | null;
  /** GetStatus's status. */
  status(): ServerStatus;
}

/**
 * Start the HTTP listener of `server` as its config says (`http`, `httpAllow`, the token of `tokenFile`), carrying
 * `routes`; null when the config asks for no HTTP. The token file is read here, at start: a bad one stops the start.
 */
export async function startHttp(server: HttpHost, config: Pick<ServerConfig, 'http' | 'httpAllow' | 'tokenFile' | 'mediaRoots' | 'growingWaitMs'>,
  routes: readonly HttpRoutes[]): Promise<HttpServer | null> {
  if (config.http === null) return null;
  const token = config.tokenFile === undefined ? null : readSecretFile(config.tokenFile, { option: '--token-file', minLength: MIN_TOKEN_LENGTH });
  return HttpServer.start({
    registry: server.registry, mediaRoots: config.mediaRoots, show: server.show, osc: () => server.osc, status: () => server.status(),
    growingWaitMs: config.growingWaitMs,
  }, { listen: config.http, allow: config.httpAllow, token, routes });
}
