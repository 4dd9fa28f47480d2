/**
 * The option tables of `cuemux play-audio` and `cuemux play-video`: their parser and `--help` are made from them.
 */
import { PLAYER_CONNECTION_OPTIONS } from './client-options';
import type { CommandSpec, OptionSpec } from './options';

/** Largest Follow lead a player may ask for, in seconds (the server refuses more: follow-stream.ts MAX_LEAD_SECONDS). */
const MAX_LEAD_SECONDS = 10;

function common(kind: 'audio' | 'video', unit: string): OptionSpec[] {
  return [
    ...PLAYER_CONNECTION_OPTIONS,
    { name: 'output', arg: 'NAME', help: 'the output to follow (an audio output or a video layer of the cue list)', default: kind },
    {
      name: 'lead', arg: 'S', help: 'ask for packets this far ahead of the clock',
      number: { kind: 'number', min: 0, minExclusive: true, max: MAX_LEAD_SECONDS, unit: 'seconds' }, default: "the server's --lead-seconds (0.5)",
    },
    { name: 'sync-log', arg: 'FILE', help: `write one JSON line per presented ${unit}: {mono_ns, pts_seconds, clock_seconds, ...}` },
    { name: 'duration', arg: 'S', help: 'stop after this long', number: { kind: 'number', min: 0, minExclusive: true, unit: 'seconds' }, default: 'until SIGTERM/SIGINT' },
    {
      name: 'rt-priority', arg: 'N', number: { kind: 'integer', min: 0, max: 99 }, default: '10',
      help: 'SCHED_FIFO priority of the presenting thread, 0 for normal scheduling (needs root, CAP_SYS_NICE or an RLIMIT_RTPRIO, '
        + 'else the player says so and uses --nice); decoding runs in other threads at normal priority (see --worker-rt-priority)',
    },
    {
      name: 'worker-rt-priority', arg: 'N', number: { kind: 'integer', min: 0, max: 98 }, default: '0',
      help: 'SCHED_FIFO priority of the decode worker\'s thread (it reads the GO off the server and hands it on; FFmpeg\'s decoding threads stay '
        + 'at normal priority), kept below the presenting thread\'s; 0: nice -5. Real-time reads a GO sooner on a loaded machine but, measured, '
        + 'delays the presenting threads more (skipped display slots, audio xruns)',
    },
    {
      name: 'nice', arg: 'N', number: { kind: 'integer', min: -20, max: 19 }, default: '-10',
      help: 'nice value of the presenting thread (same privileges), which applies when real-time scheduling is off or refused',
    },
    {
      name: 'prepare', arg: 'on|off', default: 'on',
      help: "prepare armed cues before their GO: decoders open and the in-point decoded from the server's preroll, so a GO is presented at the next tick",
    },
  ];
}

/** `cuemux play-audio`. */
export const PLAY_AUDIO: CommandSpec = {
  command: 'play-audio', synopsis: '[options]',
  summary: 'Follows an output, decodes its audio, converts it to the device format and plays it sample-accurately on the show clock, '
    + 'slewing for small drift and relocating only on discontinuities.',
  options: [
    ...common('audio', 'audio period (per cue)'),
    {
      name: 'sink', arg: 'SPEC', multiple: true, default: 'null',
      help: 'wav:FILE | raw:FILE (a FIFO, a file, or - for stdout: f32le) | null; e.g. mkfifo /tmp/a && aplay -t raw -f FLOAT_LE -r 48000 -c 2 /tmp/a',
    },
    {
      name: 'device', arg: 'SPEC',
      help: 'play to a real audio device on its own clock, each sample leaving it (output latency included) at its clock time: '
        + 'jack[:CLIENT_NAME] (the server of $JACK_DEFAULT_SERVER or the default one; rate and period are the server\'s), '
        + 'alsa:NAME (an ALSA PCM: hw:0, plughw:1,0, default...; the rate asked with --rate, else 48000, or the device\'s nearest; 256-frame periods), '
        + 'pipewire[:CLIENT_NAME] (a client of the PipeWire graph through its JACK API; rate and period are the graph\'s). '
        + 'The --sink outputs still get every period',
    },
    {
      name: 'device-connect', arg: 'PORTS', multiple: true, default: "the system's playback ports",
      help: 'the JACK or PipeWire ports output channel N is connected to (the Nth use of the option; comma-separated for several), or none',
    },
    { name: 'rate', arg: 'HZ', help: 'device sample rate (with --device: the device\'s)', number: { kind: 'integer', min: 1, unit: 'Hz' }, default: '48000' },
    { name: 'channels', arg: 'N', help: 'device channels', number: { kind: 'integer', min: 1 }, default: '2' },
    { name: 'period-ms', arg: 'MS', help: 'device period (at least 16 samples)', number: { kind: 'number', min: 0, minExclusive: true, unit: 'ms' }, default: '10' },
    { name: 'write-ahead-ms', arg: 'MS', help: 'render each period this long before the device plays it', number: { kind: 'number', min: 0, minExclusive: true, unit: 'ms' }, default: '20' },
    {
      name: 'device-ppm', arg: 'N', help: 'model a device crystal this much slow (negative: fast), for testing the slew',
      number: { kind: 'integer', min: -10000, max: 10000, unit: 'ppm' }, default: '0',
    },
  ],
};

/** `cuemux play-video`. */
export const PLAY_VIDEO: CommandSpec = {
  command: 'play-video', synopsis: '[options]',
  summary: 'Follows an output (a layer), decodes its video and, at each display tick, presents the frame whose time span covers the show '
    + 'clock (repeating or dropping frames as the rates require; black when no cue is on).',
  options: [
    ...common('video', 'display tick'),
    {
      name: 'sink', arg: 'SPEC', multiple: true, default: 'null',
      help: 'y4m:FILE | raw:FILE (a FIFO or a file; a reader may come and go) | hash:FILE (frame-hash log, JSON lines with the MD5 of each '
        + 'presented picture) | null; e.g. mkfifo /tmp/v && ffplay -f yuv4mpegpipe /tmp/v',
    },
    {
      name: 'window', arg: 'fullscreen|WxH[+X+Y]',
      help: 'also present in a real window on $DISPLAY (SDL2; vsync where the display has it), pictures scaled to it and letterboxed: '
        + 'fullscreen, WxH (a decorated window) or WxH+X+Y (borderless at X,Y); alone, --window is 960x540+0+0. '
        + 'Closing the window stops the player; the sync log gets present_ns (tick to SDL_RenderPresent returned) per presentation',
    },
    { name: 'window-scale', arg: 'linear|nearest', help: "the window's picture scaling filter", default: 'linear' },
    { name: 'fps', arg: 'RATE', help: 'display ticks per second', number: { kind: 'rate', min: 0, minExclusive: true, max: 1000, unit: 'ticks per second' }, default: '60' },
    {
      name: 'spin-ms', arg: 'MS', help: 'poll the clock this long before each tick instead of sleeping (0 = timers only; under half a display period)',
      number: { kind: 'number', min: 0, max: 20, unit: 'ms' }, default: '2',
    },
    { name: 'threads', arg: 'N', help: "decoder threads (0: FFmpeg's choice, and one thread for a preroll of light intra-only video)", number: { kind: 'integer', min: 0, max: 64 }, default: '0' },
    {
      name: 'first-pictures', arg: 'FILE',
      help: 'write one JSON line per segment started without a preroll (an unarmed GO, a locate): when its first picture was decoded and '
        + 'ready to show, {mono_ns, pts_seconds, clock_seconds, cue, segment, generation, md5, width, height}',
    },
    { name: 'at-end', arg: 'black|hold', help: "after a cue's end: black, or hold its last frame until another cue plays or it is stopped", default: 'black' },
  ],
};
