// Named tensors in one safetensors file (optimizer states, LoRA adapters): written atomically by the
// native writer (temp file, fsync, rename), read back memory-mapped.
import { buildSafetensorsHeader, readSafetensorsHeader, SAFETENSORS_DTYPES, safetensorsDtypeOf } from './safetensors';
import { loadAddon } from '../native/loader';
import type { Tensor } from '../native/types';

export async function writeTensors(file: string, tensors: Record<string, Tensor>): Promise<void> {
  const names = Object.keys(tensors).sort();
  const header = buildSafetensorsHeader(
    names.map((name) => ({ name, dtype: safetensorsDtypeOf(tensors[name].dtype), shape: tensors[name].shape })),
  );
  const byName = new Map(names.map((n) => [n, tensors[n]]));
  const order = header.tensors.map((d) => byName.get(d.name) as Tensor);
  await loadAddon().safetensors.writeSafetensors(
    file,
    header.bytes,
    order.map((t) => (t.isContiguous ? t : t.contiguous())),
    header.tensors.map((d) => ({ name: d.name, dtype: SAFETENSORS_DTYPES[d.dtype].native, nbytes: d.nbytes })),
  );
}

/** Every tensor of a safetensors file (mapped; dispose them when done). */
export async function readTensors(file: string): Promise<Record<string, Tensor>> {
  const header = await readSafetensorsHeader(file);
  return loadAddon().safetensors.readTensors(
    file,
    header.tensors.map((d) => ({ ...d, dtype: SAFETENSORS_DTYPES[d.dtype].native })),
  );
}
