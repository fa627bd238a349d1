// GradientSync: how the ranks of one data-parallel job sum their gradients, as a strategy
// chosen in one place (MakeGradientSync): local (one rank), relay (through the job's worker
// rank and its MPI group communicator) or NCCL (CUDA tensors, nccl_gradient_sync.h).
// One object per rank, used by that rank's training thread only; not thread-safe.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace atp::train {

// Sums a double buffer in place over the job's ranks; every rank passes the same length.
// A job process gets one from its JobContext:
//   [&ctx](std::vector<double>* d) { return ctx.AllreduceSum(d); }
using AllreduceDoubles = std::function<Status(std::vector<double>*)>;

class GradientSync {
 public:
  virtual ~GradientSync();
  // Replaces every tensor by its elementwise sum over all ranks, in place, keeping its
  // dtype, shape and device. Every rank calls it with the same number of tensors, in the
  // same order, with the same shapes and dtypes. Tensors must be defined and floating point.
  // An error leaves the tensors unspecified; ranks then cannot continue the step together.
  virtual Status AllreduceSum(std::vector<at::Tensor>& tensors) = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "local", "relay", "nccl": for logs and results
};

// Sum, then divide by size(): the gradient of the mean of the ranks' losses (the gradient
// of the global-batch loss when every rank's batch has the same size).
Status AverageGradients(GradientSync& sync, std::vector<at::Tensor>& grads);

// One rank: the sum is the tensors themselves.
class LocalGradientSync : public GradientSync {
 public:
  Status AllreduceSum(std::vector<at::Tensor>& tensors) override;
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "local"; }
};

// Relays through a double allreduce: all tensors of one call are flattened into ONE double
// buffer, so a training step costs one message to the worker and one MPI_Allreduce.
//
// Why double: float32, fp16 and bf16 values convert to double exactly, and double addition
// is commutative, so with 2 ranks the sum is the same on both ranks whatever order the
// reduction uses; rounded back to float32 it is the correctly rounded float32 sum (double
// has more than 2*24+2 significand bits, so rounding twice is harmless), i.e. exactly what a
// float32 addition on one machine gives. With k > 2 ranks the double sum is still exact when
// the k values of an element lie within about 29 - log2(k) binades of each other; otherwise
// it is rounded in the last double bit, which can move the float32 result by one ulp only in
// near-tie cases and may then depend on the reduction order. Every rank receives the same
// reduced buffer from the allreduce, so ranks never diverge. float64 tensors get a plain
// double sum (order-dependent in the last bit for k > 2).
//
// Non-finite values: the relay's transport (JSON between the job process and its worker)
// cannot carry NaN or Inf, so they travel as 0 and are counted in one extra element at the
// end of the buffer. When any rank had one, every element of every tensor becomes NaN on
// every rank: the step is poisoned on all ranks alike, as a NaN gradient poisons the
// parameters on one GPU, and the ranks stay identical.
class RelayGradientSync : public GradientSync {
 public:
  RelayGradientSync(AllreduceDoubles allreduce_doubles, int rank, int size);
  Status AllreduceSum(std::vector<at::Tensor>& tensors) override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "relay"; }

 private:
  AllreduceDoubles allreduce_;
  int rank_;
  int size_;
};

struct GradientSyncOptions {
  int rank = 0;
  int size = 1;
  AllreduceDoubles allreduce_doubles;  // required when size > 1
  bool cuda_tensors = false;           // the gradients live on the current CUDA device
};

// The one place the strategy is chosen: size 1 → local; CUDA tensors in a build with NCCL →
// NCCL (its communicator bootstrapped through allreduce_doubles); otherwise relay. Every rank
// of a job must call it with the same size and cuda_tensors (a collective when NCCL is used).
Result<std::unique_ptr<GradientSync>> MakeGradientSync(const GradientSyncOptions& options);

// Whether this build has the NCCL strategy (ATP_WITH_NCCL and a CUDA libtorch).
bool NcclGradientSyncAvailable();

}  // namespace atp::train
