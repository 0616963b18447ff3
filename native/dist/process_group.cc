// Joining a group (store + backend), turn-taking between collectives, failure bookkeeping, closing.
// The collectives themselves are in collectives.cc.
#include "dist/process_group.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <torch/version.h>

#include "common/nvtx.h"

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace medgr2::dist {

namespace {

// c10::Error's what() carries a C++ backtrace; msg() is what a user should read.
std::string Describe(const std::exception& e) {
  if (auto* torch_error = dynamic_cast<const c10::Error*>(&e)) return torch_error->msg();
  return e.what();
}

#ifdef USE_C10D_GLOO
// Gloo binds one address and advertises it to the peers through the store. GLOO_SOCKET_IFNAME wins
// (as in torch.distributed); otherwise the master address when it is one of this machine's (every rank
// of a one-node run, 127.0.0.1 in tests), else the address this machine's hostname resolves to.
std::shared_ptr<::gloo::transport::Device> GlooDevice(const std::string& master_addr) {
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname) {
    const std::string list(ifname);
    return c10d::ProcessGroupGloo::createDeviceForInterface(list.substr(0, list.find(',')));
  }
  try {
    // Throws when the address does not resolve to one this machine can bind.
    return c10d::ProcessGroupGloo::createDeviceForHostname(master_addr);
  } catch (const std::exception&) {
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }
}
#endif

c10::intrusive_ptr<C10dGroup> MakeBackend(const GroupOptions& o, const c10::intrusive_ptr<c10d::Store>& store) {
  if (o.backend == "gloo") {
#ifdef USE_C10D_GLOO
    auto gloo = c10d::ProcessGroupGloo::Options::create(o.timeout);
    gloo->devices.push_back(GlooDevice(o.master_addr));
    gloo->threads = 2;  // torch.distributed's choice: two per device
    return c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.world_size, gloo);
#else
    throw std::runtime_error("backend 'gloo': this libtorch was built without Gloo (USE_C10D_GLOO)");
#endif
  }
  if (o.backend == "nccl") {
#ifdef USE_C10D_NCCL
    // Without blocking wait, Work::wait() on NCCL only orders the current CUDA stream after the
    // collective; with it, wait() returns when the collective is done or throws at the timeout, which
    // is what our promises promise. Read by the constructor; the user's own setting wins.
    if (!std::getenv("TORCH_NCCL_BLOCKING_WAIT") && !std::getenv("NCCL_BLOCKING_WAIT")) {
      setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);  // libtorch 2.x
      setenv("NCCL_BLOCKING_WAIT", "1", 0);        // libtorch 1.x
    }
    auto nccl = c10d::ProcessGroupNCCL::Options::create();
    nccl->timeout = o.timeout;
    return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.world_size, nccl);
#else
    throw std::runtime_error("backend 'nccl': this libtorch has no NCCL (a CPU build); use backend 'gloo'");
#endif
  }
  throw std::invalid_argument("backend must be 'gloo', 'nccl' or 'local', got '" + o.backend + "'");
}

}  // namespace

ProcessGroup::ProcessGroup(GroupOptions options) : options_(std::move(options)) {}

ProcessGroup::~ProcessGroup() {
  Close();
}

// libtorch >= 2.4 asks TCPStore for its libuv backend by default; a libtorch built without libuv (Debian's
// 2.6) refuses it, so such a build gets the classic backend instead. Builds with libuv keep their default.
static c10::intrusive_ptr<c10d::Store> MakeTcpStore(const std::string& host, c10d::TCPStoreOptions so) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 2)
  try {
    return c10::make_intrusive<c10d::TCPStore>(host, so);
  } catch (const std::exception& e) {
    if (std::string(e.what()).find("libuv") == std::string::npos || !so.useLibUV) throw;
    so.useLibUV = false;
    return c10::make_intrusive<c10d::TCPStore>(host, so);
  }
#else
  return c10::make_intrusive<c10d::TCPStore>(host, so);
#endif
}

std::shared_ptr<ProcessGroup> ProcessGroup::Create(const GroupOptions& o) {
  NvtxRange range("medgr2.dist.create");
  std::shared_ptr<ProcessGroup> pg(new ProcessGroup(o));
  if (o.backend == "local") {
    if (o.world_size != 1 || o.rank != 0) throw std::invalid_argument("backend 'local' is for world size 1 only");
    return pg;
  }
#ifndef USE_C10D_NCCL
  // Before the store: a rank that cannot build its backend must not keep the others waiting for it.
  if (o.backend == "nccl")
    throw std::runtime_error("backend 'nccl': this libtorch has no NCCL (a CPU build); use backend 'gloo'");
#endif
#ifndef USE_C10D_GLOO
  if (o.backend == "gloo")
    throw std::runtime_error("backend 'gloo': this libtorch was built without Gloo (USE_C10D_GLOO)");
#endif
  const auto started = std::chrono::steady_clock::now();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = !o.agent_store && o.rank == 0;
    so.numWorkers = static_cast<std::size_t>(o.world_size);
    so.waitWorkers = true;  // the server's constructor returns when every rank has connected
    so.timeout = o.timeout;
    c10::intrusive_ptr<c10d::Store> store = MakeTcpStore(o.master_addr, so);
    if (o.agent_store) {
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(o.restart_count), store);
    }
    store = c10::make_intrusive<c10d::PrefixStore>("default_pg", store);
    pg->store_ = store;
    pg->group_ = MakeBackend(o, store);
    // Every rank's create() resolves only once all have built their backend (NCCL connects lazily,
    // Gloo ranks may still be reading peers' addresses), so rank 0 cannot close the store under them.
    store->set("ready/" + std::to_string(o.rank), std::vector<uint8_t>{'1'});
    std::vector<std::string> keys;
    for (int r = 0; r < o.world_size; ++r) keys.push_back("ready/" + std::to_string(r));
    store->wait(keys, o.timeout);
  } catch (const std::invalid_argument&) {
    throw;
  } catch (const std::exception& e) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    pg->Close();
    throw std::runtime_error("rank " + std::to_string(o.rank) + ": could not join the " + o.backend +
                             " process group of " + std::to_string(o.world_size) + " at " + o.master_addr + ":" +
                             std::to_string(o.master_port) + " (after " + std::to_string(ms.count()) + " ms, timeout " +
                             std::to_string(o.timeout.count()) + " ms): " + Describe(e));
  }
  return pg;
}

bool ProcessGroup::closed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return closed_;
}

uint64_t ProcessGroup::TakeTicket() {
  return next_ticket_++;
}

void ProcessGroup::Run(uint64_t ticket, const char* name, const std::function<void(C10dGroup*)>& body) {
  const std::string range_name = std::string("medgr2.dist.") + name;
  NvtxRange range(range_name.c_str());
  const std::string who = "rank " + std::to_string(options_.rank) + ": " + name;
  c10::intrusive_ptr<C10dGroup> group;
  bool closed = false;
  std::string broken;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    turn_changed_.wait(lock, [&] { return turn_ == ticket; });
    closed = closed_;
    broken = broken_;
    group = group_;  // our own reference: Close() may run while the collective does
  }
  // The turn passes on however this call ends (mutex_ is not held here).
  struct PassTurn {
    ProcessGroup* self;
    ~PassTurn() {
      std::lock_guard<std::mutex> l(self->mutex_);
      ++self->turn_;
      self->turn_changed_.notify_all();
    }
  } pass{this};
  if (closed) throw std::runtime_error(who + ": the process group is closed");
  if (!broken.empty()) throw std::runtime_error(who + ": the process group failed earlier (" + broken + ")");
  const auto started = std::chrono::steady_clock::now();
  try {
    body(group.get());
  } catch (const std::exception& e) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    const std::string message = who + " failed after " + std::to_string(ms.count()) + " ms (timeout " +
                                std::to_string(options_.timeout.count()) + " ms): " + Describe(e) + "; " +
                                SilentRanks();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (broken_.empty()) broken_ = message;
    }
    if (group) (void)group.release();  // a broken backend is never destroyed (see Close)
    throw std::runtime_error(message);
  }
}

std::string ProcessGroup::SilentRanks() const {
  c10::intrusive_ptr<c10d::Store> store;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    store = store_;
  }
  if (!store) return "a peer rank may have died, or the ranks called different collectives";
  const auto patience = std::min<std::chrono::milliseconds>(options_.timeout, std::chrono::seconds(5));
  std::vector<int> silent;
  try {
    store->set("failed/" + std::to_string(options_.rank), std::vector<uint8_t>{'1'});
    const auto deadline = std::chrono::steady_clock::now() + patience;
    do {
      silent.clear();
      for (int r = 0; r < options_.world_size; ++r) {
        if (!store->check({"failed/" + std::to_string(r)})) silent.push_back(r);
      }
      if (silent.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < deadline);
  } catch (const std::exception& e) {
    return std::string("the store at ") + options_.master_addr + ":" + std::to_string(options_.master_port) +
           " does not answer either (" + Describe(e) + "): its host is lost (" +
           (options_.agent_store ? "the launcher's agent" : "rank 0") + ")";
  }
  if (silent.empty()) {
    return "no rank is lost: every rank failed here (the same error everywhere, different collectives, or the "
           "transport)";
  }
  std::string list;
  for (int r : silent) list += (list.empty() ? "" : ", ") + std::to_string(r);
  return "lost: rank" + std::string(silent.size() > 1 ? "s " : " ") + list + " (no report within " +
         std::to_string(patience.count()) +
         " ms of the failure: dead, stuck behind a dead rank, or not calling this collective)";
}

void ProcessGroup::Wait(const c10::intrusive_ptr<c10d::Work>& work) const {
  // Throws the backend's error, or "timed out" once the timeout has passed.
  if (!work->wait(options_.timeout)) {
    throw std::runtime_error("no completion within " + std::to_string(options_.timeout.count()) + " ms");
  }
}

void ProcessGroup::Close() {
  c10::intrusive_ptr<C10dGroup> group;
  c10::intrusive_ptr<c10d::Store> store;
  bool broken = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return;
    closed_ = true;
    group = std::move(group_);
    store = std::move(store_);
    broken = !broken_.empty();
  }
  if (broken && group) (void)group.release();  // see the header: never join threads stuck on a dead peer
  // `store` (and, when healthy, `group`) are freed here; in-flight collectives hold their own reference.
}

}  // namespace medgr2::dist
