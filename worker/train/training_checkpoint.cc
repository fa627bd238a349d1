#include "worker/train/training_checkpoint.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "common/atomic_file.h"
#include "worker/clip/torch_pickle.h"

namespace atp::train {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kFormat = 1;  // the "atp" entry's "format"; bump when its meaning changes

using clip::KindName;
using clip::PyRef;
using clip::PyValue;

// Thrown inside this file for a malformed archive or checkpoint; the public functions turn it
// into a Status naming the file.
using FormatError = clip::TorchArchiveError;

[[noreturn]] void Fail(const std::string& message) { throw FormatError(message); }

// Runs `body` (which reads `path`) and turns every way it can fail into a Status naming the file.
template <typename T, typename Body>
Result<T> Guarded(const std::string& what, const std::string& path, Body body) {
  try {
    return body();
  } catch (const FormatError& e) {
    return InvalidArgument(what + " " + path + " " + e.what());
  } catch (const std::exception& e) {
    std::string message = e.what();
    message = message.substr(0, message.find('\n'));  // c10 errors carry a backtrace
    return InvalidArgument(what + " " + path + " could not be read (" + message + "); is the file complete?");
  }
}

// ---------------------------------------------------------------------------------------
// Access to the unpickled values, with messages that name the key path.

const PyRef* Find(const PyRef& dict, const std::string& key) {
  if (dict->kind != PyValue::Kind::kDict) return nullptr;
  for (auto it = dict->entries.rbegin(); it != dict->entries.rend(); ++it) {
    if (it->first->kind == PyValue::Kind::kStr && it->first->s == key) return &it->second;
  }
  return nullptr;
}

const PyRef& Get(const PyRef& dict, const std::string& key, const std::string& where) {
  if (dict->kind != PyValue::Kind::kDict) Fail("has a " + std::string(KindName(dict->kind)) + " at " + where + ", not a dict");
  const PyRef* v = Find(dict, key);
  if (!v) Fail("has no key '" + key + "' in " + where);
  return *v;
}

const PyRef& Expect(const PyRef& v, PyValue::Kind kind, const std::string& where) {
  if (v->kind != kind) {
    Fail("has a " + std::string(KindName(v->kind)) + " at " + where + ", expected a " + KindName(kind));
  }
  return v;
}

int64_t GetInt(const PyRef& dict, const std::string& key, const std::string& where) {
  return Expect(Get(dict, key, where), PyValue::Kind::kInt, where + "['" + key + "']")->i;
}

double GetNumber(const PyRef& dict, const std::string& key, const std::string& where) {
  const PyRef& v = Get(dict, key, where);
  if (v->kind == PyValue::Kind::kFloat) return v->f;
  if (v->kind == PyValue::Kind::kInt) return static_cast<double>(v->i);
  Fail("has a " + std::string(KindName(v->kind)) + " at " + where + "['" + key + "'], expected a number");
}

bool GetBool(const PyRef& dict, const std::string& key, const std::string& where) {
  return Expect(Get(dict, key, where), PyValue::Kind::kBool, where + "['" + key + "']")->b;
}

std::string GetStr(const PyRef& dict, const std::string& key, const std::string& where) {
  return Expect(Get(dict, key, where), PyValue::Kind::kStr, where + "['" + key + "']")->s;
}

// A {str: tensor} dict, tensors made contiguous and independent of the archive's storages.
TensorMap GetTensors(const PyRef& dict, const std::string& where) {
  Expect(dict, PyValue::Kind::kDict, where);
  TensorMap out;
  for (const auto& [k, v] : dict->entries) {
    if (k->kind != PyValue::Kind::kStr) Fail("has a non-string key in " + where);
    if (v->kind != PyValue::Kind::kTensor) {
      Fail("has a " + std::string(KindName(v->kind)) + " at " + where + "['" + k->s + "'], expected a tensor");
    }
    out[k->s] = v->tensor.contiguous().clone();
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Writing.

using GenericDict = c10::impl::GenericDict;
using GenericList = c10::impl::GenericList;

GenericDict StrDict() { return GenericDict(c10::StringType::get(), c10::AnyType::get()); }

GenericList DoubleList(double v) {
  GenericList list(c10::AnyType::get());
  list.push_back(v);
  return list;
}

// A CPU tensor that owns exactly its elements: torch.save writes a view's whole storage.
at::Tensor Compact(const at::Tensor& t) {
  at::Tensor cpu = t.detach().to(at::kCPU);
  const bool owns_storage = cpu.is_contiguous() && cpu.storage_offset() == 0 &&
                            cpu.storage().nbytes() == static_cast<size_t>(cpu.numel()) * cpu.element_size();
  return owns_storage ? cpu : cpu.clone(at::MemoryFormat::Contiguous);
}

GenericDict TensorDict(const TensorMap& tensors) {
  GenericDict dict = StrDict();
  for (const auto& [name, t] : tensors) dict.insert(name, Compact(t));
  return dict;
}

// The state of one of PyTorch's schedulers (_LRScheduler.__dict__ minus the optimizer).
GenericDict SchedulerState(int64_t last_epoch, double base_lr, double last_lr) {
  GenericDict d = StrDict();
  d.insert("base_lrs", DoubleList(base_lr));
  d.insert("last_epoch", last_epoch);
  d.insert("verbose", false);
  d.insert("_step_count", last_epoch + 1);  // the construction step plus one per step since
  d.insert("_get_lr_called_within_step", false);
  d.insert("_last_lr", DoubleList(last_lr));
  return d;
}

// Dassl's scheduler after `epochs` steps: ConstantWarmupScheduler counts its own epochs only
// up to the end of the warm-up and then steps its successor, whose count starts at 0 there
// (WARMUP_RECOUNT). Without warm-up Dassl uses the CosineAnnealingLR directly.
GenericDict DasslSchedulerState(const CosineWarmupSchedule& s, int64_t epochs) {
  const double lr = s.LrAt(epochs);
  auto cosine = [&](int64_t last_epoch, double last_lr) {
    GenericDict d = SchedulerState(last_epoch, s.base_lr, last_lr);
    d.insert("T_max", static_cast<double>(s.max_epoch));  // Dassl passes float(max_epoch)
    d.insert("eta_min", int64_t{0});
    return d;
  };
  if (s.warmup_epochs == 0) return cosine(epochs, lr);
  const int64_t successor_steps = std::max<int64_t>(0, epochs - s.warmup_epochs);
  GenericDict d = SchedulerState(std::min(epochs, s.warmup_epochs), s.base_lr, lr);
  d.insert("cons_lr", s.warmup_lr);
  d.insert("warmup_epoch", s.warmup_epochs);
  d.insert("successor", cosine(successor_steps, successor_steps == 0 ? s.base_lr : lr));
  return d;
}

Status Validate(const TrainingCheckpoint& c) {
  const auto& s = c.schedule;
  if (s.max_epoch < 1 || s.warmup_epochs < 0 || !(s.base_lr > 0)) {
    return InvalidArgument("training checkpoint: schedule needs max_epoch >= 1, warmup_epochs >= 0 and base_lr > 0 (got " +
                           std::to_string(s.max_epoch) + ", " + std::to_string(s.warmup_epochs) + ", " +
                           std::to_string(s.base_lr) + ")");
  }
  if (c.epoch < 0 || c.epoch > s.max_epoch) {
    return InvalidArgument("training checkpoint: epoch " + std::to_string(c.epoch) + " is outside 0.." +
                           std::to_string(s.max_epoch));
  }
  std::set<std::string> seen;
  for (const auto& name : c.param_order) {
    if (!seen.insert(name).second) return InvalidArgument("training checkpoint: parameter " + name + " is listed twice in param_order");
    auto it = c.state_dict.find(name);
    if (it == c.state_dict.end() || !it->second.defined()) {
      return InvalidArgument("training checkpoint: parameter " + name + " of param_order has no tensor in state_dict");
    }
  }
  for (const auto& [name, buffer] : c.momentum) {
    if (!seen.count(name)) return InvalidArgument("training checkpoint: momentum buffer " + name + " is not in param_order");
    if (!buffer.defined() || buffer.sizes() != c.state_dict.at(name).sizes()) {
      return InvalidArgument("training checkpoint: momentum buffer " + name + " does not have its parameter's shape");
    }
  }
  for (const TensorMap* map : {&c.state_dict, &c.rng_state}) {
    for (const auto& [name, t] : *map) {
      if (!t.defined()) return InvalidArgument("training checkpoint: tensor " + name + " is undefined");
    }
  }
  return Status::Ok();
}

c10::IValue CheckpointValue(const TrainingCheckpoint& c) {
  const int64_t n = static_cast<int64_t>(c.param_order.size());
  GenericDict state(c10::IntType::get(), c10::AnyType::get());
  for (int64_t i = 0; i < n; ++i) {
    auto it = c.momentum.find(c.param_order[i]);
    if (it == c.momentum.end()) continue;
    GenericDict entry = StrDict();
    entry.insert("momentum_buffer", Compact(it->second));
    state.insert(i, entry);
  }
  GenericDict group = StrDict();
  group.insert("lr", c.lr());
  group.insert("momentum", c.sgd.momentum);
  group.insert("dampening", c.sgd.dampening);
  group.insert("weight_decay", c.sgd.weight_decay);
  group.insert("nesterov", c.sgd.nesterov);
  group.insert("maximize", false);
  group.insert("foreach", c10::IValue());
  group.insert("differentiable", false);
  group.insert("initial_lr", c.schedule.base_lr);
  GenericList params(c10::AnyType::get());
  for (int64_t i = 0; i < n; ++i) params.push_back(i);
  group.insert("params", params);
  GenericList groups(c10::AnyType::get());
  groups.push_back(group);
  GenericDict optimizer = StrDict();
  optimizer.insert("state", state);
  optimizer.insert("param_groups", groups);

  GenericDict atp = StrDict();
  atp.insert("format", kFormat);
  GenericList order(c10::AnyType::get());
  for (const auto& name : c.param_order) order.push_back(name);
  atp.insert("param_order", order);
  atp.insert("max_epoch", c.schedule.max_epoch);
  atp.insert("base_lr", c.schedule.base_lr);
  atp.insert("warmup_epochs", c.schedule.warmup_epochs);
  atp.insert("warmup_lr", c.schedule.warmup_lr);
  atp.insert("meta_json", c.meta_json);
  atp.insert("rng_state", TensorDict(c.rng_state));

  GenericDict root = StrDict();
  root.insert("state_dict", TensorDict(c.state_dict));
  root.insert("epoch", c.epoch);
  root.insert("optimizer", optimizer);
  root.insert("scheduler", DasslSchedulerState(c.schedule, c.epoch));
  root.insert("val_result", c10::IValue());
  root.insert("atp", atp);
  return root;
}

// The bytes of torch.save(value): a zip archive with data.pkl and one record per tensor.
// Written with libtorch's pickler as torch::pickle_save does, but with tag_aggregates off:
// pickle_save wraps every dict and list in torch.jit._pickle.restore_type_tag, which
// torch.load(weights_only=True) (the default from PyTorch 2.6 on) refuses to call. Untagged,
// the pickle uses only _rebuild_tensor_v2, the storage types and OrderedDict, all allowed.
std::vector<char> TorchSaveBytes(const c10::IValue& value) {
  std::vector<char> pickle;
  torch::jit::Pickler pickler([&](const char* bytes, size_t n) { pickle.insert(pickle.end(), bytes, bytes + n); },
                              /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
                              /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();
  std::vector<char> archive;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
    const char* bytes = static_cast<const char*>(data);
    archive.insert(archive.end(), bytes, bytes + n);
    return n;
  });
  // torch.save records the byte order since PyTorch 2.1; older readers ignore the record.
  writer.writeRecord("byteorder", "little", 6);
  torch::jit::writeArchiveAndTensors("data", pickle.data(), pickle.size(), pickler.tensorData(), writer);
  writer.writeEndOfFile();
  return archive;
}

// Checkpoints go where they are asked to, creating the folders on the way; the write itself
// follows atp's one durability rule (common/atomic_file.h).
Status WriteCheckpointFile(const std::string& path, const std::vector<char>& bytes) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("cannot create folder " + dir.string() + " for checkpoint " + path + ": " + ec.message());
  return WriteFileAtomically(path, std::string_view(bytes.data(), bytes.size()));
}

bool IsDroppedBuffer(const std::string& key) {
  static const std::set<std::string> kBuffers = {"token_prefix", "token_suffix", "token_middle1", "token_middle2",
                                                 "token_middle3"};
  const std::string prefix = "prompt_learner.";
  return kBuffers.count(key) || (key.rfind(prefix, 0) == 0 && kBuffers.count(key.substr(prefix.size())));
}

// Dassl's `checkpoint` file: its first line names the latest checkpoint in the folder.
Result<std::string> ResolveCheckpointPath(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return path;
  const std::string pointer = (fs::path(path) / "checkpoint").string();
  std::ifstream in(pointer);
  if (!in) {
    return NotFound("checkpoint folder " + path + " has no 'checkpoint' file naming its latest model.pth.tar-N; "
                    "pass the checkpoint file itself");
  }
  std::string name;
  std::getline(in, name);
  while (!name.empty() && std::isspace(static_cast<unsigned char>(name.back()))) name.pop_back();
  if (name.empty()) return InvalidArgument(pointer + " is empty; it should name the latest model.pth.tar-N");
  return (fs::path(path) / fs::path(name).filename()).string();
}

}  // namespace

Status SaveTrainingCheckpoint(const std::string& path, const TrainingCheckpoint& checkpoint) {
  ATP_RETURN_IF_ERROR(Validate(checkpoint).WithContext(path));
  std::vector<char> bytes;
  try {
    bytes = TorchSaveBytes(CheckpointValue(checkpoint));
  } catch (const std::exception& e) {
    std::string message = e.what();
    return Internal("cannot serialise training checkpoint " + path + ": " + message.substr(0, message.find('\n')));
  }
  return WriteCheckpointFile(path, bytes);
}

Result<TrainingCheckpoint> LoadTrainingCheckpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("training checkpoint " + path + " does not exist");
  return Guarded<TrainingCheckpoint>("training checkpoint", path, [&]() -> TrainingCheckpoint {
    const PyRef root = clip::ReadTorchArchive(path);
    if (root->kind != PyValue::Kind::kDict) Fail("holds a " + std::string(KindName(root->kind)) + ", not a checkpoint dict");
    if (!Find(root, "atp")) {
      Fail("is not an atp training checkpoint (no 'atp' entry); the prompt weights of an official checkpoint are "
           "read with ImportPromptStateDict");
    }
    const PyRef& atp = Get(root, "atp", "the checkpoint");
    const int64_t format = GetInt(atp, "format", "['atp']");
    if (format != kFormat) {
      Fail("has atp checkpoint format " + std::to_string(format) + "; this build reads format " + std::to_string(kFormat));
    }
    TrainingCheckpoint c;
    c.state_dict = GetTensors(Get(root, "state_dict", "the checkpoint"), "['state_dict']");
    c.epoch = GetInt(root, "epoch", "the checkpoint");
    for (const PyRef& name : Expect(Get(atp, "param_order", "['atp']"), PyValue::Kind::kList, "['atp']['param_order']")->items) {
      c.param_order.push_back(Expect(name, PyValue::Kind::kStr, "['atp']['param_order']")->s);
    }
    c.schedule.max_epoch = GetInt(atp, "max_epoch", "['atp']");
    c.schedule.base_lr = GetNumber(atp, "base_lr", "['atp']");
    c.schedule.warmup_epochs = GetInt(atp, "warmup_epochs", "['atp']");
    c.schedule.warmup_lr = GetNumber(atp, "warmup_lr", "['atp']");
    c.meta_json = GetStr(atp, "meta_json", "['atp']");
    c.rng_state = GetTensors(Get(atp, "rng_state", "['atp']"), "['atp']['rng_state']");

    const PyRef& optimizer = Get(root, "optimizer", "the checkpoint");
    const PyRef& groups = Expect(Get(optimizer, "param_groups", "['optimizer']"), PyValue::Kind::kList,
                                 "['optimizer']['param_groups']");
    if (groups->items.size() != 1) {
      Fail("has " + std::to_string(groups->items.size()) + " optimizer param_groups; atp checkpoints have one");
    }
    const PyRef& group = groups->items[0];
    const std::string where = "['optimizer']['param_groups'][0]";
    c.sgd.momentum = GetNumber(group, "momentum", where);
    c.sgd.dampening = GetNumber(group, "dampening", where);
    c.sgd.weight_decay = GetNumber(group, "weight_decay", where);
    c.sgd.nesterov = GetBool(group, "nesterov", where);
    const PyRef& state = Expect(Get(optimizer, "state", "['optimizer']"), PyValue::Kind::kDict, "['optimizer']['state']");
    for (const auto& [index, entry] : state->entries) {
      if (index->kind != PyValue::Kind::kInt || index->i < 0 || index->i >= static_cast<int64_t>(c.param_order.size())) {
        Fail("has optimizer state for a parameter index outside param_order (" + std::to_string(c.param_order.size()) +
             " parameters)");
      }
      const std::string at_index = "['optimizer']['state'][" + std::to_string(index->i) + "]";
      c.momentum[c.param_order[index->i]] =
          Expect(Get(entry, "momentum_buffer", at_index), PyValue::Kind::kTensor, at_index + "['momentum_buffer']")
              ->tensor.contiguous()
              .clone();
    }
    Status valid = Validate(c);
    if (!valid.ok()) Fail("is inconsistent: " + valid.message());
    return c;
  });
}

Result<TensorMap> ImportPromptStateDict(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("checkpoint " + path + " does not exist");
  ATP_ASSIGN_OR_RETURN(const std::string file, ResolveCheckpointPath(path));
  if (!fs::exists(file, ec)) return NotFound("checkpoint " + file + " (named by " + path + "/checkpoint) does not exist");
  return Guarded<TensorMap>("checkpoint", file, [&]() -> TensorMap {
    PyRef root = clip::ReadTorchArchive(file);
    if (const PyRef* wrapped = Find(root, "state_dict")) root = *wrapped;
    if (root->kind != PyValue::Kind::kDict) {
      Fail("holds a " + std::string(KindName(root->kind)) + ", not a state dict or a checkpoint with 'state_dict'");
    }
    TensorMap out;
    for (const auto& [key, value] : root->entries) {
      if (key->kind != PyValue::Kind::kStr) Fail("has a non-string key in its state dict");
      std::string name = key->s;
      while (name.rfind("module.", 0) == 0) name = name.substr(7);  // DataParallel wrappers
      if (IsDroppedBuffer(name)) continue;
      if (value->kind != PyValue::Kind::kTensor) {
        Fail("has a " + std::string(KindName(value->kind)) + " at state_dict['" + key->s + "'], expected a tensor");
      }
      at::Tensor t = value->tensor;
      t = t.is_floating_point() ? t.to(at::kFloat).contiguous().clone() : t.contiguous().clone();
      if (!out.emplace(name, t).second) Fail("names " + name + " twice (with and without a 'module.' prefix)");
    }
    if (out.empty()) Fail("holds no prompt weights (nothing but the token_* buffers)");
    return out;
  });
}

Result<PromptTokenBuffers> ReadPromptTokenBuffers(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("checkpoint " + path + " does not exist");
  ATP_ASSIGN_OR_RETURN(const std::string file, ResolveCheckpointPath(path));
  if (!fs::exists(file, ec)) return NotFound("checkpoint " + file + " (named by " + path + "/checkpoint) does not exist");
  return Guarded<PromptTokenBuffers>("checkpoint", file, [&]() -> PromptTokenBuffers {
    PyRef root = clip::ReadTorchArchive(file);
    if (const PyRef* wrapped = Find(root, "state_dict")) root = *wrapped;
    if (root->kind != PyValue::Kind::kDict) {
      Fail("holds a " + std::string(KindName(root->kind)) + ", not a state dict or a checkpoint with 'state_dict'");
    }
    PromptTokenBuffers out;
    out.file = file;
    for (const auto& [key, value] : root->entries) {
      if (key->kind != PyValue::Kind::kStr) Fail("has a non-string key in its state dict");
      std::string name = key->s;
      while (name.rfind("module.", 0) == 0) name = name.substr(7);
      if (!IsDroppedBuffer(name)) continue;
      if (name.rfind("prompt_learner.", 0) == 0) name = name.substr(std::string("prompt_learner.").size());
      if (value->kind != PyValue::Kind::kTensor) {
        Fail("has a " + std::string(KindName(value->kind)) + " at state_dict['" + key->s + "'], expected a tensor");
      }
      if (!out.buffers.emplace(name, value->tensor.contiguous().clone()).second) Fail("names buffer " + name + " twice");
    }
    return out;
  });
}

}  // namespace atp::train
