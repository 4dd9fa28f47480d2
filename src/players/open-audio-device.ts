/**
 * Opening an audio device by its spec: the one place that knows every device kind, apart from audio-device.ts (the
 * types and the device clock every kind shares), so a kind's module can import those without an import cycle.
 */
import type { AudioDevice, AudioDeviceSpec, OpenDeviceOptions } from './audio-device';

/** Open the device of a parsed spec. Rejects with a CuemuxError saying what is missing (server, addon, kind). */
export async function openAudioDevice(spec: AudioDeviceSpec, options: OpenDeviceOptions): Promise<AudioDevice> {
  if (spec.kind === 'jack') {
    // Loaded on use: the JACK addon is needed only by a player that plays to JACK.
    const { openJackDevice } = await import('./audio-device-jack');
    return openJackDevice(spec.clientName, options);
  }
  if (spec.kind === 'alsa') {
    const { openAlsaDevice } = await import('./audio-device-alsa');
    return openAlsaDevice(spec.name, options);
  }
  // PipeWire through its JACK API (the JACK addon linked to PipeWire's libjack): the same client, clock and ports.
  const { openJackDevice } = await import('./audio-device-jack');
  return openJackDevice(spec.name, options, 'pipewire');
}
