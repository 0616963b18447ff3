// A borrowed TypedArray stays valid for the tensor's whole life, however hard the GC works.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { addon } from '../helpers/addon';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = seed * 1000 + i;
  return a;
}

test('borrowed arrays survive GC pressure while only the tensors hold them', () => {
  const n = 4096;
  const tensors: ReturnType<typeof make>[] = [];
  function make(seed: number) {
    // The array goes out of scope at once: only the tensor's storage keeps it alive.
    return new addon.Tensor(fill(n, seed), [64, 64]);
  }
  for (let seed = 0; seed < 200; seed++) tensors.push(make(seed));
  for (let round = 0; round < 5; round++) {
    // Churn: many short-lived arrays and tensors, then full collections.
    for (let k = 0; k < 2000; k++) new addon.Tensor(new Float32Array(256), [256]);
    const junk: Float64Array[] = [];
    for (let k = 0; k < 200; k++) junk.push(new Float64Array(8192));
    junk.length = 0;
    gc();
  }
  for (let seed = 0; seed < tensors.length; seed++) {
    const back = tensors[seed].toArray() as Float32Array;
    assert.equal(back[0], seed * 1000, `tensor ${seed} first element`);
    assert.equal(back[n - 1], seed * 1000 + n - 1, `tensor ${seed} last element`);
  }
});

test('views of a borrowed array keep it alive after the base handle is gone', async () => {
  let view = (() => {
    const base = new addon.Tensor(fill(12, 7), [3, 4]);
    return base.transpose(0, 1);
  })();
  for (let k = 0; k < 3; k++) {
    for (let j = 0; j < 1000; j++) new Float64Array(4096);
    gc();
    await new Promise((r) => setImmediate(r)); // let finalizers run
  }
  assert.deepEqual(Array.from(view.toArray() as Float32Array).slice(0, 3), [7000, 7004, 7008]);
  view = view.contiguous();
  assert.equal(view.isContiguous, true);
});

test('async results built from borrowed inputs outlive them', async () => {
  const results = [];
  for (let seed = 0; seed < 20; seed++) {
    results.push(addon.ops.scaleAdd(new addon.Tensor(fill(1000, seed)), 1, 0));
  }
  gc();
  const done = await Promise.all(results);
  done.forEach((t, seed) => assert.equal((t.toArray() as Float32Array)[999], seed * 1000 + 999));
});
