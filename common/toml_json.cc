#include "common/toml_json.h"

namespace atp {

Result<Json> TomlToJson(const toml::node& node, const std::string& source, const std::string& key_path) {
  switch (node.type()) {
    case toml::node_type::string: return Json(node.as_string()->get());
    case toml::node_type::integer: return Json(node.as_integer()->get());
    case toml::node_type::floating_point: return Json(node.as_floating_point()->get());
    case toml::node_type::boolean: return Json(node.as_boolean()->get());
    case toml::node_type::array: {
      Json list = Json::array();
      for (const auto& element : *node.as_array()) {
        ATP_ASSIGN_OR_RETURN(Json value, TomlToJson(element, source, key_path));
        list.push_back(std::move(value));
      }
      return list;
    }
    case toml::node_type::table: {
      Json object = Json::object();
      for (auto&& [key, value_node] : *node.as_table()) {
        const std::string name(key.str());
        ATP_ASSIGN_OR_RETURN(Json value, TomlToJson(value_node, source, key_path.empty() ? name : key_path + "." + name));
        object[name] = std::move(value);
      }
      return object;
    }
    default: {
      const std::string where =
          source.empty() ? "" : source + ":" + std::to_string(node.source().begin.line) + ": ";
      return InvalidArgument(where + key_path + ": dates and times are not parameter values; write it as a string");
    }
  }
}

}  // namespace atp
