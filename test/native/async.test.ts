// Heavy native calls run off the JS thread: the event loop keeps turning while they work.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addon, rng, randn } from '../helpers/addon';

test('an async matmul does not block the event loop', async () => {
  const n = 768;
  const r = rng(1);
  const a = new addon.Tensor(Float32Array.from(randn(r, n * n)), [n, n]);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const started = performance.now();
  let calls = 0;
  // Keep the native side busy for a while; the timer must fire in between.
  while (performance.now() - started < 400 || calls < 3) {
    await addon.ops.matmul(a, a);
    calls++;
  }
  clearInterval(timer);
  assert.ok(ticks >= 5, `timer fired ${ticks} times during ${calls} matmuls`);
});

test('an async result is correct (matmul against a JS reference)', async () => {
  const r = rng(2);
  const [m, k, n] = [7, 13, 5];
  const A = Float64Array.from(randn(r, m * k));
  const B = Float64Array.from(randn(r, k * n));
  const C = await addon.ops.matmul(new addon.Tensor(A, [m, k]), new addon.Tensor(B, [k, n]));
  assert.deepEqual(C.shape, [m, n]);
  const got = C.toArray() as Float64Array;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let q = 0; q < k; q++) s += A[i * k + q] * B[q * n + j];
      assert.ok(Math.abs(got[i * n + j] - s) < 1e-12, `C[${i},${j}]`);
    }
  }
});

test('many concurrent async calls all settle', async () => {
  const xs = Array.from({ length: 64 }, (_, i) => new addon.Tensor(new Float32Array([i])));
  const ys = await Promise.all(xs.map((x) => addon.ops.scaleAdd(x, 2, 0)));
  ys.forEach((y, i) => assert.equal((y.toArray() as Float32Array)[0], 2 * i));
});
