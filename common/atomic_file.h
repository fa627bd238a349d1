// WriteFileAtomically: replaces a file so that readers (other processes, other hosts on a shared
// filesystem, a crash) see the old contents or the new ones, never a partial file. Every file
// atp publishes goes through it. Stateless apart from a process-wide sequence number for temp
// names; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "common/status.h"

namespace atp {

// The durability rule, the one every atomic write in atp follows:
//   1. write the bytes to a temporary file in the target's own folder (a rename across
//      filesystems is not atomic), named by AtomicWriteTempPath;
//   2. fsync the temporary file, so the new name never points at data still in memory;
//   3. rename it over `path`;
//   4. fsync the folder, so the rename itself survives a crash.
// The folder must exist. On failure before the rename the temporary file is removed and
// `path` is untouched; every error names the file (or folder) and the system's reason.
Status WriteFileAtomically(const std::string& path, std::string_view bytes);
// The same, writing `parts` one after another (no copy into one buffer).
Status WriteFileAtomically(const std::string& path, const std::vector<std::string_view>& parts);

// The temporary file of the `sequence`-th atomic write (counted from 0) of process `pid` on
// this host: "<folder>/.tmp-<name>.<host>.<pid>.<sequence>". Host and pid keep writers on a
// shared filesystem apart, the sequence keeps threads of one process apart.
std::string AtomicWriteTempPath(const std::string& path, pid_t pid, uint64_t sequence);
// Whether a file name (no folder) is one of those temporary files; a writer that died leaves
// them behind, and whoever owns the folder may remove old ones.
bool IsAtomicWriteTemp(std::string_view file_name);

// The system calls a write goes through. Tests replace them to watch the steps and to make
// one of them fail; everything else uses SystemFileCalls().
struct FileCalls {
  int (*open)(const char* path, int flags, mode_t mode);
  ssize_t (*write)(int fd, const void* data, size_t size);
  int (*fsync)(int fd);
  int (*close)(int fd);
  int (*rename)(const char* from, const char* to);
  int (*unlink)(const char* path);
};
const FileCalls& SystemFileCalls();
Status WriteFileAtomically(const std::string& path, const std::vector<std::string_view>& parts,
                           const FileCalls& calls);

}  // namespace atp
