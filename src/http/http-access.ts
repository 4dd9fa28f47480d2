/**
 * Who may use the HTTP listener: the rules of show control (src/server/osc-access.ts) applied to HTTP clients.
 * This machine (loopback) always; another machine only when its address is on the allow-list (--http-allow) and the
 * request carries the bearer token (--token-file) as `Authorization: Bearer TOKEN` or, for a `<video src>` or an
 * EventSource that cannot set headers, `?access_token=TOKEN` (RFC 6750 §2.3). Compared in constant time.
 */
import { CuemuxError } from '../common/errors';
import { sameSecret } from '../common/secret-file';
import { AllowList, isLoopbackAddress, LOOPBACK_ALLOW } from '../server/osc-access';

/** What {@link HttpAccess} is given. */
export interface HttpAccessOptions {
  /** Networks (CIDR) allowed besides loopback; null = loopback only. */
  allow: readonly string[] | null;
  /** The bearer token clients not on this machine must send; null = none can be let in. */
  token: string | null;
}

/** The access rule of the HTTP listener. */
export class HttpAccess {
  readonly #allow: AllowList;
  readonly #token: string | null;

  constructor(options: HttpAccessOptions) {
    this.#allow = new AllowList(options.allow ?? LOOPBACK_ALLOW);
    this.#token = options.token;
  }

  /**
   * Check one request from `peer` (the socket's remote address) with its `authorization` header and
   * `access_token` query value.
   *
   * @throws CuemuxError PERMISSION_DENIED (403) for an address not allowed; UNAUTHENTICATED-like PERMISSION_DENIED
   *   with `details.status` 401 for a missing or wrong token.
   */
  check(peer: string | undefined, authorization: string | undefined, queryToken: string | undefined): void {
    if (peer !== undefined && isLoopbackAddress(peer)) return;
    if (peer === undefined || !this.#allow.allows(peer.startsWith('::ffff:') ? peer.slice(7) : peer)) {
      throw new CuemuxError('PERMISSION_DENIED', `HTTP client ${peer ?? '(unknown address)'} is not allowed: the server lets in this machine and --http-allow only`);
    }
    const m = authorization === undefined ? null : /^bearer\s+(\S+)\s*$/i.exec(authorization);
    const offered = m?.[1] ?? queryToken;
    if (this.#token === null || offered === undefined || !sameSecret(offered, this.#token)) {
      throw new CuemuxError('PERMISSION_DENIED', `HTTP client ${peer}: ${offered === undefined ? 'no' : 'wrong'} bearer token: send "Authorization: Bearer TOKEN" `
        + '(or ?access_token=TOKEN) with the token of the server\'s --token-file', { details: { httpStatus: 401 } });
    }
  }
}
