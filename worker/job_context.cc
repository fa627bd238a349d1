#include "worker/job_context.h"

namespace atp {

JobContext::JobContext(JobSpec spec, int attempt, Json upstream, std::string workdir, std::string resume_checkpoint,
                       int group_rank, int group_size, Channel channel, const std::atomic<bool>* stop_flag,
                       int device_slot)
    : spec_(std::move(spec)),
      attempt_(attempt),
      upstream_(std::move(upstream)),
      workdir_(std::move(workdir)),
      resume_checkpoint_(std::move(resume_checkpoint)),
      group_rank_(group_rank),
      group_size_(group_size),
      device_slot_(device_slot),
      channel_(std::move(channel)),
      stop_flag_(stop_flag) {}

void JobContext::ReportProgress(int64_t step, int64_t total) {
  if (channel_.send_event) channel_.send_event(Json{{"event", "progress"}, {"step", step}, {"total", total}});
}

void JobContext::ReportCheckpoint(const std::string& path) {
  if (channel_.send_event) channel_.send_event(Json{{"event", "checkpoint"}, {"path", path}});
}

Status JobContext::AllreduceSum(std::vector<double>* data) {
  if (group_size_ <= 1) return Status::Ok();
  if (!channel_.allreduce) return FailedPrecondition("this job has no group communicator");
  return channel_.allreduce(data);
}

}  // namespace atp
