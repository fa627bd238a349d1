#include "worker/train/training_checkpoint.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <torch/csrc/jit/serialization/export.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
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

namespace atp::train {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kFormat = 1;  // the "atp" entry's "format"; bump when its meaning changes

// Thrown inside this file for a malformed archive or checkpoint; the public functions turn it
// into a Status naming the file.
class FormatError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void Fail(const std::string& message) { throw FormatError(message); }

// ---------------------------------------------------------------------------------------
// Reading torch.save archives.
//
// libtorch's own unpickler (torch::pickle_load) reads what libtorch writes, but not what
// Python's torch.save writes for a Dassl checkpoint: single-entry dicts use the SETITEM
// opcode it lacks, and Dassl's scheduler state pickles Python objects (the successor
// CosineAnnealingLR holding its SGD optimizer). So archives are read with the small pickle
// machine below, which knows the few torch functions that rebuild tensors and keeps any other
// object as an opaque value, which is enough to take the tensors and numbers we need.
// ---------------------------------------------------------------------------------------

struct PyValue;
using PyRef = std::shared_ptr<PyValue>;

struct PyValue {
  enum class Kind { kNone, kBool, kInt, kFloat, kStr, kBytes, kList, kTuple, kDict, kGlobal, kObject, kTensor };
  Kind kind = Kind::kNone;
  bool b = false;
  int64_t i = 0;
  double f = 0.0;
  std::string s;                                  // str, bytes; global and object: "module.name"
  std::vector<PyRef> items;                       // list, tuple; object: constructor arguments
  std::vector<std::pair<PyRef, PyRef>> entries;   // dict, in insertion order
  at::Tensor tensor;
  PyRef state;                                    // object: what BUILD set
};

PyRef Make(PyValue::Kind kind) {
  auto v = std::make_shared<PyValue>();
  v->kind = kind;
  return v;
}
PyRef MakeInt(int64_t i) {
  auto v = Make(PyValue::Kind::kInt);
  v->i = i;
  return v;
}
PyRef MakeStr(std::string s, PyValue::Kind kind = PyValue::Kind::kStr) {
  auto v = Make(kind);
  v->s = std::move(s);
  return v;
}

const char* KindName(PyValue::Kind kind) {
  switch (kind) {
    case PyValue::Kind::kNone: return "None";
    case PyValue::Kind::kBool: return "bool";
    case PyValue::Kind::kInt: return "int";
    case PyValue::Kind::kFloat: return "float";
    case PyValue::Kind::kStr: return "str";
    case PyValue::Kind::kBytes: return "bytes";
    case PyValue::Kind::kList: return "list";
    case PyValue::Kind::kTuple: return "tuple";
    case PyValue::Kind::kDict: return "dict";
    case PyValue::Kind::kGlobal: return "global";
    case PyValue::Kind::kObject: return "object";
    case PyValue::Kind::kTensor: return "tensor";
  }
  return "?";
}

std::optional<at::ScalarType> StorageDtype(std::string name) {
  for (const char* prefix : {"torch.cuda.", "torch."}) {
    if (name.rfind(prefix, 0) == 0) {
      name = name.substr(std::strlen(prefix));
      break;
    }
  }
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"DoubleStorage", at::kDouble}, {"FloatStorage", at::kFloat},   {"HalfStorage", at::kHalf},
      {"BFloat16Storage", at::kBFloat16}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},   {"CharStorage", at::kChar},     {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool},     {"ComplexFloatStorage", at::kComplexFloat},
      {"ComplexDoubleStorage", at::kComplexDouble}, {"UntypedStorage", at::kByte}};
  auto it = kTypes.find(name);
  if (it == kTypes.end()) return std::nullopt;
  return it->second;
}

// Python str → bytes for _codecs.encode(s, "latin1"), how protocol 2 pickles Python 3 bytes.
std::string Latin1FromUtf8(const std::string& utf8) {
  std::string out;
  for (size_t i = 0; i < utf8.size(); ++i) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if ((c & 0xE0) == 0xC0 && i + 1 < utf8.size()) {
      const unsigned code = ((c & 0x1Fu) << 6) | (static_cast<unsigned char>(utf8[++i]) & 0x3Fu);
      if (code > 0xFF) Fail("_codecs.encode: character above U+00FF in latin1 bytes");
      out.push_back(static_cast<char>(code));
    } else {
      Fail("_codecs.encode: character above U+00FF in latin1 bytes");
    }
  }
  return out;
}

class ArchiveReader;

// A pickle machine for the opcodes of protocols 2-5 that torch.save and libtorch emit.
class Unpickler {
 public:
  Unpickler(const std::string& data, ArchiveReader* archive) : data_(data), archive_(archive) {}
  PyRef Run();

 private:
  uint8_t Byte() {
    Need(1);
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint64_t Unsigned(size_t n) {  // little-endian
    Need(n);
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(static_cast<uint8_t>(data_[pos_ + k])) << (8 * k);
    pos_ += n;
    return v;
  }
  std::string Bytes(uint64_t n) {
    Need(n);
    std::string s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string Line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string::npos) Fail("pickle ends inside a GLOBAL name");
    std::string s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }
  void Need(uint64_t n) const {
    if (n > data_.size() - pos_) Fail("pickle ends early at byte " + std::to_string(pos_));
  }
  PyRef Pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back())) Fail("pickle stack underflow");
    PyRef v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PyRef& Top() {
    if (stack_.empty()) Fail("pickle stack underflow");
    return stack_.back();
  }
  std::vector<PyRef> PopMark() {
    if (marks_.empty()) Fail("pickle MARK missing");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  void Memo(uint64_t index) { memo_[index] = Top(); }
  PyRef Recall(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) Fail("pickle refers to memo entry " + std::to_string(index) + " that was never stored");
    return it->second;
  }
  static void SetItems(PyValue& target, const std::vector<PyRef>& kv) {
    for (size_t k = 0; k + 1 < kv.size(); k += 2) target.entries.emplace_back(kv[k], kv[k + 1]);
  }

  PyRef Call(const PyRef& callable, const PyRef& args);
  PyRef RebuildTensor(const std::vector<PyRef>& args);

  const std::string& data_;
  ArchiveReader* archive_;
  size_t pos_ = 0;
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PyRef> memo_;
};

// A torch.save / torch::pickle_save zip archive: data.pkl plus one record per storage.
class ArchiveReader {
 public:
  explicit ArchiveReader(const std::string& path) : path_(path) {
    CheckContainer();
    reader_ = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    if (reader_->hasRecord("byteorder")) {
      auto [bytes, size] = reader_->getRecord("byteorder");
      const std::string order(static_cast<const char*>(bytes.get()), size);
      if (order != "little") Fail("the archive's tensors are " + order + "-endian; only little-endian is read");
    }
  }

  PyRef Root() {
    auto [bytes, size] = reader_->getRecord("data.pkl");
    const std::string pickle(static_cast<const char*>(bytes.get()), size);
    return Unpickler(pickle, this).Run();
  }

  // The flat tensor of storage `key` (shared by every tensor that views it).
  at::Tensor Storage(const std::string& key, at::ScalarType dtype, int64_t numel) {
    auto it = storages_.find(key);
    if (it != storages_.end()) return it->second;
    const std::string record = "data/" + key;
    if (!reader_->hasRecord(record)) Fail("storage record " + record + " is missing from the archive");
    auto [bytes, size] = reader_->getRecord(record);
    const size_t want = static_cast<size_t>(numel) * c10::elementSize(dtype);
    if (numel < 0 || size < want) {
      Fail("storage record " + record + " holds " + std::to_string(size) + " bytes; its " + std::to_string(numel) + " " +
           std::string(c10::toString(dtype)) + " elements need " + std::to_string(want));
    }
    at::Tensor flat = at::empty({numel}, at::TensorOptions().dtype(dtype));
    if (want > 0) std::memcpy(flat.data_ptr(), bytes.get(), want);
    storages_.emplace(key, flat);
    return flat;
  }

 private:
  // Clearer messages than the zip reader's for the common ways a file is not an archive.
  void CheckContainer() {
    std::ifstream in(path_, std::ios::binary);
    if (!in) Fail("cannot be opened (does it exist?)");
    char magic[4] = {0, 0, 0, 0};
    in.read(magic, 4);
    if (in.gcount() == 0) Fail("is empty");
    if (std::memcmp(magic, "PK\x03\x04", 4) != 0) {
      if (static_cast<unsigned char>(magic[0]) == 0x80) {
        Fail("is in the legacy (PyTorch < 1.6) torch.save format, which cannot be read here; re-save it in "
             "Python: torch.save(torch.load(p), p)");
      }
      Fail("is not a torch.save archive (no zip header)");
    }
    // A zip archive ends with an end-of-central-directory record; a copy cut short has none.
    in.seekg(0, std::ios::end);
    const auto size = static_cast<int64_t>(in.tellg());
    const int64_t window = std::min<int64_t>(size, 65535 + 22);  // the record plus the longest comment
    std::string tail(static_cast<size_t>(window), '\0');
    in.seekg(size - window);
    in.read(tail.data(), window);
    if (tail.find(std::string("PK\x05\x06", 4)) == std::string::npos) {
      Fail("is truncated: the zip archive has no end record (" + std::to_string(size) +
           " bytes); copy or download it again");
    }
  }

  std::string path_;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader_;
  std::map<std::string, at::Tensor> storages_;
};

PyRef Unpickler::RebuildTensor(const std::vector<PyRef>& args) {
  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, hooks[, metadata])
  if (args.size() < 4 || args[0]->kind != PyValue::Kind::kTensor || args[1]->kind != PyValue::Kind::kInt ||
      args[2]->kind != PyValue::Kind::kTuple || args[3]->kind != PyValue::Kind::kTuple ||
      args[2]->items.size() != args[3]->items.size()) {
    Fail("malformed _rebuild_tensor_v2 arguments");
  }
  std::vector<int64_t> sizes, strides;
  int64_t last = args[1]->i;  // highest element index the view touches
  bool empty = false;
  for (size_t d = 0; d < args[2]->items.size(); ++d) {
    const PyRef& size = args[2]->items[d];
    const PyRef& stride = args[3]->items[d];
    if (size->kind != PyValue::Kind::kInt || stride->kind != PyValue::Kind::kInt) Fail("tensor size or stride is not an int");
    sizes.push_back(size->i);
    strides.push_back(stride->i);
    if (size->i == 0) empty = true;
    if (size->i > 0) last += (size->i - 1) * stride->i;
  }
  const at::Tensor& storage = args[0]->tensor;
  if (!empty && (args[1]->i < 0 || last >= storage.numel())) {
    Fail("a tensor views elements past the end of its storage (" + std::to_string(storage.numel()) + " elements)");
  }
  auto t = Make(PyValue::Kind::kTensor);
  t->tensor = empty ? at::empty(sizes, storage.options()) : storage.as_strided(sizes, strides, args[1]->i);
  return t;
}

PyRef Unpickler::Call(const PyRef& callable, const PyRef& args_ref) {
  const std::vector<PyRef> no_args;
  const std::vector<PyRef>& args =
      args_ref && (args_ref->kind == PyValue::Kind::kTuple || args_ref->kind == PyValue::Kind::kList) ? args_ref->items
                                                                                                     : no_args;
  const std::string name = callable->kind == PyValue::Kind::kGlobal ? callable->s : "";
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") return RebuildTensor(args);
  if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state") {
    if (args.empty() || args[0]->kind != PyValue::Kind::kTensor) Fail("malformed _rebuild_parameter arguments");
    return args[0];
  }
  if (name == "torch._tensor._rebuild_from_type_v2" || name == "torch._tensor._rebuild_from_type") {
    // (func, subclass, func's args, state): the tensor func makes is what we keep.
    if (args.size() < 3) Fail("malformed _rebuild_from_type arguments");
    return Call(args[0], args[2]);
  }
  if (name == "collections.OrderedDict" || name == "collections.defaultdict" || name == "builtins.dict" ||
      name == "__builtin__.dict") {
    return Make(PyValue::Kind::kDict);  // the entries follow as SETITEM(S)
  }
  if (name == "builtins.set" || name == "__builtin__.set" || name == "builtins.frozenset" ||
      name == "__builtin__.frozenset" || name == "builtins.list" || name == "builtins.tuple") {
    auto v = Make(PyValue::Kind::kList);
    if (!args.empty()) v->items = args[0]->items;
    return v;
  }
  // libtorch's pickler wraps typed containers and lists in these; the value is the argument.
  if (name.rfind("torch.jit._pickle.", 0) == 0 && !args.empty()) return args[0];
  if (name == "torch.device" && !args.empty()) return args[0];
  if (name == "_codecs.encode" && !args.empty() && args[0]->kind == PyValue::Kind::kStr) {
    return MakeStr(Latin1FromUtf8(args[0]->s), PyValue::Kind::kBytes);
  }
  // Anything else (an SGD object, a scheduler...) stays opaque.
  auto object = Make(PyValue::Kind::kObject);
  object->s = name.empty() ? "<call>" : name;
  object->items = args;
  return object;
}

PyRef Unpickler::Run() {
  using K = PyValue::Kind;
  while (true) {
    const size_t at = pos_;
    const uint8_t op = Byte();
    switch (op) {
      case 0x80: Byte(); break;                     // PROTO
      case 0x95: Unsigned(8); break;                // FRAME
      case '.':                                     // STOP
        if (stack_.size() != 1) Fail("pickle stops with " + std::to_string(stack_.size()) + " values on the stack");
        return stack_.back();
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0':                                     // POP
        if (!marks_.empty() && stack_.size() == marks_.back()) {
          marks_.pop_back();
        } else {
          Pop();
        }
        break;
      case '1': PopMark(); break;                   // POP_MARK
      case '2': stack_.push_back(Top()); break;     // DUP
      case 'N': stack_.push_back(Make(K::kNone)); break;
      case 0x88:
      case 0x89: {                                  // NEWTRUE, NEWFALSE
        auto v = Make(K::kBool);
        v->b = op == 0x88;
        stack_.push_back(v);
        break;
      }
      case 'J': stack_.push_back(MakeInt(static_cast<int32_t>(Unsigned(4)))); break;  // BININT
      case 'K': stack_.push_back(MakeInt(Byte())); break;                             // BININT1
      case 'M': stack_.push_back(MakeInt(static_cast<int64_t>(Unsigned(2)))); break;  // BININT2
      case 0x8a:
      case 0x8b: {                                  // LONG1, LONG4: little-endian two's complement
        const uint64_t n = op == 0x8a ? Byte() : Unsigned(4);
        if (n > 8) Fail("integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
        uint64_t v = n ? Unsigned(n) : 0;
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        stack_.push_back(MakeInt(static_cast<int64_t>(v)));
        break;
      }
      case 'G': {                                   // BINFLOAT: big-endian double
        Need(8);
        uint64_t bits = 0;
        for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<uint8_t>(data_[pos_ + k]);
        pos_ += 8;
        auto v = Make(K::kFloat);
        std::memcpy(&v->f, &bits, sizeof bits);
        stack_.push_back(v);
        break;
      }
      case 'X': stack_.push_back(MakeStr(Bytes(Unsigned(4)))); break;   // BINUNICODE
      case 0x8c: stack_.push_back(MakeStr(Bytes(Byte()))); break;       // SHORT_BINUNICODE
      case 0x8d: stack_.push_back(MakeStr(Bytes(Unsigned(8)))); break;  // BINUNICODE8
      case 'T': stack_.push_back(MakeStr(Bytes(Unsigned(4)))); break;   // BINSTRING
      case 'U': stack_.push_back(MakeStr(Bytes(Byte()))); break;        // SHORT_BINSTRING
      case 'B': stack_.push_back(MakeStr(Bytes(Unsigned(4)), K::kBytes)); break;   // BINBYTES
      case 'C': stack_.push_back(MakeStr(Bytes(Byte()), K::kBytes)); break;        // SHORT_BINBYTES
      case 0x8e: stack_.push_back(MakeStr(Bytes(Unsigned(8)), K::kBytes)); break;  // BINBYTES8
      case ']': stack_.push_back(Make(K::kList)); break;   // EMPTY_LIST
      case ')': stack_.push_back(Make(K::kTuple)); break;  // EMPTY_TUPLE
      case '}': stack_.push_back(Make(K::kDict)); break;   // EMPTY_DICT
      case 0x8f: stack_.push_back(Make(K::kList)); break;  // EMPTY_SET (kept as a list)
      case 'a': {                                   // APPEND
        PyRef v = Pop();
        Top()->items.push_back(std::move(v));
        break;
      }
      case 'e':                                     // APPENDS
      case 0x90: {                                  // ADDITEMS
        std::vector<PyRef> items = PopMark();
        auto& target = Top()->items;
        target.insert(target.end(), items.begin(), items.end());
        break;
      }
      case 'l':                                     // LIST
      case 0x91: {                                  // FROZENSET
        auto v = Make(K::kList);
        v->items = PopMark();
        stack_.push_back(v);
        break;
      }
      case 't': {                                   // TUPLE
        auto v = Make(K::kTuple);
        v->items = PopMark();
        stack_.push_back(v);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {                                  // TUPLE1..3
        auto v = Make(K::kTuple);
        v->items.resize(op - 0x84);
        for (size_t k = v->items.size(); k-- > 0;) v->items[k] = Pop();
        stack_.push_back(v);
        break;
      }
      case 'd': {                                   // DICT
        auto v = Make(K::kDict);
        SetItems(*v, PopMark());
        stack_.push_back(v);
        break;
      }
      case 's': {                                   // SETITEM
        PyRef value = Pop();
        PyRef key = Pop();
        Top()->entries.emplace_back(std::move(key), std::move(value));
        break;
      }
      case 'u': {                                   // SETITEMS
        std::vector<PyRef> kv = PopMark();
        SetItems(*Top(), kv);
        break;
      }
      case 'q': Memo(Byte()); break;                // BINPUT
      case 'r': Memo(Unsigned(4)); break;           // LONG_BINPUT
      case 0x94: Memo(memo_.size()); break;         // MEMOIZE
      case 'h': stack_.push_back(Recall(Byte())); break;       // BINGET
      case 'j': stack_.push_back(Recall(Unsigned(4))); break;  // LONG_BINGET
      case 'c': {                                   // GLOBAL
        std::string module = Line();
        std::string name = Line();
        stack_.push_back(MakeStr(module + "." + name, K::kGlobal));
        break;
      }
      case 0x93: {                                  // STACK_GLOBAL
        PyRef name = Pop();
        PyRef module = Pop();
        stack_.push_back(MakeStr(module->s + "." + name->s, K::kGlobal));
        break;
      }
      case 'R': {                                   // REDUCE
        PyRef args = Pop();
        PyRef callable = Pop();
        stack_.push_back(Call(callable, args));
        break;
      }
      case 0x81: {                                  // NEWOBJ
        PyRef args = Pop();
        PyRef cls = Pop();
        stack_.push_back(Call(cls, args));
        break;
      }
      case 0x92: {                                  // NEWOBJ_EX
        Pop();                                      // kwargs
        PyRef args = Pop();
        PyRef cls = Pop();
        stack_.push_back(Call(cls, args));
        break;
      }
      case 'b': {                                   // BUILD
        PyRef state = Pop();
        if (Top()->kind == K::kObject) Top()->state = std::move(state);
        break;                                      // a tensor's or dict's extra state is not needed
      }
      case 'Q': {                                   // BINPERSID
        // ("storage", storage type, key, location, numel): a tensor storage record.
        PyRef pid = Pop();
        if (pid->kind != K::kTuple || pid->items.size() < 5 || pid->items[0]->s != "storage" ||
            pid->items[1]->kind != K::kGlobal || pid->items[4]->kind != K::kInt) {
          Fail("unknown persistent id in the pickle (not a tensor storage)");
        }
        auto dtype = StorageDtype(pid->items[1]->s);
        if (!dtype) Fail("unknown storage type " + pid->items[1]->s);
        auto v = Make(K::kTensor);
        v->tensor = archive_->Storage(pid->items[2]->s, *dtype, pid->items[4]->i);
        stack_.push_back(v);
        break;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        Fail(std::string("unsupported pickle opcode ") + hex + " at byte " + std::to_string(at));
      }
    }
  }
}

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

Status ErrnoError(const std::string& what, const std::string& path) {
  return IoError(what + " " + path + ": " + std::strerror(errno));
}

Status WriteAtomically(const std::string& path, const std::vector<char>& bytes) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return IoError("cannot create folder " + dir.string() + " for checkpoint " + path + ": " + ec.message());
  std::string temp = (dir / ("." + target.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = mkstemp(temp.data());
  if (fd < 0) return ErrnoError("cannot create a temporary file next to checkpoint", path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = ErrnoError("cannot write checkpoint", temp);
      ::close(fd);
      ::unlink(temp.c_str());
      return s;
    }
    done += static_cast<size_t>(n);
  }
  // fsync before rename: otherwise a crash can leave the new name pointing at missing data.
  if (::fsync(fd) != 0) {
    Status s = ErrnoError("cannot flush checkpoint", temp);
    ::close(fd);
    ::unlink(temp.c_str());
    return s;
  }
  if (::close(fd) != 0) {
    ::unlink(temp.c_str());
    return ErrnoError("cannot close checkpoint", temp);
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    Status s = ErrnoError("cannot rename " + temp + " to checkpoint", path);
    ::unlink(temp.c_str());
    return s;
  }
  // The rename itself is durable once the folder is flushed.
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
  return Status::Ok();
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
  return WriteAtomically(path, bytes);
}

Result<TrainingCheckpoint> LoadTrainingCheckpoint(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("training checkpoint " + path + " does not exist");
  return Guarded<TrainingCheckpoint>("training checkpoint", path, [&]() -> TrainingCheckpoint {
    ArchiveReader archive(path);
    const PyRef root = archive.Root();
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
    ArchiveReader archive(file);
    PyRef root = archive.Root();
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

}  // namespace atp::train
