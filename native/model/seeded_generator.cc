#include "model/seeded_generator.h"

#include <ATen/CPUGeneratorImpl.h>

#ifdef MEDGR2_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace medgr2::model {

at::Generator SeededGenerator(const at::Device& device, uint64_t seed) {
#ifdef MEDGR2_WITH_CUDA
  if (device.is_cuda()) {
    at::Generator g = at::cuda::detail::createCUDAGenerator(device.index() < 0 ? 0 : device.index());
    g.set_current_seed(seed);
    return g;
  }
#endif
  (void)device;
  return at::detail::createCPUGenerator(seed);
}

}  // namespace medgr2::model
