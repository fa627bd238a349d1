#include "worker/clip/torch_pickle.h"

#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <unordered_map>

namespace atp::clip {
namespace {

[[noreturn]] void Fail(const std::string& message) { throw TorchArchiveError(message); }

// Real checkpoints nest a handful of levels; a hostile pickle could nest a million, and
// freeing such a value would overflow the stack.
constexpr int kMaxNesting = 256;

void Nest(PyValue& parent, const std::vector<PyRef>& children) {
  for (const PyRef& child : children) {
    parent.depth = std::max(parent.depth, child->depth + 1);
    if (parent.depth > kMaxNesting) Fail("pickle nests values deeper than " + std::to_string(kMaxNesting) + " levels");
  }
}

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
    Nest(target, kv);
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
  int call_depth_ = 0;
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
    Status fits = CheckTensorFitsRecord(size, dtype, 0, {numel}, {1});
    if (!fits.ok()) throw TensorRecordError("storage record " + record + ": " + fits.message());
    const size_t want = static_cast<size_t>(numel) * c10::elementSize(dtype);
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
  bool empty = false;
  for (size_t d = 0; d < args[2]->items.size(); ++d) {
    const PyRef& size = args[2]->items[d];
    const PyRef& stride = args[3]->items[d];
    if (size->kind != PyValue::Kind::kInt || stride->kind != PyValue::Kind::kInt) Fail("tensor size or stride is not an int");
    sizes.push_back(size->i);
    strides.push_back(stride->i);
    if (size->i == 0) empty = true;
  }
  const at::Tensor& storage = args[0]->tensor;
  Status fits = CheckTensorFitsRecord(storage.nbytes(), storage.scalar_type(), args[1]->i, sizes, strides);
  if (!fits.ok()) throw TensorRecordError("has a tensor that does not fit its storage record: " + fits.message());
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
    if (++call_depth_ > kMaxNesting) Fail("pickle rebuilds a tensor from itself");
    PyRef rebuilt = Call(args[0], args[2]);
    --call_depth_;
    return rebuilt;
  }
  if (name == "collections.OrderedDict" || name == "collections.defaultdict" || name == "builtins.dict" ||
      name == "__builtin__.dict") {
    return Make(PyValue::Kind::kDict);  // the entries follow as SETITEM(S)
  }
  if (name == "builtins.set" || name == "__builtin__.set" || name == "builtins.frozenset" ||
      name == "__builtin__.frozenset" || name == "builtins.list" || name == "builtins.tuple") {
    auto v = Make(PyValue::Kind::kList);
    if (!args.empty()) v->items = args[0]->items;
    Nest(*v, v->items);
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
  Nest(*object, args);
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
        Nest(*Top(), {v});
        Top()->items.push_back(std::move(v));
        break;
      }
      case 'e':                                     // APPENDS
      case 0x90: {                                  // ADDITEMS
        std::vector<PyRef> items = PopMark();
        Nest(*Top(), items);
        auto& target = Top()->items;
        target.insert(target.end(), items.begin(), items.end());
        break;
      }
      case 'l':                                     // LIST
      case 0x91: {                                  // FROZENSET
        auto v = Make(K::kList);
        v->items = PopMark();
        Nest(*v, v->items);
        stack_.push_back(v);
        break;
      }
      case 't': {                                   // TUPLE
        auto v = Make(K::kTuple);
        v->items = PopMark();
        Nest(*v, v->items);
        stack_.push_back(v);
        break;
      }
      case 0x85:
      case 0x86:
      case 0x87: {                                  // TUPLE1..3
        auto v = Make(K::kTuple);
        v->items.resize(op - 0x84);
        for (size_t k = v->items.size(); k-- > 0;) v->items[k] = Pop();
        Nest(*v, v->items);
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
        Nest(*Top(), {key, value});
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
        if (Top()->kind == K::kObject) {
          Nest(*Top(), {state});
          Top()->state = std::move(state);
        }
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
}  // namespace

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

PyRef ReadTorchArchive(const std::string& path) {
  ArchiveReader archive(path);
  return archive.Root();
}

Status CheckTensorFitsRecord(uint64_t record_bytes, at::ScalarType dtype, int64_t storage_offset,
                             c10::IntArrayRef sizes, c10::IntArrayRef strides) {
  auto shape = [&] {
    std::string s = "[";
    for (size_t d = 0; d < sizes.size(); ++d) s += (d ? ", " : "") + std::to_string(sizes[d]);
    return s + "]";
  };
  if (sizes.size() != strides.size()) {
    return InvalidArgument("tensor of shape " + shape() + " has " + std::to_string(strides.size()) + " strides");
  }
  if (storage_offset < 0) return InvalidArgument("tensor has negative storage offset " + std::to_string(storage_offset));
  int64_t numel = 1;
  int64_t last = storage_offset;  // the highest element index the tensor reads
  bool empty = false;
  bool overflow = false;
  for (size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] < 0 || strides[d] < 0) {
      return InvalidArgument("tensor of shape " + shape() + " has a negative size or stride");
    }
    if (sizes[d] == 0) empty = true;
    overflow |= __builtin_mul_overflow(numel, sizes[d], &numel);
    int64_t reach = 0;
    overflow |= sizes[d] > 0 && __builtin_mul_overflow(sizes[d] - 1, strides[d], &reach);
    overflow |= __builtin_add_overflow(last, reach, &last);
  }
  if (empty) return Status::Ok();
  const uint64_t element = c10::elementSize(dtype);
  const uint64_t available = record_bytes / element;  // whole elements in the record
  if (overflow || static_cast<uint64_t>(last) >= available || static_cast<uint64_t>(numel) > available) {
    const std::string needed =
        overflow ? std::string("more elements than 64 bits count")
                 : std::to_string(std::max<int64_t>(last + 1, numel)) + " elements (" +
                       std::to_string(static_cast<uint64_t>(std::max<int64_t>(last + 1, numel)) * element) + " bytes)";
    return InvalidArgument("a " + std::string(c10::toString(dtype)) + " tensor of shape " + shape() + " needs " +
                           needed + ", but its record holds " + std::to_string(record_bytes) + " bytes");
  }
  return Status::Ok();
}

}  // namespace atp::clip
