/**
 * The CLI's standard streams, injectable so commands can be run in-process (and so stdout is written with
 * backpressure: `cuemux index dump big.mp4 | head` must neither buffer the whole dump nor crash on EPIPE).
 */

/** Output channels of a CLI command. */
export interface CliIo {
  /** Write text to stdout (small, synchronous-looking writes). */
  out(text: string): void;
  /** Write text to stderr. */
  err(text: string): void;
  /** Write a large chunk to stdout, resolving when it may be followed by more. */
  write(text: string): Promise<void>;
  /** stderr as a stream (for TTY detection and the progress bar). */
  stderr: NodeJS.WriteStream;
}

/** Thrown by {@link processIo}'s write when the reader of stdout went away (EPIPE). */
export class StdoutClosed extends Error {
  constructor() {
    super('stdout closed');
  }
}

/** The real process streams. */
export function processIo(): CliIo {
  let closed = false;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') closed = true;
  });
  return {
    out: (t) => {
      if (!closed) process.stdout.write(t);
    },
    err: (t) => {
      process.stderr.write(t);
    },
    write: (t) => new Promise<void>((resolve, reject) => {
      if (closed) {
        reject(new StdoutClosed());
        return;
      }
      if (process.stdout.write(t)) {
        resolve();
        return;
      }
      // 'drain' never comes once the reader has gone: settle on 'error'/'close' too.
      const done = (): void => {
        process.stdout.off('drain', done);
        process.stdout.off('error', done);
        process.stdout.off('close', done);
        if (closed) reject(new StdoutClosed());
        else resolve();
      };
      process.stdout.once('drain', done);
      process.stdout.once('error', done);
      process.stdout.once('close', done);
    }),
    stderr: process.stderr,
  };
}
