/**
 * bench:progressive's peer for /media: a plain Node static file server (what `send` does: stat, then a read stream
 * of the asked range) in a process of its own, serving one finished file. It prints `{"port":N}` once listening.
 * Run as `node dist/scripts/bench/static-peer.js FILE`.
 */
import { createReadStream, statSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

function serve(file: string): void {
  const server = http.createServer((req, res) => {
    const size = statSync(file).size;
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    if (m === null) {
      res.writeHead(200, { 'content-type': 'video/mp4', 'content-length': size, 'accept-ranges': 'bytes' });
      createReadStream(file).pipe(res);
      return;
    }
    const start = Number(m[1]);
    const end = Math.min(size - 1, m[2] === '' ? size - 1 : Number(m[2]));
    if (start >= size) {
      res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
      return;
    }
    res.writeHead(206, { 'content-type': 'video/mp4', 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${size}` });
    createReadStream(file, { start, end }).pipe(res);
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
}

if (require.main === module) serve(process.argv[2]);
