#include "worker/pretrain/captions.h"

#include "worker/data/dataset.h"
#include "worker/data/fashion_mnist.h"

namespace atp::pretrain {
namespace {

// How each class is described along the five attribute bases. The words are plain catalogue
// descriptions of the garments; what matters is that each base word appears after words that
// tell the classes apart, the way ATPrompt's prompts put an attribute word before the class.
struct ClassWords {
  const char* article;   // "a" or "an" before the class name in descriptive sentences
  const char* category;  // "a type of ..."
  const char* shape;
  const char* length;
  const char* sleeve;    // completes "with ... sleeve"
  const char* texture;
  const char* fit;
};

// In label order (data::FashionMnistClassNames()).
const ClassWords kWords[] = {
    {"a", "clothing", "boxy", "waist", "a short", "soft cotton", "relaxed"},          // T-shirt/top
    {"a", "clothing", "long straight", "full", "no", "woven denim", "straight"},       // Trouser
    {"a", "clothing", "rounded", "hip", "a long knitted", "knitted wool", "loose"},    // Pullover
    {"a", "clothing", "flared", "knee", "no", "smooth silky", "fitted"},              // Dress
    {"a", "clothing", "long", "thigh", "a long", "thick heavy", "loose"},             // Coat
    {"a", "footwear", "open", "low", "no", "strappy", "open"},                         // Sandal
    {"a", "clothing", "collared", "hip", "a long buttoned", "crisp", "tailored"},     // Shirt
    {"a", "footwear", "low rounded", "low", "no", "mesh", "snug"},                    // Sneaker
    {"a", "accessory", "rectangular", "medium", "no", "leather", "roomy"},            // Bag
    {"an", "footwear", "high", "ankle", "no", "leather", "snug"},                     // Ankle boot
};

std::vector<std::string> CaptionsFor(const std::string& name, const ClassWords& w) {
  const std::string a = w.article;
  return {
      ZeroShotPrompt(name),
      "a photo of the " + name + ".",
      "a black and white photo of a " + name + ".",
      "a low resolution photo of a " + name + ".",
      "a small photo of a " + name + ".",
      a + " " + name + ", a type of " + w.category + ".",
      a + " " + name + " with a " + w.shape + " shape.",
      a + " " + name + " of " + w.length + " length.",
      a + " " + name + " with " + w.sleeve + " sleeve.",
      a + " " + name + " with a " + w.texture + " texture.",
      a + " " + name + " with a " + w.fit + " fit.",
      "a photo of a " + name + " with a " + w.shape + " shape and " + w.length + " length.",
      "a " + std::string(w.fit) + " fit " + name + " with " + w.sleeve + " sleeve and a " + w.texture + " texture.",
  };
}

}  // namespace

const std::vector<std::string>& FashionMnistAttributeWords() {
  static const std::vector<std::string> kBases = {"shape", "length", "sleeve", "texture", "fit"};
  return kBases;
}

std::string ZeroShotPrompt(const std::string& classname) {
  return data::FillTemplate(data::FindLayout("fashion_mnist")->prompt_template, classname);
}

const std::vector<ClassCaptions>& FashionMnistCaptions() {
  static const std::vector<ClassCaptions> kCaptions = [] {
    std::vector<ClassCaptions> out;
    const auto& names = data::FashionMnistClassNames();
    static_assert(sizeof(kWords) / sizeof(kWords[0]) == 10, "one entry per Fashion-MNIST class");
    for (size_t i = 0; i < names.size(); ++i) {
      // Captions speak of "a trouser", as the prompts do; '_' would be a space there too.
      std::string name = names[i];
      for (char& c : name) {
        if (c == '_') c = ' ';
      }
      out.push_back({names[i], CaptionsFor(name, kWords[i])});
    }
    return out;
  }();
  return kCaptions;
}

std::vector<std::string> VocabularyCorpus(const std::vector<ClassCaptions>& captions) {
  std::vector<std::string> corpus;
  for (const auto& c : captions) corpus.insert(corpus.end(), c.captions.begin(), c.captions.end());
  // The prompt learners write "X" where a soft token goes and keep the attribute words and the
  // class name as text: "X X shape X X length X X sleeve X X texture X X fit X X sandal."
  for (const auto& c : captions) {
    std::string line;
    for (const std::string& attribute : FashionMnistAttributeWords()) line += "X X " + attribute + " ";
    std::string name = c.classname;
    for (char& ch : name) {
      if (ch == '_') ch = ' ';
    }
    corpus.push_back(line + "X X " + name + ".");
  }
  corpus.push_back("X X X X a photo of a");
  corpus.push_back("a type of");
  return corpus;
}

}  // namespace atp::pretrain
