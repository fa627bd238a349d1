// ClipTokenizer: OpenAI CLIP's byte-level BPE (simple_tokenizer.py + clip.tokenize), token
// for token. Loaded once from a gzip merge list (OpenAI's, or a smaller one in the same format
// such as the one `atp pretrain` learns); Encode/Tokenize are thread-safe (the per-piece BPE
// cache is guarded by a mutex). No libtorch here, so tools and tests that only tokenise stay
// light.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace atp::clip {

inline constexpr int kContextLength = 77;
// The ids of OpenAI's vocabulary. A vocabulary with fewer merges has its own: ask the
// tokenizer (start_of_text(), end_of_text(), vocab_size()).
inline constexpr int kStartOfText = 49406;
inline constexpr int kEndOfText = 49407;
inline constexpr int kVocabSize = 49408;
// simple_tokenizer.py keeps at most this many merges of the file (lines 1..48894).
inline constexpr int kMaxMerges = 49152 - 256 - 2;

// What Tokenize does with text longer than the context (start and end tokens included).
enum class OverlongPolicy {
  kError,     // clip.tokenize(truncate=False): the default
  kTruncate,  // keep the first context_length ids and make the last one <|endoftext|>
};

// The directories whose ../shared/clip/ is searched for the vocabulary, in order: the
// working directory, its parent (a build directory inside the repository), the source tree.
std::vector<std::string> DefaultVocabSearchDirs();

// Finds the vocabulary file: `explicit_path` if non-empty, else $ATP_CLIP_VOCAB, else
// ../shared/clip/bpe_simple_vocab_16e6.txt.gz relative to each of `search_dirs`. The error
// lists every place tried.
Result<std::string> ResolveVocabPath(const std::string& explicit_path,
                                     const std::vector<std::string>& search_dirs = DefaultVocabSearchDirs());

// bytes_to_unicode(): the printable character (as UTF-8) that stands for `byte` in BPE symbols.
const std::string& ByteSymbol(unsigned char byte);

// A pre-tokenised piece (UTF-8) as the word BPE starts from: one symbol per byte, each
// spelled by ByteSymbol, with "</w>" joined to the last. Empty for an empty piece.
std::vector<std::string> InitialBpeSymbols(std::string_view utf8_piece);

class ClipTokenizer {
 public:
  // Reads a merge list: a header line ("#version: 0.2"), then one "first second" merge per
  // line, gzipped or not. Ids are 256 byte symbols, the same with "</w>", one per merge, then
  // <|startoftext|> and <|endoftext|> (always the two largest ids, as CLIP pools at the argmax).
  // At most kMaxMerges merges are used, so OpenAI's bpe_simple_vocab_16e6.txt.gz gives its
  // 49408 ids; a shorter file uses all of its merges.
  static Result<std::shared_ptr<const ClipTokenizer>> Load(const std::string& vocab_path);
  // The same from the file's (uncompressed) text; `source` names it in errors.
  static Result<std::shared_ptr<const ClipTokenizer>> Parse(const std::string& text, const std::string& source);

  // simple_tokenizer.encode: cleaned, pre-tokenised, BPE ids; no start/end tokens.
  Result<std::vector<int>> Encode(std::string_view utf8_text) const;

  // clip.tokenize for one text: [SOT] + ids + [EOT], zero padded to `context_length`.
  // Over-long text is an InvalidArgument error under kError.
  Result<std::vector<int>> Tokenize(std::string_view utf8_text,
                                    OverlongPolicy policy = OverlongPolicy::kError,
                                    int context_length = kContextLength) const;

  // The vocabulary entry for an id (byte-encoded form, "</w>" kept), e.g. 320 -> "a</w>".
  const std::string& Token(int id) const { return decoder_.at(static_cast<size_t>(id)); }
  int vocab_size() const { return static_cast<int>(decoder_.size()); }
  int start_of_text() const { return vocab_size() - 2; }
  int end_of_text() const { return vocab_size() - 1; }
  int num_merges() const { return vocab_size() - 2 * 256 - 2; }

  // The pre-tokenisation pattern of simple_tokenizer.py, run over already-cleaned text.
  static std::vector<std::u32string> PreTokenize(std::u32string_view cleaned);

  ClipTokenizer(const ClipTokenizer&) = delete;
  ClipTokenizer& operator=(const ClipTokenizer&) = delete;
  ~ClipTokenizer();

 private:
  ClipTokenizer();
  std::vector<std::string> Bpe(const std::string& byte_encoded) const;

  struct State;
  std::unique_ptr<State> state_;
  std::vector<std::string> decoder_;
};

}  // namespace atp::clip
