// A small MedSynth world in a temp folder, made once per test process (56-pixel images: 4 LM tokens
// per image, so the tiny model trains on it in seconds).
import * as path from 'node:path';
import { synthesize } from '../../src/data/medsynth';
import type { Sample } from '../../src/data/proto';
import { loadSampleFile } from '../../src/data/sample_files';
import { tempDir } from './temp_dir';

const made = new Map<string, Promise<string>>();

/** The folder of a world with `count` labelled images (images/, medsynth.jsonl, …). */
export function medsynthWorld(count: number, seed = 1, size = 56): Promise<string> {
  const key = `${count}/${seed}/${size}`;
  let p = made.get(key);
  if (!p) {
    const dir = tempDir('world');
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
