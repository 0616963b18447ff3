// A random generator for a device, seeded: CPU's, or CUDA's Philox on a CUDA device. Sampling
// (generate.cc) and the LoRA adapters' dropout masks (lora.cc) draw from their own seeded streams
// rather than the process's default generator, so their draws repeat exactly.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace medgr2::model {

at::Generator SeededGenerator(const at::Device& device, uint64_t seed);

}  // namespace medgr2::model
