#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace atp {
namespace {

constexpr std::string_view kTempPrefix = ".tmp-";

std::string Quote(const std::string& s) { return "'" + s + "'"; }

std::string Reason(int err) { return std::strerror(err); }

std::string FolderOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string HostName() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') return "host";
  for (char* c = host; *c; ++c) {
    if (*c == '/') *c = '_';
  }
  return host;
}

std::atomic<uint64_t> g_next_sequence{0};

int SystemOpen(const char* path, int flags, mode_t mode) { return ::open(path, flags, mode); }

}  // namespace

const FileCalls& SystemFileCalls() {
  static const FileCalls calls{SystemOpen, ::write, ::fsync, ::close, ::rename, ::unlink};
  return calls;
}

std::string AtomicWriteTempPath(const std::string& path, pid_t pid, uint64_t sequence) {
  static const std::string host = HostName();
  const size_t slash = path.rfind('/');
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string folder = slash == std::string::npos ? "" : path.substr(0, slash + 1);
  return folder + std::string(kTempPrefix) + name + "." + host + "." + std::to_string(pid) + "." +
         std::to_string(sequence);
}

bool IsAtomicWriteTemp(std::string_view file_name) { return file_name.substr(0, kTempPrefix.size()) == kTempPrefix; }

Status WriteFileAtomically(const std::string& path, std::string_view bytes) {
  return WriteFileAtomically(path, std::vector<std::string_view>{bytes}, SystemFileCalls());
}

Status WriteFileAtomically(const std::string& path, const std::vector<std::string_view>& parts) {
  return WriteFileAtomically(path, parts, SystemFileCalls());
}

Status WriteFileAtomically(const std::string& path, const std::vector<std::string_view>& parts,
                           const FileCalls& calls) {
  const std::string temp = AtomicWriteTempPath(path, ::getpid(), g_next_sequence.fetch_add(1));
  // 1. The temporary file, beside the target. O_TRUNC: a file of that name can only be left by
  // a dead process of the same pid on this host.
  const int fd = calls.open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return IoError("cannot create " + Quote(temp) + " (does its folder exist and is it writable?): " +
                   Reason(errno));
  }
  auto fail = [&](const std::string& what, int err) {
    calls.close(fd);
    calls.unlink(temp.c_str());
    return IoError(what + " " + Quote(temp) + " (for " + Quote(path) + "): " + Reason(err));
  };
  for (std::string_view part : parts) {
    size_t done = 0;
    while (done < part.size()) {
      const ssize_t n = calls.write(fd, part.data() + done, part.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail("cannot write", n < 0 ? errno : ENOSPC);
      done += static_cast<size_t>(n);
    }
  }
  // 2. Without the flush a crash after the rename can leave the new name on missing data.
  if (calls.fsync(fd) != 0) return fail("cannot flush", errno);
  if (calls.close(fd) != 0) {
    const int err = errno;
    calls.unlink(temp.c_str());
    return IoError("cannot close " + Quote(temp) + " (for " + Quote(path) + "): " + Reason(err));
  }
  // 3. Readers see the old file or the new one.
  if (calls.rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    calls.unlink(temp.c_str());
    return IoError("cannot rename " + Quote(temp) + " to " + Quote(path) + ": " + Reason(err));
  }
  // 4. The rename lives in the folder's own data; it is durable once the folder is flushed.
  const std::string folder = FolderOf(path);
  const int dir_fd = calls.open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (dir_fd < 0) {
    return IoError(Quote(path) + " was replaced, but its folder " + Quote(folder) +
                   " cannot be opened to flush the rename: " + Reason(errno));
  }
  if (calls.fsync(dir_fd) != 0) {
    const int err = errno;
    calls.close(dir_fd);
    // Some filesystems cannot flush a folder at all and say so; their renames are as durable
    // as they get.
    if (err != EINVAL && err != ENOTSUP) {
      return IoError(Quote(path) + " was replaced, but its folder " + Quote(folder) +
                     " cannot be flushed: " + Reason(err));
    }
    return Status::Ok();
  }
  calls.close(dir_fd);
  return Status::Ok();
}

}  // namespace atp
