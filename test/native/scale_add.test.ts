// scale_add: the CPU reference against the formula, and the CUDA kernel against the reference.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addon, assertClose, noCuda, rng, randn } from '../helpers/addon';

test('reference: y = a x + b (f32 and f64, odd lengths)', async () => {
  const r = rng(3);
  for (const n of [1, 3, 1000, 4099]) {
    const x = randn(r, n);
    const y = await addon.ops.scaleAdd(new addon.Tensor(x), -1.5, 0.25);
    assertClose(
      y.toArray() as Float64Array,
      Array.from(x, (v) => -1.5 * v + 0.25),
      { what: `f64 n=${n}`, rtol: 0, atol: 1e-15 },
    );
    const x32 = Float32Array.from(x);
    const y32 = await addon.ops.scaleAdd(new addon.Tensor(x32), -1.5, 0.25);
    assertClose(
      y32.toArray() as Float32Array,
      Array.from(x32, (v) => -1.5 * v + 0.25),
      { what: `f32 n=${n}`, rtol: 1e-6 },
    );
  }
});

test('CUDA kernel equals the reference (aligned, unaligned, odd lengths)', { skip: noCuda }, async () => {
  const r = rng(4);
  for (const n of [1, 5, 1023, 1 << 20, (1 << 20) + 3]) {
    const x = Float32Array.from(randn(r, n + 1));
    for (const offset of [0, 1]) {
      const host = new addon.Tensor(x.subarray(offset, offset + n));
      const dev = await host.to('cuda');
      assert.equal(addon.ops.scaleAddUsesKernel(dev), true);
      const got = await (await addon.ops.scaleAdd(dev, 0.5, -2)).to('cpu');
      const want = await addon.ops.scaleAdd(host, 0.5, -2);
      assertClose(got.toArray() as Float32Array, want.toArray() as Float32Array, {
        what: `n=${n} offset=${offset}`,
        rtol: 1e-6,
      });
    }
  }
});
