/**
 * A small named logger. Library code logs through {@link getLogger}; only entry points (the CLI, the server's main)
 * decide where lines go by calling {@link setLogSink} (see `log-setup.ts`, the one place winston is configured).
 * Until then warnings and errors go to stderr and the rest is dropped, so a library user is never spammed on stdout.
 */

/** Log levels, most severe first. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** Where log records go. `meta` carries structured fields (path, duration in ms, counts...). */
export type LogSink = (level: LogLevel, name: string, message: string, meta?: Record<string, unknown>) => void;

const defaultSink: LogSink = (level, name, message, meta) => {
  if (level !== 'error' && level !== 'warn') return;
  const extra = meta && Object.keys(meta).length > 0 ? ` ${JSON.stringify(meta)}` : '';
  process.stderr.write(`${level}: [${name}] ${message}${extra}\n`);
};

let sink: LogSink = defaultSink;

/** Route every logger's records to `next` (entry points only). Returns the previous sink. */
export function setLogSink(next: LogSink): LogSink {
  const previous = sink;
  sink = next;
  return previous;
}

/** A log record as it crosses to another thread. */
export interface LogRecord {
  level: LogLevel;
  name: string;
  message: string;
  meta?: Record<string, unknown>;
}

/**
 * A sink for a worker thread whose records another thread writes: each goes to `post`, its `meta` as text when it
 * cannot be cloned (a function, a native handle), bigints as decimal strings.
 */
export function postingSink(post: (r: LogRecord) => void): LogSink {
  return (level, name, message, meta) => {
    try {
      post({ level, name, message, meta });
    } catch {
      post({ level, name, message, meta: { meta: JSON.stringify(meta, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)) } });
    }
  };
}

/** A logger bound to a component name, e.g. `index-store`. */
export interface Logger {
  /** Log at error level. */
  error(message: string, meta?: Record<string, unknown>): void;
  /** Log at warn level. */
  warn(message: string, meta?: Record<string, unknown>): void;
  /** Log at info level. */
  info(message: string, meta?: Record<string, unknown>): void;
  /** Log at debug level. */
  debug(message: string, meta?: Record<string, unknown>): void;
}

/** Get the logger for component `name`. Cheap: call at module load. */
export function getLogger(name: string): Logger {
  // Look the sink up at call time so loggers created before setLogSink() follow it.
  return {
    error: (m, meta) => sink('error', name, m, meta),
    warn: (m, meta) => sink('warn', name, m, meta),
    info: (m, meta) => sink('info', name, m, meta),
    debug: (m, meta) => sink('debug', name, m, meta),
  };
}
