// The attribute search (worker/prompt/attribute_search.h): the candidate pools against
// itertools / CPython's random.shuffle, the α-mixture, and short searches on the tiny random
// CLIP with Fashion-MNIST: weights over the pool, the α step, resume, preemption,
// divergence, determinism and two ranks.
#include "worker/prompt/attribute_search.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <optional>
#include <thread>

#include "tests/prompt/official_parity.h"
#include "tests/prompt/prompt_test_util.h"
#include "tests/prompt/thread_allreduce.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "worker/job_failure.h"
#include "worker/train/gradient_sync.h"
#include "worker/train/training_checkpoint.h"

namespace atp::prompt {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kBases = {"shape", "length", "sleeve", "texture", "fit"};

std::vector<std::string> Pick(const std::vector<int>& indices) {
  std::vector<std::string> out;
  for (int i : indices) out.push_back(kBases[static_cast<size_t>(i)]);
  return out;
}

TEST(CandidatePoolTest, PaperPoolIsEverySubsetInCombinationsOrder) {
  auto pool = CandidatePool(kBases, Compat::kPaper, 0, 1);
  ASSERT_EQ(pool.size(), 31u);
  EXPECT_EQ(pool[0], Pick({0}));
  EXPECT_EQ(pool[4], Pick({4}));
  EXPECT_EQ(pool[5], Pick({0, 1}));   // the first 2-subset
  EXPECT_EQ(pool[6], Pick({0, 2}));
  EXPECT_EQ(pool[14], Pick({3, 4}));  // the last 2-subset
  EXPECT_EQ(pool[15], Pick({0, 1, 2}));
  EXPECT_EQ(pool[25], Pick({0, 1, 2, 3}));
  EXPECT_EQ(pool[30], kBases);
  // The seed only shuffles the official pool.
  EXPECT_EQ(CandidatePool(kBases, Compat::kPaper, 0, 7), pool);
}

TEST(CandidatePoolTest, MaxGroupSizeDropsLargerGroups) {
  auto pool = CandidatePool(kBases, Compat::kPaper, 2, 1);
  ASSERT_EQ(pool.size(), 15u);
  for (const auto& group : pool) EXPECT_LE(group.size(), 2u);
  EXPECT_EQ(pool.back(), Pick({3, 4}));
  EXPECT_EQ(CandidatePool(kBases, Compat::kPaper, 3, 1).size(), 25u);
  EXPECT_EQ(CandidatePool(kBases, Compat::kPaper, 9, 1).size(), 31u);
  EXPECT_EQ(CandidatePool(kBases, Compat::kOfficial, 3, 1).size(), 10u);
  EXPECT_TRUE(CandidatePool(kBases, Compat::kOfficial, 2, 1).empty());
}

// Expected orders from CPython 3.11:
//   import random, itertools
//   c = [g for r in range(3, 6) for g in itertools.combinations(range(5), r)]
//   random.seed(SEED); random.shuffle(c)
TEST(CandidatePoolTest, OfficialPoolIsGroupsOfThreeOrMoreInCPythonShuffleOrder) {
  const std::vector<std::vector<int>> seed1 = {
      {0, 1, 4}, {0, 1, 2, 3}, {0, 1, 2}, {1, 2, 3, 4}, {1, 2, 3},       {0, 3, 4},    {0, 2, 3},    {1, 3, 4},
      {1, 2, 4}, {0, 1, 2, 4}, {0, 1, 2, 3, 4}, {0, 1, 3}, {0, 1, 3, 4}, {0, 2, 3, 4}, {2, 3, 4}, {0, 2, 4}};
  auto pool = CandidatePool(kBases, Compat::kOfficial, 0, 1);
  ASSERT_EQ(pool.size(), 16u);
  for (size_t i = 0; i < seed1.size(); ++i) EXPECT_EQ(pool[i], Pick(seed1[i])) << "position " << i;

  const std::vector<std::vector<int>> seed2 = {
      {0, 1, 3, 4}, {0, 1, 2, 4}, {1, 2, 4}, {0, 2, 3, 4}, {1, 2, 3},    {0, 1, 2},       {1, 3, 4}, {0, 2, 3},
      {2, 3, 4},    {0, 2, 4},    {0, 1, 2, 3}, {0, 1, 4}, {0, 3, 4}, {1, 2, 3, 4}, {0, 1, 2, 3, 4}, {0, 1, 3}};
  pool = CandidatePool(kBases, Compat::kOfficial, 0, 2);
  ASSERT_EQ(pool.size(), 16u);
  for (size_t i = 0; i < seed2.size(); ++i) EXPECT_EQ(pool[i], Pick(seed2[i])) << "position " << i;
}

TEST(MixtureLogitsTest, EqualsWeightedSumOfPerGroupLogits) {
  torch::manual_seed(3);
  torch::Tensor image = torch::randn({5, 8});
  torch::Tensor texts = torch::randn({3, 4, 8});
  torch::Tensor weights = torch::softmax(torch::rand({3}), 0);
  torch::Tensor scale = torch::tensor(std::log(1 / 0.07));
  torch::Tensor expected = torch::zeros({5, 4});
  for (int k = 0; k < 3; ++k) expected += weights[k] * CosineLogits(image, texts[k], scale);
  EXPECT_TRUE(torch::allclose(MixtureLogits(image, texts, weights, scale), expected, 1e-5, 1e-5));
}

// A small search problem shared by the run tests: the tiny CLIP, 4 training and 2 validation
// images per Fashion-MNIST class, five bases capped at pairs (15 groups).
class AttributeSearchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    tokenizer_ = testing::RealTokenizer(&why);
    if (!tokenizer_) GTEST_SKIP() << "CLIP vocabulary not found (" << why << ")";
    root_ = testing::FashionMnistRoot(&why);
    if (root_.empty()) GTEST_SKIP() << "Fashion-MNIST not available: " << why;
    auto splits = data::ReadDataset(root_, "fashion_mnist");
    ASSERT_OK(splits);
    train_ = FirstPerClass(splits->train, 4);
    val_ = FirstPerClass(splits->val, 2);
    class_names_ = data::ClassNamesByLabel(splits->train);
    clip_ = testing::TinyClip();

    config_.method = "attribute_search";
    config_.dataset = "fashion_mnist";
    config_.seed = 1;
    config_.bases = kBases;
    config_.max_group_size = 2;
    config_.design.n_ctx = 2;
    config_.design.compat = Compat::kPaper;
    config_.epochs = 2;
    config_.batch_size = 8;
    config_.max_steps_per_epoch = 3;
    config_.lr = 0.002;
    config_.alpha_lr = 0.02;
  }

  static std::vector<data::Datum> FirstPerClass(const std::vector<data::Datum>& items, int per_class) {
    std::map<int, int> taken;
    std::vector<data::Datum> out;
    for (const auto& item : items) {
      if (taken[item.label]++ < per_class) out.push_back(item);
    }
    return out;
  }

  ImageInputs Inputs() {
    ImageInputsOptions options;
    options.data_root = root_;
    options.dataset = "fashion_mnist";
    options.resolution = 32;
    options.seed = 1;
    options.backbone_digest = "tiny-random-7";
    return ImageInputs(clip_, options, nullptr, nullptr);
  }

  Result<SearchResult> Run(const MethodConfig& config, const TrainerHooks& hooks) {
    ImageInputs inputs = Inputs();
    return RunAttributeSearch(config, clip_, tokenizer_, class_names_, train_, val_, &inputs, hooks);
  }

  TrainerHooks Hooks(const std::string& subdir) {
    TrainerHooks hooks;
    hooks.workdir = (workdir_ / subdir).string();
    fs::create_directories(hooks.workdir);
    return hooks;
  }

  static void ExpectSameWeights(const SearchResult& a, const SearchResult& b) {
    ASSERT_EQ(a.weights.size(), b.weights.size());
    for (size_t k = 0; k < a.weights.size(); ++k) {
      EXPECT_EQ(a.weights[k].first, b.weights[k].first);
      EXPECT_DOUBLE_EQ(a.weights[k].second, b.weights[k].second) << GroupName(a.weights[k].first);
    }
    EXPECT_EQ(a.attributes, b.attributes);
  }

  // Every tensor of two checkpoints (prompts, momentum, α, Adam state) equal bit for bit.
  static void ExpectSameCheckpoint(const std::string& a_path, const std::string& b_path) {
    auto a = train::LoadTrainingCheckpoint(a_path);
    auto b = train::LoadTrainingCheckpoint(b_path);
    ASSERT_OK(a);
    ASSERT_OK(b);
    EXPECT_EQ(a->epoch, b->epoch);
    ASSERT_EQ(a->state_dict.size(), b->state_dict.size());
    for (const auto& [name, tensor] : a->state_dict) {
      ASSERT_TRUE(b->state_dict.count(name)) << name;
      EXPECT_TRUE(torch::equal(tensor, b->state_dict.at(name))) << name;
    }
    ASSERT_EQ(a->momentum.size(), b->momentum.size());
    for (const auto& [name, tensor] : a->momentum) {
      ASSERT_TRUE(b->momentum.count(name)) << name;
      EXPECT_TRUE(torch::equal(tensor, b->momentum.at(name))) << name;
    }
  }

  std::shared_ptr<const clip::ClipTokenizer> tokenizer_;
  std::string root_;
  std::vector<data::Datum> train_;
  std::vector<data::Datum> val_;
  std::vector<std::string> class_names_;
  clip::Clip clip_{nullptr};
  testing::TempDir temp_dir_;
  fs::path workdir_ = temp_dir_.path();
  MethodConfig config_;
};

TEST_F(AttributeSearchTest, ReturnsWeightsOverThePoolAndChoosesTheLargest) {
  std::vector<TrainProgress> progress;
  std::vector<std::string> checkpoints;
  TrainerHooks hooks = Hooks("run");
  hooks.on_step = [&](const TrainProgress& p) { progress.push_back(p); };
  hooks.on_checkpoint = [&](const std::string& path) { checkpoints.push_back(path); };
  auto result = Run(config_, hooks);
  ASSERT_OK(result);

  const auto pool = CandidatePool(kBases, Compat::kPaper, 2, 1);
  ASSERT_EQ(result->weights.size(), pool.size());
  double sum = 0;
  size_t best = 0;
  for (size_t k = 0; k < pool.size(); ++k) {
    EXPECT_EQ(result->weights[k].first, pool[k]);
    EXPECT_GT(result->weights[k].second, 0);
    sum += result->weights[k].second;
    if (result->weights[k].second > result->weights[best].second) best = k;
  }
  EXPECT_NEAR(sum, 1.0, 1e-9);
  EXPECT_EQ(result->attributes, pool[best]);
  EXPECT_EQ(result->epochs_run, 2);
  EXPECT_EQ(result->steps, 6);
  EXPECT_GT(result->final_loss, 0);
  EXPECT_TRUE(std::isfinite(result->final_loss));
  ASSERT_EQ(progress.size(), 6u);
  EXPECT_EQ(progress.back().epoch, 1);
  EXPECT_EQ(progress.back().global_step, 6);
  EXPECT_EQ(progress.back().total_steps, 6);
  EXPECT_DOUBLE_EQ(progress.front().lr, 1e-5);  // the warm-up epoch
  EXPECT_DOUBLE_EQ(progress.back().lr, 0.002);
  EXPECT_EQ(checkpoints.size(), 2u);
}

// α is drawn first after seeding (the official order); with alpha_lr 0 it stays there, with
// the official 0.02 the α steps move it.
TEST_F(AttributeSearchTest, AlphaStepMovesTheWeights) {
  torch::manual_seed(static_cast<uint64_t>(config_.seed));
  const torch::Tensor initial = torch::softmax(torch::rand({15}, torch::kFloat32).to(torch::kFloat64), 0);
  config_.epochs = 1;
  config_.max_steps_per_epoch = 2;

  MethodConfig frozen = config_;
  frozen.alpha_lr = 0;
  auto still = Run(frozen, TrainerHooks{});
  ASSERT_OK(still);
  for (size_t k = 0; k < still->weights.size(); ++k) {
    EXPECT_NEAR(still->weights[k].second, initial[static_cast<int64_t>(k)].item<double>(), 1e-7);
  }

  auto moved = Run(config_, TrainerHooks{});
  ASSERT_OK(moved);
  double change = 0;
  for (size_t k = 0; k < moved->weights.size(); ++k) {
    change += std::abs(moved->weights[k].second - still->weights[k].second);
  }
  EXPECT_GT(change, 1e-4);
}

TEST_F(AttributeSearchTest, IsDeterministicGivenTheSeed) {
  auto a = Run(config_, Hooks("a"));
  auto b = Run(config_, Hooks("b"));
  ASSERT_OK(a);
  ASSERT_OK(b);
  ExpectSameWeights(*a, *b);
  ExpectSameCheckpoint((workdir_ / "a" / "checkpoint.pth").string(), (workdir_ / "b" / "checkpoint.pth").string());

  MethodConfig other = config_;
  other.seed = 2;
  auto c = Run(other, TrainerHooks{});
  ASSERT_OK(c);
  EXPECT_NE(a->weights[0].second, c->weights[0].second);
}

TEST_F(AttributeSearchTest, ResumeFromAnEpochCheckpointEqualsTheUninterruptedRun) {
  auto full = Run(config_, Hooks("full"));
  ASSERT_OK(full);

  // Keep the checkpoint of epoch 1 (the file is rewritten at every epoch end).
  TrainerHooks hooks = Hooks("first");
  const std::string kept = (workdir_ / "after_epoch1.pth").string();
  hooks.on_checkpoint = [&](const std::string& path) {
    if (!fs::exists(kept)) fs::copy_file(path, kept);
  };
  ASSERT_OK(Run(config_, hooks));

  TrainerHooks resume = Hooks("resumed");
  resume.resume_checkpoint = kept;
  auto resumed = Run(config_, resume);
  ASSERT_OK(resumed);
  EXPECT_EQ(resumed->resumed_from_epoch, 1);
  EXPECT_EQ(resumed->epochs_run, 1);
  EXPECT_EQ(resumed->steps, 3);
  ExpectSameWeights(*full, *resumed);
  EXPECT_DOUBLE_EQ(full->final_loss, resumed->final_loss);
  ExpectSameCheckpoint((workdir_ / "full" / "checkpoint.pth").string(),
                       (workdir_ / "resumed" / "checkpoint.pth").string());

  // A finished run resumed (a retry after the last checkpoint) only reports its result.
  TrainerHooks again;
  again.resume_checkpoint = (workdir_ / "full" / "checkpoint.pth").string();
  auto finished = Run(config_, again);
  ASSERT_OK(finished);
  EXPECT_EQ(finished->epochs_run, 0);
  EXPECT_EQ(finished->resumed_from_epoch, 2);
  ExpectSameWeights(*full, *finished);
  EXPECT_DOUBLE_EQ(full->final_loss, finished->final_loss);
}

TEST_F(AttributeSearchTest, PreemptionMidEpochCheckpointsAndResumesExactly) {
  auto full = Run(config_, Hooks("full"));
  ASSERT_OK(full);

  // Stop before the second step of the second epoch.
  TrainerHooks hooks = Hooks("stopped");
  int steps = 0;
  hooks.on_step = [&](const TrainProgress&) { ++steps; };
  hooks.stop_requested = [&] { return steps == 4; };
  try {
    (void)Run(config_, hooks);
    FAIL() << "the search did not stop";
  } catch (const JobFailure& failure) {
    EXPECT_EQ(failure.failure_class(), FailureClass::kPreempted);
  }
  const std::string checkpoint = (workdir_ / "stopped" / "checkpoint.pth").string();
  ASSERT_TRUE(fs::exists(checkpoint));

  TrainerHooks resume = Hooks("resumed");
  resume.resume_checkpoint = checkpoint;
  auto resumed = Run(config_, resume);
  ASSERT_OK(resumed);
  EXPECT_EQ(resumed->resumed_from_epoch, 1);
  EXPECT_EQ(resumed->steps, 2);
  ExpectSameWeights(*full, *resumed);
  EXPECT_DOUBLE_EQ(full->final_loss, resumed->final_loss);
  ExpectSameCheckpoint((workdir_ / "full" / "checkpoint.pth").string(),
                       (workdir_ / "resumed" / "checkpoint.pth").string());
}

TEST_F(AttributeSearchTest, ResumeRejectsACheckpointOfAnotherPool) {
  TrainerHooks hooks = Hooks("first");
  config_.epochs = 1;
  config_.max_steps_per_epoch = 1;
  ASSERT_OK(Run(config_, hooks));
  MethodConfig other = config_;
  other.max_group_size = 1;
  TrainerHooks resume;
  resume.resume_checkpoint = hooks.workdir + "/checkpoint.pth";
  auto result = Run(other, resume);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("pool"), std::string::npos) << result.status().ToString();
}

TEST_F(AttributeSearchTest, NonFiniteLossFailsAsDivergedWithEpochAndStep) {
  config_.epochs = 1;
  config_.warmup_epochs = 0;
  config_.lr = std::nan("");  // the first update poisons every prompt
  try {
    (void)Run(config_, TrainerHooks{});
    FAIL() << "the search did not diverge";
  } catch (const JobFailure& failure) {
    EXPECT_EQ(failure.failure_class(), FailureClass::kDiverged);
    const std::string message = failure.what();
    // The first prompt update poisons the prompts; the α step right after it sees the NaN.
    EXPECT_NE(message.find("epoch 1/1"), std::string::npos) << message;
    EXPECT_NE(message.find("step 1/3"), std::string::npos) << message;
  }
}

TEST_F(AttributeSearchTest, OfficialCompatUsesTheOfficialPoolAndFirstValidationBatch) {
  config_.design.compat = Compat::kOfficial;
  config_.max_group_size = 0;
  config_.bases = {"shape", "length", "sleeve", "texture"};  // groups of 3 and 4: 5 candidates
  config_.epochs = 1;
  config_.max_steps_per_epoch = 2;
  config_.test_batch_size = 7;
  auto result = Run(config_, TrainerHooks{});
  ASSERT_OK(result);
  const auto pool = CandidatePool(config_.bases, Compat::kOfficial, 0, 1);
  ASSERT_EQ(result->weights.size(), 5u);
  for (size_t k = 0; k < pool.size(); ++k) EXPECT_EQ(result->weights[k].first, pool[k]);
  bool noted = false;
  for (const auto& note : result->notes) noted |= note.find("first 7 validation images") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST_F(AttributeSearchTest, RejectsAnEmptyPoolAndMissingValidation) {
  MethodConfig official = config_;
  official.design.compat = Compat::kOfficial;
  official.max_group_size = 2;
  auto empty_pool = Run(official, TrainerHooks{});
  ASSERT_FALSE(empty_pool.ok());
  EXPECT_NE(empty_pool.status().message().find("max_group_size"), std::string::npos);

  ImageInputs inputs = Inputs();
  auto no_val = RunAttributeSearch(config_, clip_, tokenizer_, class_names_, train_, {}, &inputs, TrainerHooks{});
  ASSERT_FALSE(no_val.ok());
  EXPECT_NE(no_val.status().message().find("validation"), std::string::npos);
}

TEST_F(AttributeSearchTest, TwoRanksMatchOneRank) {
  config_.epochs = 1;
  config_.max_steps_per_epoch = 2;
  auto single = Run(config_, TrainerHooks{});
  ASSERT_OK(single);

  testing::ThreadAllreduce allreduce(2);
  std::vector<std::optional<Result<SearchResult>>> results(2);
  std::vector<std::thread> threads;
  for (int rank = 0; rank < 2; ++rank) {
    threads.emplace_back([&, rank] {
      train::RelayGradientSync sync([&](std::vector<double>* d) { return allreduce.Sum(d); }, rank, 2);
      TrainerHooks hooks;
      hooks.sync = &sync;
      hooks.is_leader = rank == 0;
      results[static_cast<size_t>(rank)].emplace(Run(config_, hooks));
    });
  }
  for (auto& t : threads) t.join();
  for (int rank = 0; rank < 2; ++rank) {
    const auto& r = *results[static_cast<size_t>(rank)];
    ASSERT_OK(r);
    ASSERT_EQ(r->weights.size(), single->weights.size());
    for (size_t k = 0; k < r->weights.size(); ++k) {
      EXPECT_NEAR(r->weights[k].second, single->weights[k].second, 1e-5) << "rank " << rank << " group " << k;
    }
    EXPECT_NEAR(r->final_loss, single->final_loss, 1e-5);
  }
  // The ranks take identical steps.
  ExpectSameWeights(results[0]->value(), results[1]->value());
}

// One alternating step against the released AttributeCompute trainer
// (trainers/attributecompute.py, tests/prompt/fixtures/official/README.md): from the same seed,
// SGD on every group's prompts with a training batch of 8 images, then Adam on the group
// weights α with a validation batch of 8, for the pool (color), (shape), (color, shape) in
// paper mode. Compared after the step: α, every prompt tensor, the SGD momentum buffers and
// Adam's moments (its first step moves α by about lr·sign(g); the moments hold g itself).
TEST(AttributeSearchParityTest, OneAlternatingStepMatchesTheOfficialTrainer) {
  ATP_REQUIRE_TOKENIZER(tok);
  const std::string dir = testing::OfficialFixtureDir();
  std::ifstream meta_file(dir + "/search_step.json");
  ASSERT_TRUE(meta_file) << "missing search_step.json";
  const Json meta = Json::parse(meta_file);
  auto official = clip::ReadClipStateDict(dir + "/search_step.pt");
  ASSERT_OK(official);
  clip::Clip clip = testing::ParityClip();
  ASSERT_TRUE(clip);

  // The images, in the generator's order (the loss is a batch mean: order matters only to the
  // last bits), read through the dataset reader as a job reads them.
  const std::string root = dir + "/search_data";
  auto splits = data::ReadDataset(root, "oxford_pets");
  ASSERT_OK(splits);
  auto pick = [&](const Json& files) {
    std::vector<data::Datum> out;
    for (const Json& f : files) {
      for (const auto& item : splits->test) {
        if (fs::path(item.path).filename() == f.get<std::string>()) out.push_back(item);
      }
    }
    return out;
  };
  const std::vector<data::Datum> train = pick(meta["train"]);
  const std::vector<data::Datum> val = pick(meta["val"]);
  ASSERT_EQ(train.size(), 8u);
  ASSERT_EQ(val.size(), 8u);

  MethodConfig config;
  config.method = "attribute_search";
  config.dataset = "oxford_pets";
  config.seed = meta["seed"].get<int64_t>();
  config.bases = {"color", "shape"};
  config.design.n_ctx = meta["n_ctx"].get<int>();
  config.design.compat = Compat::kPaper;
  config.epochs = 1;
  config.batch_size = 8;
  config.max_steps_per_epoch = 1;
  config.lr = meta["lr"].get<double>();
  config.warmup_epochs = 0;  // the step at the base lr, so that it moves the prompts visibly
  config.alpha_lr = meta["alpha_lr"].get<double>();
  ImageInputsOptions input_options;
  input_options.data_root = root;
  input_options.dataset = "oxford_pets";
  input_options.resolution = 16;
  input_options.augment = false;  // 16×16 images: the test transform leaves them as they are
  input_options.backbone_digest = "parity-clip";
  ImageInputs inputs(clip, input_options, nullptr, nullptr);
  testing::TempDir work;
  TrainerHooks hooks;
  hooks.workdir = work.path();
  auto result = RunAttributeSearch(config, clip, tok, meta["classnames"].get<std::vector<std::string>>(), train, val,
                                   &inputs, hooks);
  ASSERT_OK(result);
  ASSERT_EQ(result->steps, 1);
  auto checkpoint = train::LoadTrainingCheckpoint(work.File("checkpoint.pth"));
  ASSERT_OK(checkpoint);

  int compared = 0;
  for (const auto& [key, expected] : *official) {
    if (key.rfind("after.", 0) != 0) continue;
    const std::string name = key.substr(6);
    const std::string label = "search_step/paper " + name;
    if (name.rfind("momentum.", 0) == 0) {
      auto it = checkpoint->momentum.find(name.substr(9));
      ASSERT_NE(it, checkpoint->momentum.end()) << label;
      testing::ExpectClose(label, it->second, expected);
    } else {
      const std::string ours = name.rfind("adam.", 0) == 0 ? "att_weight_adam." + name.substr(5) : name;
      auto it = checkpoint->state_dict.find(ours);
      ASSERT_NE(it, checkpoint->state_dict.end()) << label << " (atp key " << ours << ")";
      testing::ExpectClose(label, it->second, expected);
    }
    ++compared;
  }
  EXPECT_EQ(compared, 1 + 7 + 2 + 7);  // α, 7 prompt tensors, Adam's 2 moments, 7 buffers
  // The search's own loss of the step is the official training loss.
  testing::ExpectClose("search_step/paper train loss", torch::tensor({result->final_loss}, torch::kFloat),
                       official->at("out.train_loss"));
}

}  // namespace
}  // namespace atp::prompt
