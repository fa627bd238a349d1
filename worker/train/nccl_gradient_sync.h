// NcclGradientSync: gradient sums of CUDA tensors with NCCL, one communicator per job (one
// rank per GPU), its unique id carried by the relay allreduce. Built only with a CUDA
// libtorch and NCCL (ATP_HAVE_NCCL in nccl_config.h); MakeGradientSync is the way to get
// one. One object per rank, used from that rank's training thread; not thread-safe.
#pragma once

#include <memory>

#include "worker/train/gradient_sync.h"

namespace atp::train {

class NcclGradientSync : public GradientSync {
 public:
  // Collective over the job: every rank calls it with the same size, with the CUDA device it
  // trains on set as the current device. Rank 0 makes the ncclUniqueId; the 128 id bytes go
  // through `allreduce_doubles` (rank 0 sends the bytes, the others zeros, so the sum is the
  // id on every rank), then ncclCommInitRank builds the communicator.
  static Result<std::unique_ptr<NcclGradientSync>> Create(int rank, int size, const AllreduceDoubles& allreduce_doubles);

  ~NcclGradientSync() override;
  NcclGradientSync(const NcclGradientSync&) = delete;
  NcclGradientSync& operator=(const NcclGradientSync&) = delete;

  // One ncclAllReduce (sum) per tensor, grouped between ncclGroupStart/End, enqueued on the
  // current CUDA stream of the communicator's device; returns once enqueued (work later on
  // that stream sees the sums). Tensors must be on that device, in float32, float16,
  // bfloat16 or float64.
  Status AllreduceSum(std::vector<at::Tensor>& tensors) override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "nccl"; }

 private:
  class Comm;  // the RAII ncclComm_t, defined with NCCL's types in the .cc
  NcclGradientSync(std::unique_ptr<Comm> comm, int rank, int size, int device);

  std::unique_ptr<Comm> comm_;
  int rank_;
  int size_;
  int device_;
};

}  // namespace atp::train
