// The text normalisation that OpenAI's CLIP tokenizer applies before BPE:
// ftfy.fix_text, html.unescape twice, strip, whitespace collapse, str.lower. Pure functions
// over UTF-32 strings; thread-safe. Unicode data (categories, NFC, case mapping) comes from
// ICU; the HTML and ftfy tables from text_tables.inc.
//
// What of ftfy 6.3.1's default fix_text is reproduced, in its order and repeated until the
// text no longer changes, per '\n'-terminated segment: unescape_html (only ';'-terminated
// entities, plus ftfy's all-caps spellings; switched off for the rest of the text once a
// segment contains '<'), fix_c1_controls (sloppy Windows-1252), fix_latin_ligatures,
// fix_character_width, uncurl_quotes, fix_line_breaks, remove_terminal_escapes,
// remove_control_chars, NFC normalisation. Not reproduced: fix_encoding (mojibake repair such
// as "sÃ³" -> "só", with restore_byte_a0, replace_lossy_sequences, decode_inconsistent_utf8)
// and fix_surrogates (valid UTF-8 cannot hold surrogates). Text that ftfy would treat as
// mojibake therefore tokenises differently from the reference; ordinary text does not.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace atp::clip {

// Strict UTF-8 decoding (no overlongs, surrogates or values above U+10FFFF).
Result<std::u32string> DecodeUtf8(std::string_view bytes);
std::string EncodeUtf8(std::u32string_view text);

// Python's html.unescape.
std::u32string HtmlUnescape(std::u32string_view text);

// The subset of ftfy.fix_text described above.
std::u32string FtfyFixText(std::u32string_view text);

// Python's str.isspace and the `regex` module's \s (the Unicode White_Space property).
bool IsPythonSpace(char32_t c);
bool IsRegexSpace(char32_t c);
// \p{L} and \p{N}.
bool IsLetter(char32_t c);
bool IsNumber(char32_t c);

// Python's str.lower (full case mapping, including final sigma).
std::u32string PythonLower(std::u32string_view text);

// whitespace_clean(basic_clean(text)).lower(), exactly as simple_tokenizer.encode does.
std::u32string CleanClipText(std::u32string_view text);

}  // namespace atp::clip
