// Bounded fuzzing of both checkpoint readers (CLIP weights, and the training/prompt
// checkpoints) over their shared torch.save reader. Inputs are real archives (a state dict
// written by Python's torch.save, one of our training checkpoints, a TorchScript CLIP) with
// either their raw bytes mutated, or their pickle or storage records mutated and the zip
// rebuilt around them (so the mutation is not just caught by the zip's CRC). Property: every
// reader returns (a value or an error naming the file) and never crashes, and a value it
// returns can be read to its last element.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/fuzz/mutator.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_archive_edit.h"
#include "worker/clip/clip_checkpoint.h"
#include "worker/train/training_checkpoint.h"

namespace atp {
namespace {

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

// Pickle opcodes and argument bytes that matter to the readers.
const std::vector<std::string> kPickleTokens = {
    "(", ")", "]", "}", "a", "e", "s", "u", "t", "l", "d", "0", "1", "2", ".", "R", "b", "Q", "N",
    "\x85", "\x86", "\x87", "\x88", "\x89", "\x93", "\x94", "\x81", "\x92", "K\xff", "J\xff\xff\xff\x7f",
    "J\x00\x00\x00\x80", "\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f", "\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80",
    "h\x00", "j\x00\x00\x00\x00", "q\x01", "r\xff\xff\xff\xff", "ctorch._utils\n_rebuild_tensor_v2\n",
    "ctorch\nFloatStorage\n", "ctorch\nHalfStorage\n", "ccollections\nOrderedDict\n",
    "ctorch._tensor\n_rebuild_from_type_v2\n", "X\xff\xff\xff\x7f", "\x8c\x07storage", "\x95\xff\xff\xff\xff\xff\xff\xff\xff"};

// Calls every reader on `path`; fails the test if one crashes the process (by dying) or lets
// an exception out, and touches every tensor a reader accepts.
void ReadWithEveryReader(const std::string& path, int iteration) {
  try {
    auto clip = clip::ReadClipStateDict(path);
    if (clip.ok()) {
      for (const auto& [name, tensor] : *clip) (void)tensor.sum().item<double>();
    } else {
      ASSERT_NE(clip.status().message().find(path), std::string::npos)
          << "iteration " << iteration << ": " << clip.status().message();
    }
    auto training = train::LoadTrainingCheckpoint(path);
    if (training.ok()) {
      for (const auto& [name, tensor] : training->state_dict) (void)tensor.sum().item<double>();
    } else {
      ASSERT_NE(training.status().message().find(path), std::string::npos)
          << "iteration " << iteration << ": " << training.status().message();
    }
    auto prompt = train::ImportPromptStateDict(path);
    if (prompt.ok()) {
      for (const auto& [name, tensor] : *prompt) (void)tensor.sum().item<double>();
    } else {
      ASSERT_NE(prompt.status().message().find(path), std::string::npos)
          << "iteration " << iteration << ": " << prompt.status().message();
    }
    auto buffers = train::ReadPromptTokenBuffers(path);  // what atp eval compares class names with
    if (buffers.ok()) {
      for (const auto& [name, tensor] : buffers->buffers) (void)tensor.to(at::kFloat).sum().item<double>();
    } else {
      ASSERT_NE(buffers.status().message().find(path), std::string::npos)
          << "iteration " << iteration << ": " << buffers.status().message();
    }
  } catch (const std::exception& e) {
    FAIL() << "iteration " << iteration << ": an exception escaped a reader: " << e.what();
  }
}

class CheckpointFuzzTest : public ::testing::Test {
 protected:
  void SetUp() override {
    train::TrainingCheckpoint c;
    c.state_dict["prompt_learner.ctx"] = at::randn({4, 8});
    c.state_dict["prompt_learner.token_prefix"] = at::randn({3, 1, 8});
    c.param_order = {"prompt_learner.ctx"};
    c.momentum["prompt_learner.ctx"] = at::randn({4, 8});
    c.rng_state["torch"] = at::randint(0, 255, {16}, at::kByte);
    c.epoch = 2;
    c.schedule.max_epoch = 5;
    c.schedule.base_lr = 0.002;
    ASSERT_OK(train::SaveTrainingCheckpoint(dir_ / "ours.pth", c));
    seeds_ = {dir_ / "ours.pth", std::string(ATP_CLIP_FIXTURE_DIR) + "/tiny_state_dict.pt"};
  }
  testing::TempDir dir_;
  std::vector<std::string> seeds_;
};

TEST_F(CheckpointFuzzTest, MutatedTorchSaveArchivesNeverCrashTheReaders) {
  const int iterations = fuzz::FuzzIterations(1500);
  fuzz::Mutator mutator(/*seed=*/18, kPickleTokens);
  const std::string input = dir_ / "input.pt";
  int accepted = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::string& seed = seeds_[mutator.Below(seeds_.size())];
    const uint64_t how = mutator.Below(4);
    if (how == 0) {  // raw bytes: zip structure, headers, CRCs
      WriteBytes(input, mutator.Mutate(ReadBytes(seed), 4));
    } else {  // one record, the zip rebuilt around it
      const std::vector<std::string> storages = testing::StorageRecords(seed);
      const std::string victim =
          how == 1 || storages.empty() ? std::string("data.pkl") : storages[mutator.Below(storages.size())];
      testing::RewriteArchive(seed, input, [&](const std::string& name, std::string bytes) {
        return name == victim ? mutator.Mutate(std::move(bytes), 4, 4 << 20) : bytes;
      });
    }
    ReadWithEveryReader(input, i);
    if (::testing::Test::HasFatalFailure()) return;
    accepted += clip::ReadClipStateDict(input).ok() ? 1 : 0;
  }
  std::printf("checkpoint fuzz (torch.save archives): %d iterations, %d read as a CLIP state dict\n", iterations,
              accepted);
}

// The TorchScript path loads through libtorch's own loader; its tensors are checked against
// their records afterwards. Mutated here: the storage records (short, long, garbled).
TEST_F(CheckpointFuzzTest, TorchScriptArchivesWithMutatedStorageRecordsNeverCrash) {
  const std::string seed = std::string(ATP_CLIP_FIXTURE_DIR) + "/tiny1_torchscript.pt";
  const std::vector<std::string> storages = testing::StorageRecords(seed);
  ASSERT_FALSE(storages.empty());
  const int iterations = fuzz::FuzzIterations(150);
  fuzz::Mutator mutator(/*seed=*/18, {});
  const std::string input = dir_ / "ts.pt";
  for (int i = 0; i < iterations; ++i) {
    const std::string victim = storages[mutator.Below(storages.size())];
    testing::RewriteArchive(seed, input, [&](const std::string& name, std::string bytes) {
      if (name != victim) return bytes;
      if (mutator.Below(2) == 0) bytes.resize(mutator.Below(bytes.size()));  // cut short
      return mutator.Mutate(std::move(bytes), 2, 4 << 20);
    });
    auto clip = clip::ReadClipStateDict(input);
    if (clip.ok()) {
      for (const auto& [name, tensor] : *clip) (void)tensor.sum().item<double>();
    }
  }
  std::printf("checkpoint fuzz (TorchScript storage records): %d iterations\n", iterations);
}

}  // namespace
}  // namespace atp
