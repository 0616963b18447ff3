// Where a cycle run keeps its files (OUT/...), and a fresh run folder for `medgr2 cycle` without --out.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { TestSetName } from './cycle';

export class CyclePaths {
  constructor(readonly out: string) {}
  get world() {
    return path.join(this.out, 'world');
  }
  get seed() {
    return path.join(this.out, 'data', 'seed.rec');
  }
  get poolFile() {
    return path.join(this.out, 'data', 'pool.json');
  }
  /** The pool with each image's description by the pretrained model (describe.ts). */
  get describedPool() {
    return path.join(this.out, 'data', 'pool-described.json');
  }

  /** The pre-training captions ({image_path, caption} lines), in the MedSynth world. */
  get captions() {
    return path.join(this.world, 'pretrain', 'captions.jsonl');
  }
  test(set: TestSetName) {
    return path.join(this.out, 'data', `test-${set}.rec`);
  }
  get judgePairs() {
    return path.join(this.out, 'data', 'judge-heldout-pairs.json');
  }
  model(name: string) {
    return path.join(this.out, 'models', name);
  }
  roundDir(r: number) {
    return path.join(this.out, `round-${r}`);
  }
  candidates(r: number) {
    return path.join(this.roundDir(r), 'candidates.rec');
  }
  scored(r: number) {
    return path.join(this.roundDir(r), 'scored.rec');
  }
  selected(r: number) {
    return path.join(this.roundDir(r), 'selected.rec');
  }
  roundJson(r: number) {
    return path.join(this.roundDir(r), 'round.json');
  }
  evalJson(arm: string, r: number) {
    return path.join(this.out, 'eval', `${arm}${r ? `-round-${r}` : ''}.json`);
  }
  manifest(stage: string, r: number) {
    return path.join(this.out, 'manifests', `${r ? `round-${r}-` : ''}${stage}.rec`);
  }
  get config() {
    return path.join(this.out, 'config.json');
  }
  /** Per-training curves (losses, GRPO rewards) by output model name. */
  log(model: string) {
    return path.join(this.out, 'logs', `${model}.json`);
  }
}

/**
 * Without --out, a run never lands in a folder that holds an earlier run (which would refuse to
 * start without --resume): the README's `npx medgr2 cycle` works again and again, each run beside the last.
 */
export function freshRunFolder(base: string): string {
  const taken = (dir: string): boolean => fs.existsSync(path.join(dir, 'manifests'));
  if (!taken(base)) return base;
  for (let k = 2; ; k++) if (!taken(`${base}-${k}`)) return `${base}-${k}`;
}
