// TypedArray <-> Tensor round trips: every dtype, bit patterns, strides, empty tensors, borrowing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addon } from '../helpers/addon';

const { Tensor } = addon;

test('every dtype round-trips with its values', () => {
  const cases = [
    { dtype: 'f32', array: new Float32Array([1.5, -2.25, 3e-38, Infinity, -0]) },
    { dtype: 'f64', array: new Float64Array([Math.PI, -1e300, 5e-324, -Infinity, 0]) },
    { dtype: 'i32', array: new Int32Array([0, -1, 2147483647, -2147483648, 42]) },
    { dtype: 'i64', array: new BigInt64Array([0n, -1n, 9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n]) },
    { dtype: 'u8', array: new Uint8Array([0, 1, 127, 128, 255]) },
  ] as const;
  for (const { dtype, array } of cases) {
    for (const copy of [false, true]) {
      const t = new Tensor(array, [5], { copy });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [5]);
      assert.equal(t.device, 'cpu');
      const back = t.toArray();
      assert.equal(back.constructor, array.constructor, `${dtype} array type`);
      assert.deepEqual(
        Array.from(back as ArrayLike<unknown>),
        Array.from(array as ArrayLike<unknown>),
        `${dtype} copy=${copy}`,
      );
      assert.notEqual(back.buffer, array.buffer, 'toArray returns a fresh buffer');
    }
  }
});

test('bf16 and f16 travel as exact bit patterns in Uint16Array', () => {
  // 1, -2, +inf, -inf, NaN, smallest denormal, -0, largest finite
  const bf16 = new Uint16Array([0x3f80, 0xc000, 0x7f80, 0xff80, 0x7fc1, 0x0001, 0x8000, 0x7f7f]);
  const f16 = new Uint16Array([0x3c00, 0xc000, 0x7c00, 0xfc00, 0x7e01, 0x0001, 0x8000, 0x7bff]);
  for (const [dtype, bits] of [
    ['bf16', bf16],
    ['f16', f16],
  ] as const) {
    for (const copy of [false, true]) {
      const t = new Tensor(bits, [2, 4], { dtype, copy });
      assert.equal(t.dtype, dtype);
      assert.deepEqual(Array.from(t.toArray() as Uint16Array), Array.from(bits), `${dtype} copy=${copy}`);
      // Also through a non-contiguous view: the gather copy must not touch the bits.
      const back = t.transpose(0, 1).toArray() as Uint16Array;
      const expected: number[] = [];
      for (let j = 0; j < 4; j++) for (let i = 0; i < 2; i++) expected.push(bits[i * 4 + j]);
      assert.deepEqual(Array.from(back), expected, `${dtype} transposed`);
    }
  }
});

test('bf16 and f16 bits are read as the right numbers by libtorch', async () => {
  // y = 2x + 1 computed natively in the tensor's own dtype: 1 -> 3, -2 -> -3.
  const bf = await addon.ops.scaleAdd(new Tensor(new Uint16Array([0x3f80, 0xc000]), [2], { dtype: 'bf16' }), 2, 1);
  assert.deepEqual(Array.from(bf.toArray() as Uint16Array), [0x4040, 0xc040]);
  const h = await addon.ops.scaleAdd(new Tensor(new Uint16Array([0x3c00, 0xc000]), [2], { dtype: 'f16' }), 2, 1);
  assert.deepEqual(Array.from(h.toArray() as Uint16Array), [0x4200, 0xc200]);
});

test('strided (non-contiguous) tensors read the right elements', () => {
  const data = Float32Array.from({ length: 12 }, (_, i) => i);
  // A 3x2 view whose column stride is 3: element (i, j) = data[i + 3 j].
  const t = new Tensor(data, [3, 2], { strides: [1, 3] });
  assert.equal(t.isContiguous, false);
  assert.deepEqual(t.strides, [1, 3]);
  assert.deepEqual(Array.from(t.toArray() as Float32Array), [0, 3, 1, 4, 2, 5]);
  const m = new Tensor(data, [3, 4]);
  const mt = m.transpose(0, 1);
  assert.deepEqual(mt.shape, [4, 3]);
  assert.equal(mt.isContiguous, false);
  assert.deepEqual(Array.from(mt.toArray() as Float32Array), [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
  const c = mt.contiguous();
  assert.equal(c.isContiguous, true);
  assert.deepEqual(Array.from(c.toArray() as Float32Array), Array.from(mt.toArray() as Float32Array));
  // A view also keeps the borrowed buffer: it reads the array's current contents.
  data[1] = 100;
  assert.equal((mt.toArray() as Float32Array)[3], 100);
});

test('empty tensors in every position of the shape', () => {
  for (const shape of [[0], [0, 3], [3, 0], [2, 0, 4]]) {
    const t = new Tensor(new Float32Array(0), shape);
    assert.deepEqual(t.shape, shape);
    assert.equal(t.numel, 0);
    assert.equal((t.toArray() as Float32Array).length, 0);
  }
  const e = new Tensor(new BigInt64Array(0), [0], { copy: true });
  assert.equal(e.dtype, 'i64');
  assert.equal((e.toArray() as BigInt64Array).length, 0);
});

test('a borrowed array is shared; a copied one is not', () => {
  const a = new Float32Array([1, 2, 3]);
  const borrowed = new Tensor(a);
  const copied = new Tensor(a, [3], { copy: true });
  a[0] = 42;
  assert.equal((borrowed.toArray() as Float32Array)[0], 42);
  assert.equal((copied.toArray() as Float32Array)[0], 1);
});

test('a view into the middle of a larger buffer borrows the right bytes', () => {
  const big = new Float64Array([9, 9, 1, 2, 3, 9]);
  const sub = big.subarray(2, 5);
  const t = new Tensor(sub);
  assert.deepEqual(Array.from(t.toArray() as Float64Array), [1, 2, 3]);
});

test('dispose frees the handle; later use is a clear error', () => {
  const t = new Tensor(new Float32Array(4), [2, 2], { copy: true });
  assert.equal(t.nbytes, 16);
  t.dispose();
  assert.equal(t.disposed, true);
  assert.throws(() => t.toArray(), /Tensor\.toArray: the Tensor has been disposed/);
  assert.throws(() => t.shape, /disposed/);
  assert.equal(t.toString(), 'Tensor(disposed)');
  t.dispose(); // idempotent
});
