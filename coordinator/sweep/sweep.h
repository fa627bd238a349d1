// Sweep: a parsed, validated and expanded sweep file (TOML, read with toml++).
// LoadSweepFile/ParseSweep do all validation before anything runs; every error names the
// file, the line and the key. The result lists the jobs in dependency order (each job after
// all of its upstream jobs). Plain value type; the functions are thread-safe.
// The file format is documented for users in docs/sweep_format.md.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/job_spec.h"
#include "common/method_recipes.h"
#include "common/status.h"

namespace atp {

struct StageInfo {
  std::string name;
  std::string method_summary;               // e.g. "sleep" or "coop, cocoop"
  std::vector<std::string> depends_on;      // stage names
  // Points of the stage's product that never became jobs, so nothing is dropped silently:
  int64_t excluded_points = 0;  // removed by [[exclude]] rules
  int64_t merged_points = 0;    // collapsed onto an earlier point with the same job key
                                // (e.g. an axis the job's method does not take, or an
                                // [[include]] repeating a point of the product)
};

struct Sweep {
  std::string name;
  std::string source_path;    // as given by the user ("<string>" for ParseSweep without a file)
  std::string source_text;    // the TOML as read: stored with the sweep for provenance
  std::string code_version;
  std::vector<StageInfo> stages;   // in dependency order
  std::vector<JobSpec> jobs;       // upstream jobs always come before the jobs that depend on them
  // Things that are legal but probably unintended, e.g. an [[override]] or [[exclude]] that
  // matched no job; each names the file and line. Shown by FormatDryRun.
  std::vector<std::string> warnings;

  // Number of jobs per stage, in stage order.
  std::vector<std::pair<std::string, int64_t>> CountsByStage() const;
};

// Limits checked while reading, before anything is allocated for the jobs. A sweep's points
// (the sum over its stages' cartesian products and [[include]] points, counted before
// [[exclude]] and merging) may not exceed kMaxSweepPoints: every point costs about 1.5 kB
// while expanding, so the cap bounds a sweep's memory to ~300 MB. Larger studies are split
// into several sweep files sharing one database.
constexpr int64_t kMaxSweepPoints = 200000;
constexpr int kMaxRanksPerJob = 4096;

// `recipes` completes the parameters a job leaves out (tests pass their own book).
Result<Sweep> LoadSweepFile(const std::string& path, const RecipeBook& recipes = DefaultRecipes());
Result<Sweep> ParseSweep(std::string_view toml_text, const std::string& source_name,
                         const RecipeBook& recipes = DefaultRecipes());

// What `atp-sweep --dry-run` prints: one line per job (short key, stage, method, ranks, the
// effective recipe — epochs, n_ctx, lr, batch, init — where the method has one, the other
// parameters that vary, upstream short keys), then the counts per stage and the total.
std::string FormatDryRun(const Sweep& sweep);

}  // namespace atp
