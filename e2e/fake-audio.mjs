// A speech-like test signal for Chromium's fake microphone
// (--use-file-for-fake-audio-capture), written once when the config loads.
// Chromium's own fake microphone beeps for 20 ms every 500 ms, too little to
// be anyone's speech; this is a voiced tone in syllables (220 ms on, 110 ms
// off, the pitch moving a little), loud enough (about -15 dBov) that the SFU
// lists its sender as an active speaker, and not a steady tone that noise
// suppression would learn away. Generated, so no binary sits in the repo.

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

const RATE = 48_000;
const SECONDS = 6;

/** Writes the signal as a 16-bit mono WAV at `path` and returns `path`. */
export function writeFakeSpeech(path) {
  const samples = RATE * SECONDS;
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write("RIFF", 0);
  wav.writeUInt32LE(36 + samples * 2, 4);
  wav.write("WAVEfmt ", 8);
  wav.writeUInt32LE(16, 16); // fmt chunk size
  wav.writeUInt16LE(1, 20); // PCM
  wav.writeUInt16LE(1, 22); // mono
  wav.writeUInt32LE(RATE, 24);
  wav.writeUInt32LE(RATE * 2, 28);
  wav.writeUInt16LE(2, 32);
  wav.writeUInt16LE(16, 34);
  wav.write("data", 36);
  wav.writeUInt32LE(samples * 2, 40);
  let phase = 0;
  for (let i = 0; i < samples; i++) {
    const t = i / RATE;
    const inSyllable = t % 0.33;
    // 10 ms fades, so the syllables do not click.
    const envelope = inSyllable < 0.22 ? Math.min(1, inSyllable / 0.01, (0.22 - inSyllable) / 0.01) : 0;
    const pitch = 180 + 40 * Math.sin(2 * Math.PI * 0.7 * t);
    phase += (2 * Math.PI * pitch) / RATE;
    const voiced = Math.sin(phase) + 0.5 * Math.sin(2 * phase) + 0.25 * Math.sin(3 * phase);
    wav.writeInt16LE(Math.round(envelope * 0.18 * voiced * 32767), 44 + i * 2);
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, wav);
  return path;
}

export const FAKE_SPEECH = writeFakeSpeech(fileURLToPath(new URL("artifacts/fake-speech.wav", import.meta.url)));
