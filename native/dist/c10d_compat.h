// The one place that knows which libtorch generation is compiled against.
//
// libtorch 1.x: ProcessGroupGloo / ProcessGroupNCCL derive from c10d::ProcessGroup and we call their
// collectives directly. libtorch 2.x: they derive from c10d::Backend, and c10d::ProcessGroup became a
// dispatcher in front of backends (ops registered with the PyTorch dispatcher). We never need that
// dispatcher -- one backend per group -- so on 2.x we hold the Backend itself; both classes declare the
// same virtual collectives (allreduce, broadcast, allgather, _allgather_base, _reduce_scatter_base,
// barrier) with the same signatures, so everything above this header is written once.
#pragma once

#include <torch/version.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#endif

namespace medgr2::dist {

#if TORCH_VERSION_MAJOR >= 2
using C10dGroup = c10d::Backend;
#else
using C10dGroup = c10d::ProcessGroup;
#endif

}  // namespace medgr2::dist
