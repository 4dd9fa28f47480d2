/**
 * The operator page: `GET /` (the page, its script and style), `GET /events` (live state over Server-Sent Events,
 * see operator-events.ts), `GET /state` (the same state once, as JSON) and `POST /action/<name>` (GO, stop,
 * pause, resume, locate, standby, load, clock play/stop).
 *
 * Every action is an OSC command run through OscControl.dispatch: the same routes, argument checks, follower refusal
 * and log lines as a console's message, and the reply is the OSC reply's JSON (`{"address", "status": "ok"|"error",
 * "data"|"error", "code"}`), with the HTTP status of its error code (http-errors.ts). The page owns no show logic.
 *
 * CSRF: actions take only `application/json` bodies (a cross-site form cannot send one, and a cross-site fetch that
 * sends one needs a CORS preflight this server never answers), and a request whose `Origin` (or `Sec-Fetch-Site`)
 * says it comes from another site is refused with 403. The listener's access rules (loopback, or --http-allow with
 * the bearer token) apply before any of this.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CuemuxError } from '../common/errors';
import type { ErrorCode } from '../common/errors';
import type { HttpContext } from './http-server';
import { httpStatusFor, sendError } from './http-errors';
import { OperatorEvents } from './operator-events';
import { PAGE_CSS, PAGE_HTML } from './operator-page';
import { PAGE_SCRIPT } from './operator-page-script';

/** What the operator routes use of the HTTP context. */
export type OperatorContext = Pick<HttpContext, 'show' | 'osc' | 'status' | 'closing' | 'mediaRoots'>;

/** An action's JSON body: every field optional here, each action says which it needs (the OSC route checks them). */
interface ActionBody {
  /** Cue id (go, stop, pause, resume: default the standby cue or every cue, as over OSC; standby, load: required). */
  id?: string;
  /** A time position: seconds or a timecode string (locate; play: optional). */
  position?: string | number;
  /** Media path beneath a media root (load). */
  media?: string;
}

/** Each action: its OSC address and its arguments from the body (trailing absent ones dropped, as a console would). */
const ACTIONS: Readonly<Record<string, { address: string; args: (b: ActionBody) => Array<string | number | undefined> }>> = {
  go: { address: '/cuemux/cue/go', args: (b) => [b.id] },
  stop: { address: '/cuemux/cue/stop', args: (b) => [b.id] },
  pause: { address: '/cuemux/cue/pause', args: (b) => [b.id] },
  resume: { address: '/cuemux/cue/resume', args: (b) => [b.id] },
  standby: { address: '/cuemux/cue/standby', args: (b) => [b.id] },
  load: { address: '/cuemux/cue/load', args: (b) => [b.id, b.media] },
  locate: { address: '/cuemux/clock/locate', args: (b) => [b.position] },
  play: { address: '/cuemux/clock/play', args: (b) => [b.position] },
  'clock-stop': { address: '/cuemux/clock/stop', args: () => [] },
};

/** The body schema: fastify refuses anything else (400) before the handler runs. Ids and paths are bounded. */
const BODY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 1024 },
    position: { anyOf: [{ type: 'number' }, { type: 'string', maxLength: 64 }] },
    media: { type: 'string', minLength: 1, maxLength: 4096 },
  },
} as const;

/**
 * Register the operator page's routes on `app`. The live updates end when the listener closes (`ctx.closing`).
 *
 * @param options.maxPages most pages receiving live updates at once (default 16).
 */
export function registerOperatorRoutes(app: FastifyInstance, ctx: OperatorContext, options: { maxPages?: number } = {}): void {
  const events = new OperatorEvents(ctx, { maxClients: options.maxPages });
  ctx.closing.addEventListener('abort', () => events.close(), { once: true });
  app.addHook('onClose', () => {
    events.close();
    return Promise.resolve();
  });

  const asset = (type: string, body: string) => (_req: FastifyRequest, reply: FastifyReply): FastifyReply => reply
    .header('content-type', type).header('cache-control', 'no-cache')
    // The page loads only itself and media from this server: no inline script, nothing from elsewhere.
    .header('content-security-policy', "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; frame-ancestors 'none'")
    .header('x-content-type-options', 'nosniff')
    .send(body);
  app.get('/', asset('text/html; charset=utf-8', PAGE_HTML));
  app.get('/operator.js', asset('text/javascript; charset=utf-8', PAGE_SCRIPT));
  app.get('/operator.css', asset('text/css; charset=utf-8', PAGE_CSS));

  // Browsers ask for it on every page load: an empty answer, not a 404 in the console.
  app.get('/favicon.ico', (_req, reply) => reply.code(204).send());
  app.get('/state', (_req, reply) => reply.header('cache-control', 'no-store').send(events.state()));

  app.get('/events', (req, reply) => {
    try {
      events.add(reply.raw);
    } catch (e) {
      return sendError(reply, e);
    }
    // The response is the hub's from now on (fastify must not end it).
    reply.hijack();
    req.raw.socket.setNoDelay(true);
    return reply;
  });

  app.post<{ Params: { name: string }; Body: ActionBody }>('/action/:name', { schema: { body: BODY_SCHEMA } }, async (req, reply) => {
    const action = Object.hasOwn(ACTIONS, req.params.name) ? ACTIONS[req.params.name] : undefined;
    if (action === undefined) {
      return sendError(reply, new CuemuxError('NOT_FOUND', `no operator action "${req.params.name.slice(0, 64)}" (known: ${Object.keys(ACTIONS).join(', ')})`));
    }
    checkSameOrigin(req);
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      return sendError(reply, new CuemuxError('INVALID_ARGUMENT', `operator action ${req.params.name}: the body must be JSON (Content-Type: application/json), e.g. {"id":"1"}`));
    }
    const osc = ctx.osc();
    if (osc === null) {
      return sendError(reply, new CuemuxError('WRONG_STATE', 'show control is off on this server (--osc-port off): the operator page\'s actions run as OSC commands'));
    }
    const args = action.args(req.body ?? {});
    while (args.length > 0 && args[args.length - 1] === undefined) args.pop();
    const from = { address: req.socket.remoteAddress ?? 'http', port: req.socket.remotePort ?? 0 };
    const result = await osc.dispatch(action.address, args.map((a) => a ?? null), from);
    const body = { address: action.address, ...result };
    const status = result.status === 'ok' ? 200 : httpStatusFor(new CuemuxError(result.code as ErrorCode, result.error));
    return reply.code(status).send(body);
  });
}

/**
 * Refuse a request a browser says comes from another site: `Sec-Fetch-Site` other than same-origin/none, or an
 * `Origin` whose host is not the `Host` the request was sent to. Non-browser clients (curl, a console's script) send
 * neither and pass: CSRF needs a browser.
 *
 * @throws CuemuxError PERMISSION_DENIED naming the origin.
 */
function checkSameOrigin(req: FastifyRequest): void {
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') {
    throw new CuemuxError('PERMISSION_DENIED', `operator action refused: the browser says it comes from a ${site} page (Sec-Fetch-Site); open the page from this server`);
  }
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    host = '';
  }
  if (host === '' || host !== req.headers.host) {
    throw new CuemuxError('PERMISSION_DENIED', `operator action refused: Origin ${origin.slice(0, 200)} is not this server (${req.headers.host ?? 'no Host'}); open the page from this server`);
  }
}
