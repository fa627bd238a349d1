// `atp data ...`: check a data root, print a seed's few-shot split, import Fashion-MNIST.
// argv[0] is "data". Returns the process exit code (0 success, 1 problems found or failure,
// 2 usage error).
#pragma once

namespace atp {

int RunDataCommand(int argc, char** argv);

}  // namespace atp
