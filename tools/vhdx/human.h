// Number and byte formatting in the styles of qemu-img and qemu-io, so that output of the two
// tools lines up.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace vhdx::cli {

// qemu-img style: three significant digits and a binary unit, "3.71 MiB", "64 MiB", "0 B";
// switches to the next unit once the value reaches 1000 of the current one.
std::string human_size(std::uint64_t bytes);

// qemu-io style: "1 MiB", "512 KiB", "100 bytes", "1.500 MiB" (fractions keep three decimals).
std::string io_size(double bytes);

// qemu-io style elapsed time: "00.01 sec" below one second, "0:01:02.50" (h:mm:ss.ss) above.
std::string io_time(double seconds);

// qemu-io `read -v` style hex dump of data read at `offset`: lines of up to 16 bytes,
// "0000fff0:  41 42 ... 00  AB..", letters and digits shown, everything else as '.'.
std::string hex_dump(std::uint64_t offset, std::span<const std::uint8_t> data);

}  // namespace vhdx::cli
