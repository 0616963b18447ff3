// The collectives of ProcessGroup, written once against C10dGroup (c10d_compat.h). Each waits its
// turn (Run), issues one c10d collective and waits for it with the group's timeout (Wait).
//
// Buffers: backends want dense contiguous tensors of a dtype they reduce. A tensor that is already
// one is used in place; otherwise the collective runs on a contiguous copy that is copied back.
#include "dist/process_group.h"

namespace medgr2::dist {

namespace {

c10d::AllreduceOptions ReduceOptionsFor(ReduceKind op, bool backend_has_avg) {
  c10d::AllreduceOptions o;
  switch (op) {
    case ReduceKind::kMax:
      o.reduceOp = c10d::ReduceOp::MAX;
      break;
    case ReduceKind::kMin:
      o.reduceOp = c10d::ReduceOp::MIN;
      break;
    case ReduceKind::kAvg:
      o.reduceOp = backend_has_avg ? c10d::ReduceOp::AVG : c10d::ReduceOp::SUM;
      break;
    case ReduceKind::kSum:
      o.reduceOp = c10d::ReduceOp::SUM;
      break;
  }
  return o;
}

// Gloo (libtorch 1.13) reduces float16/32/64 and integers but not bfloat16: bf16 travels as float32
// (exact for broadcast and gather; one rounding at the end for reductions, which is also more accurate).
at::ScalarType WireDtype(at::ScalarType t, const std::string& backend) {
  return (backend == "gloo" && t == at::kBFloat16) ? at::kFloat : t;
}

// `t` itself when the backend can use it as is, else a contiguous copy in the wire dtype.
at::Tensor WireBuffer(const at::Tensor& t, const std::string& backend) {
  const at::ScalarType wire = WireDtype(t.scalar_type(), backend);
  if (wire == t.scalar_type() && t.is_contiguous()) return t;
  return t.contiguous().to(wire);
}

// A fresh contiguous tensor of `numel` elements for results that land in `like`.
at::Tensor WireOutput(const at::Tensor& like, const std::string& backend) {
  const at::ScalarType wire = WireDtype(like.scalar_type(), backend);
  if (wire == like.scalar_type() && like.is_contiguous()) return like;
  return at::empty({like.numel()}, like.options().dtype(wire));
}

void CopyBack(const at::Tensor& dst, const at::Tensor& buffer) {
  if (!buffer.is_same(dst)) dst.copy_(buffer.reshape(dst.sizes()));
}

}  // namespace

void ProcessGroup::AllReduceInPlace(C10dGroup* group, at::Tensor& buffer, ReduceKind op) const {
  std::vector<at::Tensor> tensors{buffer};
  Wait(group->allreduce(tensors, ReduceOptionsFor(op, BackendHasAvg())));
  if (op == ReduceKind::kAvg && !BackendHasAvg()) buffer.div_(options_.world_size);
}

void ProcessGroup::AllReduce(uint64_t ticket, const at::Tensor& tensor, ReduceKind op) {
  Run(ticket, "allReduce", [&](C10dGroup* group) {
    if (!group) return;  // local: the reduction over one rank is the tensor itself
    at::Tensor buffer = WireBuffer(tensor, backend());
    AllReduceInPlace(group, buffer, op);
    CopyBack(tensor, buffer);
  });
}

void ProcessGroup::AllReduceFlatOn(C10dGroup* group, const std::vector<at::Tensor>& tensors, ReduceKind op) const {
  if (!group || tensors.empty()) return;
  std::vector<at::Tensor> flat;
  flat.reserve(tensors.size());
  for (const auto& t : tensors) flat.push_back(t.reshape({-1}));
  at::Tensor buffer = at::cat(flat);  // one contiguous copy: one collective instead of N
  if (WireDtype(buffer.scalar_type(), backend()) != buffer.scalar_type()) {
    buffer = buffer.to(WireDtype(buffer.scalar_type(), backend()));
  }
  AllReduceInPlace(group, buffer, op);
  int64_t offset = 0;
  for (const auto& t : tensors) {
    t.copy_(buffer.narrow(0, offset, t.numel()).view(t.sizes()));
    offset += t.numel();
  }
}

void ProcessGroup::AllReduceFlat(uint64_t ticket, const std::vector<at::Tensor>& tensors, ReduceKind op) {
  Run(ticket, "allReduceFlat", [&](C10dGroup* group) { AllReduceFlatOn(group, tensors, op); });
}

void ProcessGroup::BroadcastOn(C10dGroup* group, const at::Tensor& tensor, int root) const {
  if (!group) return;
  at::Tensor buffer = WireBuffer(tensor, backend());
  std::vector<at::Tensor> tensors{buffer};
  c10d::BroadcastOptions o;
  o.rootRank = root;
  o.rootTensor = 0;
  Wait(group->broadcast(tensors, o));
  CopyBack(tensor, buffer);
}

void ProcessGroup::Broadcast(uint64_t ticket, const at::Tensor& tensor, int root) {
  Run(ticket, "broadcast", [&](C10dGroup* group) { BroadcastOn(group, tensor, root); });
}

void ProcessGroup::AllGatherOn(C10dGroup* group, const at::Tensor& out, const at::Tensor& in) const {
  if (!group) {
    out.copy_(in.reshape(out.sizes()));
    return;
  }
  at::Tensor input = WireBuffer(in, backend());
  at::Tensor output = WireOutput(out, backend());
  const int64_t n = input.numel();
  if (backend() == "gloo") {
    // Gloo in libtorch 1.13 has no flat _allgather_base: the list form, each rank's slot a view of
    // the flat output shaped like the input (Gloo checks the shapes), which Gloo copies into.
    at::Tensor flat = output.view({-1});
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world_size(); ++r) outputs[0].push_back(flat.narrow(0, r * n, n).view(input.sizes()));
    std::vector<at::Tensor> inputs{input};
    Wait(group->allgather(outputs, inputs));
  } else {
    at::Tensor flat_out = output.view({-1});
    at::Tensor flat_in = input.view({-1});
    Wait(group->_allgather_base(flat_out, flat_in));
  }
  CopyBack(out, output);
}

void ProcessGroup::AllGather(uint64_t ticket, const at::Tensor& out, const at::Tensor& in) {
  Run(ticket, "allGather", [&](C10dGroup* group) { AllGatherOn(group, out, in); });
}

void ProcessGroup::ReduceScatterOn(C10dGroup* group, const at::Tensor& out, const at::Tensor& in, ReduceKind op) const {
  const int64_t n = out.numel();
  if (!group) {
    out.copy_(in.reshape(out.sizes()));
    return;
  }
  if (backend() == "nccl") {
    at::Tensor input = WireBuffer(in, backend()).view({-1});
    at::Tensor output = WireOutput(out, backend());
    at::Tensor flat_out = output.view({-1});
    c10d::ReduceScatterOptions o;
    o.reduceOp = ReduceOptionsFor(op, BackendHasAvg()).reduceOp;
    Wait(group->_reduce_scatter_base(flat_out, input, o));
    CopyBack(out, output);
    return;
  }
  // Gloo in libtorch 1.13 has no reduce_scatter: allreduce a copy of the whole input and keep this
  // rank's slice. Correct, at twice the traffic of a real reduce-scatter (ring) -- fine for the
  // CPU path, which is for tests and small runs; CUDA runs take NCCL's native one above.
  at::Tensor whole = in.reshape({-1}).to(WireDtype(in.scalar_type(), backend()), /*non_blocking=*/false, /*copy=*/true);
  AllReduceInPlace(group, whole, op);
  out.copy_(whole.narrow(0, static_cast<int64_t>(rank()) * n, n).view(out.sizes()));
}

void ProcessGroup::ReduceScatter(uint64_t ticket, const at::Tensor& out, const at::Tensor& in, ReduceKind op) {
  Run(ticket, "reduceScatter", [&](C10dGroup* group) { ReduceScatterOn(group, out, in, op); });
}

void ProcessGroup::Barrier(uint64_t ticket) {
  Run(ticket, "barrier", [&](C10dGroup* group) {
    if (!group) return;
    Wait(group->barrier(c10d::BarrierOptions()));
  });
}

void ProcessGroup::Sequence::AllReduceFlat(const std::vector<at::Tensor>& tensors, ReduceKind op) {
  owner_->AllReduceFlatOn(group_, tensors, op);
}

void ProcessGroup::Sequence::AllReduce(const at::Tensor& tensor, ReduceKind op) {
  if (!group_) return;
  at::Tensor buffer = WireBuffer(tensor, owner_->backend());
  owner_->AllReduceInPlace(group_, buffer, op);
  CopyBack(tensor, buffer);
}

void ProcessGroup::Sequence::AllGather(const at::Tensor& out, const at::Tensor& in) {
  owner_->AllGatherOn(group_, out, in);
}

void ProcessGroup::Sequence::ReduceScatter(const at::Tensor& out, const at::Tensor& in, ReduceKind op) {
  owner_->ReduceScatterOn(group_, out, in, op);
}

c10::intrusive_ptr<c10d::Work> ProcessGroup::Sequence::StartAllReduceSum(at::Tensor& buffer) {
  if (!group_) return {};
  std::vector<at::Tensor> tensors{buffer};
  return group_->allreduce(tensors, ReduceOptionsFor(ReduceKind::kSum, owner_->BackendHasAvg()));
}

void ProcessGroup::Sequence::Wait(const c10::intrusive_ptr<c10d::Work>& work) {
  if (work) owner_->Wait(work);
}

at::ScalarType ProcessGroup::Sequence::WireDtype(at::ScalarType t) const {
  return dist::WireDtype(t, owner_->backend());
}

void ProcessGroup::Sequence::Broadcast(const at::Tensor& tensor, int root) {
  if (root < 0 || root >= world_size())
    throw std::invalid_argument("broadcast root " + std::to_string(root) + " is not a rank");
  owner_->BroadcastOn(group_, tensor, root);
}

void ProcessGroup::RunSequence(uint64_t ticket, const char* name, const std::function<void(Sequence&)>& body) {
  Run(ticket, name, [&](C10dGroup* group) {
    Sequence seq(this, group);
    body(seq);
  });
}

}  // namespace medgr2::dist
