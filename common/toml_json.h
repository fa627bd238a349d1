// TomlToJson: the one conversion of TOML values (a job's parameters, a sweep's axes and
// overrides, a `--set` on the command line) into the JSON that job specs hold. Stateless;
// thread-safe.
#pragma once

#include <toml++/toml.h>

#include <string>

#include "common/json.h"
#include "common/status.h"

namespace atp {

// Strings, integers, floats, booleans, arrays and tables convert to their JSON kind (an
// integer stays an integer: 2 and 2.0 are different parameters). Dates and times have no JSON
// kind and no parameter takes one, so they are refused rather than dropped: the error is an
// InvalidArgument "<source>:<line>: <key path>: dates and times are not parameter values;
// write it as a string", naming the innermost key; with `source` empty it starts at the key path.
Result<Json> TomlToJson(const toml::node& node, const std::string& source, const std::string& key_path);

}  // namespace atp
