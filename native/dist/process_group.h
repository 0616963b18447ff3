// A process group on c10d: a TCPStore (rank 0 hosts it, or the launcher's agent does), a PrefixStore
// over it, and a Gloo (CPU) or NCCL (CUDA) backend. Collectives block the calling thread (the bridge
// runs them on the libuv pool) and never longer than the group's timeout: a dead peer or a stuck
// collective becomes an exception naming this rank, the collective and libtorch's message.
//
// Ordering: every rank must issue the same collectives in the same order. JS may start several
// collectives before awaiting any, and the pool threads that run them race, so each collective takes a
// ticket on the JS thread (TakeTicket) and runs only when its turn comes (Run). After a failure the
// group is "broken": later collectives fail at once (the ranks' sequences no longer match).
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dist/c10d_compat.h"

namespace medgr2::dist {

enum class ReduceKind { kSum, kAvg, kMax, kMin };

struct GroupOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // "gloo", "nccl", or "local" (world size 1 only: no store, no sockets, collectives are local copies).
  std::string backend = "gloo";
  std::chrono::milliseconds timeout{std::chrono::minutes(30)};
  // torchrun's TORCHELASTIC_USE_AGENT_STORE: the agent hosts the TCPStore, every rank is a client, and
  // keys live under /worker/attempt_<restart_count> as torch.distributed puts them.
  bool agent_store = false;
  int restart_count = 0;
};

class ProcessGroup {
 public:
  // Blocks until every rank has joined (or throws after the timeout).
  static std::shared_ptr<ProcessGroup> Create(const GroupOptions& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  const std::string& backend() const { return options_.backend; }
  std::chrono::milliseconds timeout() const { return options_.timeout; }
  bool closed() const;

  // Taken on the thread that issues collectives in program order (the JS thread).
  uint64_t TakeTicket();

  // The collectives. `ticket` from TakeTicket; every one waits its turn first. In place where the
  // result has the input's shape (allReduce, broadcast); into `out` otherwise.
  void AllReduce(uint64_t ticket, const at::Tensor& tensor, ReduceKind op);
  // All tensors one dtype and device: flattened into one buffer, one allreduce, copied back (a DDP
  // bucket).
  void AllReduceFlat(uint64_t ticket, const std::vector<at::Tensor>& tensors, ReduceKind op);
  void Broadcast(uint64_t ticket, const at::Tensor& tensor, int root);
  // out: world_size * in.numel() elements; rank r's input lands at [r * n, (r + 1) * n).
  void AllGather(uint64_t ticket, const at::Tensor& out, const at::Tensor& in);
  // in: world_size * out.numel() elements; out = reduction over ranks of in[rank * n, (rank + 1) * n).
  void ReduceScatter(uint64_t ticket, const at::Tensor& out, const at::Tensor& in, ReduceKind op);
  void Barrier(uint64_t ticket);

  // Several collectives in one turn, for callers that decide what to reduce only once their turn
  // has come (Model.allReduceGradients: the gradient buckets are built under the model's lock,
  // which is taken after the turn so two model collectives issued back to back cannot deadlock).
  // A failure anywhere in `body` (the collectives or the caller's own code) breaks the group like a
  // failed collective. On the "local" group every collective is what it is over one rank (a no-op in
  // place, a copy from `in` to `out`).
  class Sequence {
   public:
    void AllReduce(const at::Tensor& tensor, ReduceKind op);
    void AllReduceFlat(const std::vector<at::Tensor>& tensors, ReduceKind op);
    void AllGather(const at::Tensor& out, const at::Tensor& in);
    void ReduceScatter(const at::Tensor& out, const at::Tensor& in, ReduceKind op);
    void Broadcast(const at::Tensor& tensor, int root);
    // A sum all-reduce started, not waited for: `buffer` (dense, of a dtype the backend reduces:
    // WireDtype) holds the result once Wait returns. For overlapping reductions with other work (DDP's
    // buckets during backward); may be called from another thread than the sequence's, but all of a
    // sequence's collectives must still be started in the same order on every rank. Null on "local".
    c10::intrusive_ptr<c10d::Work> StartAllReduceSum(at::Tensor& buffer);
    void Wait(const c10::intrusive_ptr<c10d::Work>& work);
    // The dtype `t` travels in on this group's backend (Gloo reduces bf16 as float32).
    at::ScalarType WireDtype(at::ScalarType t) const;
    int rank() const { return owner_->rank(); }
    int world_size() const { return owner_->world_size(); }

   private:
    friend class ProcessGroup;
    Sequence(ProcessGroup* owner, C10dGroup* group) : owner_(owner), group_(group) {}
    ProcessGroup* owner_;
    C10dGroup* group_;
  };
  void RunSequence(uint64_t ticket, const char* name, const std::function<void(Sequence&)>& body);

  // Frees the backend and the store. Idempotent; collectives after it fail. A broken group's backend
  // is leaked on purpose: its destructor joins Gloo threads that may still be blocked on a dead peer,
  // which would hang the exit this failure is leading to.
  void Close();

 private:
  explicit ProcessGroup(GroupOptions options);

  // Waits for `ticket`'s turn, checks the group is usable, runs `body` with the backend (null for
  // "local"), turns failures into the group's error message and marks the group broken.
  void Run(uint64_t ticket, const char* name, const std::function<void(C10dGroup*)>& body);
  void Wait(const c10::intrusive_ptr<c10d::Work>& work) const;
  // After a failed collective, which ranks are lost: every rank that fails reports to the store, and
  // the ranks that have not within a few seconds are named (or the store's host, when the store is
  // gone too). One sentence for the error message.
  std::string SilentRanks() const;
  void AllReduceInPlace(C10dGroup* group, at::Tensor& buffer, ReduceKind op) const;
  void AllReduceFlatOn(C10dGroup* group, const std::vector<at::Tensor>& tensors, ReduceKind op) const;
  void BroadcastOn(C10dGroup* group, const at::Tensor& tensor, int root) const;
  void AllGatherOn(C10dGroup* group, const at::Tensor& out, const at::Tensor& in) const;
  void ReduceScatterOn(C10dGroup* group, const at::Tensor& out, const at::Tensor& in, ReduceKind op) const;
  bool BackendHasAvg() const { return options_.backend == "nccl"; }

  GroupOptions options_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<C10dGroup> group_;

  mutable std::mutex mutex_;
  std::condition_variable turn_changed_;
  uint64_t next_ticket_ = 0;  // JS thread only
  uint64_t turn_ = 0;
  bool closed_ = false;
  std::string broken_;  // the first failure's message; empty while healthy
};

}  // namespace medgr2::dist
