// PromptLayout: where every soft token, attribute word, class name and special token sits in
// each class's prompt, position by position — the text side of CoOp, CoCoOp, MaPLe and DePT,
// each with or without ATPrompt's attribute blocks. Built once per set of class names from a
// PromptDesign and the tokenizer; no libtorch, so layouts are tested token by token. Immutable
// after construction; thread-safe to read.
//
// Two compatibility modes (docs/methods.md lists every divergence):
//  - kPaper: attribute words are kept whole, however many BPE tokens they take.
//  - kOfficial: the released trainers' fixed offsets, which assume one token per attribute
//    word: a k-token word keeps only its first token and later blocks shift
//    (docs/reference.md §3.3).
// The two agree whenever every attribute word is a single token.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace atp::clip {
class ClipTokenizer;
}

namespace atp::prompt {

enum class ClassPosition { kEnd, kMiddle, kFront };
enum class Compat { kPaper, kOfficial };

Result<ClassPosition> ParseClassPosition(const std::string& text);  // "end" | "middle" | "front"
const char* ClassPositionName(ClassPosition position);
Result<Compat> ParseCompat(const std::string& text);                // "paper" | "official"
const char* CompatName(Compat compat);

struct PromptDesign {
  int n_ctx = 2;                         // class soft tokens (the "C" block)
  std::vector<std::string> attributes;   // ATPrompt attribute words in order; empty = vanilla
  std::vector<int> attribute_ctx;        // soft tokens before each attribute word (empty: n_ctx each)
  ClassPosition class_position = ClassPosition::kEnd;
  Compat compat = Compat::kPaper;
  // Vanilla CoCoOp/MaPLe: a phrase ("a photo of a") that stays in the template; its first
  // n_ctx tokens are the class context, initialised from their embeddings. Ignored when it
  // has fewer than n_ctx tokens (the official code then uses random "X" context).
  std::string ctx_init;
  // Keep '_' in class names (the official CoOp_ATP/CoCoOp_ATP with ATPrompt off,
  // docs/reference.md §3.0).
  bool keep_underscores = false;

  int AttributeCtx(size_t k) const { return attribute_ctx.empty() ? n_ctx : attribute_ctx.at(k); }
};

// What fills one position of the text encoder's input.
enum class SlotKind {
  kFixed,             // a frozen token embedding: row `source` of this class's template
  kClassContext,      // row `index` of the learned class context `ctx`
  kAttributeContext,  // row `index` of the learned attribute context of block `block`
};

struct Slot {
  SlotKind kind = SlotKind::kFixed;
  int block = 0;   // kAttributeContext: which attribute (0-based)
  int index = 0;   // row within the learned tensor
  int source = 0;  // kFixed: position in template_ids whose embedding is used
};

struct ClassPrompt {
  std::string text;               // the template text ("X X shape X X size X X dog.")
  std::vector<int> template_ids;  // its tokens with SOT/EOT, zero padded to the context length
  std::vector<Slot> slots;        // one per position, context length long
  int eot = 0;                    // position of <|endoftext|> in the encoder input
  std::vector<int> class_context_positions;  // positions holding ctx rows, in row order
};

struct PromptLayout {
  PromptDesign design;
  int context_length = 77;
  std::vector<std::string> class_names;  // as given (before '_' replacement)
  std::vector<ClassPrompt> classes;      // one per class, in label order
  // For each attribute block, how many tokens its word has (1 for most words).
  std::vector<int> attribute_word_tokens;
  // Warnings a user should see in the job's log (e.g. an attribute word cut by kOfficial).
  std::vector<std::string> notes;
};

// Fails (naming the class or word) when a prompt does not fit the context, when a name or
// attribute is empty, or when n_ctx / attribute_ctx are out of range.
Result<PromptLayout> BuildPromptLayout(const PromptDesign& design, const std::vector<std::string>& class_names,
                                       const clip::ClipTokenizer& tokenizer, int context_length = 77);

// One line per class prompt, tokens by role, e.g. "SOS a a shape a a size c c dog . EOT":
// soft attribute tokens print as "a", class context as "c", fixed tokens as their text.
std::string DescribeClassPrompt(const ClassPrompt& prompt, const clip::ClipTokenizer& tokenizer);

}  // namespace atp::prompt
