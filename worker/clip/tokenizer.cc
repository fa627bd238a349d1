#include "worker/clip/tokenizer.h"

#include <unicode/uchar.h>
#include <zlib.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <unordered_map>

#include "worker/clip/text_cleaner.h"

namespace atp::clip {
namespace {

constexpr const char* kVocabFileName = "bpe_simple_vocab_16e6.txt.gz";

// bytes_to_unicode(): printable bytes keep their code point, the other 68 move to 256+n.
// The order of the returned bytes is the order of the first 256 vocabulary ids.
struct ByteTable {
  std::string encoded[256];  // byte -> UTF-8 of its stand-in character
  std::vector<int> order;    // vocabulary order of the bytes
  ByteTable() {
    std::vector<bool> kept(256, false);
    for (int b = '!'; b <= '~'; ++b) kept[b] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) kept[b] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) kept[b] = true;
    for (int b = 0; b < 256; ++b) {
      if (kept[b]) {
        order.push_back(b);
        encoded[b] = EncodeUtf8(std::u32string(1, static_cast<char32_t>(b)));
      }
    }
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      if (!kept[b]) {
        order.push_back(b);
        encoded[b] = EncodeUtf8(std::u32string(1, static_cast<char32_t>(256 + n)));
        ++n;
      }
    }
  }
};

const ByteTable& Bytes() {
  static const ByteTable table;
  return table;
}

Result<std::string> ReadMaybeGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return NotFound("cannot open CLIP vocabulary " + path);
  std::string data;
  char buf[1 << 16];
  while (true) {
    int n = gzread(f, buf, sizeof(buf));
    if (n < 0) {
      int errnum = 0;
      std::string msg = gzerror(f, &errnum);
      gzclose(f);
      return IoError("cannot read CLIP vocabulary " + path + ": " + msg +
                     " (is the file complete? it should be OpenAI's " + kVocabFileName + ")");
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  gzclose(f);
  return data;
}

// Python's re.IGNORECASE (simple case folding) comparison of one character.
bool FoldEq(char32_t c, char32_t literal) {
  return u_foldCase(static_cast<UChar32>(c), U_FOLD_CASE_DEFAULT) == static_cast<UChar32>(literal);
}

size_t MatchLiteral(std::u32string_view text, size_t pos, std::u32string_view literal) {
  if (text.size() - pos < literal.size()) return 0;
  for (size_t i = 0; i < literal.size(); ++i) {
    if (!FoldEq(text[pos + i], literal[i])) return 0;
  }
  return literal.size();
}

}  // namespace

const std::string& ByteSymbol(unsigned char byte) { return Bytes().encoded[byte]; }

std::vector<std::string> InitialBpeSymbols(std::string_view utf8_piece) {
  std::vector<std::string> word;
  for (unsigned char b : utf8_piece) word.push_back(ByteSymbol(b));
  if (!word.empty()) word.back() += "</w>";
  return word;
}

struct ClipTokenizer::State {
  std::unordered_map<std::string, int> encoder;
  std::unordered_map<std::string, int> ranks;  // "first second" -> merge index
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache;
};

ClipTokenizer::ClipTokenizer() : state_(std::make_unique<State>()) {}
ClipTokenizer::~ClipTokenizer() = default;

std::vector<std::string> DefaultVocabSearchDirs() {
  std::vector<std::string> dirs;
  std::error_code ec;
  std::filesystem::path cwd = std::filesystem::current_path(ec);
  if (!ec) {
    dirs.push_back(cwd.string());
    dirs.push_back(cwd.parent_path().string());
  }
#ifdef ATP_SOURCE_DIR
  dirs.push_back(ATP_SOURCE_DIR);
#endif
  return dirs;
}

Result<std::string> ResolveVocabPath(const std::string& explicit_path, const std::vector<std::string>& search_dirs) {
  namespace fs = std::filesystem;
  std::vector<std::string> tried;
  auto check = [&](const std::string& p, const std::string& why) -> bool {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return true;
    tried.push_back(p + " (" + why + ")");
    return false;
  };
  if (!explicit_path.empty()) {
    if (check(explicit_path, "given explicitly")) return explicit_path;
    return NotFound("CLIP vocabulary not found: " + explicit_path + " (given explicitly) does not exist");
  }
  if (const char* env = std::getenv("ATP_CLIP_VOCAB"); env != nullptr && *env != '\0') {
    if (check(env, "$ATP_CLIP_VOCAB")) return std::string(env);
  }
  for (const std::string& dir : search_dirs) {
    std::string p = (fs::path(dir) / ".." / "shared" / "clip" / kVocabFileName).lexically_normal().string();
    if (check(p, "../shared/clip from " + dir)) return p;
  }
  std::string msg = "CLIP vocabulary " + std::string(kVocabFileName) +
                    " not found; pass its path, or set ATP_CLIP_VOCAB. Tried:";
  for (const std::string& t : tried) msg += "\n  " + t;
  if (tried.empty()) msg += " nothing";
  return NotFound(msg);
}

Result<std::shared_ptr<const ClipTokenizer>> ClipTokenizer::Load(const std::string& vocab_path) {
  ATP_ASSIGN_OR_RETURN(std::string data, ReadMaybeGzip(vocab_path));
  return Parse(data, vocab_path);
}

Result<std::shared_ptr<const ClipTokenizer>> ClipTokenizer::Parse(const std::string& data, const std::string& vocab_path) {
  auto not_vocab = [&](const std::string& why) {
    return InvalidArgument("CLIP vocabulary " + vocab_path + ": " + why +
                           "; expected a BPE merge list (a header line, then one \"first second\" merge "
                           "per line) such as OpenAI's " + kVocabFileName);
  };
  if (!DecodeUtf8(data).ok()) return not_vocab("not UTF-8 text");
  std::shared_ptr<ClipTokenizer> tok(new ClipTokenizer());
  const ByteTable& bytes = Bytes();
  std::vector<std::string>& vocab = tok->decoder_;
  for (int b : bytes.order) vocab.push_back(bytes.encoded[b]);
  for (int b : bytes.order) vocab.push_back(bytes.encoded[b] + "</w>");

  // The first line (OpenAI's reads "bpe_simple_vocab_16e6.txt#version: 0.2") is skipped.
  size_t pos = data.find('\n');
  if (pos == std::string::npos) return not_vocab("no line break after the header line");
  ++pos;
  // The file's final line break ends the last merge rather than starting an empty one.
  size_t text_end = data.size();
  if (text_end > pos && data[text_end - 1] == '\n') --text_end;
  for (int i = 0; i < kMaxMerges && pos < text_end; ++i) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos || end > text_end) end = text_end;
    std::string_view line(data.data() + pos, end - pos);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 >= line.size() ||
        line.find(' ', sp + 1) != std::string_view::npos) {
      return not_vocab("line " + std::to_string(i + 2) + " is not a merge of two symbols");
    }
    std::string first(line.substr(0, sp)), second(line.substr(sp + 1));
    // dict(zip(...)) in the reference: a repeated key keeps its last value.
    tok->state_->ranks[first + " " + second] = i;
    vocab.push_back(first + second);
    pos = end + 1;
  }
  vocab.push_back("<|startoftext|>");
  vocab.push_back("<|endoftext|>");
  for (size_t id = 0; id < vocab.size(); ++id) tok->state_->encoder[vocab[id]] = static_cast<int>(id);
  return std::shared_ptr<const ClipTokenizer>(std::move(tok));
}

std::vector<std::u32string> ClipTokenizer::PreTokenize(std::u32string_view text) {
  // <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
  // with re.IGNORECASE; findall takes, at each position, the first alternative that matches.
  static const std::u32string_view kLiterals[] = {U"<|startoftext|>", U"<|endoftext|>", U"'s", U"'t",
                                                  U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  std::vector<std::u32string> pieces;
  size_t i = 0;
  while (i < text.size()) {
    size_t len = 0;
    for (std::u32string_view lit : kLiterals) {
      if ((len = MatchLiteral(text, i, lit)) != 0) break;
    }
    if (len == 0) {
      char32_t c = text[i];
      if (IsLetter(c)) {
        len = 1;
        while (i + len < text.size() && IsLetter(text[i + len])) ++len;
      } else if (IsNumber(c)) {
        len = 1;
      } else if (!IsRegexSpace(c)) {
        len = 1;
        while (i + len < text.size()) {
          char32_t d = text[i + len];
          if (IsRegexSpace(d) || IsLetter(d) || IsNumber(d)) break;
          ++len;
        }
      }
    }
    if (len == 0) {
      ++i;  // whitespace: no alternative matches here
      continue;
    }
    pieces.emplace_back(text.substr(i, len));
    i += len;
  }
  return pieces;
}

std::vector<std::string> ClipTokenizer::Bpe(const std::string& token) const {
  {
    std::lock_guard<std::mutex> lock(state_->cache_mu);
    auto it = state_->cache.find(token);
    if (it != state_->cache.end()) return it->second;
  }
  // One symbol per character of the byte-encoded token; "</w>" joins the last one.
  std::vector<std::string> word;
  for (size_t i = 0; i < token.size();) {
    unsigned char b = static_cast<unsigned char>(token[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : 4;
    word.push_back(token.substr(i, n));
    i += n;
  }
  if (word.empty()) return word;
  word.back() += "</w>";
  while (word.size() > 1) {
    int best = INT_MAX;
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = state_->ranks.find(word[i] + " " + word[i + 1]);
      if (it != state_->ranks.end() && it->second < best) {
        best = it->second;
        best_at = i;
      }
    }
    if (best == INT_MAX) break;
    const std::string first = word[best_at], second = word[best_at + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i]);
        ++i;
      }
    }
    word = std::move(merged);
  }
  std::lock_guard<std::mutex> lock(state_->cache_mu);
  state_->cache.emplace(token, word);
  return word;
}

Result<std::vector<int>> ClipTokenizer::Encode(std::string_view utf8_text) const {
  ATP_ASSIGN_OR_RETURN(std::u32string text, DecodeUtf8(utf8_text));
  std::u32string cleaned = CleanClipText(text);
  std::vector<int> ids;
  const ByteTable& bytes = Bytes();
  for (const std::u32string& piece : PreTokenize(cleaned)) {
    std::string utf8 = EncodeUtf8(piece);
    // The reference seeds its cache with the two special tokens, which bypass BPE.
    if (utf8 == "<|startoftext|>") {
      ids.push_back(start_of_text());
      continue;
    }
    if (utf8 == "<|endoftext|>") {
      ids.push_back(end_of_text());
      continue;
    }
    std::string encoded;
    for (unsigned char b : utf8) encoded += bytes.encoded[b];
    for (const std::string& sym : Bpe(encoded)) {
      auto it = state_->encoder.find(sym);
      if (it == state_->encoder.end()) {
        return Internal("BPE produced a symbol missing from the vocabulary: " + sym);
      }
      ids.push_back(it->second);
    }
  }
  return ids;
}

Result<std::vector<int>> ClipTokenizer::Tokenize(std::string_view utf8_text, OverlongPolicy policy,
                                                 int context_length) const {
  ATP_ASSIGN_OR_RETURN(std::vector<int> body, Encode(utf8_text));
  std::vector<int> ids;
  ids.reserve(body.size() + 2);
  ids.push_back(start_of_text());
  ids.insert(ids.end(), body.begin(), body.end());
  ids.push_back(end_of_text());
  if (static_cast<int>(ids.size()) > context_length) {
    if (policy == OverlongPolicy::kError) {
      return InvalidArgument("text is " + std::to_string(ids.size()) + " tokens with start and end, longer than the context length " +
                             std::to_string(context_length) + "; shorten it or ask for truncation");
    }
    ids.resize(static_cast<size_t>(context_length));
    ids.back() = end_of_text();
  }
  ids.resize(static_cast<size_t>(context_length), 0);
  return ids;
}

}  // namespace atp::clip
