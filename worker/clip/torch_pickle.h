// Reading torch.save zip archives (data.pkl plus one data/<key> record per tensor storage)
// without running anything the pickle names: a small pickle machine rebuilds tensors and
// keeps every other object opaque. Shared by both checkpoint readers (CLIP weights and the
// training/prompt checkpoints), which also share CheckTensorFitsRecord, the one check that a
// tensor never reads past the bytes its record holds. Values are plain data; thread-compatible.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace atp::clip {

// Thrown for a malformed archive; the message reads after the file's name ("is truncated: ...").
class TorchArchiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The particular malformation CheckTensorFitsRecord finds: a tensor (or the storage the pickle
// declares) needs more bytes than its record holds.
class TensorRecordError : public TorchArchiveError {
 public:
  using TorchArchiveError::TorchArchiveError;
};

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

// One unpickled Python value.
struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kStr, kBytes, kList, kTuple, kDict, kGlobal, kObject, kTensor };
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                                  // str, bytes; global and object: "module.name"
  std::vector<PyRef> items;                       // list, tuple; object: constructor arguments
  std::vector<std::pair<PyRef, PyRef>> entries;   // dict, in insertion order
  at::Tensor tensor;
  PyRef state;                                    // object: what BUILD set
  int depth = 1;  // nesting of containers; bounded so that freeing a value never recurses deeply
};

const char* KindName(PyValue::Kind kind);  // "dict", "tensor", ...

// The root value of the archive at `path`. Tensors are CPU views of their storages; every
// view was checked with CheckTensorFitsRecord. Throws TorchArchiveError for a file that is
// not a (complete) archive or holds a malformed pickle; the zip reader may throw c10::Error.
PyRef ReadTorchArchive(const std::string& path);

// Whether a tensor of `dtype` at `storage_offset` with `sizes` and `strides` (in elements)
// lies within a record of `record_bytes` bytes, computed without overflow. Negative sizes,
// strides or offsets, and views with more elements than the record holds, are refused; an
// empty tensor always fits. The error says what the tensor needs and what the record holds.
Status CheckTensorFitsRecord(uint64_t record_bytes, at::ScalarType dtype, int64_t storage_offset,
                             c10::IntArrayRef sizes, c10::IntArrayRef strides);

}  // namespace atp::clip
