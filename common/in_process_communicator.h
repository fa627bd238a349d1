// InProcessCommunicator: ranks as threads of one process, connected through a shared
// InProcessHub of mailboxes. Used when atp runs without mpirun (the coordinator and one
// local worker thread) and by tests that model many ranks without MPI. Each Communicator is
// used by one thread; the hub is thread-safe.
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/communicator.h"

namespace atp {

class InProcessHub {
 public:
  // `node_names[i]` is the node of rank i (defaults to "localhost" for every rank).
  explicit InProcessHub(int size, std::vector<std::string> node_names = {});
  int size() const { return size_; }
  std::unique_ptr<Communicator> Connect(int rank);

 private:
  friend class InProcessCommunicator;
  friend class InProcessGroup;
  struct Mailbox {
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<Envelope> messages;
  };
  struct GroupState;

  int size_;
  std::vector<std::string> node_names_;
  std::vector<std::unique_ptr<Mailbox>> mailboxes_;
  std::mutex groups_mutex_;
  std::map<std::pair<int, std::vector<int>>, std::shared_ptr<GroupState>> groups_;
};

}  // namespace atp
