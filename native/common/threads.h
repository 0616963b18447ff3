// Intra-op thread count for the threads that run libtorch work.
//
// OpenMP's thread count is per calling thread, so a libuv pool thread must be told the process-wide
// count before its first parallel region. at::init_num_threads() does that but also rebuilds
// libtorch's pthreadpool, which costs milliseconds: do it once per pool thread, and again only after
// the count changed (SetIntraOpThreads bumps a generation number).
#pragma once

#include <ATen/Parallel.h>

#include <atomic>

namespace medgr2 {

inline std::atomic<int>& ThreadConfigGeneration() {
  static std::atomic<int> generation{1};
  return generation;
}

inline void SetIntraOpThreads(int n) {
  at::set_num_threads(n);
  ThreadConfigGeneration().fetch_add(1);
}

// Call at the start of work on a thread that is not the one that set the count.
inline void ApplyIntraOpThreads() {
  thread_local int applied = 0;
  const int current = ThreadConfigGeneration().load();
  if (applied != current) {
    at::init_num_threads();
    applied = current;
  }
}

}  // namespace medgr2
