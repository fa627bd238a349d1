#include "common/blas_runtime.h"

#include <dlfcn.h>
#include <strings.h>
#include <unistd.h>

#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

#include "common/cpu_share.h"
#include "common/heap_tuning.h"

namespace atp {
namespace {

// OpenBLAS is looked up, not linked: atp's own code has no BLAS dependency (libtorch brings
// it), and a build without libtorch has none at all.
using GetText = char* (*)();
using GetInt = int (*)();
using SetInt = void (*)(int);
using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*, const float*,
                       const int*, const float*, const int*, const float*, float*, const int*);

template <typename F>
F Lookup(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_DEFAULT, name));
}

std::string OpenBlasCoreName() {
  auto corename = Lookup<GetText>("openblas_get_corename");
  const char* name = corename ? corename() : nullptr;
  return name ? name : "";
}

bool SameName(const std::string& a, const std::string& b) { return strcasecmp(a.c_str(), b.c_str()) == 0; }

std::string Env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

// "library=Prescott;selected=SkylakeX;rejected=Haswell" <-> map.
std::map<std::string, std::string> ParseState(const std::string& text) {
  std::map<std::string, std::string> state;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(';', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq != std::string::npos) state[item.substr(0, eq)] = item.substr(eq + 1);
    start = end + 1;
  }
  return state;
}

std::string FormatState(const std::map<std::string, std::string>& state) {
  std::string text;
  for (const auto& [key, value] : state) text += (text.empty() ? "" : ";") + key + "=" + value;
  return text;
}

std::string LibraryName() {
  auto config = Lookup<GetText>("openblas_get_config");
  if (!config) return Lookup<Sgemm>("sgemm_") ? "unknown BLAS" : "none";
  // "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64": name and version.
  std::string text = config() ? config() : "OpenBLAS";
  size_t second_space = text.find(' ', text.find(' ') + 1);
  std::string name = text.substr(0, second_space);
  auto parallel = Lookup<GetInt>("openblas_get_parallel");
  if (parallel) {
    const int mode = parallel();
    name += mode == 0 ? " (sequential)" : mode == 1 ? " (pthreads)" : " (OpenMP)";
  }
  return name;
}

std::mutex& RuntimeMutex() {
  static std::mutex mutex;
  return mutex;
}

BlasRuntime& Prepared() {
  static BlasRuntime runtime;
  return runtime;
}

bool& WasPrepared() {
  static bool prepared = false;
  return prepared;
}

[[noreturn]] void ReExecute(char** argv) {
  std::fflush(nullptr);
  ::execv("/proc/self/exe", argv);
  // Only reached when exec fails, which leaves the process as it was: say so and go on would
  // mean running on a kernel nobody checked, so stop instead.
  std::fprintf(stderr, "atp: could not re-execute %s to apply the BLAS kernel choice: %s\n", argv[0],
               std::strerror(errno));
  std::_Exit(2);
}

// Fills in what describes the library whatever the decision.
BlasRuntime Describe() {
  BlasRuntime runtime;
  runtime.library = LibraryName();
  runtime.kernel = OpenBlasCoreName();
  runtime.best_kernel = BestKernelForThisCpu();
  runtime.threads = BlasThreads();
  runtime.check = "not run";
  return runtime;
}

bool& OpenMpSpinState() {
  static bool spins = false;
  return spins;
}

}  // namespace

bool OpenMpLoadedSpinning() { return OpenMpSpinState(); }

Json BlasRuntime::ToJson() const {
  return Json{{"library", library},         {"kernel", kernel},       {"library_kernel", library_kernel},
              {"best_kernel", best_kernel}, {"selection", selection}, {"check", check},
              {"threads", threads}};
}

std::string BlasRuntime::Summary() const {
  std::string text = library;
  if (!kernel.empty()) text += ", kernel " + kernel;
  if (!selection.empty()) text += " (" + selection + ")";
  if (threads > 0) text += ", " + std::to_string(threads) + (threads == 1 ? " thread" : " threads");
  if (check.rfind("failed", 0) == 0) text += "; start-up check " + check;
  return text;
}

std::string BestKernelForThisCpu() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512cd")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    return __builtin_cpu_is("amd") ? "Zen" : "Haswell";
  }
  if (__builtin_cpu_supports("avx")) return "Sandybridge";
  if (__builtin_cpu_supports("sse4.2")) return "Nehalem";
  if (__builtin_cpu_supports("ssse3")) return "Core2";
  return "Prescott";
#else
  return "";
#endif
}

int KernelIsaLevel(const std::string& kernel) {
  // OpenBLAS's x86-64 core names (driver/others/dynamic.c) by the instruction set of their
  // single-precision GEMM kernels.
  static const std::map<std::string, int> kLevels = {
      {"prescott", 1},    {"core2", 1},       {"penryn", 1},      {"dunnington", 1},  {"nehalem", 1},
      {"atom", 1},        {"opteron", 1},     {"opteron_sse3", 1}, {"barcelona", 1},  {"bobcat", 1},
      {"katmai", 1},      {"coppermine", 1},  {"northwood", 1},   {"banias", 1},      {"athlon", 1},
      {"sandybridge", 2}, {"bulldozer", 2},   {"piledriver", 2},  {"steamroller", 2}, {"excavator", 2},
      {"haswell", 3},     {"zen", 3},         {"skylakex", 4},    {"cooperlake", 4},  {"sapphirerapids", 4},
  };
  std::string lower;
  for (char c : kernel) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = kLevels.find(lower);
  return it == kLevels.end() ? 0 : it->second;
}

Status CheckBlasProduct() {
  auto sgemm = Lookup<Sgemm>("sgemm_");
  if (!sgemm) return NotFound("no BLAS sgemm_ in this process");
  struct Case {
    int m, n, k;
    bool transpose_a, transpose_b;
  };
  // Sizes that reach the blocked kernels, their edge cases and the threaded path.
  const Case cases[] = {{128, 128, 128, false, false}, {37, 53, 71, true, false}, {130, 67, 129, false, true}};
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  auto next = [&seed] {  // splitmix64 in [-1, 1)
    uint64_t z = (seed += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<float>(static_cast<double>(z >> 40) / static_cast<double>(1ull << 23) - 1.0);
  };
  for (const Case& c : cases) {
    // Column-major, as Fortran BLAS: op(A) is m x k, op(B) is k x n.
    const int rows_a = c.transpose_a ? c.k : c.m, cols_a = c.transpose_a ? c.m : c.k;
    const int rows_b = c.transpose_b ? c.n : c.k, cols_b = c.transpose_b ? c.k : c.n;
    std::vector<float> a(static_cast<size_t>(rows_a) * cols_a), b(static_cast<size_t>(rows_b) * cols_b);
    for (float& x : a) x = next();
    for (float& x : b) x = next();
    std::vector<float> out(static_cast<size_t>(c.m) * c.n, 7.0f);
    const float alpha = 1.0f, beta = 0.0f;
    const char ta = c.transpose_a ? 'T' : 'N', tb = c.transpose_b ? 'T' : 'N';
    sgemm(&ta, &tb, &c.m, &c.n, &c.k, &alpha, a.data(), &rows_a, b.data(), &rows_b, &beta, out.data(), &c.m);
    auto op_a = [&](int i, int p) { return c.transpose_a ? a[i * static_cast<size_t>(rows_a) + p] : a[p * static_cast<size_t>(rows_a) + i]; };
    auto op_b = [&](int p, int j) { return c.transpose_b ? b[p * static_cast<size_t>(rows_b) + j] : b[j * static_cast<size_t>(rows_b) + p]; };
    for (int j = 0; j < c.n; ++j) {
      for (int i = 0; i < c.m; ++i) {
        double exact = 0.0, magnitude = 0.0;
        for (int p = 0; p < c.k; ++p) {
          exact += static_cast<double>(op_a(i, p)) * op_b(p, j);
          magnitude += std::fabs(static_cast<double>(op_a(i, p)) * op_b(p, j));
        }
        // Any summation order of k float products is within k * eps * sum |a||b| of the exact sum.
        const double tolerance = 2.0 * c.k * FLT_EPSILON * magnitude + 1e-30;
        const double got = out[j * static_cast<size_t>(c.m) + i];
        if (!(std::fabs(got - exact) <= tolerance)) {
          char message[256];
          std::snprintf(message, sizeof message,
                        "sgemm %dx%dx%d (%c%c) gives %.7g at (%d, %d) where the exact product is %.7g", c.m, c.n, c.k,
                        ta, tb, got, i, j, exact);
          return Internal(message);
        }
      }
    }
  }
  return Status::Ok();
}

void SetBlasThreads(int threads) {
  if (auto set = Lookup<SetInt>("openblas_set_num_threads")) set(threads);
  std::lock_guard<std::mutex> lock(RuntimeMutex());
  Prepared().threads = threads;
}

int BlasThreads() {
  auto get = Lookup<GetInt>("openblas_get_num_threads");
  return get ? get() : 0;
}

BlasRuntime CurrentBlasRuntime() {
  std::lock_guard<std::mutex> lock(RuntimeMutex());
  if (WasPrepared()) return Prepared();
  BlasRuntime runtime = Describe();
  runtime.library_kernel = runtime.kernel;
  runtime.selection = "the library's choice";
  return runtime;
}

BlasRuntime PrepareComputeProcess(int argc, char** argv, ProcessRole role) {
  (void)argc;
  BlasRuntime runtime = Describe();
  const bool is_openblas = runtime.library.rfind("OpenBLAS", 0) == 0;
  std::map<std::string, std::string> state = ParseState(Env(kBlasStateEnv));
  bool reexecute = false;

  // libtorch's OpenMP pool and OpenBLAS's pool read these when they load. Both default to
  // the process's share of the cores (an explicit thread count later goes to both through
  // SetCpuThreads); the user's own settings stay. A kCompute process that loaded without
  // them restarts; a kJob process does not (see OpenMpLoadedSpinning).
  const bool wait_policy_at_load = !Env("OMP_WAIT_POLICY").empty() || !Env("GOMP_SPINCOUNT").empty();
  bool restart_for_threads = false;
  const std::string share = std::to_string(ResolveCpuThreads(0));
  const std::pair<const char*, std::string> defaults[] = {
      {"OMP_WAIT_POLICY", "PASSIVE"}, {"OMP_NUM_THREADS", share}, {"OPENBLAS_NUM_THREADS", share}};
  for (const auto& [name, value] : defaults) {
    if (!Env(name).empty()) continue;
    setenv(name, value.c_str(), 1);
    restart_for_threads = true;
  }
  if (role == ProcessRole::kCompute && restart_for_threads) reexecute = true;
  OpenMpSpinState() = role != ProcessRole::kLauncher && !wait_policy_at_load && !reexecute;

  if (is_openblas && state.empty()) {
    // First process of the tree: decide once.
    const std::string user_choice = Env(kBlasCoretypeEnv);
    const std::string user_openblas = Env("OPENBLAS_CORETYPE");
    state["library"] = user_openblas.empty() ? runtime.kernel : "";
    std::string target;
    if (SameName(user_choice, "off")) {
      state["decision"] = "off";
    } else if (!user_choice.empty()) {
      target = user_choice;
      state["decision"] = "user";
    } else if (!user_openblas.empty()) {
      state["decision"] = "openblas-env";
    } else if (KernelIsaLevel(runtime.kernel) > 0 &&
               KernelIsaLevel(runtime.kernel) < KernelIsaLevel(runtime.best_kernel)) {
      target = runtime.best_kernel;
      state["decision"] = "fallback";
    } else {
      state["decision"] = "library";
    }
    if (!target.empty() && !SameName(target, runtime.kernel)) {
      setenv("OPENBLAS_CORETYPE", target.c_str(), 1);
      state["selected"] = target;
      reexecute = true;
    }
    setenv(kBlasStateEnv, FormatState(state).c_str(), 1);
  } else if (!is_openblas && state.empty()) {
    state["decision"] = "none";
    setenv(kBlasStateEnv, FormatState(state).c_str(), 1);
  }

  if (role != ProcessRole::kLauncher && reexecute) ReExecute(argv);
  if (role != ProcessRole::kLauncher) TuneHeapForTensors();

  runtime.library_kernel = state.count("library") && !state["library"].empty() ? state["library"] : "";
  const std::string decision = state["decision"];
  const std::string selected = state.count("selected") ? state["selected"] : "";
  if (decision == "off") runtime.selection = "the library's choice; " + std::string(kBlasCoretypeEnv) + "=off";
  else if (decision == "openblas-env") runtime.selection = "OPENBLAS_CORETYPE set by the user";
  else if (decision == "user") runtime.selection = "set by " + std::string(kBlasCoretypeEnv);
  else if (decision == "fallback") runtime.selection = "selected by atp; the library chose " + runtime.library_kernel;
  else runtime.selection = "the library's choice, the best for this CPU";
  if (state.count("rejected")) {
    runtime.selection = "the library's choice; " + state["rejected"] + " failed the start-up check";
  }
  if (role == ProcessRole::kLauncher) {
    // Children run what the environment now says; this process loaded before it was set.
    if (!selected.empty()) runtime.kernel = selected;
  }

  if (role != ProcessRole::kLauncher && is_openblas) {
    std::string problem;
    if (!selected.empty() && !SameName(runtime.kernel, selected)) {
      problem = "OpenBLAS does not know the core name '" + selected + "' (it ran " + runtime.kernel + ")";
    } else {
      Status product = CheckBlasProduct();
      if (!product.ok()) problem = product.message();
    }
    if (problem.empty()) {
      runtime.check = "passed";
    } else if (!selected.empty()) {
      // Back to the library's own choice, once: the state without "selected" stops a loop.
      std::fprintf(stderr, "atp: BLAS kernel %s failed the start-up check (%s); using the library's own choice\n",
                   selected.c_str(), problem.c_str());
      state.erase("selected");
      state["rejected"] = selected;
      unsetenv("OPENBLAS_CORETYPE");
      setenv(kBlasStateEnv, FormatState(state).c_str(), 1);
      ReExecute(argv);
    } else {
      runtime.check = "failed: " + problem;
      std::fprintf(stderr, "atp: warning: the BLAS's own kernel %s failed the start-up check: %s\n",
                   runtime.kernel.c_str(), problem.c_str());
    }
  }

  std::lock_guard<std::mutex> lock(RuntimeMutex());
  Prepared() = runtime;
  WasPrepared() = true;
  return runtime;
}

}  // namespace atp
