// A small MedSynth world in a temp folder, made once per test process (56-pixel images: 4 LM tokens
// per image, so the tiny model trains on it in seconds).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { synthesize } from '../../src/data/medsynth';
import type { Sample } from '../../src/data/proto';
import { loadSampleFile } from '../../src/data/sample_files';

const made = new Map<string, Promise<string>>();

/** The folder of a world with `count` labelled images (images/, medsynth.jsonl, …). */
export function medsynthWorld(count: number, seed = 1, size = 56): Promise<string> {
  const key = `${count}/${seed}/${size}`;
  let p = made.get(key);
  if (!p) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgr2-world-'));
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
    p = synthesize({ out: dir, count, seed, size }).then(() => dir);
    made.set(key, p);
  }
  return p;
}

/** The world's samples with absolute image paths, optionally of one task. */
export function worldSamples(dir: string, task?: string): Sample[] {
  return loadSampleFile(path.join(dir, 'medsynth.jsonl'))
    .filter((s) => !task || s.task === task)
    .map((s) => ({ ...s, images: s.images.map((p) => path.join(dir, p)) }));
}

export function tempDir(prefix = 'medgr2-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
