// NVTX ranges: named spans that `nsys profile` shows on the timeline. NVTX v3 is header-only and a
// range costs a few nanoseconds when no profiler is attached, so they stay in release builds.
// Compiled to nothing where the CUDA toolkit is absent (MEDGR2_WITH_NVTX unset).
#pragma once

#ifdef MEDGR2_WITH_NVTX
#include <nvtx3/nvToolsExt.h>
#endif

namespace medgr2 {

class NvtxRange {
 public:
  explicit NvtxRange(const char* name) {
#ifdef MEDGR2_WITH_NVTX
    nvtxRangePushA(name);
#else
    (void)name;
#endif
  }
  ~NvtxRange() {
#ifdef MEDGR2_WITH_NVTX
    nvtxRangePop();
#endif
  }
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

constexpr bool kNvtxCompiled =
#ifdef MEDGR2_WITH_NVTX
    true;
#else
    false;
#endif

constexpr bool kCudaKernelsCompiled =
#ifdef MEDGR2_WITH_CUDA
    true;
#else
    false;
#endif

}  // namespace medgr2
