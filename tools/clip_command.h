// `atp clip tokenize` and `atp clip encode`: check a CLIP setup (vocabulary, checkpoint) and
// compare atp's tokenizer and encoders with another implementation. argv[0] is "clip".
#pragma once

namespace atp {

int RunClipCommand(int argc, char** argv);

}  // namespace atp
