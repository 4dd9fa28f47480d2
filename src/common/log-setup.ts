/**
 * The one place winston is configured; called only by entry points (CLI main, server main). Library code logs
 * through `logger.ts` and never sees winston.
 */
import { setLogSink, type LogLevel } from './logger';

/** Log configuration. */
export interface LogConfig {
  /** Lowest level written (default `info`). */
  level?: LogLevel;
  /** `json`: one JSON object per line (for machines); `text`: readable lines (default on a TTY). */
  format?: 'json' | 'text';
  /** Write to this file instead of stderr. */
  file?: string;
}

const SEVERITY: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/**
 * Route all cuemux loggers through winston. winston itself is loaded on the first record that passes `level`
 * (loading it costs ~40 ms, a tenth of a short CLI run that logs nothing). Returns a function that flushes and
 * closes the transports.
 */
export function configureLogging(config: LogConfig = {}): () => Promise<void> {
  const level = config.level ?? 'info';
  let logger: import('winston').Logger | undefined;
  const create = (): import('winston').Logger => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const winston = require('winston') as typeof import('winston');
    const format = config.format ?? (process.stderr.isTTY ? 'text' : 'json');
    const fmt = format === 'json'
      ? winston.format.combine(winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
        winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
        winston.format.printf((info) => {
          const { level: lv, message, timestamp, component, ...rest } = info as Record<string, unknown>;
          const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
          return `${String(timestamp)} ${String(lv)} [${String(component)}] ${String(message)}${extra}`;
        }),
      );
    const transport = config.file
      ? new winston.transports.File({ filename: config.file })
      : new winston.transports.Stream({ stream: process.stderr });
    return winston.createLogger({ level, format: fmt, transports: [transport] });
  };
  let ended = false;
  setLogSink((lv, component, message, meta) => {
    if (SEVERITY[lv] > SEVERITY[level]) return;
    if (ended) {
      // A record after close() (a client connection that closes while the server exits): winston's stream is ended
      // and would emit "write after end" as an unhandled 'error' event, crashing the process at the end of a clean
      // shutdown (seen under load in the SIGTERM grace test). Written straight to stderr instead, as one JSON line.
      const line = JSON.stringify({ level: lv, message, component, ...meta }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      process.stderr.write(`${line}\n`);
      return;
    }
    logger ??= create();
    logger.log({ level: lv, message, component, ...meta });
  });
  return () => new Promise<void>((resolve) => {
    ended = true;
    if (logger === undefined) {
      resolve();
      return;
    }
    logger.on('finish', () => resolve());
    logger.end();
  });
}
