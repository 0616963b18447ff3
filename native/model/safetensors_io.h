// Tensor bytes in and out of safetensors files. TypeScript parses and checks headers
// (src/model/safetensors.ts); this side only maps files and moves bytes.
//
// Reading maps the whole file MAP_PRIVATE: tensors read without a dtype conversion point straight
// into the mapping (no copy; pages come in from the page cache as they are touched), and writes to
// them -- an optimizer updating weights in place -- go to private copy-on-write pages, never back to
// the file. Each such tensor's storage holds a shared reference to the mapping, which is unmapped
// when the last tensor made from it is freed. A tensor whose bytes are not aligned to its element
// size (possible in files from other writers) is copied instead.
//
// Writing is atomic: header and data go to `<path>.tmp-<pid>`, which is fsynced and renamed over
// `path`, and the folder is fsynced, so a reader (or a crash) sees the old file or the whole new one.
// A file that is mapped keeps its old contents when a save renames a new file over it.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace medgr2::model {

// Where one tensor's bytes are in a file.
struct TensorLocation {
  std::string name;
  c10::ScalarType dtype;
  std::vector<int64_t> shape;
  int64_t offset = 0;  // absolute byte offset in the file
  int64_t nbytes = 0;  // numel * element size (checked by the caller)
};

// The tensors at `locations` in the file at `path`, in the same order. Without `target` (or when
// it equals a tensor's dtype) tensors are views of the mapping; otherwise converted copies.
// Errors (std::runtime_error) name the file and the tensor.
std::vector<at::Tensor> ReadTensors(const std::string& path, const std::vector<TensorLocation>& locations,
                                    std::optional<c10::ScalarType> target);

// What the header says of the i-th tensor to write.
struct WriteEntry {
  std::string name;
  c10::ScalarType dtype;  // the tensor is converted to it when it differs
  int64_t nbytes = 0;     // must equal numel * element size
};

// Writes `header` (8-byte length + JSON, as built by TypeScript) and each tensor's bytes in order,
// atomically (see above). Tensors may live on any device and have any layout.
void WriteSafetensors(const std::string& path, const std::vector<uint8_t>& header,
                      const std::vector<at::Tensor>& tensors, const std::vector<WriteEntry>& entries);

// Whether `t`'s data lies in a file mapping that is still alive (it was read without a copy).
bool IsMapped(const at::Tensor& t);
// How many file mappings are alive (each is released with the last tensor that uses it).
int64_t LiveMappings();

}  // namespace medgr2::model
