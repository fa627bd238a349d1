#include "common/mpi_communicator.h"

#include <mpi.h>
#include <sched.h>
#include <time.h>

#include <chrono>
#include <cstdlib>
#include <thread>

namespace atp {

Status MpiStatus(int code, const char* expr, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int length = 0;
  MPI_Error_string(code, text, &length);
  return Internal(std::string(file) + ":" + std::to_string(line) + ": " + expr + " failed: " +
                  std::string(text, length));
}

Result<std::unique_ptr<MpiScope>> MpiScope::Init(int* argc, char*** argv) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) return std::unique_ptr<MpiScope>(new MpiScope(false));
  int provided = 0;
  MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return std::unique_ptr<MpiScope>(new MpiScope(true));
}

MpiScope::~MpiScope() {
  if (!owns_) return;
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (!finalised) MPI_Finalize();
}

bool MpiScope::LaunchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"}) {
    if (std::getenv(name)) return true;
  }
  return false;
}

std::string MpiScope::LibraryVersion() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int length = 0;
  MPI_Get_library_version(text, &length);
  std::string version(text, length);
  auto newline = version.find_first_of("\r\n,");
  return newline == std::string::npos ? version : version.substr(0, newline);
}

void MpiScope::Abort(int exit_code) {
  MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

namespace {

class MpiGroup : public GroupCommunicator {
 public:
  explicit MpiGroup(MPI_Comm comm) : comm_(comm) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiGroup() override { MPI_Comm_free(&comm_); }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status AllreduceSum(float* data, size_t count) override {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_FLOAT, MPI_SUM, comm_));
    return Status::Ok();
  }
  Status AllreduceSum(double* data, size_t count) override {
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE, MPI_SUM, comm_));
    return Status::Ok();
  }
  Status Broadcast(std::string* bytes, int root) override {
    long long length = static_cast<long long>(bytes->size());
    MPI_CHECK(MPI_Bcast(&length, 1, MPI_LONG_LONG, root, comm_));
    bytes->resize(static_cast<size_t>(length));
    MPI_CHECK(MPI_Bcast(bytes->data(), static_cast<int>(length), MPI_CHAR, root, comm_));
    return Status::Ok();
  }

 private:
  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 1;
};

class MpiWorldCommunicator : public Communicator {
 public:
  MpiWorldCommunicator() {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    if (const char* forced = std::getenv("ATP_NODE_NAME"); forced && *forced) {
      node_ = forced;
    } else {
      char name[MPI_MAX_PROCESSOR_NAME] = {0};
      int length = 0;
      MPI_Get_processor_name(name, &length);
      node_.assign(name, length);
    }
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string node_name() const override { return node_; }

  Status Send(int dest, int tag, std::string_view payload) override {
    MPI_CHECK(MPI_Send(payload.data(), static_cast<int>(payload.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD));
    return Status::Ok();
  }

  // Polls with MPI_Iprobe and backs off from yielding to short sleeps, so that idle ranks
  // leave the cores to the job processes (ranks are often oversubscribed) while a busy
  // coordinator still answers within tens of microseconds.
  Result<std::optional<Envelope>> Receive(double timeout_s) override {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    int idle_rounds = 0;
    while (true) {
      int flag = 0;
      MPI_Status status;
      MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &status));
      if (flag) {
        int count = 0;
        MPI_Get_count(&status, MPI_CHAR, &count);
        Envelope e;
        e.source = status.MPI_SOURCE;
        e.tag = status.MPI_TAG;
        e.payload.resize(static_cast<size_t>(count));
        MPI_CHECK(MPI_Recv(e.payload.data(), count, MPI_CHAR, status.MPI_SOURCE, status.MPI_TAG, MPI_COMM_WORLD,
                           MPI_STATUS_IGNORE));
        return std::optional<Envelope>(std::move(e));
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::optional<Envelope>();
      if (++idle_rounds < 20) {
        sched_yield();
      } else {
        long micros = idle_rounds < 200 ? 20 : 500;
        std::this_thread::sleep_for(std::chrono::microseconds(micros));
      }
    }
  }

  Result<std::unique_ptr<GroupCommunicator>> CreateGroup(const std::vector<int>& ranks, int group_tag) override {
    MPI_Group world_group, job_group;
    MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world_group));
    MPI_CHECK(MPI_Group_incl(world_group, static_cast<int>(ranks.size()), ranks.data(), &job_group));
    MPI_Comm job_comm = MPI_COMM_NULL;
    int code = MPI_Comm_create_group(MPI_COMM_WORLD, job_group, group_tag, &job_comm);
    MPI_Group_free(&job_group);
    MPI_Group_free(&world_group);
    if (code != MPI_SUCCESS) return MpiStatus(code, "MPI_Comm_create_group", __FILE__, __LINE__);
    MPI_Comm_set_errhandler(job_comm, MPI_ERRORS_RETURN);
    return std::unique_ptr<GroupCommunicator>(new MpiGroup(job_comm));
  }

 private:
  int rank_ = 0;
  int size_ = 1;
  std::string node_;
};

}  // namespace

std::unique_ptr<Communicator> MakeMpiWorldCommunicator() { return std::make_unique<MpiWorldCommunicator>(); }

}  // namespace atp
