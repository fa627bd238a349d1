#include "tools/command_line.h"

#include <cstdio>
#include <sstream>
#include <utility>
#include <vector>

#include "common/flag_value.h"
#include "tools/reporting/results_query.h"  // kLatestSweepId

namespace atp {
namespace {

constexpr size_t kOptionColumn = 26;

// The one help layout of every command:
//
//   usage: PROGRAM SYNOPSIS
//          PROGRAM OTHER-FORM
//
//   What the command does.
//
//   options:
//     --flag VALUE            what it sets
//     -h,--help               print this help and exit
//
//   commands:                 (commands with subcommands)
//     name                    what it does
//
//   Notes (the footer).
class CommandFormatter : public CLI::Formatter {
 public:
  CommandFormatter(std::string usage, std::string summary) : usage_(std::move(usage)), summary_(std::move(summary)) {
    column_width(kOptionColumn);
  }
  const std::string& usage() const { return usage_; }
  const std::string& summary() const { return summary_; }

  std::string UsageLines() const {
    std::string out;
    std::istringstream lines(usage_);
    std::string line;
    bool first = true;
    while (std::getline(lines, line)) {
      out += (first ? "usage: " : "       ") + line + "\n";
      first = false;
    }
    return out;
  }

  std::string make_help(const CLI::App* app, std::string name, CLI::AppFormatMode) const override {
    std::ostringstream out;
    out << UsageLines();
    if (!app->get_description().empty()) out << "\n" << app->get_description() << "\n";
    const CLI::Option* help = app->get_help_ptr();
    auto options = app->get_options([](const CLI::Option* o) { return o->nonpositional(); });
    out << "\noptions:\n";
    for (const CLI::Option* option : options) {
      if (option != help) out << make_option(option, false);
    }
    if (help) out << make_option(help, false);  // last, after the command's own
    auto commands = app->get_subcommands([](const CLI::App* sub) { return !sub->get_name().empty(); });
    if (!commands.empty()) {
      out << "\ncommands:\n";
      for (const CLI::App* sub : commands) {
        auto formatter = std::dynamic_pointer_cast<CommandFormatter>(sub->get_formatter());
        CLI::detail::format_help(out, sub->get_name(), formatter ? formatter->summary() : sub->get_description(),
                                 column_width_);
      }
      out << "\n`" << name << " COMMAND --help` describes a command.\n";
    }
    if (!app->get_footer().empty()) out << "\n" << app->get_footer() << "\n";
    return out.str();
  }

  std::string make_option_opts(const CLI::Option* option) const override {
    if (option->get_type_size() == 0 || option->get_type_name().empty()) return "";
    return " " + option->get_type_name();
  }

 private:
  std::string usage_;
  std::string summary_;
};

void Configure(CLI::App* app, const std::string& usage, const std::string& summary) {
  app->formatter(std::make_shared<CommandFormatter>(usage, summary));
  app->set_help_flag("-h,--help", "print this help and exit");
  // As the hand-written parsers did: a flag given twice keeps its last value.
  app->option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
}

// The deepest subcommand the parse reached: errors and help are about it.
const CLI::App* SelectedCommand(const CLI::App* app) {
  auto selected = app->get_subcommands();
  return selected.empty() ? app : SelectedCommand(selected.front());
}

}  // namespace

std::unique_ptr<CLI::App> MakeCommand(const std::string& program, const std::string& usage,
                                      const std::string& description) {
  auto app = std::make_unique<CLI::App>(description, program);
  Configure(app.get(), usage, "");
  return app;
}

CLI::App* AddSubcommand(CLI::App* parent, const std::string& name, const std::string& summary,
                        const std::string& usage, const std::string& description) {
  CLI::App* sub = parent->add_subcommand(name, description.empty() ? summary : description);
  Configure(sub, usage, summary);
  return sub;
}

std::string ProgramName(const CLI::App& app) {
  const CLI::App* parent = app.get_parent();
  return parent ? ProgramName(*parent) + " " + app.get_name() : app.get_name();
}

int ReportUsageError(const CLI::App& app, const std::string& message) {
  auto formatter = std::dynamic_pointer_cast<CommandFormatter>(app.get_formatter());
  std::fprintf(stderr, "%s: %s\n%s(`%s --help` describes every option)\n", ProgramName(app).c_str(), message.c_str(),
               formatter ? formatter->UsageLines().c_str() : "", ProgramName(app).c_str());
  return kUsageErrorExit;
}

std::optional<int> ParseCommandLine(CLI::App* app, int argc, char** argv) {
  try {
    app->parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app->help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& error) {
    return ReportUsageError(*SelectedCommand(app), error.what());
  }
  return std::nullopt;
}

CLI::Option* AddIntFlag(CLI::App* app, const std::string& flag, const std::string& value_name,
                        const std::string& description, int64_t minimum, int64_t maximum,
                        std::function<void(int64_t)> store) {
  auto parse = [flag, minimum, maximum, store](const std::string& text) {
    Result<int64_t> value = ParseIntFlag(flag, text, minimum, maximum);
    if (!value.ok()) throw CLI::ValidationError(value.status().message());
    store(*value);
  };
  return app->add_option_function<std::string>(flag, parse, description)->type_name(value_name);
}

CLI::Option* AddNumberFlag(CLI::App* app, const std::string& flag, const std::string& value_name,
                           const std::string& description, double* target, double minimum, bool minimum_allowed,
                           double maximum) {
  auto parse = [flag, minimum, minimum_allowed, maximum, target](const std::string& text) {
    Result<double> value = ParseNumberFlag(flag, text, minimum, minimum_allowed, maximum);
    if (!value.ok()) throw CLI::ValidationError(value.status().message());
    *target = *value;
  };
  return app->add_option_function<std::string>(flag, parse, description)->type_name(value_name);
}

CLI::Option* AddHostPortFlag(CLI::App* app, const std::string& flag, const std::string& description,
                             std::string* target, const std::string& default_host) {
  auto parse = [flag, target, default_host](const std::string& text) {
    Result<HostPort> value = ParseHostPortFlag(flag, text, default_host);
    if (!value.ok()) throw CLI::ValidationError(value.status().message());
    *target = text;
  };
  return app->add_option_function<std::string>(flag, parse, description)->type_name("[HOST:]PORT");
}

CLI::Option* AddRepeatableFlag(CLI::App* app, const std::string& flag, const std::string& value_name,
                               const std::string& description, std::function<void(const std::string&)> each) {
  auto take = [each](const std::vector<std::string>& values) {
    for (const std::string& value : values) each(value);
  };
  return app->add_option_function<std::vector<std::string>>(flag, take, description)
      ->type_name(value_name)
      ->allow_extra_args(false)  // one value per occurrence: a positional after it stays positional
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

CLI::Option* AddSweepIdFlag(CLI::App* app, std::optional<int64_t>* target, const std::string& default_text) {
  auto parse = [target](const std::string& text) {
    if (text == "latest") {
      *target = kLatestSweepId;
      return;
    }
    Result<int64_t> id = ParseIntFlag("--sweep", text, 1);
    if (!id.ok()) throw CLI::ValidationError(id.status().message() + " (a sweep id, or latest; see `atp status`)");
    *target = *id;
  };
  return app
      ->add_option_function<std::string>("--sweep", parse,
                                         "the sweep: an id, or latest (default: " + default_text + ")")
      ->type_name("ID|latest");
}

}  // namespace atp
