// `atp pretrain`: trains the demo's tiny CLIP and its BPE vocabulary on Fashion-MNIST and
// writes tiny_clip.pt, tiny_clip_vocab.txt.gz and tiny_clip.json; reuses finished outputs made
// with the same options. argv[0] is "pretrain". Returns the exit code (0 success, 1 failure,
// 2 usage error).
#pragma once

namespace atp {

int RunPretrainCommand(int argc, char** argv);

}  // namespace atp
