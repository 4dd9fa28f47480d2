/**
 * The one place winston is configured; called only by entry points (CLI main, server main). Library code logs
 * through `logger.ts` and never sees winston.
 */
import * as winston from 'winston';
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

/** Route all cuemux loggers through winston. Returns a function that flushes and closes the transports. */
export function configureLogging(config: LogConfig = {}): () => Promise<void> {
  const format = config.format ?? (process.stderr.isTTY ? 'text' : 'json');
  const fmt = format === 'json'
    ? winston.format.combine(winston.format.timestamp(), winston.format.json())
    : winston.format.combine(
      winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
      winston.format.printf((info) => {
        const { level, message, timestamp, component, ...rest } = info as Record<string, unknown>;
        const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
        return `${String(timestamp)} ${String(level)} [${String(component)}] ${String(message)}${extra}`;
      }),
    );
  const transport = config.file
    ? new winston.transports.File({ filename: config.file })
    : new winston.transports.Stream({ stream: process.stderr });
  const logger = winston.createLogger({ level: config.level ?? 'info', format: fmt, transports: [transport] });
  setLogSink((level, component, message, meta) => logger.log({ level, message, component, ...meta }));
  return () => new Promise<void>((resolve) => {
    logger.on('finish', () => resolve());
    logger.end();
  });
}
