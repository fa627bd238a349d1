// CommandLine: how every atp command reads its flags, on CLI11. A command builds its CLI::App
// with MakeCommand (and AddSubcommand), adds its flags (numbers and addresses through AddIntFlag,
// AddNumberFlag and AddHostPortFlag, which keep common/flag_value's strict checks and name the
// flag in every error), then calls ParseCommandLine. So every command prints the same --help
// layout and ends alike: --help prints the help on stdout and exits 0; a usage error prints
// "PROGRAM: what was wrong" and the usage lines on stderr and exits 2 (kUsageErrorExit).
// The App belongs to the command; one parse per App; not thread-safe.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>

namespace atp {

constexpr int kUsageErrorExit = 2;

// `program` is the command as users type it ("atp status", "atp-sweep"); `usage` its synopsis
// (one line per form, without "usage: "); `description` what it does (printed under the usage).
std::unique_ptr<CLI::App> MakeCommand(const std::string& program, const std::string& usage,
                                      const std::string& description);

// A subcommand ("atp data split"): `summary` is its line in the parent's list of commands.
CLI::App* AddSubcommand(CLI::App* parent, const std::string& name, const std::string& summary,
                        const std::string& usage, const std::string& description = "");

// Parses argv (argv[0] is the command's own name and is skipped). Returns nullopt when the
// command should go on; otherwise the exit code, the help or the error already printed.
std::optional<int> ParseCommandLine(CLI::App* app, int argc, char** argv);

// For checks that only the command can make after parsing (e.g. "--db is required unless
// --dry-run"): prints "PROGRAM: message" and the usage of `app` on stderr; returns 2.
int ReportUsageError(const CLI::App& app, const std::string& message);

// The program name of an app: "atp data split" for the subcommand split of "atp data".
std::string ProgramName(const CLI::App& app);

// An integer flag in [minimum, maximum] (ParseIntFlag): "12x", "1e3", "" and out-of-range
// values are usage errors naming the flag. `store` receives the value.
CLI::Option* AddIntFlag(CLI::App* app, const std::string& flag, const std::string& value_name,
                        const std::string& description, int64_t minimum, int64_t maximum,
                        std::function<void(int64_t)> store);
template <typename Int>
CLI::Option* AddIntFlag(CLI::App* app, const std::string& flag, const std::string& value_name,
                        const std::string& description, Int* target, int64_t minimum,
                        int64_t maximum = std::numeric_limits<int64_t>::max()) {
  return AddIntFlag(app, flag, value_name, description, minimum, maximum,
                    [target](int64_t value) { *target = static_cast<Int>(value); });
}

// A finite number above `minimum` (or at it when `minimum_allowed`), at most `maximum`
// (ParseNumberFlag): inf, nan and overflow are usage errors naming the flag.
CLI::Option* AddNumberFlag(CLI::App* app, const std::string& flag, const std::string& value_name,
                           const std::string& description, double* target, double minimum, bool minimum_allowed,
                           double maximum = std::numeric_limits<double>::max());

// "[HOST:]PORT" (ParseHostPortFlag), kept as typed; checked before the command starts.
CLI::Option* AddHostPortFlag(CLI::App* app, const std::string& flag, const std::string& description,
                             std::string* target, const std::string& default_host);

// A flag that may be given many times ("--where a=1 --where b=2"), one value each; `each`
// receives every value in order and throws CLI::ValidationError to refuse one.
CLI::Option* AddRepeatableFlag(CLI::App* app, const std::string& flag, const std::string& value_name,
                               const std::string& description, std::function<void(const std::string&)> each);

// --sweep ID|latest of the commands that read a results database: a sweep id from 1 up, or
// "latest", stored as kLatestSweepId (tools/reporting/results_query.h), which
// ResolveSweepSelection turns into the newest sweep of the database. `default_text` says what
// the command reads without the flag.
CLI::Option* AddSweepIdFlag(CLI::App* app, std::optional<int64_t>* target, const std::string& default_text);

}  // namespace atp
