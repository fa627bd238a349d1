// Generated once from the reference table attributes.csv and kept as source, like the paper's
// other figures (tools/reporting/paper_figures.cc). Edit by regenerating, not by hand.
#include "common/paper_attributes.h"

namespace atp {

const std::vector<PaperSearchedAttributes>& PaperAttributes() {
  static const std::vector<PaperSearchedAttributes> kAttributes = {
      {"imagenet", "color, size, shape, habitat, behavior", "color, shape"},
      {"caltech101", "shape, color, material, function, size", "shape, size"},
      {"oxford_pets", "loyalty, affection, playfulness, energy, intelligence", "playfulness, energy"},
      {"stanford_cars", "design, engine, performance, luxury, color", "luxury"},
      {"oxford_flowers", "color, flower, habitat, growth, season", "color, habitat, growth"},
      {"food101", "flavor, texture, origin, ingredients, preparation", "flavor, preparation"},
      {"fgvc_aircraft", "design, capacity, range, engines, liveries", "design, range"},
      {"sun397", "architecture, environment, structure, design, function", "function"},
      {"dtd", "pattern, texture, color, design, structure", "pattern, color, design"},
      {"eurosat", "habitat, foliage, infrastructure, terrain, watercourse", "habitat"},
      {"ucf101", "precision, coordination, technique, strength, control", "precision"},
  };
  return kAttributes;
}

}  // namespace atp
