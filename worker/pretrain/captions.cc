#include "worker/pretrain/captions.h"

#include <cctype>

#include "common/hash.h"
#include "worker/data/dataset.h"
#include "worker/data/fashion_mnist.h"

namespace atp::pretrain {
namespace {

// How each class is described along the five attribute bases. The words are plain catalogue
// descriptions of the garments; what matters is that each base word appears after words that
// tell the classes apart, the way ATPrompt's prompts put an attribute word before the class.
struct ClassWords {
  const char* category;  // "a type of ..."
  const char* shape;
  const char* length;
  const char* sleeve;    // completes "with ... sleeve"
  const char* texture;
  const char* fit;
};

// In label order (data::FashionMnistClassNames()).
const ClassWords kWords[] = {
    {"clothing", "boxy", "waist", "a short", "soft cotton", "relaxed"},          // T-shirt/top
    {"clothing", "long straight", "full", "no", "woven denim", "straight"},       // Trouser
    {"clothing", "rounded", "hip", "a long knitted", "knitted wool", "loose"},    // Pullover
    {"clothing", "flared", "knee", "no", "smooth silky", "fitted"},              // Dress
    {"clothing", "long", "thigh", "a long", "thick heavy", "loose"},             // Coat
    {"footwear", "open", "low", "no", "strappy", "open"},                         // Sandal
    {"clothing", "collared", "hip", "a long buttoned", "crisp", "tailored"},     // Shirt
    {"footwear", "low rounded", "low", "no", "mesh", "snug"},                    // Sneaker
    {"accessory", "rectangular", "medium", "no", "leather", "roomy"},            // Bag
    {"footwear", "high", "ankle", "no", "leather", "snug"},                     // Ankle boot
};

// "a" or "an" before `word` (by its first letter, which is right for these words).
std::string A(const std::string& word) {
  const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(word[0])));
  return (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') ? "an " + word : "a " + word;
}

std::vector<std::string> CaptionsFor(const std::string& name, const ClassWords& w) {
  const std::string shape = w.shape, length = w.length, sleeve = w.sleeve, texture = w.texture, fit = w.fit;
  // The evaluation template itself, "a photo of a {}.", is never a caption: the pretraining
  // sees its neighbours ("a photo of the {}.", "a small photo of a {}.") but not it, so the
  // zero-shot prompt is good but not the best prompt, and a learned one has room to beat it
  // (docs/pretrain.md, "Captions").
  return {
      "a photo of the " + name + ".",
      "a black and white photo of a " + name + ".",
      "a low resolution photo of a " + name + ".",
      "a small photo of a " + name + ".",
      A(name) + ", a type of " + w.category + ".",
      A(name) + " with " + A(shape) + " shape.",
      A(name) + " of " + length + " length.",
      A(name) + " with " + sleeve + " sleeve.",
      A(name) + " with " + A(texture) + " texture.",
      A(name) + " with " + A(fit) + " fit.",
      A(name) + " with " + A(shape) + " shape and " + length + " length.",
      A(fit) + " fit " + name + " with " + sleeve + " sleeve and " + A(texture) + " texture.",
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

std::string FashionMnistCorpusSha256() {
  std::string text;
  for (const std::string& line : VocabularyCorpus(FashionMnistCaptions())) text += line + "\n";
  return Sha256Hex(text);
}

}  // namespace atp::pretrain
