#include "worker/clip/clip_checkpoint.h"

#include <torch/script.h>
#include <torch/serialize.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include "worker/clip/torch_pickle.h"

namespace atp::clip {
namespace {

bool IsScalarMetadata(const std::string& key) {
  return key == "input_resolution" || key == "context_length" || key == "vocab_size";
}

// A zip archive ends with an end-of-central-directory record; a download cut short has none.
bool HasZipEnd(const std::string& bytes) {
  const size_t window = 65535 + 22;  // the record plus the longest archive comment
  const size_t start = bytes.size() > window ? bytes.size() - window : 0;
  return bytes.find(std::string("PK\x05\x06", 4), start) != std::string::npos;
}

Status AddTensor(const std::string& path, const std::string& key, const torch::Tensor& t, StateDict* out) {
  if (IsScalarMetadata(key)) return Status::Ok();
  if (!t.is_floating_point()) {
    return InvalidArgument(path + ": tensor " + key + " has dtype " + std::string(c10::toString(t.scalar_type())) +
                           "; CLIP weights are floating point");
  }
  (*out)[key] = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return Status::Ok();
}

// libtorch's loaders rebuild a tensor as a view of its storage record without checking that
// the record is long enough; a short record would be read past its end.
Status CheckFitsRecord(const std::string& path, const std::string& key, const torch::Tensor& t) {
  Status fits = CheckTensorFitsRecord(t.storage().nbytes(), t.scalar_type(), t.storage_offset(), t.sizes(), t.strides());
  if (fits.ok()) return fits;
  return InvalidArgument(path + ": tensor " + key + " does not fit its storage record (" + fits.message() +
                         "); the file is damaged: download it again");
}

Result<StateDict> FromTorchScript(const std::string& path) {
  // libtorch's TorchScript loader sizes each storage by the element count its pickle declares,
  // not by the bytes of the record it read, so a short record would be read past its end and
  // no later check could tell. The shared reader reads the same pickle (data.pkl) with the
  // record check first; what else it cannot read of a TorchScript pickle is left to libtorch.
  try {
    (void)ReadTorchArchive(path);
  } catch (const TensorRecordError& e) {
    return InvalidArgument(path + ": " + e.what() + "; the file is damaged: download it again");
  } catch (const std::exception&) {
    // Not a record problem: libtorch's loader decides below.
  }
  torch::jit::Module m = torch::jit::load(path, torch::kCPU);
  StateDict out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) {
    ATP_RETURN_IF_ERROR(CheckFitsRecord(path, p.name, p.value));
    ATP_RETURN_IF_ERROR(AddTensor(path, p.name, p.value, &out));
  }
  for (const auto& b : m.named_buffers(/*recurse=*/true)) {
    ATP_RETURN_IF_ERROR(CheckFitsRecord(path, b.name, b.value));
    ATP_RETURN_IF_ERROR(AddTensor(path, b.name, b.value, &out));
  }
  return out;
}

// A torch.save'd dict of tensors, read with the shared archive reader (which checks every
// tensor against its record).
Result<StateDict> FromPickledDict(const std::string& path) {
  PyRef root = ReadTorchArchive(path);
  if (root->kind == PyValue::Kind::kDict) {
    // Training frameworks wrap the weights: {"state_dict": {...}, "epoch": ...}.
    for (const auto& [key, value] : root->entries) {
      if (key->kind == PyValue::Kind::kStr && key->s == "state_dict" && value->kind == PyValue::Kind::kDict) {
        root = value;
        break;
      }
    }
  }
  if (root->kind != PyValue::Kind::kDict) {
    return InvalidArgument(path + ": the archive holds a " + KindName(root->kind) + ", not a dict of tensors (state dict)");
  }
  StateDict out;
  for (const auto& [key, value] : root->entries) {
    if (key->kind != PyValue::Kind::kStr) return InvalidArgument(path + ": state-dict key is not a string");
    if (value->kind != PyValue::Kind::kTensor) {
      if (IsScalarMetadata(key->s)) continue;
      return InvalidArgument(path + ": entry " + key->s + " is a " + KindName(value->kind) + ", not a tensor");
    }
    ATP_RETURN_IF_ERROR(AddTensor(path, key->s, value->tensor, &out));
  }
  return out;
}

std::string FirstLine(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  return line.size() > 300 ? line.substr(0, 300) + "..." : line;
}

}  // namespace

Result<StateDict> ReadClipStateDict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("CLIP checkpoint " + path + " cannot be opened (does it exist?)");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.empty()) return InvalidArgument("CLIP checkpoint " + path + " is empty");
  const bool zip = bytes.compare(0, 4, std::string("PK\x03\x04", 4)) == 0;
  if (!zip) {
    if (static_cast<unsigned char>(bytes[0]) == 0x80) {
      return InvalidArgument("CLIP checkpoint " + path +
                             " is in the legacy (pre-1.6) torch.save format, which libtorch cannot read; "
                             "re-save it in Python with torch.save(state_dict, path)");
    }
    return InvalidArgument("CLIP checkpoint " + path +
                           " is not a PyTorch archive (no zip header); expected OpenAI's .pt file or a "
                           "torch.save'd state dict");
  }
  if (!HasZipEnd(bytes)) {
    return InvalidArgument("CLIP checkpoint " + path + " is truncated: the zip archive has no end record (" +
                           std::to_string(bytes.size()) + " bytes); download it again");
  }
  // TorchScript archives carry code/; torch.save archives only data.pkl and data/.
  const bool torchscript = bytes.find("/code/") != std::string::npos || bytes.find("constants.pkl") != std::string::npos;
  std::string first_error;
  try {
    if (torchscript) return FromTorchScript(path);
    return FromPickledDict(path);
  } catch (const std::exception& e) {
    first_error = FirstLine(e.what());
  }
  // The detection above is a heuristic; try the other reader before giving up.
  try {
    if (torchscript) return FromPickledDict(path);
    return FromTorchScript(path);
  } catch (const std::exception& e) {
    return InvalidArgument("CLIP checkpoint " + path + " could not be read as a TorchScript archive or a state dict (" +
                           first_error + "); is the file complete?");
  }
}

Result<Clip> ClipFromStateDict(const StateDict& state, const std::string& source) {
  TensorShapes shapes;
  for (const auto& [k, t] : state) shapes[k] = t.sizes().vec();
  ATP_ASSIGN_OR_RETURN(ClipOptions options, InferClipOptions(shapes, source));
  TensorShapes expected = ExpectedClipShapes(options);
  std::vector<std::string> missing, unexpected, misshaped;
  for (const auto& [k, s] : expected) {
    auto it = shapes.find(k);
    if (it == shapes.end()) {
      missing.push_back(k + " " + ShapeString(s));
    } else if (it->second != s) {
      misshaped.push_back(k + " is " + ShapeString(it->second) + ", expected " + ShapeString(s));
    }
  }
  for (const auto& [k, s] : shapes) {
    if (expected.count(k) == 0) unexpected.push_back(k + " " + ShapeString(s));
  }
  if (!missing.empty() || !unexpected.empty() || !misshaped.empty()) {
    std::string msg = source + ": tensors do not match a CLIP " + options.ToString();
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      msg += "\n  " + std::string(what) + " (" + std::to_string(keys.size()) + "):";
      for (size_t i = 0; i < keys.size() && i < 12; ++i) msg += "\n    " + keys[i];
      if (keys.size() > 12) msg += "\n    ...";
    };
    list("missing", missing);
    list("misshaped", misshaped);
    list("unexpected", unexpected);
    return InvalidArgument(msg);
  }
  Clip model(options);
  torch::NoGradGuard no_grad;
  for (auto& p : model->named_parameters(/*recurse=*/true)) {
    p.value().copy_(state.at(p.key()));
    p.value().set_requires_grad(false);
  }
  model->eval();
  return model;
}

Result<Clip> LoadClip(const std::string& path) {
  ATP_ASSIGN_OR_RETURN(StateDict state, ReadClipStateDict(path));
  return ClipFromStateDict(state, path);
}

}  // namespace atp::clip
