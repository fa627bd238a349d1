// The JSON type used across atp (nlohmann::json). Object keys are kept sorted, so
// Json::dump() is a canonical form: equal values always serialise to equal bytes,
// which is what content-addressed job keys rely on.
#pragma once

#include <nlohmann/json.hpp>

namespace atp {
using Json = nlohmann::json;
}  // namespace atp
