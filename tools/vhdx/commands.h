// The subcommands of `vhdx`. Each add_*_command registers one with CLI11; its callback runs it
// and leaves the process exit status in `status`.
#pragma once

#include <CLI/CLI.hpp>

#include "vhdx/error.h"

namespace vhdx {
struct CreateOptions;
}

namespace vhdx::cli {

void add_info_command(CLI::App& app, int& status);
void add_map_command(CLI::App& app, int& status);
void add_convert_command(CLI::App& app, int& status);
void add_io_command(CLI::App& app, int& status);
void add_probe_command(CLI::App& app, int& status);
void add_create_command(CLI::App& app, int& status);
void add_check_command(CLI::App& app, int& status);
void add_bench_command(CLI::App& app, int& status);

// Prints "vhdx: <message> (<code>)" on stderr and returns exit status 1.
int report_error(const Error& error);

// Parses a -o list for create and convert -O vhdx ("subformat=fixed,block_size=1M,...") into
// `out`; kInvalidArgument names the option and the rule.
Result<void> parse_create_options(const std::string& text, CreateOptions& out);

// Validates --output: "human" or "json".
CLI::Validator output_format_validator();

// Checks -f: only vhdx can be read; anything else is a clear error.
Result<void> check_source_format(const std::string& format);

}  // namespace vhdx::cli
