/**
 * A small HTTP/1.1 client for the HTTP surface's tests and bench:progressive: the raw path is sent as given (no
 * normalisation of `..` or `%2F`, which fetch would do), and the time to the first body byte is measured.
 */
import * as http from 'node:http';

/** One response, whole. */
export interface HttpResult {
  /** Status code. */
  status: number;
  /** Response headers (lower-case names). */
  headers: http.IncomingHttpHeaders;
  /** The body. */
  body: Buffer;
  /** ms from sending the request to the first body byte (to the headers when the body is empty). */
  firstByteMs: number;
}

/** Options of {@link httpGet}. */
export interface HttpGetOptions {
  /** GET (default) or HEAD. */
  method?: 'GET' | 'HEAD';
  /** Request headers. */
  headers?: Record<string, string>;
  /** Local address to send from (to be a client that is not loopback). */
  localAddress?: string;
  /** Called with each body chunk as it arrives (the body is then not kept: `body` is empty). */
  onChunk?: (chunk: Buffer) => void;
}

/** GET (or HEAD) `rawPath` on `address` (`host:port`), reading the whole response. */
export function httpGet(address: string, rawPath: string, options: HttpGetOptions = {}): Promise<HttpResult> {
  const at = address.lastIndexOf(':');
  const host = address.slice(0, at).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(at + 1));
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request({ host, port, path: rawPath, method: options.method ?? 'GET', headers: options.headers, localAddress: options.localAddress, agent: false }, (res) => {
      let firstByteMs = -1;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => {
        if (firstByteMs < 0) firstByteMs = performance.now() - t0;
        if (options.onChunk !== undefined) options.onChunk(c);
        else chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), firstByteMs: firstByteMs < 0 ? performance.now() - t0 : firstByteMs }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The parts of a multipart/byteranges body: each part's Content-Range and bytes. */
export function multipartParts(body: Buffer, contentType: string): Array<{ range: string; data: Buffer }> {
  const m = /boundary=([^;\s]+)/.exec(contentType);
  if (m === null) throw new Error(`no boundary in ${contentType}`);
  const delimiter = Buffer.from(`--${m[1]}`);
  const parts: Array<{ range: string; data: Buffer }> = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const headerEnd = body.indexOf('\r\n\r\n', start);
    const head = body.subarray(start, headerEnd).toString();
    const next = body.indexOf(delimiter, headerEnd);
    const range = /content-range:\s*(.+)/i.exec(head)?.[1].trim() ?? '';
    parts.push({ range, data: body.subarray(headerEnd + 4, next - 2) });
    at = next;
  }
  return parts;
}
