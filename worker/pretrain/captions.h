// The caption corpus of the demo's tiny CLIP: for each Fashion-MNIST class, a fixed list of
// sentences built from the class name and descriptive attribute words, so that the words the
// ATPrompt demo later puts in its prompts (the placeholder "X", the class names, the five
// attribute bases, "a photo of a") are in the vocabulary and were seen in context. The lists
// are constants: the same on every run. Free functions; thread-safe.
#pragma once

#include <string>
#include <vector>

namespace atp::pretrain {

// The attribute bases atp uses for fashion_mnist (common/attribute_bases.cc), in that order.
const std::vector<std::string>& FashionMnistAttributeWords();

struct ClassCaptions {
  std::string classname;              // as data::FashionMnistClassNames() spells it
  std::vector<std::string> captions;  // sentences ending in "."
};

// One entry per class, in label order. Every class has the same number of captions; none is
// the zero-shot prompt ZeroShotPrompt(classname) (the evaluation template is held out), and
// every attribute word occurs in at least one caption of every class.
const std::vector<ClassCaptions>& FashionMnistCaptions();

// The evaluation prompt of the fashion_mnist dataset: "a photo of a {}." with '_' -> ' '.
std::string ZeroShotPrompt(const std::string& classname);

// The lines the vocabulary is learned from: every caption, then one ATPrompt-shaped prompt per
// class ("X X shape X X length ... X X sandal.", the placeholder words the prompt learners put
// where their soft tokens go) and a few fixed phrases of the prompt templates.
std::vector<std::string> VocabularyCorpus(const std::vector<ClassCaptions>& captions);

// SHA-256 (hex) of VocabularyCorpus(FashionMnistCaptions()), one line per caption: recorded
// with a run so that a run made from other captions is not mistaken for a current one.
std::string FashionMnistCorpusSha256();

}  // namespace atp::pretrain
