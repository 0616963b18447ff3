// Wrong arguments throw JS Errors that name the argument; the process carries on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addon } from '../helpers/addon';

const { Tensor } = addon;
const T = Tensor as unknown as new (...args: unknown[]) => InstanceType<typeof Tensor>;

test('bad constructor arguments name the argument and what was expected', () => {
  assert.throws(() => new T(new Float32Array(5), [2, 3]), {
    name: 'TypeError',
    message: "new Tensor: argument 'array' must be of length 6 for shape [2, 3], got Float32Array(5)",
  });
  assert.throws(() => new T([1, 2, 3]), /argument 'array' must be a TypedArray.*got an array of length 3/);
  assert.throws(() => new T(new Float32Array(2), [2, -1]), /argument 'shape\[1\]' must be a non-negative integer/);
  assert.throws(() => new T(new Float32Array(2), 'x'), /argument 'shape' must be an array of non-negative integers/);
  assert.throws(
    () => new T(new Float32Array(2), [2], { dtype: 'f8' }),
    /argument 'options.dtype' must be one of f32, f64/,
  );
  assert.throws(
    () => new T(new Float32Array(2), [2], { dtype: 'f64' }),
    /argument 'array' must be a Float64Array for dtype f64, got Float32Array/,
  );
  assert.throws(() => new T(new Uint16Array(2)), /argument 'options.dtype' must be "bf16" or "f16" for a Uint16Array/);
  assert.throws(
    () => new T(new Float32Array(4), [2, 2], { strides: [1] }),
    /argument 'strides' must be as many entries as shape/,
  );
  assert.throws(() => new T(new Float32Array(4), [2, 2], { strides: [4, 1] }), /must be at least 6 elements/);
  assert.throws(() => new T(new Float32Array(2), [2], { copy: 'yes' }), /argument 'options.copy' must be a boolean/);
});

test('bad method arguments name the argument', async () => {
  const t = new Tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => t.transpose(0, 5), /Tensor\.transpose: argument 'dim1' must be in \[-2, 2\), got 5/);
  assert.throws(() => (t.transpose as (...a: unknown[]) => unknown)('a', 0), /argument 'dim0' must be a number/);
  await assert.rejects(
    t.to('gpu' as 'cpu'),
    /Tensor\.to: argument 'device' must be "cpu", "cuda" or "cuda:N", got "gpu"/,
  );
  await assert.rejects(addon.ops.matmul(t, {} as typeof t), {
    name: 'TypeError',
    message: /ops\.matmul: argument 'b' must be a Tensor, got an object/,
  });
  await assert.rejects(
    addon.ops.matmul(t, t),
    /argument 'b' must be a tensor whose rows match a's columns, got \[2, 3\] and \[2, 3\]/,
  );
  await assert.rejects(
    (addon.ops.scaleAdd as (...a: unknown[]) => Promise<unknown>)(t, 1),
    /ops\.scaleAdd: argument 'b' must be a number, got undefined/,
  );
  const d = new Tensor(new Float32Array(1));
  d.dispose();
  await assert.rejects(addon.ops.scaleAdd(d, 1, 1), /argument 'x' must be a live Tensor, got a disposed Tensor/);
});

test('CUDA requested without CUDA is a clear error, not a crash', async (t) => {
  if (addon.info().cudaAvailable) return t.skip('CUDA is available here');
  const x = new Tensor(new Float32Array(3));
  await assert.rejects(x.to('cuda'), /CUDA is not available/);
});

test('the process survives errors and keeps working', async () => {
  for (let i = 0; i < 100; i++) {
    assert.throws(() => new T(new Float32Array(3), [4]));
  }
  const y = await addon.ops.scaleAdd(new Tensor(new Float32Array([1, 2])), 3, 1);
  assert.deepEqual(Array.from(y.toArray() as Float32Array), [4, 7]);
});
