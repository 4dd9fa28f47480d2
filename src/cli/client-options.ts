/**
 * The options every client command (`status`, `play-audio`, `play-video`) uses to reach a server: one table, so the
 * parser and `--help` of each client command list the same connection options. Options added for secured
 * connections (e.g. a CA file, a token file) belong here too.
 */
import { defaultSocketPath } from '../server/server-config';
import type { CommandSpec, OptionSpec } from './options';
import type { ConnectionArgs } from './server-target';

/** Heading of the connection options in the help. */
export const CONNECTION_GROUP = 'Connection';

/** `--socket` and `--target`: which server to talk to (see serverTarget in server-target.ts). */
export const CONNECTION_OPTIONS: readonly OptionSpec[] = [
  {
    name: 'socket', arg: 'PATH', group: CONNECTION_GROUP, help: "the server's Unix socket",
    default: () => `$CUEMUX_SOCKET, else the server's default ${defaultSocketPath()}`,
  },
  { name: 'target', arg: 'HOST:PORT', group: CONNECTION_GROUP, help: 'connect over TCP to a server started with --listen instead of the socket' },
  {
    name: 'tls-ca', arg: 'FILE', group: CONNECTION_GROUP, default: 'plaintext (with a token: TLS with the system\'s CAs)',
    help: 'with --target: TLS, trusting this CA certificate (PEM) for the server\'s --tls-cert (env CUEMUX_TLS_CA)',
  },
  { name: 'token-file', arg: 'FILE', group: CONNECTION_GROUP, help: 'with --target: send the bearer token of the server\'s --token-file (env CUEMUX_TOKEN_FILE)' },
];

/**
 * The players' `--socket` and `--target`: as {@link CONNECTION_OPTIONS}, and several servers, comma-separated (a main
 * and its backup: the player follows whichever is master, see serverTargets in server-target.ts).
 */
export const PLAYER_CONNECTION_OPTIONS: readonly OptionSpec[] = CONNECTION_OPTIONS.map((o) => (o.name === 'socket' || o.name === 'target'
  ? { ...o, arg: o.name === 'socket' ? 'PATH[,PATH]' : 'HOST:PORT[,HOST:PORT]', help: `${o.help}; several, comma-separated (a main and its backup): the one that is master` }
  : o));

/** The connection values of parsed options, as serverTarget and connectionOptions (server-target.ts) take them. */
export function connectionValues(o: { string(name: string): string | undefined }): ConnectionArgs {
  return { socket: o.string('socket'), target: o.string('target'), 'tls-ca': o.string('tls-ca'), 'token-file': o.string('token-file') };
}

/** `cuemux status`. */
export const STATUS: CommandSpec = {
  command: 'status', synopsis: '[options]',
  summary: 'What a running server is doing: the show (clock state, position, rate and timecode; the cue list file and its standby cue; each '
    + 'loaded cue with its state), then open media and clients (streams, positions, buffers).',
  options: [
    ...CONNECTION_OPTIONS,
    { name: 'json', type: 'boolean', help: 'print the server\'s GetStatus answer as JSON (field names of proto/cuemux/v1/media_server.proto ServerStatus, in camelCase; 64-bit numbers as numbers)' },
  ],
};
