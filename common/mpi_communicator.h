// MpiCommunicator: the Communicator over MPI_COMM_WORLD, and MpiScope, the RAII owner of
// MPI_Init/MPI_Finalize. Errors are returned (MPI_ERRORS_RETURN is set on every
// communicator atp uses), never fatal. MPI is initialised with MPI_THREAD_FUNNELED: only
// the thread that created the MpiScope may use these objects.
#pragma once

#include <memory>
#include <string>

#include "common/communicator.h"

namespace atp {

// MPI_CHECK(expr): turns an MPI error code into a Status with file:line and MPI's message.
Status MpiStatus(int code, const char* expr, const char* file, int line);
#define MPI_CHECK(expr)                                                          \
  do {                                                                           \
    int atp_mpi_code_ = (expr);                                                  \
    if (atp_mpi_code_ != 0) return ::atp::MpiStatus(atp_mpi_code_, #expr, __FILE__, __LINE__); \
  } while (0)

class MpiScope {
 public:
  // Initialises MPI unless already initialised (then this scope does not finalise).
  static Result<std::unique_ptr<MpiScope>> Init(int* argc, char*** argv);
  ~MpiScope();  // MPI_Finalize
  MpiScope(const MpiScope&) = delete;
  MpiScope& operator=(const MpiScope&) = delete;

  // True when this process was started by mpirun/srun (an MPI launcher's environment).
  static bool LaunchedByMpi();
  static std::string LibraryVersion();
  // Ends the whole MPI job (used only when a rank was lost and a clean finalize would hang).
  [[noreturn]] static void Abort(int exit_code);

 private:
  explicit MpiScope(bool owns) : owns_(owns) {}
  bool owns_;
};

std::unique_ptr<Communicator> MakeMpiWorldCommunicator();

}  // namespace atp
