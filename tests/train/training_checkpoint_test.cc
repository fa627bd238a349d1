#include "worker/train/training_checkpoint.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "tests/support/python_torch.h"
#include "tests/support/status_matchers.h"
#include "tests/support/temp_dir.h"
#include "tests/support/torch_archive_edit.h"

namespace atp::train {
namespace {

using testing::PythonWithTorch;
using testing::RunPython;
using testing::TempDir;

// A CoOp_ATP-like checkpoint after `epoch` epochs: fp16 prompt tensors, a buffer, fp32
// momentum, a generator state, and values that only survive a bit-exact round trip.
TrainingCheckpoint SampleCheckpoint(int64_t epoch = 3) {
  TrainingCheckpoint c;
  c.state_dict["ctx"] = (at::arange(16, at::kFloat).reshape({4, 4}) / 3).to(at::kHalf);
  c.state_dict["ctx_att1"] = (at::arange(8, at::kFloat).reshape({2, 4}) * -0.1).to(at::kHalf);
  c.state_dict["token_prefix"] = at::ones({3, 1, 4}, at::kHalf);
  at::Tensor odd = at::randn({5}, at::kDouble);
  odd[0] = std::numeric_limits<double>::quiet_NaN();
  odd[1] = -0.0;
  odd[2] = std::numeric_limits<double>::denorm_min();
  c.state_dict["meta_net.linear1.bias"] = odd;
  c.state_dict["step_count"] = at::tensor({int64_t{42}});
  c.param_order = {"ctx", "ctx_att1", "meta_net.linear1.bias"};
  c.momentum["ctx"] = at::randn({4, 4}).to(at::kHalf);
  c.momentum["meta_net.linear1.bias"] = at::randn({5}, at::kDouble);
  c.epoch = epoch;
  c.schedule = {0.002, 5, 1, 1e-5};
  c.sgd.weight_decay = 5e-4;
  c.rng_state["torch_cpu"] = at::detail::getDefaultCPUGenerator().get_state();
  c.meta_json = R"({"method":"coop_atp","params":{"n_ctx":4},"atp_version":"0.1.0"})";
  return c;
}

void ExpectSameTensors(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    const at::Tensor& u = b.at(name);
    EXPECT_EQ(t.scalar_type(), u.scalar_type()) << name;
    EXPECT_EQ(t.sizes(), u.sizes()) << name;
    // Bit-exact, NaN payloads and signed zeros included.
    ASSERT_EQ(t.nbytes(), u.nbytes()) << name;
    at::Tensor tc = t.contiguous(), uc = u.contiguous();
    EXPECT_EQ(std::memcmp(tc.data_ptr(), uc.data_ptr(), tc.nbytes()), 0) << name;
  }
}

std::string Quote(const std::string& s) { return "'" + s + "'"; }

class TrainingCheckpointTest : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(TrainingCheckpointTest, SaveThenLoadIsBitExact) {
  const TrainingCheckpoint saved = SampleCheckpoint();
  const std::string path = dir_.File("prompt_learner/model.pth.tar-3");  // the folder is created
  ASSERT_OK(SaveTrainingCheckpoint(path, saved));
  auto loaded = LoadTrainingCheckpoint(path);
  ASSERT_OK(loaded);
  ExpectSameTensors(saved.state_dict, loaded->state_dict);
  ExpectSameTensors(saved.momentum, loaded->momentum);
  ExpectSameTensors(saved.rng_state, loaded->rng_state);
  EXPECT_EQ(loaded->epoch, 3);
  EXPECT_EQ(loaded->param_order, saved.param_order);
  EXPECT_EQ(loaded->schedule.base_lr, 0.002);
  EXPECT_EQ(loaded->schedule.max_epoch, 5);
  EXPECT_EQ(loaded->schedule.warmup_epochs, 1);
  EXPECT_EQ(loaded->schedule.warmup_lr, 1e-5);
  EXPECT_EQ(loaded->sgd.momentum, 0.9);
  EXPECT_EQ(loaded->sgd.dampening, 0.0);
  EXPECT_EQ(loaded->sgd.weight_decay, 5e-4);
  EXPECT_FALSE(loaded->sgd.nesterov);
  EXPECT_EQ(loaded->meta_json, saved.meta_json);
  EXPECT_EQ(loaded->lr(), CosineWarmupLr(3, 5, 0.002));
}

TEST_F(TrainingCheckpointTest, TheGeneratorStateRestoresTheSameRandomStream) {
  auto gen = at::detail::createCPUGenerator(7);
  at::randn({10}, gen);
  TrainingCheckpoint c = SampleCheckpoint();
  c.rng_state["torch_cpu"] = gen.get_state();
  const at::Tensor next = at::randn({10}, gen);
  ASSERT_OK(SaveTrainingCheckpoint(dir_.File("ck"), c));
  auto loaded = LoadTrainingCheckpoint(dir_.File("ck"));
  ASSERT_OK(loaded);
  auto resumed = at::detail::createCPUGenerator(0);
  resumed.set_state(loaded->rng_state.at("torch_cpu"));
  EXPECT_TRUE(at::equal(at::randn({10}, resumed), next));
}

TEST_F(TrainingCheckpointTest, SavingReplacesTheFileAtomically) {
  const std::string path = dir_.File("ck");
  ASSERT_OK(SaveTrainingCheckpoint(path, SampleCheckpoint(2)));
  ASSERT_OK(SaveTrainingCheckpoint(path, SampleCheckpoint(4)));
  auto loaded = LoadTrainingCheckpoint(path);
  ASSERT_OK(loaded);
  EXPECT_EQ(loaded->epoch, 4);
  // Nothing but the checkpoint is left in the folder (no temporary files).
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    ++files;
    EXPECT_EQ(entry.path().filename(), "ck");
  }
  EXPECT_EQ(files, 1);
}

TEST_F(TrainingCheckpointTest, InconsistentCheckpointsAreRefusedWithTheReason) {
  TrainingCheckpoint missing = SampleCheckpoint();
  missing.param_order.push_back("ctx_att2");
  Status s = SaveTrainingCheckpoint(dir_.File("a"), missing);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ctx_att2"), std::string::npos) << s.message();

  TrainingCheckpoint misshaped = SampleCheckpoint();
  misshaped.momentum["ctx"] = at::zeros({3});
  s = SaveTrainingCheckpoint(dir_.File("b"), misshaped);
  EXPECT_NE(s.message().find("momentum buffer ctx"), std::string::npos) << s.message();

  TrainingCheckpoint no_schedule = SampleCheckpoint();
  no_schedule.schedule.max_epoch = 0;
  EXPECT_EQ(SaveTrainingCheckpoint(dir_.File("c"), no_schedule).code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_.File("a")));
}

TEST_F(TrainingCheckpointTest, TruncatedMissingAndForeignFilesGiveErrorsNamingThem) {
  const std::string path = dir_.File("model.pth.tar-5");
  ASSERT_OK(SaveTrainingCheckpoint(path, SampleCheckpoint()));
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string cut = dir_.File("cut.pth.tar-5");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);

  for (const Status& s : {LoadTrainingCheckpoint(cut).status(), ImportPromptStateDict(cut).status()}) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(cut), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("truncated"), std::string::npos) << s.message();
  }
  auto missing = LoadTrainingCheckpoint(dir_.File("nope"));
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir_.File("nope")), std::string::npos);

  std::ofstream(dir_.File("text"), std::ios::binary) << "not a checkpoint";
  auto text = ImportPromptStateDict(dir_.File("text"));
  EXPECT_NE(text.status().message().find("not a torch.save archive"), std::string::npos) << text.status().ToString();
}

// The prompt/training checkpoint reader shares the CLIP reader's tensor-record check: a record
// cut short (its zip structure intact) is refused with what the tensor needs.
TEST_F(TrainingCheckpointTest, ATensorRecordShorterThanItsTensorIsRefused) {
  const std::string path = dir_.File("model.pth.tar-5");
  ASSERT_OK(SaveTrainingCheckpoint(path, SampleCheckpoint()));
  const std::vector<std::string> records = testing::StorageRecords(path);
  ASSERT_FALSE(records.empty());
  for (const std::string& victim : records) {
    SCOPED_TRACE(victim);
    const std::string damaged = dir_.File("short.pth.tar-5");
    testing::RewriteArchive(path, damaged, [&](const std::string& name, std::string bytes) {
      return name == victim ? bytes.substr(0, bytes.size() / 2) : bytes;
    });
    for (const Status& s : {LoadTrainingCheckpoint(damaged).status(), ImportPromptStateDict(damaged).status()}) {
      ASSERT_FALSE(s.ok());  // every storage is read, even those ImportPromptStateDict drops
      EXPECT_NE(s.message().find(damaged), std::string::npos) << s.message();
      EXPECT_NE(s.message().find("record holds"), std::string::npos) << s.message();
    }
  }
}

TEST_F(TrainingCheckpointTest, ImportingOurCheckpointDropsBuffersAndUpcasts) {
  const TrainingCheckpoint saved = SampleCheckpoint();
  ASSERT_OK(SaveTrainingCheckpoint(dir_.File("ck"), saved));
  auto sd = ImportPromptStateDict(dir_.File("ck"));
  ASSERT_OK(sd);
  EXPECT_EQ(sd->count("token_prefix"), 0u);
  ASSERT_EQ(sd->count("ctx"), 1u);
  EXPECT_EQ(sd->at("ctx").scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(sd->at("ctx"), saved.state_dict.at("ctx").to(at::kFloat)));
  EXPECT_EQ(sd->at("step_count").scalar_type(), at::kLong);  // integers keep their dtype
}

TEST_F(TrainingCheckpointTest, ALoadedOfficialCheckpointIsNotMistakenForATrainingCheckpoint) {
  // A bare dict with a state dict but no "atp" entry, as Dassl writes (minus its objects).
  TrainingCheckpoint c = SampleCheckpoint();
  ASSERT_OK(SaveTrainingCheckpoint(dir_.File("ours"), c));
  std::string why;
  const std::string python = PythonWithTorch(&why);
  if (python.empty()) GTEST_SKIP() << why;
  auto run = RunPython(python,
                       "import sys, torch\n"
                       "ck = torch.load(sys.argv[1])\n"
                       "del ck['atp']\n"
                       "torch.save(ck, sys.argv[2])\n",
                       Quote(dir_.File("ours")) + " " + Quote(dir_.File("official")));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  auto loaded = LoadTrainingCheckpoint(dir_.File("official"));
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(loaded.status().message().find("ImportPromptStateDict"), std::string::npos) << loaded.status().ToString();
  // ...while importing its prompt weights works (Python's own pickle of our dict).
  auto sd = ImportPromptStateDict(dir_.File("official"));
  ASSERT_OK(sd);
  EXPECT_TRUE(at::equal(sd->at("ctx_att1"), c.state_dict.at("ctx_att1").to(at::kFloat)));
}

TEST_F(TrainingCheckpointTest, AMissingKeyIsNamedWithItsPlace) {
  std::string why;
  const std::string python = PythonWithTorch(&why);
  if (python.empty()) GTEST_SKIP() << why;
  ASSERT_OK(SaveTrainingCheckpoint(dir_.File("ours"), SampleCheckpoint()));
  auto run = RunPython(python,
                       "import sys, torch\n"
                       "ck = torch.load(sys.argv[1])\n"
                       "del ck['optimizer']['param_groups'][0]['momentum']\n"
                       "torch.save(ck, sys.argv[2])\n",
                       Quote(dir_.File("ours")) + " " + Quote(dir_.File("edited")));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  auto loaded = LoadTrainingCheckpoint(dir_.File("edited"));
  EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
  const std::string& message = loaded.status().message();
  EXPECT_NE(message.find(dir_.File("edited")), std::string::npos) << message;
  EXPECT_NE(message.find("no key 'momentum' in ['optimizer']['param_groups'][0]"), std::string::npos) << message;
}

// Python reads our file with torch.load and finds Dassl's layout: the tensors, the optimizer
// state SGD accepts, and the scheduler state Dassl's ConstantWarmupScheduler has after the
// same number of epochs (the wrapper rebuilt as in lr_schedule_test.cc).
constexpr char kReadOurCheckpoint[] = R"PY(
import json, math, sys, torch
from torch.optim.lr_scheduler import _LRScheduler, CosineAnnealingLR

class ConstantWarmupScheduler(_LRScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1, verbose=False):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        self.cons_lr = cons_lr
        super().__init__(optimizer, last_epoch, verbose)
    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)
    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]

path = sys.argv[1]
ck = torch.load(path)
assert set(ck) == {"state_dict", "epoch", "optimizer", "scheduler", "val_result", "atp"}, sorted(ck)
sd = ck["state_dict"]
assert sd["ctx"].dtype == torch.float16 and tuple(sd["ctx"].shape) == (4, 4)
assert torch.equal(sd["ctx"], (torch.arange(16.).reshape(4, 4) / 3).half())
assert torch.equal(sd["ctx_att1"], (torch.arange(8.).reshape(2, 4) * -0.1).half())
assert sd["step_count"].tolist() == [42]
assert ck["epoch"] == 3 and ck["val_result"] is None
atp = ck["atp"]
assert atp["param_order"] == ["ctx", "ctx_att1", "meta_net.linear1.bias"]
assert json.loads(atp["meta_json"])["method"] == "coop_atp"

# The optimizer state loads into torch.optim.SGD over parameters in param_order.
params = [torch.nn.Parameter(sd[n].clone()) for n in atp["param_order"]]
opt = torch.optim.SGD(params, lr=0.002, momentum=0.9, weight_decay=5e-4)
opt.load_state_dict(ck["optimizer"])
g = opt.param_groups[0]
assert g["momentum"] == 0.9 and g["weight_decay"] == 5e-4 and g["dampening"] == 0 and g["nesterov"] is False
assert set(opt.state_dict()["state"]) == {0, 2}, opt.state_dict()["state"].keys()
assert opt.state[params[0]]["momentum_buffer"].dtype == torch.float16

# The scheduler numbers are Dassl's after the same number of epochs.
p = torch.nn.Parameter(torch.zeros(1))
ref_opt = torch.optim.SGD([p], lr=atp["base_lr"], momentum=0.9, weight_decay=5e-4)
ref = ConstantWarmupScheduler(ref_opt, CosineAnnealingLR(ref_opt, float(atp["max_epoch"])), 1, atp["warmup_lr"])
for _ in range(ck["epoch"]):
    ref_opt.step()
    ref.step()
def same(ours, theirs, where):
    for k, v in theirs.items():
        if k in ("optimizer", "successor"):
            continue
        assert k in ours, (where, k)
        if isinstance(v, list):
            assert len(v) == len(ours[k]) and all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(ours[k], v)), (where, k, ours[k], v)
        else:
            assert ours[k] == v and type(ours[k]) == type(v), (where, k, ours[k], v)
ref_state = ref.state_dict()
same(ck["scheduler"], ref_state, "scheduler")
same(ck["scheduler"]["successor"], ref_state["successor"].state_dict(), "successor")
assert math.isclose(g["lr"], ref_opt.param_groups[0]["lr"], rel_tol=1e-12), (g["lr"], ref_opt.param_groups[0]["lr"])

# Resuming in Python as Dassl does: build optimizer and scheduler, then load the optimizer
# state (which restores the lr the scheduler's construction overwrote), then the scheduler's,
# the successor's state going into the successor object.
opt = torch.optim.SGD(params, lr=0.002, momentum=0.9, weight_decay=5e-4)
sched = ConstantWarmupScheduler(opt, CosineAnnealingLR(opt, float(atp["max_epoch"])), 1, atp["warmup_lr"])
opt.load_state_dict(ck["optimizer"])
sched_state = dict(ck["scheduler"])
successor_state = sched_state.pop("successor")
sched.successor.load_state_dict(successor_state)
sched.load_state_dict(sched_state)
opt.step()
sched.step()
expected = atp["base_lr"] * (1 + math.cos(math.pi * (ck["epoch"] + 1 - 1) / atp["max_epoch"])) / 2
assert math.isclose(opt.param_groups[0]["lr"], expected, rel_tol=1e-12), (opt.param_groups[0]["lr"], expected)

# Only plain data: the file also loads with weights_only=True (torch.load's default from
# PyTorch 2.6 on), where this PyTorch's restricted unpickler can read floats at all (1.13's
# lacks the BINFLOAT opcode, even for files Python saved itself).
import io, pickletools, zipfile
with zipfile.ZipFile(path) as z:
    pickle_bytes = z.read([n for n in z.namelist() if n.endswith("/data.pkl")][0])
globals_used = {arg for op, arg, _ in pickletools.genops(pickle_bytes) if op.name == "GLOBAL"}
assert all(g in ("torch._utils _rebuild_tensor_v2", "collections OrderedDict") or
           (g.startswith("torch ") and g.endswith("Storage")) for g in globals_used), globals_used
probe = io.BytesIO()
torch.save({"x": 0.5}, probe)
probe.seek(0)
try:
    torch.load(probe, weights_only=True)
    safe_load_reads_floats = True
except Exception:
    safe_load_reads_floats = False
if safe_load_reads_floats:
    safe = torch.load(path, weights_only=True)
    assert torch.equal(safe["state_dict"]["ctx"], sd["ctx"])
    print("weights_only=True: read")
else:
    print("weights_only=True: not checked, this PyTorch's restricted unpickler cannot read floats")
print("ok")
)PY";

TEST_F(TrainingCheckpointTest, PythonsTorchLoadReadsOurFileAsADasslCheckpoint) {
  std::string why;
  const std::string python = PythonWithTorch(&why);
  if (python.empty()) GTEST_SKIP() << why;
  const std::string path = dir_.File("model.pth.tar-3");
  ASSERT_OK(SaveTrainingCheckpoint(path, SampleCheckpoint(3)));
  auto run = RunPython(python, kReadOurCheckpoint, Quote(path));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("ok"), std::string::npos) << run.output;
  RecordProperty("python_output", run.output);
}

TEST_F(TrainingCheckpointTest, SchedulerStateMatchesDasslAfterEveryEpoch) {
  std::string why;
  const std::string python = PythonWithTorch(&why);
  if (python.empty()) GTEST_SKIP() << why;
  // Epochs 0 (before training) to max_epoch, with and without the warm-up.
  std::string args;
  for (int64_t warmup : {1, 0, 2}) {
    for (int64_t epoch = 0; epoch <= 5; ++epoch) {
      TrainingCheckpoint c = SampleCheckpoint(epoch);
      c.schedule.warmup_epochs = warmup;
      const std::string path = dir_.File("w" + std::to_string(warmup) + "e" + std::to_string(epoch));
      ASSERT_OK(SaveTrainingCheckpoint(path, c));
      args += " " + Quote(path);
    }
  }
  auto run = RunPython(python, std::string(kReadOurCheckpoint).substr(0, std::string(kReadOurCheckpoint).find("path = ")) + R"PY(
for path in sys.argv[1:]:
    ck = torch.load(path)
    atp = ck["atp"]
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=atp["base_lr"], momentum=0.9)
    ref = CosineAnnealingLR(opt, float(atp["max_epoch"]))
    if atp["warmup_epochs"] > 0:
        ref = ConstantWarmupScheduler(opt, ref, atp["warmup_epochs"], atp["warmup_lr"])
    for _ in range(ck["epoch"]):
        opt.step()
        ref.step()
    ours, theirs = ck["scheduler"], ref.state_dict()
    pairs = [(ours, theirs)]
    if "successor" in theirs:
        pairs.append((ours["successor"], theirs["successor"].state_dict()))
    for o, t in pairs:
        for k, v in t.items():
            if k in ("optimizer", "successor"):
                continue
            if isinstance(v, list):
                assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(o[k], v)), (path, k, o[k], v)
            else:
                assert o[k] == v, (path, k, o[k], v)
    assert math.isclose(ck["optimizer"]["param_groups"][0]["lr"], opt.param_groups[0]["lr"], rel_tol=1e-12), path
print("ok")
)PY", args);
  ASSERT_EQ(run.exit_code, 0) << run.output;
}

// An official checkpoint as Dassl's save_checkpoint writes it: fp16 prompt tensors, the
// token buffers, SGD's state dict and the warm-up scheduler's state dict, which pickles the
// successor CosineAnnealingLR (and its SGD) as Python objects.
constexpr char kWriteOfficialCheckpoint[] = R"PY(
import sys, torch
from collections import OrderedDict
from torch.optim.lr_scheduler import _LRScheduler, CosineAnnealingLR

class ConstantWarmupScheduler(_LRScheduler):
    def __init__(self, optimizer, successor, warmup_epoch, cons_lr, last_epoch=-1, verbose=False):
        self.successor = successor
        self.warmup_epoch = warmup_epoch
        self.cons_lr = cons_lr
        super().__init__(optimizer, last_epoch, verbose)
    def step(self, epoch=None):
        if self.last_epoch >= self.warmup_epoch:
            self.successor.step(epoch)
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step(epoch)
    def get_lr(self):
        if self.last_epoch >= self.warmup_epoch:
            return self.successor.get_last_lr()
        return [self.cons_lr for _ in self.base_lrs]

torch.manual_seed(0)
ctx = torch.nn.Parameter((torch.randn(4, 512) * 0.02).half())
att1 = torch.nn.Parameter((torch.randn(2, 512) * 0.02).half())
opt = torch.optim.SGD([ctx, att1], lr=0.002, momentum=0.9, weight_decay=5e-4)
sched = ConstantWarmupScheduler(opt, CosineAnnealingLR(opt, 5.0), 1, 1e-5)
for _ in range(5):
    ctx.grad = torch.ones_like(ctx)
    att1.grad = torch.ones_like(att1)
    opt.step()
    sched.step()
state = OrderedDict()
state[sys.argv[2] + "ctx"] = ctx.data
state[sys.argv[2] + "ctx_att1"] = att1.data
state[sys.argv[2] + "token_prefix"] = torch.zeros(10, 1, 512).half()
state[sys.argv[2] + "token_middle1"] = torch.zeros(10, 1, 512).half()
state[sys.argv[2] + "token_suffix"] = torch.zeros(10, 60, 512).half()
torch.save({"state_dict": state, "epoch": 5, "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "val_result": None}, sys.argv[1])
torch.save(ctx.data.float(), sys.argv[1] + ".ctx")
torch.save(att1.data.float(), sys.argv[1] + ".att1")
)PY";

TEST_F(TrainingCheckpointTest, ImportsAnOfficialCheckpointWrittenByPython) {
  std::string why;
  const std::string python = PythonWithTorch(&why);
  if (python.empty()) GTEST_SKIP() << why;
  // A prompt-learner checkpoint (CoOp_ATP) and a whole-model one saved through DataParallel.
  for (const std::string prefix : {"", "module.prompt_learner."}) {
    SCOPED_TRACE("key prefix '" + prefix + "'");
    const std::string folder = dir_.File(prefix.empty() ? "prompt_learner" : "MultiModalPromptLearner");
    std::filesystem::create_directories(folder);
    const std::string path = folder + "/model.pth.tar-5";
    auto run = RunPython(python, kWriteOfficialCheckpoint, Quote(path) + " " + Quote(prefix));
    ASSERT_EQ(run.exit_code, 0) << run.output;
    std::ofstream(folder + "/checkpoint") << "model.pth.tar-5\n";

    auto sd = ImportPromptStateDict(path);
    ASSERT_OK(sd);
    const std::string name = prefix.empty() ? "" : "prompt_learner.";
    ASSERT_EQ(sd->size(), 2u);
    ASSERT_EQ(sd->count(name + "ctx"), 1u);
    ASSERT_EQ(sd->count(name + "ctx_att1"), 1u);
    const at::Tensor& ctx = sd->at(name + "ctx");
    EXPECT_EQ(ctx.scalar_type(), at::kFloat);
    EXPECT_EQ(ctx.sizes(), (std::vector<int64_t>{4, 512}));
    EXPECT_EQ(sd->at(name + "ctx_att1").sizes(), (std::vector<int64_t>{2, 512}));

    // The values equal what Python holds (it also saved the tensors on their own). The sums
    // are exact in double whatever the order: fp16 values span too few binades to round.
    auto check = RunPython(python,
                           "import sys, torch\n"
                           "ctx = torch.load(sys.argv[1] + '.ctx'); att = torch.load(sys.argv[1] + '.att1')\n"
                           "print(repr(ctx.double().sum().item()), repr(att.double().sum().item()))\n"
                           "print(repr(ctx[1, 7].item()), repr(att[1, 500].item()))\n",
                           Quote(path));
    ASSERT_EQ(check.exit_code, 0) << check.output;
    std::istringstream values(check.output);
    double ctx_sum, att_sum, ctx_1_7, att_1_500;
    values >> ctx_sum >> att_sum >> ctx_1_7 >> att_1_500;
    EXPECT_EQ(ctx.to(at::kDouble).sum().item<double>(), ctx_sum);
    EXPECT_EQ(sd->at(name + "ctx_att1").to(at::kDouble).sum().item<double>(), att_sum);
    EXPECT_EQ(ctx[1][7].item<double>(), ctx_1_7);
    EXPECT_EQ(sd->at(name + "ctx_att1")[1][500].item<double>(), att_1_500);

    // The model folder works too: its `checkpoint` file names the latest file.
    auto from_folder = ImportPromptStateDict(folder);
    ASSERT_OK(from_folder);
    EXPECT_TRUE(at::equal(from_folder->at(name + "ctx"), ctx));
  }
}

TEST_F(TrainingCheckpointTest, AFolderWithoutACheckpointFileIsExplained) {
  auto r = ImportPromptStateDict(dir_.path());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find("'checkpoint' file"), std::string::npos) << r.status().ToString();
}

}  // namespace
}  // namespace atp::train
