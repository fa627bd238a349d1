// `atp attributes ...`: print the paper's attribute bases, or ask a language model for a
// dataset's five bases (the official gpt_query.py's two-call chain) and record them in an
// attribute-bases file. argv[0] is "attributes". Returns the process exit code (0 success,
// 1 failure, 2 usage error). Not reentrant: it reads the environment and the working directory.
#pragma once

namespace atp {

int RunAttributesCommand(int argc, char** argv);

}  // namespace atp
