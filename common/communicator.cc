// Communicator is an interface; its implementations live in in_process_communicator.cc and
// mpi_communicator.cc. This unit keeps the vtable anchored in one place.
#include "common/communicator.h"
