// CollectProvenance: what build of atp and which library versions this process runs, for the
// `runs` table (hosts are filled in by the coordinator once workers have reported).
#pragma once

#include <string>

#include "coordinator/store/store.h"

namespace atp {

Provenance CollectProvenance(int argc, char** argv, int world_size);

}  // namespace atp
