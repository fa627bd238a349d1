#include "worker/train/gradient_sync.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <utility>

#include "worker/train/nccl_config.h"
#include "worker/train/nccl_gradient_sync.h"

namespace atp::train {
namespace {

// The same contract for every strategy, so that a method that works on one rank fails the
// same way it would on many.
Status ValidateTensors(const std::vector<at::Tensor>& tensors, const std::string& strategy) {
  for (size_t i = 0; i < tensors.size(); ++i) {
    const at::Tensor& t = tensors[i];
    if (!t.defined()) {
      return InvalidArgument(strategy + " gradient sync: tensor " + std::to_string(i) +
                             " is undefined (a parameter without a gradient?); pass only the gradients that "
                             "exist, the same list on every rank");
    }
    if (!t.is_floating_point()) {
      return InvalidArgument(strategy + " gradient sync: tensor " + std::to_string(i) + " has dtype " +
                             std::string(c10::toString(t.scalar_type())) + "; gradients are floating point");
    }
  }
  return Status::Ok();
}

}  // namespace

GradientSync::~GradientSync() = default;

Status AverageGradients(GradientSync& sync, std::vector<at::Tensor>& grads) {
  ATP_RETURN_IF_ERROR(sync.AllreduceSum(grads));
  if (sync.size() == 1) return Status::Ok();
  at::NoGradGuard no_grad;
  for (auto& g : grads) g.div_(static_cast<double>(sync.size()));
  return Status::Ok();
}

Status LocalGradientSync::AllreduceSum(std::vector<at::Tensor>& tensors) { return ValidateTensors(tensors, "local"); }

RelayGradientSync::RelayGradientSync(AllreduceDoubles allreduce_doubles, int rank, int size)
    : allreduce_(std::move(allreduce_doubles)), rank_(rank), size_(size) {}

Status RelayGradientSync::AllreduceSum(std::vector<at::Tensor>& tensors) {
  ATP_RETURN_IF_ERROR(ValidateTensors(tensors, "relay"));
  if (!allreduce_) return FailedPrecondition("relay gradient sync has no allreduce to relay through");
  int64_t total = 0;
  for (const auto& t : tensors) total += t.numel();
  std::vector<double> buffer;
  buffer.reserve(static_cast<size_t>(total) + 1);
  double non_finite = 0;
  {
    at::NoGradGuard no_grad;
    for (const auto& t : tensors) {
      const at::Tensor d = t.detach().to(at::kCPU, at::kDouble).contiguous();
      const double* p = d.data_ptr<double>();
      for (int64_t i = 0; i < d.numel(); ++i) {
        if (std::isfinite(p[i])) {
          buffer.push_back(p[i]);
        } else {
          buffer.push_back(0.0);
          non_finite += 1;
        }
      }
    }
  }
  buffer.push_back(non_finite);
  const size_t expected = buffer.size();
  Status reduced = allreduce_(&buffer);
  if (!reduced.ok()) return reduced.WithContext("relay gradient sync (rank " + std::to_string(rank_) + ")");
  if (buffer.size() != expected) {
    return Internal("relay gradient sync: the allreduce returned " + std::to_string(buffer.size()) +
                    " values for " + std::to_string(expected) + " sent; do all ranks pass the same tensors?");
  }
  at::NoGradGuard no_grad;
  if (buffer.back() != 0.0) {
    for (auto& t : tensors) t.fill_(std::numeric_limits<double>::quiet_NaN());
    return Status::Ok();
  }
  size_t offset = 0;
  for (auto& t : tensors) {
    // copy_ converts back to the tensor's dtype and device and honours its strides.
    const at::Tensor sum = at::from_blob(buffer.data() + offset, t.sizes(), at::TensorOptions().dtype(at::kDouble));
    t.copy_(sum);
    offset += static_cast<size_t>(t.numel());
  }
  return Status::Ok();
}

bool NcclGradientSyncAvailable() { return ATP_HAVE_NCCL != 0; }

Result<std::unique_ptr<GradientSync>> MakeGradientSync(const GradientSyncOptions& options) {
  if (options.size < 1 || options.rank < 0 || options.rank >= options.size) {
    return InvalidArgument("gradient sync: rank " + std::to_string(options.rank) + " of size " +
                           std::to_string(options.size) + " is not a rank of the job");
  }
  if (options.size == 1) return std::unique_ptr<GradientSync>(std::make_unique<LocalGradientSync>());
  if (!options.allreduce_doubles) {
    return InvalidArgument("gradient sync: a job of " + std::to_string(options.size) +
                           " ranks needs an allreduce (JobContext::AllreduceSum)");
  }
  // Compiled in every build; without NCCL the branch is discarded and NcclGradientSync is
  // never referenced, so nccl_gradient_sync.cc need not be linked.
  if constexpr (ATP_HAVE_NCCL != 0) {
    if (options.cuda_tensors) {
      ATP_ASSIGN_OR_RETURN(std::unique_ptr<NcclGradientSync> nccl,
                           NcclGradientSync::Create(options.rank, options.size, options.allreduce_doubles));
      return std::unique_ptr<GradientSync>(std::move(nccl));
    }
  }
  return std::unique_ptr<GradientSync>(
      std::make_unique<RelayGradientSync>(options.allreduce_doubles, options.rank, options.size));
}

}  // namespace atp::train
