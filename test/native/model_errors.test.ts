// Every native Model entry point turns a C++ error into a JS Error (native/bridge/errors.h's
// try/convert macro) -- a throw that escaped one would abort the whole process instead. Provoked
// here through the entry points that used to run outside the macro.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tinyConfig } from '../../src/index';
import type { NativeModel } from '../../src/native/model_types';
import { addon } from '../helpers/addon';

async function nativeModel(): Promise<NativeModel> {
  return (addon as unknown as { Model: { create(c: unknown, o: unknown): Promise<NativeModel> } }).Model.create(
    tinyConfig('qwen2'),
    { seed: 1 },
  );
}

test('synchronous Model entry points on a disposed model throw a JS Error naming the method', async () => {
  const m = await nativeModel();
  m.dispose();
  const calls: [string, () => unknown][] = [
    ['parameterSpecs', () => m.parameterSpecs()],
    ['parameters', () => m.parameters()],
    ['setTrainable', () => m.setTrainable({ vision: false })],
    ['setCheckpointLayers', () => m.setCheckpointLayers(true)],
    ['info', () => m.info()],
    ['gradients', () => m.gradients()],
    ['zeroGrad', () => m.zeroGrad()],
    ['optimizerState', () => m.optimizerState()],
  ];
  for (const [name, call] of calls) {
    assert.throws(call, { name: 'Error', message: `Model.${name}: the Model has been disposed` }, name);
  }
});

test('Model.setTrainable: bad arguments are TypeErrors that name the argument', async () => {
  const m = await nativeModel();
  const setTrainable = (...a: unknown[]) => (m.setTrainable as (...b: unknown[]) => unknown).apply(m, a);
  assert.throws(() => setTrainable(), { name: 'TypeError', message: /Model\.setTrainable: argument 'parts'/ });
  assert.throws(() => setTrainable({ vision: 'no' }), { name: 'TypeError', message: /parts\.vision/ });
  // The model is still usable after the errors.
  m.setTrainable({ vision: false });
  assert.ok(m.parameterSpecs().length > 0);
  assert.ok(Object.keys(m.parameters()).length > 0);
  m.dispose();
});
