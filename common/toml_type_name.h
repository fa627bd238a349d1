// TomlTypeName: how error messages name the type of a TOML value a file got wrong ("must be a
// string, got an integer"), the same in sweep files and attribute-bases files.
#pragma once

#include <toml++/toml.h>

namespace atp {

// "a string", "an integer", "a float", "a boolean", "a list", "a table" or "a date or time".
const char* TomlTypeName(const toml::node& node);

}  // namespace atp
