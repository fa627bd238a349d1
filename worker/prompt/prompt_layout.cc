#include "worker/prompt/prompt_layout.h"

#include <algorithm>

#include "worker/clip/tokenizer.h"

namespace atp::prompt {

Result<ClassPosition> ParseClassPosition(const std::string& text) {
  if (text == "end") return ClassPosition::kEnd;
  if (text == "middle") return ClassPosition::kMiddle;
  if (text == "front") return ClassPosition::kFront;
  return InvalidArgument("class_position is \"" + text + "\"; valid values: \"end\", \"middle\", \"front\"");
}

const char* ClassPositionName(ClassPosition position) {
  switch (position) {
    case ClassPosition::kEnd: return "end";
    case ClassPosition::kMiddle: return "middle";
    case ClassPosition::kFront: return "front";
  }
  return "?";
}

Result<Compat> ParseCompat(const std::string& text) {
  if (text == "paper") return Compat::kPaper;
  if (text == "official") return Compat::kOfficial;
  return InvalidArgument("compat is \"" + text + "\"; valid values: \"paper\", \"official\"");
}

const char* CompatName(Compat compat) { return compat == Compat::kPaper ? "paper" : "official"; }

namespace {

// A run of prompt positions: learned rows of one tensor, or fixed tokens.
struct Piece {
  SlotKind kind = SlotKind::kFixed;
  int block = 0;
  int first_index = 0;          // learned: first row
  std::vector<int> ids;         // the token ids at these positions (placeholders for learned rows)
};

Piece Learned(SlotKind kind, int block, int first_index, int count, int placeholder) {
  return Piece{kind, block, first_index, std::vector<int>(static_cast<size_t>(count), placeholder)};
}

Piece Fixed(std::vector<int> ids) { return Piece{SlotKind::kFixed, 0, 0, std::move(ids)}; }

std::string PromptName(const std::string& name, bool keep_underscores) {
  if (keep_underscores) return name;
  std::string out = name;
  std::replace(out.begin(), out.end(), '_', ' ');
  return out;
}

std::string Repeat(const std::string& word, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += (i ? " " : "") + word;
  return out;
}

}  // namespace

Result<PromptLayout> BuildPromptLayout(const PromptDesign& design, const std::vector<std::string>& class_names,
                                       const clip::ClipTokenizer& tokenizer, int context_length) {
  const int n = design.n_ctx;
  const int k = static_cast<int>(design.attributes.size());
  if (n < 0 || n > context_length - 4) {
    return InvalidArgument("n_ctx is " + std::to_string(n) + "; it must be between 0 and " +
                           std::to_string(context_length - 4));
  }
  if (!design.attribute_ctx.empty() && static_cast<int>(design.attribute_ctx.size()) != k) {
    return InvalidArgument("attribute_ctx has " + std::to_string(design.attribute_ctx.size()) +
                           " entries for " + std::to_string(k) + " attributes");
  }
  for (int b = 0; b < k; ++b) {
    if (design.AttributeCtx(b) < 1 || design.AttributeCtx(b) > context_length - 4) {
      return InvalidArgument("attribute '" + design.attributes[b] + "' needs between 1 and " +
                             std::to_string(context_length - 4) + " soft tokens, got " +
                             std::to_string(design.AttributeCtx(b)));
    }
  }
  if (class_names.empty()) return InvalidArgument("a prompt layout needs at least one class");

  ATP_ASSIGN_OR_RETURN(std::vector<int> empty, tokenizer.Tokenize("", clip::OverlongPolicy::kError, context_length));
  const int sot = empty[0];
  const int eot = empty[1];
  ATP_ASSIGN_OR_RETURN(std::vector<int> x_ids, tokenizer.Encode("X"));
  if (x_ids.size() != 1) return Internal("the placeholder word \"X\" is not a single token in this vocabulary");
  const int x = x_ids[0];

  PromptLayout layout;
  layout.design = design;
  layout.context_length = context_length;
  layout.class_names = class_names;

  std::vector<std::vector<int>> word_ids(static_cast<size_t>(k));
  for (int b = 0; b < k; ++b) {
    const std::string& word = design.attributes[b];
    if (word.empty()) return InvalidArgument("attribute " + std::to_string(b + 1) + " is empty");
    ATP_ASSIGN_OR_RETURN(word_ids[b], tokenizer.Encode(word));
    if (word_ids[b].empty()) return InvalidArgument("attribute '" + word + "' has no tokens");
    layout.attribute_word_tokens.push_back(static_cast<int>(word_ids[b].size()));
    if (word_ids[b].size() > 1 && design.compat == Compat::kOfficial && design.class_position == ClassPosition::kEnd) {
      layout.notes.push_back("attribute '" + word + "' is " + std::to_string(word_ids[b].size()) +
                             " tokens; compat = \"official\" keeps only its first token and shifts the later "
                             "blocks, as the released trainers' fixed offsets do");
    }
  }

  // ctx_init: its first n tokens are the class context, the rest stays in the template.
  std::vector<int> init_ids;
  if (!design.ctx_init.empty()) {
    ATP_ASSIGN_OR_RETURN(init_ids, tokenizer.Encode(design.ctx_init));
    if (static_cast<int>(init_ids.size()) < n || n == 0) init_ids.clear();
  }
  const bool use_init = !init_ids.empty();
  ATP_ASSIGN_OR_RETURN(std::vector<int> period, tokenizer.Encode("."));

  std::string* text_sink = nullptr;
  auto attribute_block = [&](int b) {
    if (text_sink) {
      *text_sink += (text_sink->empty() ? "" : " ") + Repeat("X", design.AttributeCtx(b)) + " " + design.attributes[b];
    }
    return std::vector<Piece>{Learned(SlotKind::kAttributeContext, b, 0, design.AttributeCtx(b), x),
                              Fixed(word_ids[b])};
  };
  auto context_block = [&](int first, int count) {
    if (text_sink && !use_init && count > 0) *text_sink += (text_sink->empty() ? "" : " ") + Repeat("X", count);
    if (use_init) {
      return Piece{SlotKind::kClassContext, 0, first,
                   std::vector<int>(init_ids.begin() + first, init_ids.begin() + first + count)};
    }
    return Learned(SlotKind::kClassContext, 0, first, count, x);
  };

  for (const std::string& raw_name : class_names) {
    if (raw_name.empty()) return InvalidArgument("a class name is empty");
    const std::string name = PromptName(raw_name, design.keep_underscores);
    ATP_ASSIGN_OR_RETURN(std::vector<int> name_ids, tokenizer.Encode(name));
    ATP_ASSIGN_OR_RETURN(std::vector<int> name_period_ids, tokenizer.Encode(name + "."));

    std::vector<Piece> pieces;
    std::string text;  // the template text the official trainers tokenise ("X X shape X X dog.")
    auto say = [&](const std::string& words) {
      if (!words.empty()) text += (text.empty() || words == "." ? "" : " ") + words;
    };
    auto append = [&](std::vector<Piece> more) { pieces.insert(pieces.end(), more.begin(), more.end()); };
    text_sink = &text;
    switch (design.class_position) {
      case ClassPosition::kEnd:
        for (int b = 0; b < k; ++b) append(attribute_block(b));
        if (use_init) say(design.ctx_init);
        pieces.push_back(context_block(0, n));
        if (use_init) pieces.push_back(Fixed(std::vector<int>(init_ids.begin() + n, init_ids.end())));
        say(name + ".");
        pieces.push_back(Fixed(name_period_ids));
        break;
      case ClassPosition::kFront:
        if (k == 0) {
          // CoOp's "front": [SOS][class][ctx][.][EOT].
          say(name);
          pieces.push_back(Fixed(name_ids));
          pieces.push_back(context_block(0, n));
        } else {
          // ATPrompt's "front": [SOS][C][class][A1][w1]...[.][EOT].
          pieces.push_back(context_block(0, n));
          say(name);
          pieces.push_back(Fixed(name_ids));
          for (int b = 0; b < k; ++b) append(attribute_block(b));
        }
        say(".");
        pieces.push_back(Fixed(period));
        break;
      case ClassPosition::kMiddle:
        if (k == 0) {
          // CoOp's "middle": [SOS][ctx 1..n/2][class][ctx n/2+1..n][.][EOT].
          pieces.push_back(context_block(0, n / 2));
          say(name);
          pieces.push_back(Fixed(name_ids));
          pieces.push_back(context_block(n / 2, n - n / 2));
        } else {
          // ATPrompt's "middle": the first ceil(k/2) attribute blocks, [C][class], the rest.
          const int before = (k + 1) / 2;
          for (int b = 0; b < before; ++b) append(attribute_block(b));
          pieces.push_back(context_block(0, n));
          say(name);
          pieces.push_back(Fixed(name_ids));
          for (int b = before; b < k; ++b) append(attribute_block(b));
        }
        say(".");
        pieces.push_back(Fixed(period));
        break;
    }
    text_sink = nullptr;

    ClassPrompt prompt;
    std::vector<int> ids = {sot};
    std::vector<Slot> slots = {Slot{SlotKind::kFixed, 0, 0, 0}};
    for (const Piece& piece : pieces) {
      for (size_t i = 0; i < piece.ids.size(); ++i) {
        const int position = static_cast<int>(ids.size());
        ids.push_back(piece.ids[i]);
        Slot slot{piece.kind, piece.block, piece.first_index + static_cast<int>(i), position};
        slots.push_back(slot);
      }
    }
    prompt.eot = static_cast<int>(ids.size());
    ids.push_back(eot);
    slots.push_back(Slot{SlotKind::kFixed, 0, 0, prompt.eot});
    if (static_cast<int>(ids.size()) > context_length) {
      return InvalidArgument("the prompt of class '" + raw_name + "' is " + std::to_string(ids.size()) +
                             " tokens, more than the context length " + std::to_string(context_length) +
                             "; use fewer soft tokens or attributes");
    }
    while (static_cast<int>(ids.size()) < context_length) {
      slots.push_back(Slot{SlotKind::kFixed, 0, 0, static_cast<int>(ids.size())});
      ids.push_back(0);
    }

    // The released trainers slice the template's embeddings at offsets that assume one token
    // per attribute word (docs/reference.md §3.3): prefix, then per block a soft run and ONE
    // template row at 1 + sum(a_j, j <= b) + b, then ctx, then the suffix from
    // 1 + sum(a_j + 1) + n.
    if (design.compat == Compat::kOfficial && k > 0 && design.class_position == ClassPosition::kEnd) {
      std::vector<Slot> official = {Slot{SlotKind::kFixed, 0, 0, 0}};
      int soft_so_far = 0;
      for (int b = 0; b < k; ++b) {
        for (int i = 0; i < design.AttributeCtx(b); ++i) {
          official.push_back(Slot{SlotKind::kAttributeContext, b, i, 0});
        }
        soft_so_far += design.AttributeCtx(b);
        official.push_back(Slot{SlotKind::kFixed, 0, 0, 1 + soft_so_far + b});
      }
      for (int i = 0; i < n; ++i) official.push_back(Slot{SlotKind::kClassContext, 0, i, 0});
      const int suffix_start = 1 + soft_so_far + k + n;
      for (int source = suffix_start; static_cast<int>(official.size()) < context_length; ++source) {
        official.push_back(Slot{SlotKind::kFixed, 0, 0, source});
      }
      slots = std::move(official);
      // EOT stays where the template has it: the official code takes argmax of the template ids.
    }

    for (int p = 0; p < context_length; ++p) {
      if (slots[p].kind == SlotKind::kClassContext) prompt.class_context_positions.push_back(p);
    }
    std::sort(prompt.class_context_positions.begin(), prompt.class_context_positions.end(),
              [&](int a, int b) { return slots[a].index < slots[b].index; });
    prompt.text = text;
    prompt.template_ids = std::move(ids);
    prompt.slots = std::move(slots);
    layout.classes.push_back(std::move(prompt));
  }
  return layout;
}

std::string DescribeClassPrompt(const ClassPrompt& prompt, const clip::ClipTokenizer& tokenizer) {
  std::string out;
  for (int p = 0; p <= prompt.eot && p < static_cast<int>(prompt.slots.size()); ++p) {
    const Slot& slot = prompt.slots[p];
    std::string word;
    if (p == 0) {
      word = "SOS";
    } else if (p == prompt.eot) {
      word = "EOT";
    } else if (slot.kind == SlotKind::kAttributeContext) {
      word = "a";
    } else if (slot.kind == SlotKind::kClassContext) {
      word = "c";
    } else {
      word = tokenizer.Token(prompt.template_ids[slot.source]);
      const std::string end = "</w>";
      if (word.size() >= end.size() && word.compare(word.size() - end.size(), end.size(), end) == 0) {
        word.resize(word.size() - end.size());
      }
    }
    out += (out.empty() ? "" : " ") + word;
  }
  return out;
}

}  // namespace atp::prompt
