// BPE learning: learns a byte-level merge list from a text corpus with exactly the text
// cleaning, pre-tokenisation and byte symbols of ClipTokenizer (words end in "</w>"), and writes
// it in the format of OpenAI's bpe_simple_vocab_16e6.txt.gz, so ClipTokenizer::Load reads it.
// Pure functions over their arguments; thread-safe. No libtorch.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace atp::pretrain {

struct BpeTrainerOptions {
  // Stop after this many merges (ClipTokenizer::Load reads at most clip::kMaxMerges).
  int max_merges = 1000;
  // Stop when the most frequent adjacent pair occurs fewer times than this: a pair seen once
  // only spells one word out, which the byte symbols already do.
  int min_pair_count = 2;
};

// One merge: the two symbols (byte-encoded, "</w>" kept) that become one.
using BpeMerge = std::pair<std::string, std::string>;

// The standard BPE training (Sennrich et al.): every line is cleaned and pre-tokenised as
// ClipTokenizer::Encode does, each piece becomes its byte symbols with "</w>" on the last, and
// the most frequent adjacent pair (counted over all pieces, with repetition) is merged
// everywhere, repeatedly. Ties go to the pair whose first symbol, then second symbol, is
// smallest in byte order, so the result depends only on the corpus. The special tokens
// "<|startoftext|>" and "<|endoftext|>" are skipped, as Encode never runs BPE on them.
// Fails on text that is not UTF-8 (naming the line) and on bad options.
Result<std::vector<BpeMerge>> LearnBpeMerges(const std::vector<std::string>& corpus,
                                             const BpeTrainerOptions& options = {});

// The file contents: "#version: 0.2", then one "first second" line per merge.
std::string FormatBpeMerges(const std::vector<BpeMerge>& merges);

// Writes FormatBpeMerges gzip-compressed to `path` (through a temporary file and a rename, so a
// reader never sees half of it). The bytes depend only on the merges.
Status WriteBpeVocabulary(const std::string& path, const std::vector<BpeMerge>& merges);

}  // namespace atp::pretrain
