/**
 * gRPC over TCP: TLS credentials from files and the bearer-token check, and which `--listen` addresses need them.
 * The Unix socket never uses any of this: its 0660 permissions in a folder of the server's user are its control.
 */
import * as grpc from '@grpc/grpc-js';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { CuemuxError, errorMessage } from '../common/errors';
import { getLogger } from '../common/logger';
import { readCredentialFile, readSecretFile, sameSecret } from '../common/secret-file';

const log = getLogger('grpc-security');

/** Fewest characters of a bearer token (`openssl rand -hex 32` gives 64). */
export const MIN_TOKEN_LENGTH = 16;

/** The credential files of the TCP listener, as the server config holds them (absolute paths, or undefined). */
export interface TcpSecurityFiles {
  /** PEM certificate (chain) the server presents. */
  tlsCert: string | undefined;
  /** PEM private key of that certificate (unencrypted). */
  tlsKey: string | undefined;
  /** PEM CA certificate(s): when given, clients must present a certificate signed by one of them (mutual TLS). */
  tlsClientCa: string | undefined;
  /** File holding the bearer token every TCP call must carry (`authorization: Bearer <token>`). */
  tokenFile: string | undefined;
}

/** What the TCP listener is given: its credentials and interceptors, and a summary for the start log. */
export interface TcpSecurity {
  /** TLS (or insecure) server credentials for bindAsync. */
  credentials: grpc.ServerCredentials;
  /** The token check, when a token is configured. */
  interceptors: grpc.ServerInterceptor[];
  /** TLS is on. */
  tls: boolean;
  /** Clients must present a certificate. */
  mutualTls: boolean;
  /** Calls must carry the token. */
  token: boolean;
}

/** Every PEM block of `kind` (e.g. `CERTIFICATE`) in `text`. */
function pemBlocks(text: string, kind: string): string[] {
  const re = new RegExp(`-----BEGIN ${kind}-----[\\s\\S]*?-----END ${kind}-----`, 'g');
  return text.match(re) ?? [];
}

/** Parse every certificate of a PEM file; throws naming the file when there is none or one is not a certificate. */
function certificates(pem: Buffer, file: string, option: string): X509Certificate[] {
  const blocks = pemBlocks(pem.toString('latin1'), 'CERTIFICATE');
  if (blocks.length === 0) {
    throw new CuemuxError('INVALID_ARGUMENT', `${option} ${file}: no PEM certificate in the file (expected "-----BEGIN CERTIFICATE-----")`, { path: file });
  }
  return blocks.map((b, i) => {
    try {
      return new X509Certificate(b);
    } catch (e) {
      throw new CuemuxError('INVALID_ARGUMENT', `${option} ${file}: certificate ${i + 1} is not valid (${errorMessage(e)})`, { path: file, cause: e });
    }
  });
}

/** Warn when a certificate is outside its validity period: every TLS client would refuse it. */
function warnValidity(cert: X509Certificate, file: string, option: string): void {
  const now = Date.now();
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (Number.isFinite(to) && to < now) log.warn(`${option} ${file}: the certificate expired on ${cert.validTo}: clients will refuse it (or this machine's clock is wrong)`);
  else if (Number.isFinite(from) && from > now) log.warn(`${option} ${file}: the certificate is valid only from ${cert.validFrom}: clients will refuse it (or this machine's clock is wrong)`);
}

/**
 * Read and check the TCP listener's credential files (at start, before anything is bound): the certificate parses,
 * the key parses and belongs to it, the client CA holds certificates, the token is long enough.
 *
 * @throws CuemuxError naming the file and the option: NOT_FOUND, PERMISSION_DENIED, or INVALID_ARGUMENT (garbage,
 *   a key of another certificate, an encrypted key, a short token).
 */
export function loadTcpSecurity(files: TcpSecurityFiles): TcpSecurity {
  const interceptors: grpc.ServerInterceptor[] = [];
  let token = false;
  if (files.tokenFile !== undefined) {
    interceptors.push(tokenInterceptor(readSecretFile(files.tokenFile, { option: '--token-file', minLength: MIN_TOKEN_LENGTH })));
    token = true;
  }
  if (files.tlsCert === undefined || files.tlsKey === undefined) {
    return { credentials: grpc.ServerCredentials.createInsecure(), interceptors, tls: false, mutualTls: false, token };
  }
  const certPem = readCredentialFile(files.tlsCert, { option: '--tls-cert' });
  const [leaf] = certificates(certPem, files.tlsCert, '--tls-cert');
  warnValidity(leaf, files.tlsCert, '--tls-cert');
  const keyPem = readCredentialFile(files.tlsKey, { option: '--tls-key', secret: true });
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (e) {
    const why = errorMessage(e);
    const encrypted = /passphrase|encrypted/i.test(why) || keyPem.includes('ENCRYPTED');
    throw new CuemuxError('INVALID_ARGUMENT', encrypted
      ? `--tls-key ${files.tlsKey}: the key is encrypted; the server reads unencrypted keys only (openssl pkey -in KEY -out PLAIN.key, then chmod 600 it)`
      : `--tls-key ${files.tlsKey}: not a PEM private key (${why})`, { path: files.tlsKey, cause: e });
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new CuemuxError('INVALID_ARGUMENT', `--tls-key ${files.tlsKey} is not the key of the certificate in --tls-cert ${files.tlsCert} (${leaf.subject.replace(/\n/g, ', ')})`,
      { path: files.tlsKey });
  }
  let clientCa: Buffer | null = null;
  if (files.tlsClientCa !== undefined) {
    clientCa = readCredentialFile(files.tlsClientCa, { option: '--tls-client-ca' });
    for (const ca of certificates(clientCa, files.tlsClientCa, '--tls-client-ca')) warnValidity(ca, files.tlsClientCa, '--tls-client-ca');
  }
  // With a client CA, a client without a certificate signed by it fails the handshake (checkClientCertificate).
  const credentials = grpc.ServerCredentials.createSsl(clientCa, [{ cert_chain: certPem, private_key: keyPem }], clientCa !== null);
  return { credentials, interceptors, tls: true, mutualTls: clientCa !== null, token };
}

/** The message of an UNAUTHENTICATED call: what was wrong and what to send. */
function refusal(header: string | undefined): string {
  const what = header === undefined ? 'no "authorization" metadata'
    : !/^bearer\s+\S/i.test(header) ? 'the "authorization" metadata is not "Bearer <token>"' : 'the bearer token is not this server\'s';
  return `${what}: calls over TCP need "authorization: Bearer <token>" with the token of the server's --token-file `
    + '(cuemux clients: --token-file FILE or CUEMUX_TOKEN_FILE; the Unix socket needs no token)';
}

/**
 * The bearer-token check, as a server interceptor rather than a check in each handler: one place sees every call of
 * every service on the listener (cuemux.v1, health, reflection), a method added later cannot forget it, and a refused
 * call never reaches a handler, so it takes no client slot, opens nothing and is not logged as a failed call. The
 * interceptor is installed only on the TCP listener's grpc.Server; the Unix socket has a server of its own without it.
 *
 * The token is compared in constant time ({@link sameSecret}). A refused call ends with UNAUTHENTICATED and a
 * message saying what is missing; the connection stays usable (a client that fixes its token needs no reconnect).
 */
export function tokenInterceptor(token: string): grpc.ServerInterceptor {
  const warnings = new Map<string, number>();
  return (_method, call) => new grpc.ServerInterceptingCall(call, {
    start: (next) => {
      next({
        onReceiveMetadata: (metadata, pass) => {
          const values = metadata.get('authorization');
          const header = typeof values[0] === 'string' ? values[0] : undefined;
          const m = header === undefined ? null : /^bearer\s+(\S+)\s*$/i.exec(header);
          if (values.length === 1 && m !== null && sameSecret(m[1], token)) {
            pass(metadata);
            return;
          }
          // One line per peer address per 10 s: a client retrying with a wrong token is not a flood of log lines.
          const peer = call.getPeer();
          const host = peer.replace(/:\d+$/, '');
          const now = Date.now();
          if ((warnings.get(host) ?? 0) + 10_000 <= now) {
            if (warnings.size >= 1024) warnings.clear();
            warnings.set(host, now);
            log.warn('gRPC call refused: missing or wrong bearer token', { peer, why: header === undefined ? 'no authorization metadata' : 'wrong token' });
          }
          call.sendStatus({ code: grpc.status.UNAUTHENTICATED, details: refusal(header), metadata: new grpc.Metadata() });
        },
      });
    },
  });
}
