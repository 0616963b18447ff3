// Run checkpoints record the SHA-256 of their files, and a resume checks them before it loads
// anything: a flipped byte in optimizer.safetensors or model.safetensors is refused naming the file;
// a checkpoint from before checksums still resumes, with a one-line warning.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { Model, tinyConfig } from '../../src/index';
import { sha256OfFile } from '../../src/train/checkpoint_checksums';
import { readTrainerState, TRAINER_STATE_FILE } from '../../src/train/run_state';
import { trainSft, type SftExample, type SftOptions } from '../../src/train/sft';
import { tempDir } from '../helpers/temp_dir';

const textExamples: SftExample[] = Array.from({ length: 8 }, (_, i) => ({
  images: [],
  user: `Which option is number ${i % 4}?`,
  reply: `<answer> ${'ABCD'[i % 4]} </answer>`,
}));
const OPTS: Partial<SftOptions> = {
  lr: 1e-3,
  maxSteps: 2,
  tokenBudget: 200,
  saveEvery: 1,
  keepLast: 0,
  progress: false,
};

/** A finished two-step run (checkpoints step-1 and step-2), made once and copied per case. */
let made: Promise<string> | undefined;
function twoStepRun(): Promise<string> {
  made ??= (async () => {
    const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 4 });
    const out = tempDir('two-step-run');
    await trainSft(m, textExamples, { ...OPTS, out });
    await m.dispose();
    return out;
  })();
  return made;
}

async function copyOfRun(): Promise<string> {
  const dst = path.join(tempDir('run-copy'), 'run');
  fs.cpSync(await twoStepRun(), dst, { recursive: true });
  return dst;
}

/** Flips one byte near the end of `file` (in the tensor data, past the header). */
function flipByte(file: string): void {
  const b = fs.readFileSync(file);
  b[b.length - 5] ^= 0x01;
  fs.writeFileSync(file, b);
}

async function resume(out: string, which: string | true = true) {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 9 });
  try {
    return await trainSft(m, textExamples, { ...OPTS, out, resume: which });
  } finally {
    await m.dispose();
  }
}

test('a run checkpoint records the SHA-256 of every file but trainer_state.json', async () => {
  const dir = path.join(await twoStepRun(), 'checkpoints', 'step-2');
  const { checksums } = readTrainerState(dir);
  assert.ok(checksums);
  const files = fs.readdirSync(dir).filter((f) => f !== TRAINER_STATE_FILE);
  assert.deepEqual(Object.keys(checksums).sort(), files.sort());
  assert.ok(files.includes('optimizer.safetensors') && files.includes('model.safetensors'));
  for (const f of files) assert.equal(checksums[f], await sha256OfFile(path.join(dir, f)), f);
  const r = await resume(await copyOfRun());
  assert.equal(r.resumedFrom, 2);
});

for (const file of ['optimizer.safetensors', 'model.safetensors', 'config.json']) {
  test(`a byte flipped in a checkpoint's ${file}: resume refuses it, naming the file`, async () => {
    const out = await copyOfRun();
    const dir = path.join(out, 'checkpoints', 'step-2');
    flipByte(path.join(dir, file));
    await assert.rejects(
      resume(out),
      new RegExp(
        `^Error: checkpoint .*step-2 is damaged: ${file.replace('.', '\\.')} does not match its recorded SHA-256 \\(recorded [0-9a-f]{12}…, now [0-9a-f]{12}…\\)`,
      ),
    );
  });
}

test('a file a checkpoint lists but lacks is named as missing', async () => {
  const out = await copyOfRun();
  fs.rmSync(path.join(out, 'checkpoints', 'step-2', 'optimizer.safetensors'));
  await assert.rejects(resume(out), /checkpoint .*step-2 is damaged: optimizer\.safetensors is missing/);
});

test('a checkpoint from before checksums resumes, with a one-line warning', async () => {
  const out = await copyOfRun();
  const dir = path.join(out, 'checkpoints', 'step-1');
  const file = path.join(dir, TRAINER_STATE_FILE);
  const { checksums, ...old } = JSON.parse(fs.readFileSync(file, 'utf8'));
  assert.ok(checksums);
  fs.writeFileSync(file, JSON.stringify(old));
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  let r;
  try {
    r = await resume(out, '1');
  } finally {
    process.stderr.write = write;
  }
  assert.equal(r.resumedFrom, 1);
  assert.equal(r.steps, 2);
  const warnings = lines.filter((l) => l.includes('checksums'));
  assert.equal(warnings.length, 1, lines.join(''));
  assert.match(
    warnings[0],
    /^resume: warning: .*step-1 records no checksums \(saved by an older medgr2\), so its files are not verified\n$/,
  );
  // The step it re-saved has checksums again.
  assert.ok(readTrainerState(path.join(out, 'checkpoints', 'step-2')).checksums);
});
