// NaN or infinite weights are never written and never loaded: Model.save / saveCheckpoint refuse,
// naming the tensor, and leave no folder; Model.load / loadCheckpoint of such a folder name the
// tensor and the file; `medgr2 eval` of it exits non-zero with that message.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { loadCheckpoint, Model, saveCheckpoint, tinyConfig, Tensor } from '../../src/index';
import { findNonFiniteTensor } from '../../src/model/finite_weights';
import { runCli } from '../helpers/cli';
import { medsynthWorld } from '../helpers/world';
import { tempDir } from '../helpers/temp_dir';

const UP = 'model.layers.0.mlp.up_proj.weight';

/** The model's weights with `count` NaNs / infinities at the start of `name`. */
function poisoned(m: Model, name: string, values: number[]): Record<string, Tensor> {
  const params = m.parameters();
  const t = params[name];
  const data = Float32Array.from(t.toArray() as Float32Array);
  values.forEach((v, i) => (data[i] = v));
  return { ...params, [name]: new Tensor(data, t.shape) };
}

test('saving a model with a NaN weight throws naming the tensor and leaves no folder', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 3 });
  const dir = path.join(tempDir('nan-save'), 'out');
  await m.setParameters(poisoned(m, UP, [NaN, Infinity, -Infinity]));
  await assert.rejects(
    m.save(dir),
    new RegExp(
      `^Error: refusing to write ${dir}: ${UP.replace(/\./g, '\\.')} has 3 non-finite values \\(NaN or infinity\\)`,
    ),
  );
  assert.ok(!fs.existsSync(dir), 'no folder');
  // saveCheckpoint on bare tensors scans them itself.
  await assert.rejects(
    saveCheckpoint(dir, m.config, m.parameters()),
    /refusing to write .*: model\.layers\.0\.mlp\.up_proj\.weight has 3 non-finite values/,
  );
  assert.ok(!fs.existsSync(dir), 'no folder');
  await m.dispose();
});

test('loading a folder with a NaN weight throws naming the tensor and the file; medgr2 eval exits non-zero', async () => {
  const m = await Model.create(tinyConfig('qwen2_vl'), { seed: 3 });
  const dir = path.join(tempDir('nan-load'), 'nan-model');
  // Written with the check off, as a diverged run of an older medgr2 (or another tool) would have.
  await saveCheckpoint(dir, m.config, poisoned(m, UP, [NaN, NaN]), { checkFinite: false });
  await m.dispose();
  const want =
    /nan-model\/model\.safetensors: tensor "model\.layers\.0\.mlp\.up_proj\.weight" has 2 non-finite values \(NaN or infinity\): refusing to load/;
  await assert.rejects(Model.load(dir), want);
  await assert.rejects(loadCheckpoint(dir), want);
  const ok = await loadCheckpoint(dir, { checkFinite: false });
  for (const t of ok.tensors.values()) t.dispose();

  // A bf16 infinity is found by its bits as well.
  const bits = new Uint16Array(4).fill(0x3f80); // 1.0
  bits[2] = 0x7f80; // +inf
  assert.deepEqual(await findNonFiniteTensor([['x', new Tensor(bits, [4], { dtype: 'bf16' })]]), {
    name: 'x',
    count: 1,
  });
  assert.equal(await findNonFiniteTensor([['y', new Tensor(Float32Array.from([1, 2]), [2])]]), null);

  const world = await medsynthWorld(4);
  const r = runCli([
    'eval',
    '--model',
    dir,
    '--benchmark',
    path.join(world, 'medsynth.jsonl'),
    '--out',
    path.join(dir, 'predictions.jsonl'),
    '--threads',
    '1',
  ]);
  assert.notEqual(r.status, 0, `exit status ${r.status}; stdout ${r.stdout}`);
  assert.match(r.stderr, want);
  assert.ok(!fs.existsSync(path.join(dir, 'predictions.jsonl')), 'no predictions');
});
