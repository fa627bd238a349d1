#include "worker/clip/text_cleaner.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace atp::clip {
namespace {

struct EntityEntry {
  const char* name;
  const char* value;  // UTF-8
};
struct CodepointMap {
  uint32_t from;
  uint32_t to;
};
struct WidthEntry {
  uint32_t from;
  const char* to;  // UTF-8
};

#include "worker/clip/text_tables.inc"

std::u32string FromUtf8Literal(const char* s) {
  // The tables hold valid UTF-8 by construction.
  return DecodeUtf8(s).value();
}

template <size_t N>
const EntityEntry* FindEntity(const EntityEntry (&table)[N], const std::string& name) {
  const EntityEntry* end = table + N;
  const EntityEntry* it = std::lower_bound(
      table, end, name, [](const EntityEntry& e, const std::string& n) { return n.compare(e.name) > 0; });
  if (it != end && name == it->name) return it;
  return nullptr;
}

std::string Ascii(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) out.push_back(static_cast<char>(c));
  return out;
}

bool IsAsciiDigit(char32_t c) { return c >= '0' && c <= '9'; }
bool IsAsciiHex(char32_t c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool IsAsciiAlnum(char32_t c) {
  return IsAsciiDigit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Python's html._replace_charref for a numeric reference: digits are in `digits`, already
// stripped of '#', 'x' and ';'.
std::u32string NumericCharref(std::u32string_view digits, int base) {
  // Anything above 0x10FFFF maps to U+FFFD, so saturate instead of overflowing.
  uint64_t num = 0;
  for (char32_t c : digits) {
    uint32_t d = IsAsciiDigit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
    num = num * base + d;
    if (num > 0x110000) num = 0x110000;
  }
  for (const CodepointMap& m : kInvalidCharrefs) {
    if (m.from == num) return std::u32string(1, static_cast<char32_t>(m.to));
  }
  if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) return U"\uFFFD";
  for (uint32_t bad : kInvalidCodepoints) {
    if (bad == num) return U"";
  }
  return std::u32string(1, static_cast<char32_t>(num));
}

// One ftfy segment pass (fix_and_explain's loop body, minus fix_encoding/fix_surrogates).
std::u32string FtfyUnescapeHtml(std::u32string_view text) {
  // ftfy's HTML_ENTITY_RE: &#?[0-9A-Za-z]{1,24};
  std::u32string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != U'&') {
      out.push_back(text[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < text.size() && text[j] == U'#') ++j;
    size_t k = j;
    while (k < text.size() && k - j < 24 && IsAsciiAlnum(text[k])) ++k;
    if (k == j || k >= text.size() || text[k] != U';') {
      out.push_back(text[i++]);
      continue;
    }
    std::u32string_view match = text.substr(i, k + 1 - i);
    std::string name = Ascii(match.substr(1));  // "name;" or "#123;"
    if (const EntityEntry* e = FindEntity(kHtml5Entities, name)) {
      out += FromUtf8Literal(e->value);
    } else if (const EntityEntry* u = FindEntity(kFtfyUpperEntities, name)) {
      out += FromUtf8Literal(u->value);
    } else if (name[0] == '#') {
      std::u32string decoded = HtmlUnescape(match);
      // ftfy keeps the text when html.unescape did not consume the ';'.
      if (decoded.find(U';') != std::u32string::npos) {
        out += match;
      } else {
        out += decoded;
      }
    } else {
      out += match;
    }
    i = k + 1;
  }
  return out;
}

std::u32string FixC1Controls(std::u32string_view text) {
  // Windows-1252 for 0x80..0x9F; the five undefined bytes stay as they are ("sloppy").
  static const char32_t kCp1252[32] = {
      0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
      0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};
  std::u32string out(text);
  for (char32_t& c : out) {
    if (c >= 0x80 && c <= 0x9F) c = kCp1252[c - 0x80];
  }
  return out;
}

std::u32string FixLatinLigatures(std::u32string_view text) {
  std::u32string out;
  for (char32_t c : text) {
    switch (c) {
      case 0x0132: out += U"IJ"; break;
      case 0x0133: out += U"ij"; break;
      case 0x0149: out += U"\u02BCn"; break;
      case 0x01F1: out += U"DZ"; break;
      case 0x01F2: out += U"Dz"; break;
      case 0x01F3: out += U"dz"; break;
      case 0x01C4: out += U"D\u017D"; break;
      case 0x01C5: out += U"D\u017E"; break;
      case 0x01C6: out += U"d\u017E"; break;
      case 0x01C7: out += U"LJ"; break;
      case 0x01C8: out += U"Lj"; break;
      case 0x01C9: out += U"lj"; break;
      case 0x01CA: out += U"NJ"; break;
      case 0x01CB: out += U"Nj"; break;
      case 0x01CC: out += U"nj"; break;
      case 0xFB00: out += U"ff"; break;
      case 0xFB01: out += U"fi"; break;
      case 0xFB02: out += U"fl"; break;
      case 0xFB03: out += U"ffi"; break;
      case 0xFB04: out += U"ffl"; break;
      case 0xFB05: out += U"\u017Ft"; break;
      case 0xFB06: out += U"st"; break;
      default: out.push_back(c);
    }
  }
  return out;
}

std::u32string FixCharacterWidth(std::u32string_view text) {
  std::u32string out;
  for (char32_t c : text) {
    const WidthEntry* end = kWidthMap + sizeof(kWidthMap) / sizeof(kWidthMap[0]);
    const WidthEntry* it = std::lower_bound(
        kWidthMap, end, c, [](const WidthEntry& e, char32_t v) { return e.from < v; });
    if (it != end && it->from == c) {
      out += FromUtf8Literal(it->to);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string UncurlQuotes(std::u32string_view text) {
  std::u32string out(text);
  for (char32_t& c : out) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
    else if (c >= 0x201C && c <= 0x201F) c = U'"';
  }
  return out;
}

std::u32string FixLineBreaks(std::u32string_view text) {
  std::u32string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char32_t c = text[i];
    if (c == U'\r') {
      if (i + 1 < text.size() && text[i + 1] == U'\n') ++i;
      out.push_back(U'\n');
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back(U'\n');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

bool IsUnicodeDecimal(char32_t c) { return u_charType(static_cast<UChar32>(c)) == U_DECIMAL_DIGIT_NUMBER; }

std::u32string RemoveTerminalEscapes(std::u32string_view text) {
  // ftfy's ANSI_RE: \033\[((?:\d|;)*)([a-zA-Z]) with Python re's Unicode \d.
  std::u32string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == 0x1B && i + 1 < text.size() && text[i + 1] == U'[') {
      size_t j = i + 2;
      while (j < text.size() && (text[j] == U';' || IsUnicodeDecimal(text[j]))) ++j;
      if (j < text.size() && ((text[j] >= 'a' && text[j] <= 'z') || (text[j] >= 'A' && text[j] <= 'Z'))) {
        i = j + 1;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

bool IsRemovedControl(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
         (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

std::u32string RemoveControlChars(std::u32string_view text) {
  std::u32string out;
  for (char32_t c : text) {
    if (!IsRemovedControl(c)) out.push_back(c);
  }
  return out;
}

std::u32string ToU32(const icu::UnicodeString& s) {
  std::u32string out(static_cast<size_t>(s.countChar32()), U'\0');
  UErrorCode status = U_ZERO_ERROR;
  int32_t n = s.toUTF32(reinterpret_cast<UChar32*>(out.data()), static_cast<int32_t>(out.size()), status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU toUTF32: ") + u_errorName(status));
  out.resize(static_cast<size_t>(n));
  return out;
}

icu::UnicodeString FromU32(std::u32string_view s) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(s.data()),
                                       static_cast<int32_t>(s.size()));
}

std::u32string Nfc(std::u32string_view text) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU NFC: ") + u_errorName(status));
  icu::UnicodeString normalized = nfc->normalize(FromU32(text), status);
  if (U_FAILURE(status)) throw std::runtime_error(std::string("ICU NFC: ") + u_errorName(status));
  return ToU32(normalized);
}

std::u32string FixSegment(std::u32string text, bool unescape_html) {
  while (true) {
    std::u32string orig = text;
    if (unescape_html) text = FtfyUnescapeHtml(text);
    text = FixC1Controls(text);
    text = FixLatinLigatures(text);
    text = FixCharacterWidth(text);
    text = UncurlQuotes(text);
    text = FixLineBreaks(text);
    text = RemoveTerminalEscapes(text);
    text = RemoveControlChars(text);
    text = Nfc(text);
    if (text == orig) return text;
  }
}

std::u32string PythonStrip(std::u32string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && IsPythonSpace(s[b])) ++b;
  while (e > b && IsPythonSpace(s[e - 1])) --e;
  return std::u32string(s.substr(b, e - b));
}

}  // namespace

Result<std::u32string> DecodeUtf8(std::string_view bytes) {
  std::u32string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    unsigned char b0 = static_cast<unsigned char>(bytes[i]);
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 0x6 ? 2 : (b0 >> 4) == 0xE ? 3 : (b0 >> 3) == 0x1E ? 4 : 0;
    auto bad = [&] {
      return InvalidArgument("invalid UTF-8 at byte " + std::to_string(i) + "; the CLIP tokenizer needs UTF-8 text");
    };
    if (len == 0 || i + len > bytes.size()) return bad();
    char32_t c = len == 1 ? b0 : len == 2 ? (b0 & 0x1F) : len == 3 ? (b0 & 0x0F) : (b0 & 0x07);
    for (int k = 1; k < len; ++k) {
      unsigned char b = static_cast<unsigned char>(bytes[i + k]);
      if ((b & 0xC0) != 0x80) return bad();
      c = (c << 6) | (b & 0x3F);
    }
    static const char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < kMin[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return bad();
    out.push_back(c);
    i += len;
  }
  return out;
}

std::string EncodeUtf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) {
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

std::u32string HtmlUnescape(std::u32string_view text) {
  // Python's html._charref: &(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)
  if (text.find(U'&') == std::u32string_view::npos) return std::u32string(text);
  std::u32string out;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] != U'&') {
      out.push_back(text[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < text.size() && text[j] == U'#') {
      size_t k = j + 1;
      int base = 10;
      if (k < text.size() && IsAsciiDigit(text[k])) {
        while (k < text.size() && IsAsciiDigit(text[k])) ++k;
      } else if (k + 1 < text.size() && (text[k] == U'x' || text[k] == U'X') && IsAsciiHex(text[k + 1])) {
        base = 16;
        ++k;
        while (k < text.size() && IsAsciiHex(text[k])) ++k;
      } else {
        out.push_back(text[i++]);
        continue;
      }
      size_t digits_begin = j + (base == 16 ? 2 : 1);
      std::u32string decoded = NumericCharref(text.substr(digits_begin, k - digits_begin), base);
      if (k < text.size() && text[k] == U';') ++k;
      out += decoded;
      i = k;
      continue;
    }
    size_t k = j;
    auto name_char = [](char32_t c) {
      return c != U'\t' && c != U'\n' && c != U'\f' && c != U' ' && c != U'<' && c != U'&' && c != U'#' && c != U';';
    };
    while (k < text.size() && k - j < 32 && name_char(text[k])) ++k;
    if (k == j) {
      out.push_back(text[i++]);
      continue;
    }
    if (k < text.size() && text[k] == U';') ++k;
    std::u32string_view s = text.substr(j, k - j);
    bool ascii = std::all_of(s.begin(), s.end(), [](char32_t c) { return c < 0x80; });
    bool replaced = false;
    if (ascii) {
      if (const EntityEntry* e = FindEntity(kHtml5Entities, Ascii(s))) {
        out += FromUtf8Literal(e->value);
        replaced = true;
      } else {
        // The longest prefix (of at least two characters) that is an entity name.
        for (size_t x = s.size() - 1; x > 1; --x) {
          if (const EntityEntry* p = FindEntity(kHtml5Entities, Ascii(s.substr(0, x)))) {
            out += FromUtf8Literal(p->value);
            out += s.substr(x);
            replaced = true;
            break;
          }
        }
      }
    } else {
      // Entity names are ASCII, so only an ASCII prefix can match.
      size_t ascii_len = 0;
      while (ascii_len < s.size() && s[ascii_len] < 0x80) ++ascii_len;
      for (size_t x = std::min(ascii_len, s.size() - 1); x > 1; --x) {
        if (const EntityEntry* p = FindEntity(kHtml5Entities, Ascii(s.substr(0, x)))) {
          out += FromUtf8Literal(p->value);
          out += s.substr(x);
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) {
      out.push_back(U'&');
      out += s;
    }
    i = k;
  }
  return out;
}

std::u32string FtfyFixText(std::u32string_view text) {
  std::u32string out;
  bool unescape_html = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t brk = text.find(U'\n', pos);
    brk = brk == std::u32string_view::npos ? text.size() : brk + 1;
    std::u32string_view segment = text.substr(pos, brk - pos);
    if (segment.find(U'<') != std::u32string_view::npos) unescape_html = false;
    out += FixSegment(std::u32string(segment), unescape_html);
    pos = brk;
  }
  return out;
}

bool IsPythonSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || IsRegexSpace(c);
}

bool IsRegexSpace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool IsLetter(char32_t c) {
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_L_MASK) != 0;
}

bool IsNumber(char32_t c) {
  return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0;
}

std::u32string PythonLower(std::u32string_view text) {
  icu::UnicodeString s = FromU32(text);
  s.toLower(icu::Locale::getRoot());
  return ToU32(s);
}

std::u32string CleanClipText(std::u32string_view text) {
  // basic_clean
  std::u32string t = FtfyFixText(text);
  t = HtmlUnescape(HtmlUnescape(t));
  t = PythonStrip(t);
  // whitespace_clean: re.sub(r'\s+', ' ', text).strip()
  std::u32string collapsed;
  for (size_t i = 0; i < t.size();) {
    if (IsRegexSpace(t[i])) {
      collapsed.push_back(U' ');
      while (i < t.size() && IsRegexSpace(t[i])) ++i;
    } else {
      collapsed.push_back(t[i++]);
    }
  }
  return PythonLower(PythonStrip(collapsed));
}

}  // namespace atp::clip
