// Test helper: copies a torch.save or TorchScript zip archive record by record, letting the
// caller change the bytes of chosen records (to make a damaged file whose zip structure is
// intact). Header-only; used by the checkpoint-reader tests and fuzz tests.
#pragma once

#include <caffe2/serialize/inline_container.h>

#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace atp::testing {

// Record names as the reader lists them ("data.pkl", "data/0", "constants.pkl", ...).
// `edit(name, bytes)` returns the bytes to store for that record.
inline void RewriteArchive(const std::string& from, const std::string& to,
                           const std::function<std::string(const std::string&, std::string)>& edit) {
  caffe2::serialize::PyTorchStreamReader reader(from);
  std::vector<char> archive;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
      const char* bytes = static_cast<const char*>(data);
      archive.insert(archive.end(), bytes, bytes + n);
      return n;
    });
    for (const std::string& name : reader.getAllRecords()) {
      if (name == "version" || name == ".data/version") continue;  // the writer adds its own
      auto [data, size] = reader.getRecord(name);
      std::string bytes = edit(name, std::string(static_cast<const char*>(data.get()), size));
      writer.writeRecord(name, bytes.data(), bytes.size());
    }
    writer.writeEndOfFile();
  }
  std::ofstream(to, std::ios::binary).write(archive.data(), static_cast<std::streamsize>(archive.size()));
}

// The names of the tensor storage records of an archive ("data/0", ... or "constants/0").
inline std::vector<std::string> StorageRecords(const std::string& path) {
  caffe2::serialize::PyTorchStreamReader reader(path);
  std::vector<std::string> out;
  for (const std::string& name : reader.getAllRecords()) {
    if (name.rfind("data/", 0) == 0 || name.rfind("constants/", 0) == 0) out.push_back(name);
  }
  return out;
}

}  // namespace atp::testing
