// Errors raised by the native Model's methods reach JS as Errors that name the method (and the
// argument), never as a process abort; a later normal call still works. Every entry point of
// native/bridge/js_model.cc runs inside the bridge's try/convert (MODEL_JS_TRY / MODEL_JS_CATCH);
// this file provokes an error through each one that can throw. It calls the addon's Model class
// directly (not src/model's wrapper), so the messages checked are the native ones.
//
// Entries that cannot throw on a live CPU model, whatever the arguments: parameterSpecs, parameters,
// info, setCheckpointLayers (any value is coerced to a boolean), zeroGrad, gradients (before any
// backward it is {}) and optimizerState. Their only error from JS is a disposed model; they stay
// wrapped for what cannot be provoked here (a CUDA error or a failed allocation in .cpu() / clone()).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { nextTokenLabels, packSequences, tinyConfig } from '../../src/model/index';
import type { NativeModel } from '../../src/native/model_types';
import { addon } from '../helpers/addon';

const { Tensor } = addon;
type Loose = (...args: unknown[]) => unknown;
/** A method called with arguments its TypeScript signature does not allow. */
const loose = (m: NativeModel, name: keyof NativeModel): Loose => (m[name] as Loose).bind(m);

function tinyModel(seed = 1): Promise<NativeModel> {
  return addon.Model.create(tinyConfig('qwen2'), { seed });
}

function textBatch() {
  return packSequences([Int32Array.from([5, 6, 7, 8, 9]), Int32Array.from([10, 11, 12])]);
}

/** The model still answers after an error: the process and the model carry on. */
function assertAlive(m: NativeModel) {
  assert.ok(m.info().parameterCount > 0);
}

test('a disposed model: every method is an Error naming the method', async () => {
  const m = await tinyModel();
  m.dispose();
  m.dispose(); // twice is fine
  const b = textBatch();
  const labels = nextTokenLabels(b.inputIds, b.cuSeqlens);
  const sync: [string, () => unknown][] = [
    ['parameterSpecs', () => m.parameterSpecs()],
    ['parameters', () => m.parameters()],
    ['setTrainable', () => m.setTrainable({ vision: false })],
    ['setCheckpointLayers', () => m.setCheckpointLayers(true)],
    ['info', () => m.info()],
    ['gradients', () => m.gradients()],
    ['zeroGrad', () => m.zeroGrad()],
    ['optimizerState', () => m.optimizerState()],
    ['loadOptimizerState', () => m.loadOptimizerState({})],
    ['ropeIndex', () => m.ropeIndex(b)],
  ];
  for (const [name, call] of sync) {
    assert.throws(call, { name: 'Error', message: `Model.${name}: the Model has been disposed` }, name);
  }
  const async: [string, () => Promise<unknown>][] = [
    ['setParameters', () => m.setParameters({})],
    ['logits', () => m.logits(b)],
    ['tokenLogprobs', () => m.tokenLogprobs(b)],
    ['backwardSft', () => m.backwardSft(b, { labels })],
    ['sftLoss', () => m.sftLoss(b, { labels })],
    ['backwardGrpo', () => m.backwardGrpo(b, { labels, advantages: new Float32Array(2) })],
    ['optimizerStep', () => m.optimizerStep({ lr: 1e-3 })],
    ['generate', () => m.generate(b, { maxNewTokens: 1, temperature: 1 })],
  ];
  for (const [name, call] of async) {
    await assert.rejects(call, { name: 'Error', message: `Model.${name}: the Model has been disposed` }, name);
  }
  assertAlive(await tinyModel());
});

test('setTrainable: a wrong argument is a TypeError naming it; the model carries on', async () => {
  const m = await tinyModel();
  const setTrainable = loose(m, 'setTrainable');
  assert.throws(() => setTrainable(42), {
    name: 'TypeError',
    message: "Model.setTrainable: argument 'parts' must be an object, got the number 42.000000",
  });
  assert.throws(() => setTrainable(), /Model\.setTrainable: argument 'parts' must be an object, got undefined/);
  assert.throws(() => setTrainable({ vision: 'no' }), {
    name: 'TypeError',
    message: 'Model.setTrainable: argument \'parts.vision\' must be a boolean, got the string "no"',
  });
  assert.throws(() => setTrainable({ languageModel: 0 }), /argument 'parts\.languageModel' must be a boolean/);
  // A getter that throws: its own error comes through unchanged.
  assert.throws(
    () =>
      m.setTrainable({
        get merger(): boolean {
          throw new RangeError('from a getter');
        },
      }),
    RangeError,
  );
  // A getter that disposes the model: the flags are read before the lock, and the model checked again.
  const n = await tinyModel();
  assert.throws(
    () =>
      n.setTrainable({
        get vision(): boolean {
          n.dispose();
          return true;
        },
      }),
    /Model\.setTrainable: the Model has been disposed/,
  );
  m.setTrainable({ languageModel: false });
  assert.ok(Object.keys(m.parameters()).length > 0);
  m.dispose();
});

test('setCheckpointLayers coerces any value (cannot throw on a live model)', async () => {
  const m = await tinyModel();
  (m.setCheckpointLayers as Loose).call(m, 'yes');
  assert.equal(m.info().checkpointLayers, true);
  (m.setCheckpointLayers as Loose).call(m);
  assert.equal(m.info().checkpointLayers, false);
  m.dispose();
});

test('gradients() before any backward is empty, not an error', async () => {
  const m = await tinyModel();
  assert.deepEqual(Object.keys(m.gradients()), []);
  m.zeroGrad();
  assert.deepEqual(Object.keys(m.optimizerState()), ['step']);
  m.dispose();
});

test('setParameters: wrong types, shapes and names reject naming the tensor', async () => {
  const m = await tinyModel();
  const params = m.parameters();
  const names = Object.keys(params);
  const norm = 'model.norm.weight';
  assert.ok(names.includes(norm));
  const setParameters = loose(m, 'setParameters') as (...a: unknown[]) => Promise<void>;
  await assert.rejects(setParameters(7), {
    name: 'TypeError',
    message: /Model\.setParameters: argument 'tensors' must be an object, got the number 7/,
  });
  await assert.rejects(setParameters({ ...params, [norm]: new Float32Array(64) }), {
    name: 'TypeError',
    message: `Model.setParameters: argument '${norm}' must be a Tensor, got Float32Array(64)`,
  });
  await assert.rejects(m.setParameters({ ...params, [norm]: new Tensor(new Float32Array(3)) }), {
    name: 'Error',
    message: `Model.setParameters: tensor ${norm} has shape [3], expected [64]`,
  });
  const { [norm]: _dropped, ...missing } = params;
  await assert.rejects(m.setParameters(missing), { message: `Model.setParameters: missing tensor ${norm}` });
  await assert.rejects(m.setParameters({ ...params, 'model.extra': new Tensor(new Float32Array(1)) }), {
    message: 'Model.setParameters: unexpected tensor model.extra',
  });
  const gone = new Tensor(new Float32Array(64));
  gone.dispose();
  await assert.rejects(
    m.setParameters({ ...params, [norm]: gone }),
    /argument 'model\.norm\.weight' must be a live Tensor, got a disposed Tensor/,
  );
  // Another dtype is not an error: the values are converted to the model's dtype.
  await m.setParameters({ ...params, [norm]: new Tensor(new Float64Array(64).fill(2)) });
  assert.equal((m.parameters()[norm].toArray() as Float32Array)[0], 2);
  m.dispose();
});

test('loadOptimizerState: a wrong state throws naming the key and leaves the state as it was', async () => {
  const m = await tinyModel();
  const b = textBatch();
  await m.backwardSft(b, { labels: nextTokenLabels(b.inputIds, b.cuSeqlens) });
  await m.optimizerStep({ lr: 1e-3 });
  const good = m.optimizerState();
  const keys = Object.keys(good).sort();
  const norm = 'model.norm.weight';
  assert.ok(keys.includes(`exp_avg.${norm}`));
  const load = loose(m, 'loadOptimizerState');
  const t = (n: number) => new Tensor(new Float32Array(n));
  const cases: [unknown, RegExp][] = [
    [undefined, /^Model\.loadOptimizerState: argument 'state' must be an object, got undefined$/],
    [{ ...good, step: 3 }, /^Model\.loadOptimizerState: argument 'state\.step' must be a Tensor, got the number 3/],
    [
      { ...good, step: t(2) },
      /^Model\.loadOptimizerState: argument 'state\.step' must be a one-element tensor, got shape \[2\]$/,
    ],
    [
      { ...good, momentum: t(1) },
      /argument 'state\.momentum' must be named "step", "exp_avg\.<parameter>".*, got an unexpected key$/,
    ],
    [{ ...good, 'velocity.x': t(1) }, /argument 'state\.velocity\.x' must be named "step"/],
    [
      { ...good, 'exp_avg.nope': t(1) },
      /argument 'state\.exp_avg\.nope' must be the state of a parameter of this model, got no parameter "nope"$/,
    ],
    [
      { ...good, [`exp_avg.${norm}`]: t(3) },
      /argument 'state\.exp_avg\.model\.norm\.weight' must be of the parameter's shape \[64\], got shape \[3\]$/,
    ],
    [
      { step: good.step, [`exp_avg.${norm}`]: t(64) },
      /argument 'state\.exp_avg\.model\.norm\.weight' must be given with state\.exp_avg_sq\.model\.norm\.weight, got none$/,
    ],
  ];
  for (const [state, message] of cases) {
    assert.throws(() => load(state), { name: 'TypeError', message });
    // Checked before anything changed: the optimizer keeps its state and its step.
    assert.deepEqual(Object.keys(m.optimizerState()).sort(), keys);
    assert.equal(m.info().optimizerStep, 1);
  }
  m.loadOptimizerState(good);
  assert.equal(m.info().optimizerStep, 1);
  await m.backwardSft(b, { labels: nextTokenLabels(b.inputIds, b.cuSeqlens) });
  assert.equal((await m.optimizerStep({ lr: 1e-3 })).step, 2);
  m.dispose();
});

// No c10::Error can be provoked from JS in the synchronous part of a model method on CPU: every
// libtorch call there is behind a check of its own. What libtorch does throw there is reshape's
// shape error, a std::runtime_error in libtorch 1.13 (c10::Error in later versions): either one
// goes through the same catch, which names the method. Unwrapped, it would have aborted.
test('an error thrown inside libtorch becomes a JS Error naming the method', async () => {
  const m = await tinyModel();
  // Four numbers are not [-1, 3] image grids: libtorch's reshape throws inside the bridge.
  const bad = { ...packSequences([Int32Array.from([1, 2, 3])]), imageGrids: Int32Array.from([1, 2, 2, 2]) };
  const shape = /^Model\.(ropeIndex|logits): (libtorch: )?shape '\[-1, 3\]' is invalid for input of size 4$/;
  const check = (method: string) => (e: Error) =>
    e.constructor === Error && shape.test(e.message) && e.message.startsWith(`Model.${method}:`);
  assert.throws(() => m.ropeIndex(bad), check('ropeIndex'));
  await assert.rejects(m.logits(bad), check('logits'));
  const good = m.ropeIndex(textBatch());
  assert.equal(good.nextPositions.length, 2);
  assertAlive(m);
  m.dispose();
});

test('cuSeqlens past the token count is an error, not an out-of-bounds write', async () => {
  // ropeIndex and tokenLogprobs (without labels) walk the offsets on the JS thread before the
  // model's own batch check: the bridge checks them first, for every method.
  const m = await tinyModel();
  const ids = Int32Array.from([1, 2, 3]);
  const past = { inputIds: ids, cuSeqlens: Int32Array.from([0, 1_000_000]) };
  assert.throws(() => m.ropeIndex(past), {
    name: 'TypeError',
    message: "Model.ropeIndex: argument 'batch.cuSeqlens' must be from 0 to the token count 3, got [0 .. 1000000]",
  });
  await assert.rejects(
    m.tokenLogprobs(past),
    /^TypeError: Model\.tokenLogprobs: argument 'batch\.cuSeqlens' must be from 0/,
  );
  assert.throws(
    () => m.ropeIndex({ inputIds: ids, cuSeqlens: Int32Array.from([0, 5, 3]) }),
    /'batch\.cuSeqlens' must be non-decreasing, got a decrease at index 2/,
  );
  assert.throws(
    () => m.ropeIndex({ inputIds: ids, cuSeqlens: Int32Array.from([3]) }),
    /'batch\.cuSeqlens' must be at least one sequence/,
  );
  await assert.rejects(
    m.logits({ inputIds: ids, cuSeqlens: Int32Array.from([1, 3]) }),
    /'batch\.cuSeqlens' must be from 0 to the token count 3, got \[1 \.\. 3\]/,
  );
  assert.equal((await m.tokenLogprobs({ inputIds: ids, cuSeqlens: Int32Array.from([0, 3]) })).logp.length, 3);
  m.dispose();
});

test('errors from the sync methods do not abort the process (child process)', () => {
  const dist = path.resolve(__dirname, '..', '..');
  const script = `
    const { loadAddon } = require(${JSON.stringify(path.join(dist, 'src', 'native', 'loader.js'))});
    const { tinyConfig } = require(${JSON.stringify(path.join(dist, 'src', 'model', 'tiny.js'))});
    const report = (what, f) => {
      try { f(); console.log(what + ' -> ok'); } catch (e) { console.log(what + ' -> ' + e.name + ': ' + e.message); }
    };
    (async () => {
      const m = await loadAddon().Model.create(tinyConfig('qwen2'), { seed: 1 });
      report('setTrainable(42)', () => m.setTrainable(42));
      // A getter that calls back into the model: it runs before the lock is taken (no deadlock).
      report('reentrant', () => m.setTrainable({ get vision() { m.parameters(); return false; } }));
      report('ropeIndex', () => m.ropeIndex({ inputIds: Int32Array.from([1, 2, 3]), cuSeqlens: Int32Array.from([0, 3]), imageGrids: Int32Array.from([1, 2, 2, 2]) }));
      // Out-of-bounds offsets: before the bridge checked them, an out-of-bounds write.
      report('cuSeqlens', () => m.ropeIndex({ inputIds: Int32Array.from([1, 2, 3]), cuSeqlens: Int32Array.from([0, 1e6]) }));
      report('loadOptimizerState', () => m.loadOptimizerState({ step: m.parameters()['model.norm.weight'] }));
      m.dispose();
      report('gradients', () => m.gradients());
      report('optimizerState', () => m.optimizerState());
      console.log('still alive');
    })().catch((e) => { console.error('unexpected', e); process.exit(2); });
  `;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.signal, null, `killed by ${r.signal}; stderr: ${r.stderr}`);
  assert.equal(r.status, 0, `stderr: ${r.stderr}`);
  const lines = r.stdout.trim().split('\n');
  const expected = [
    "setTrainable(42) -> TypeError: Model.setTrainable: argument 'parts' must be an object, got the number 42.000000",
    'reentrant -> ok',
    // "libtorch: " where reshape's error is a c10::Error (later libtorch), not a std::runtime_error.
    /^ropeIndex -> Error: Model\.ropeIndex: (libtorch: )?shape '\[-1, 3\]' is invalid for input of size 4$/,
    "cuSeqlens -> TypeError: Model.ropeIndex: argument 'batch.cuSeqlens' must be from 0 to the token count 3, got [0 .. 1000000]",
    "loadOptimizerState -> TypeError: Model.loadOptimizerState: argument 'state.step' must be a one-element tensor, got shape [64]",
    'gradients -> Error: Model.gradients: the Model has been disposed',
    'optimizerState -> Error: Model.optimizerState: the Model has been disposed',
    'still alive',
  ];
  assert.equal(lines.length, expected.length, r.stdout);
  expected.forEach((want, i) =>
    typeof want === 'string' ? assert.equal(lines[i], want) : assert.match(lines[i], want),
  );
});
