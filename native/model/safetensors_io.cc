#include "model/safetensors_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <stdexcept>

namespace medgr2::model {

namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors is little-endian; so must the host be");

std::string Errno(const std::string& what, const std::string& path) {
  return path + ": " + what + " (" + std::strerror(errno) + ")";
}

class MappedFile;

// The live mappings, for IsMapped / LiveMappings (tests and diagnostics).
std::mutex registry_mutex;
std::set<const MappedFile*> registry;

// A whole file mapped copy-on-write; unmapped when the last owner (tensor storage) lets go.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(Errno("cannot open", path));
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      throw std::runtime_error(Errno("cannot stat", path));
    }
    size_ = static_cast<int64_t>(st.st_size);
    if (size_ > 0) {
      // PROT_WRITE on a private mapping of a read-only fd: writes make private copies of pages.
      void* p = ::mmap(nullptr, static_cast<size_t>(size_), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        ::close(fd);
        throw std::runtime_error(Errno("cannot memory-map", path));
      }
      data_ = static_cast<uint8_t*>(p);
    }
    ::close(fd);  // the mapping keeps the file (inode) alive by itself
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry.insert(this);
  }

  ~MappedFile() {
    {
      std::lock_guard<std::mutex> lock(registry_mutex);
      registry.erase(this);
    }
    if (data_) ::munmap(data_, static_cast<size_t>(size_));
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }
  bool Contains(const void* p) const {
    auto* b = static_cast<const uint8_t*>(p);
    return data_ && b >= data_ && b < data_ + size_;
  }

 private:
  std::string path_;
  uint8_t* data_ = nullptr;
  int64_t size_ = 0;
};

void WriteAll(int fd, const uint8_t* data, size_t n, const std::string& path) {
  while (n > 0) {
    // Linux writes at most ~2 GiB per call; loop on partial writes and EINTR.
    ssize_t w = ::write(fd, data, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(Errno("write failed", path));
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
}

void FsyncDir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // some filesystems cannot open folders: the rename is still atomic
  ::fsync(fd);
  ::close(fd);
}

std::string ShapeString(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t k = 0; k < v.size(); ++k) s += (k ? ", " : "") + std::to_string(v[k]);
  return s + "]";
}

}  // namespace

std::vector<at::Tensor> ReadTensors(const std::string& path, const std::vector<TensorLocation>& locations,
                                    std::optional<c10::ScalarType> target) {
  auto file = std::make_shared<MappedFile>(path);
  std::vector<at::Tensor> out;
  out.reserve(locations.size());
  for (const auto& loc : locations) {
    const int64_t elem = static_cast<int64_t>(c10::elementSize(loc.dtype));
    int64_t numel = 1;
    for (int64_t d : loc.shape) numel *= d;
    if (numel * elem != loc.nbytes) {
      throw std::runtime_error(path + ": tensor \"" + loc.name + "\": " + std::to_string(loc.nbytes) +
                               " bytes given for shape " + ShapeString(loc.shape) + " of " + c10::toString(loc.dtype) +
                               ", which needs " + std::to_string(numel * elem));
    }
    if (loc.offset < 0 || loc.offset + loc.nbytes > file->size()) {
      throw std::runtime_error(path + ": truncated: tensor \"" + loc.name + "\" needs bytes " +
                               std::to_string(loc.offset) + ".." + std::to_string(loc.offset + loc.nbytes) +
                               " but the file has only " + std::to_string(file->size()) + " bytes");
    }
    const auto opts = at::TensorOptions().dtype(loc.dtype);
    const c10::ScalarType want = target.value_or(loc.dtype);
    if (numel == 0) {
      out.push_back(at::empty(loc.shape, opts.dtype(want)));
      continue;
    }
    uint8_t* ptr = file->data() + loc.offset;
    const bool aligned = reinterpret_cast<uintptr_t>(ptr) % static_cast<uintptr_t>(elem) == 0;
    if (want == loc.dtype && aligned) {
      // The storage's deleter owns a reference to the mapping: it outlives every view of it.
      std::shared_ptr<MappedFile> keep = file;
      out.push_back(at::from_blob(
          ptr, loc.shape, [keep](void*) mutable { keep.reset(); }, opts));
      continue;
    }
    at::Tensor src;
    if (aligned) {
      src = at::from_blob(ptr, loc.shape, opts);
    } else {
      src = at::empty(loc.shape, opts);
      std::memcpy(src.data_ptr(), ptr, static_cast<size_t>(loc.nbytes));
    }
    // Here either the dtype changes (to() makes a new tensor) or src is already a copy: no result
    // aliases the mapping without holding it.
    out.push_back(src.to(want));
  }
  return out;
}

void WriteSafetensors(const std::string& path, const std::vector<uint8_t>& header,
                      const std::vector<at::Tensor>& tensors, const std::vector<WriteEntry>& entries) {
  if (tensors.size() != entries.size()) {
    throw std::runtime_error(path + ": " + std::to_string(tensors.size()) + " tensors given for " +
                             std::to_string(entries.size()) + " header entries");
  }
  if (header.size() < 8) throw std::runtime_error(path + ": header shorter than its 8-byte length");
  uint64_t n = 0;
  std::memcpy(&n, header.data(), 8);
  if (n != header.size() - 8) {
    throw std::runtime_error(path + ": header length field says " + std::to_string(n) + " bytes but " +
                             std::to_string(header.size() - 8) + " follow it");
  }
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error(Errno("cannot create", tmp));
  try {
    WriteAll(fd, header.data(), header.size(), tmp);
    for (size_t i = 0; i < tensors.size(); ++i) {
      const auto& e = entries[i];
      // One tensor at a time on the host: a save never holds a second copy of the whole model.
      at::Tensor t = tensors[i].to(at::kCPU, e.dtype).contiguous();
      const int64_t nbytes = t.numel() * static_cast<int64_t>(t.element_size());
      if (nbytes != e.nbytes) {
        std::ostringstream shape;
        shape << t.sizes();
        throw std::runtime_error(path + ": tensor \"" + e.name + "\" has " + std::to_string(nbytes) + " bytes (shape " +
                                 shape.str() + ") but the header gives it " + std::to_string(e.nbytes));
      }
      if (nbytes > 0) WriteAll(fd, static_cast<const uint8_t*>(t.data_ptr()), static_cast<size_t>(nbytes), tmp);
    }
    if (::fsync(fd) != 0) throw std::runtime_error(Errno("fsync failed", tmp));
    if (::close(fd) != 0) {
      fd = -1;
      throw std::runtime_error(Errno("close failed", tmp));
    }
    fd = -1;
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(Errno("cannot rename " + tmp + " to", path));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  FsyncDir(path);
}

bool IsMapped(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage() || !t.device().is_cpu()) return false;
  const void* p = t.data_ptr();
  std::lock_guard<std::mutex> lock(registry_mutex);
  for (const MappedFile* f : registry) {
    if (f->Contains(p)) return true;
  }
  return false;
}

int64_t LiveMappings() {
  std::lock_guard<std::mutex> lock(registry_mutex);
  return static_cast<int64_t>(registry.size());
}

}  // namespace medgr2::model
