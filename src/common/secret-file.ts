/**
 * Small credential files read at start (TLS certificates and keys, the gRPC bearer token, the OSC shared secret),
 * and the constant-time comparison of secrets. Every failure is a CuemuxError naming the file, the option it came
 * from and what is wrong, so `cuemux serve` stops at once with the CLI's exit code for it.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { CuemuxError, fromSystemError } from './errors';
import { getLogger } from './logger';

const log = getLogger('secret-file');

/** Options of {@link readCredentialFile}. */
export interface CredentialFileOptions {
  /** The option the path came from, for messages, e.g. `--tls-key`. */
  option: string;
  /** Largest file accepted, in bytes (default 1 MiB: a certificate chain is a few KiB). */
  maxBytes?: number;
  /** Warn when other users may read the file (keys, tokens, secrets; not certificates). Default false. */
  secret?: boolean;
}

/**
 * The bytes of a small credential file. The file is opened non-blocking and checked with fstat before it is read:
 * a FIFO or a device at the path is refused instead of blocking the start forever, and a huge file is refused
 * instead of being read into memory.
 *
 * @throws CuemuxError NOT_FOUND / PERMISSION_DENIED (the OS said so) or INVALID_ARGUMENT (not a regular file, too
 *   big, empty), each naming the file and the option.
 */
export function readCredentialFile(file: string, options: CredentialFileOptions): Buffer {
  const maxBytes = options.maxBytes ?? 1 << 20;
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const err = fromSystemError(e, file, `read ${options.option}`);
    throw new CuemuxError(err.code, `${options.option} ${err.message}`, { path: file, operation: err.operation, cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CuemuxError('INVALID_ARGUMENT', `${options.option} ${file}: not a regular file`, { path: file });
    if (st.size > maxBytes) throw new CuemuxError('INVALID_ARGUMENT', `${options.option} ${file}: ${st.size} bytes, more than the ${maxBytes} such a file can need`, { path: file });
    if (st.size === 0) throw new CuemuxError('INVALID_ARGUMENT', `${options.option} ${file}: the file is empty`, { path: file });
    // 0o044: readable by the group or by everyone. A secret is only as private as its file.
    if (options.secret === true && (st.mode & 0o044) !== 0) {
      log.warn(`${options.option} ${file} is readable by other users (mode ${(st.mode & 0o777).toString(8)}): anyone who can read it can `
        + `use it; chmod 600 ${file}`);
    }
    const buf = Buffer.alloc(st.size);
    let at = 0;
    while (at < buf.length) {
      const n = readSync(fd, buf, at, buf.length - at, at);
      if (n === 0) break;
      at += n;
    }
    return buf.subarray(0, at);
  } catch (e) {
    if (e instanceof CuemuxError) throw e;
    const err = fromSystemError(e, file, `read ${options.option}`);
    throw new CuemuxError(err.code, `${options.option} ${err.message}`, { path: file, operation: err.operation, cause: e });
  } finally {
    closeSync(fd);
  }
}

/** Options of {@link readSecretFile}. */
export interface SecretFileOptions {
  /** The option the path came from, for messages, e.g. `--token-file`. */
  option: string;
  /** Fewest characters accepted (a short secret is guessed). */
  minLength: number;
  /** Largest secret accepted, in characters (default 1024: it travels in a header or an OSC datagram). */
  maxLength?: number;
}

/**
 * A secret (bearer token, OSC shared secret) from a file: its text with surrounding whitespace (the final newline of
 * `echo ... > FILE`) removed. Printable ASCII without spaces only: it is sent as an HTTP/2 header value or typed into
 * a console, where anything else is mangled or refused. Warns when other users may read the file.
 *
 * @throws CuemuxError naming the file and the option: missing, unreadable, not a regular file, too short or too
 *   long, or holding characters a secret cannot hold.
 */
export function readSecretFile(file: string, options: SecretFileOptions): string {
  const maxLength = options.maxLength ?? 1024;
  const text = readCredentialFile(file, { option: options.option, maxBytes: 64 << 10, secret: true }).toString('utf8').trim();
  const hint = 'e.g. openssl rand -hex 32 > FILE';
  if (text.length < options.minLength) {
    throw new CuemuxError('INVALID_ARGUMENT', `${options.option} ${file}: the secret is ${text.length} characters, fewer than the `
      + `${options.minLength} needed (${hint})`, { path: file });
  }
  if (text.length > maxLength) {
    throw new CuemuxError('INVALID_ARGUMENT', `${options.option} ${file}: the secret is ${text.length} characters, more than the ${maxLength} accepted`, { path: file });
  }
  if (!/^[\x21-\x7e]+$/.test(text)) {
    throw new CuemuxError('INVALID_ARGUMENT', `${options.option} ${file}: the secret must be one line of printable ASCII without spaces `
      + `(it is sent as a header or an OSC string; ${hint})`, { path: file });
  }
  return text;
}

/**
 * True when `offered` equals `expected`, in time that does not depend on where they differ nor on the length of the
 * offered one: both are hashed (SHA-256) and the digests compared with timingSafeEqual, so neither an early exit nor
 * a length check tells a prober how much it got right.
 */
export function sameSecret(offered: string, expected: string): boolean {
  const a = createHash('sha256').update(offered, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}
