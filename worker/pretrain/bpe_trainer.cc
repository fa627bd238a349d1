#include "worker/pretrain/bpe_trainer.h"

#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <unordered_map>

#include "common/atomic_file.h"
#include "worker/clip/text_cleaner.h"
#include "worker/clip/tokenizer.h"

namespace atp::pretrain {
namespace {

// Symbols are interned as ints so that pair counting hashes two ints, not two strings.
class SymbolTable {
 public:
  int Intern(const std::string& name) {
    auto [it, inserted] = ids_.emplace(name, static_cast<int>(names_.size()));
    if (inserted) names_.push_back(name);
    return it->second;
  }
  const std::string& Name(int id) const { return names_[static_cast<size_t>(id)]; }

 private:
  std::unordered_map<std::string, int> ids_;
  std::vector<std::string> names_;
};

struct Word {
  std::vector<int> symbols;
  int64_t count = 0;
};

uint64_t PairKey(int a, int b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

// gzip at level 9, as gzopen(path, "wb9") writes it: zlib's gzip header carries no file name
// or time, so equal merges give equal bytes.
Result<std::string> Gzip(const std::string& text) {
  z_stream stream{};
  if (deflateInit2(&stream, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Internal("cannot start gzip compression of the BPE vocabulary");
  }
  std::string out(deflateBound(&stream, static_cast<uLong>(text.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int code = deflate(&stream, Z_FINISH);
  out.resize(stream.total_out);
  deflateEnd(&stream);
  if (code != Z_STREAM_END) return Internal("cannot gzip the BPE vocabulary (zlib code " + std::to_string(code) + ")");
  return out;
}

}  // namespace

Result<std::vector<BpeMerge>> LearnBpeMerges(const std::vector<std::string>& corpus, const BpeTrainerOptions& options) {
  if (options.max_merges < 0 || options.max_merges > clip::kMaxMerges) {
    return InvalidArgument("BPE: max_merges must be in [0, " + std::to_string(clip::kMaxMerges) + "], got " +
                           std::to_string(options.max_merges));
  }
  if (options.min_pair_count < 1) {
    return InvalidArgument("BPE: min_pair_count must be >= 1, got " + std::to_string(options.min_pair_count));
  }
  // The distinct pieces with their number of occurrences.
  std::unordered_map<std::string, int64_t> piece_counts;
  std::vector<std::string> piece_order;  // first occurrence order, for a stable word list
  for (size_t line = 0; line < corpus.size(); ++line) {
    auto text = clip::DecodeUtf8(corpus[line]);
    if (!text.ok()) {
      return InvalidArgument("BPE corpus line " + std::to_string(line + 1) + " is not UTF-8: " +
                             text.status().message());
    }
    for (const std::u32string& piece : clip::ClipTokenizer::PreTokenize(clip::CleanClipText(*text))) {
      std::string utf8 = clip::EncodeUtf8(piece);
      if (utf8 == "<|startoftext|>" || utf8 == "<|endoftext|>") continue;
      if (piece_counts[utf8]++ == 0) piece_order.push_back(utf8);
    }
  }
  SymbolTable table;
  std::vector<Word> words;
  words.reserve(piece_order.size());
  for (const std::string& piece : piece_order) {
    Word w;
    for (const std::string& s : clip::InitialBpeSymbols(piece)) w.symbols.push_back(table.Intern(s));
    w.count = piece_counts[piece];
    words.push_back(std::move(w));
  }

  std::vector<BpeMerge> merges;
  while (static_cast<int>(merges.size()) < options.max_merges) {
    std::unordered_map<uint64_t, int64_t> pair_counts;
    for (const Word& w : words) {
      for (size_t i = 0; i + 1 < w.symbols.size(); ++i) pair_counts[PairKey(w.symbols[i], w.symbols[i + 1])] += w.count;
    }
    int best_a = -1, best_b = -1;
    int64_t best_count = 0;
    for (const auto& [key, count] : pair_counts) {
      const int a = static_cast<int>(key >> 32), b = static_cast<int>(key & 0xffffffffu);
      bool better = count > best_count;
      if (!better && count == best_count && best_a >= 0) {
        // std::string compares as unsigned bytes: byte order, independent of hash order.
        const int c = table.Name(a).compare(table.Name(best_a));
        better = c < 0 || (c == 0 && table.Name(b) < table.Name(best_b));
      }
      if (better) {
        best_a = a;
        best_b = b;
        best_count = count;
      }
    }
    if (best_a < 0 || best_count < options.min_pair_count) break;
    const int merged = table.Intern(table.Name(best_a) + table.Name(best_b));
    merges.emplace_back(table.Name(best_a), table.Name(best_b));
    // Left to right, as ClipTokenizer's BPE applies a merge.
    for (Word& w : words) {
      std::vector<int> out;
      out.reserve(w.symbols.size());
      for (size_t i = 0; i < w.symbols.size();) {
        if (i + 1 < w.symbols.size() && w.symbols[i] == best_a && w.symbols[i + 1] == best_b) {
          out.push_back(merged);
          i += 2;
        } else {
          out.push_back(w.symbols[i]);
          ++i;
        }
      }
      w.symbols = std::move(out);
    }
  }
  return merges;
}

std::string FormatBpeMerges(const std::vector<BpeMerge>& merges) {
  std::string text = "#version: 0.2\n";
  for (const auto& [first, second] : merges) text += first + " " + second + "\n";
  return text;
}

Status WriteBpeVocabulary(const std::string& path, const std::vector<BpeMerge>& merges) {
  ATP_ASSIGN_OR_RETURN(std::string compressed, Gzip(FormatBpeMerges(merges)));
  return WriteFileAtomically(path, compressed);
}

}  // namespace atp::pretrain
