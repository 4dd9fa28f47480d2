/**
 * The hash sink's hashing thread (run by {@link PictureDigests} (picture-digests.ts) with `new Worker`, never imported): the MD5 of a presented
 * picture's planes, read in place from the shared pool slot that the presenting thread holds for it until the answer.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { HashDone, HashJob } from './picture-digests';

const port = parentPort;
port?.on('message', (job: HashJob) => {
  const h = createHash('md5');
  for (const [offset, length] of job.ranges) h.update(new Uint8Array(job.buffer, offset, length));
  const done: HashDone = { id: job.id, md5: h.digest('hex') };
  port.postMessage(done);
});
