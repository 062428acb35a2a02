// The corruption catalogue: every damaged-image test registers its image here with its area,
// fault and expected outcome. Registering runs `vhdx info` and `vhdx check` on the image (under
// an address-space limit), checks that neither crashed nor changed the file, and, when the
// environment names a rows file (VHDX_CATALOGUE_ROWS), appends the case's row to it.
// CorruptionCatalogue.MatchesDocs runs every case in a child and compares the table the rows
// make with docs/corruption-catalogue.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vhdx/error.h"

namespace vhdx::testing {

// Remembers the first library error the current test saw (shown in the table).
void note_library_error(const Error& error);

// Registers the current test's damaged image. `area` is one of the catalogue's areas ("file",
// "header", "log", "region table", "metadata", "parent locator", "BAT", "sector bitmap").
void catalogue(const std::vector<std::uint8_t>& image, const std::string& area,
               const std::string& fault, const std::string& outcome);

}  // namespace vhdx::testing
