#include "worker/train/nccl_gradient_sync.h"

#include <ATen/ATen.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include <cmath>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <utility>

namespace atp::train {
namespace {

Status NcclError(const char* call, ncclResult_t result, const char* file, int line) {
  return Internal(std::string(file) + ":" + std::to_string(line) + ": " + call + " failed: " +
                  ncclGetErrorString(result) + " (run with NCCL_DEBUG=WARN for NCCL's own account)");
}

}  // namespace

// Returns a Status naming the call, file:line and NCCL's message when an NCCL call fails.
#define NCCL_CHECK(call)                                                          \
  do {                                                                            \
    ncclResult_t nccl_result_ = (call);                                           \
    if (nccl_result_ != ncclSuccess) return NcclError(#call, nccl_result_, __FILE__, __LINE__); \
  } while (0)

// Owns one ncclComm_t. ncclCommDestroy waits for the communicator's queued work, which
// after an asynchronous error (a peer died) may never finish; such a communicator is aborted.
class NcclGradientSync::Comm {
 public:
  explicit Comm(ncclComm_t comm) : comm_(comm) {}
  ~Comm() {
    if (comm_ == nullptr) return;
    if (failed_) {
      ncclCommAbort(comm_);
    } else {
      ncclCommDestroy(comm_);
    }
  }
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  ncclComm_t get() const { return comm_; }
  void MarkFailed() { failed_ = true; }

 private:
  ncclComm_t comm_;
  bool failed_ = false;
};

namespace {

std::optional<ncclDataType_t> NcclType(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return ncclFloat32;
    case at::kHalf: return ncclFloat16;
    case at::kBFloat16: return ncclBfloat16;
    case at::kDouble: return ncclFloat64;
    default: return std::nullopt;
  }
}

// Makes (rank 0) and spreads the unique id. The buffer ends with a failure flag so that a
// failed ncclGetUniqueId on rank 0 fails every rank instead of leaving them waiting in
// ncclCommInitRank for a rank that never comes.
Result<ncclUniqueId> ShareUniqueId(int rank, const AllreduceDoubles& allreduce_doubles) {
  ncclUniqueId id;
  std::memset(&id, 0, sizeof id);
  std::vector<double> buffer(sizeof id.internal + 1, 0.0);
  Status made = Status::Ok();
  if (rank == 0) {
    ncclResult_t result = ncclGetUniqueId(&id);
    if (result != ncclSuccess) {
      made = NcclError("ncclGetUniqueId(&id)", result, __FILE__, __LINE__);
      buffer.back() = 1.0;
    } else {
      for (size_t i = 0; i < sizeof id.internal; ++i) buffer[i] = static_cast<unsigned char>(id.internal[i]);
    }
  }
  ATP_RETURN_IF_ERROR(allreduce_doubles(&buffer));
  ATP_RETURN_IF_ERROR(made);
  if (buffer.size() != sizeof id.internal + 1) {
    return Internal("NCCL bootstrap: the allreduce returned " + std::to_string(buffer.size()) + " values, expected " +
                    std::to_string(sizeof id.internal + 1));
  }
  if (buffer.back() != 0.0) return Internal("NCCL bootstrap: rank 0 could not create the NCCL unique id");
  for (size_t i = 0; i < sizeof id.internal; ++i) {
    // Anything but a byte means another rank sent non-zeros: it was not in the same step.
    const double b = buffer[i];
    if (!(b >= 0.0 && b <= 255.0) || b != std::floor(b)) {
      return Internal("NCCL bootstrap: byte " + std::to_string(i) + " of the summed unique id is " + std::to_string(b) +
                      "; every rank must call NcclGradientSync::Create at the same point");
    }
    id.internal[i] = static_cast<char>(static_cast<unsigned char>(b));
  }
  return id;
}

}  // namespace

Result<std::unique_ptr<NcclGradientSync>> NcclGradientSync::Create(int rank, int size,
                                                                   const AllreduceDoubles& allreduce_doubles) {
  if (!allreduce_doubles) return InvalidArgument("NCCL gradient sync needs an allreduce to share its unique id");
  ATP_ASSIGN_OR_RETURN(ncclUniqueId id, ShareUniqueId(rank, allreduce_doubles));
  int device = -1;
  ncclComm_t comm = nullptr;
  try {
    device = c10::cuda::current_device();
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));
    NCCL_CHECK(ncclCommInitRank(&comm, size, id, rank));
  } catch (const std::exception& e) {
    return Internal(std::string("NCCL gradient sync: CUDA error while creating the communicator: ") + e.what());
  }
  return std::unique_ptr<NcclGradientSync>(new NcclGradientSync(std::make_unique<Comm>(comm), rank, size, device));
}

NcclGradientSync::NcclGradientSync(std::unique_ptr<Comm> comm, int rank, int size, int device)
    : comm_(std::move(comm)), rank_(rank), size_(size), device_(device) {}

NcclGradientSync::~NcclGradientSync() = default;

Status NcclGradientSync::AllreduceSum(std::vector<at::Tensor>& tensors) {
  const c10::Device device(c10::DeviceType::CUDA, static_cast<c10::DeviceIndex>(device_));
  std::vector<ncclDataType_t> types;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    if (!t.defined() || t.device() != device) {
      return InvalidArgument("NCCL gradient sync: tensor " + std::to_string(i) + " is " +
                             (t.defined() ? "on " + t.device().str() : std::string("undefined")) +
                             ", not on the communicator's device " + device.str());
    }
    auto type = NcclType(t.scalar_type());
    if (!type) {
      return InvalidArgument("NCCL gradient sync: tensor " + std::to_string(i) + " has dtype " +
                             std::string(c10::toString(t.scalar_type())) + "; expected float32/16, bfloat16 or float64");
    }
    types.push_back(*type);
  }
  try {
    c10::cuda::CUDAGuard guard(device);
    cudaStream_t stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
    // NCCL reads and writes dense memory; strided tensors go through a contiguous copy. The
    // copies are allocated and freed on `stream`, the stream NCCL runs on, so the caching
    // allocator cannot hand their memory to other work before NCCL is done with it.
    std::vector<at::Tensor> dense(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) dense[i] = tensors[i].is_contiguous() ? tensors[i] : tensors[i].contiguous();
    NCCL_CHECK(ncclGroupStart());
    for (size_t i = 0; i < dense.size(); ++i) {
      if (dense[i].numel() == 0) continue;
      ncclResult_t result = ncclAllReduce(dense[i].data_ptr(), dense[i].data_ptr(), static_cast<size_t>(dense[i].numel()),
                                          types[i], ncclSum, comm_->get(), stream);
      if (result != ncclSuccess) {
        (void)ncclGroupEnd();  // a group left open would swallow every later NCCL call
        comm_->MarkFailed();
        return NcclError("ncclAllReduce", result, __FILE__, __LINE__);
      }
    }
    NCCL_CHECK(ncclGroupEnd());
    at::NoGradGuard no_grad;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!tensors[i].is_contiguous()) tensors[i].copy_(dense[i]);
    }
  } catch (const std::exception& e) {
    return Internal(std::string("NCCL gradient sync: CUDA error: ") + e.what());
  }
  // A peer that died shows up as an asynchronous error; report it here rather than hang in
  // the next call.
  ncclResult_t async_error = ncclSuccess;
  NCCL_CHECK(ncclCommGetAsyncError(comm_->get(), &async_error));
  if (async_error != ncclSuccess) {
    comm_->MarkFailed();
    return NcclError("asynchronous NCCL operation", async_error, __FILE__, __LINE__);
  }
  return Status::Ok();
}

}  // namespace atp::train
