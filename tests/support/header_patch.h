// Test helper: rewrites fields of a VHDX file's two headers in place through the format layer
// (decode, change, encode with a fresh CRC-32C), e.g. to make a file the parent a differencing
// image's parent_linkage names.
#pragma once

#include <string>

#include "vhdx/error.h"
#include "vhdx/guid.h"

namespace vhdx::testing {

// Sets the DataWriteGuid of both headers of the VHDX file at `path`. Each header must decode
// (kCorrupt otherwise, naming the slot); kIo when the file cannot be read or written.
Result<void> set_data_write_guid(const std::string& path, const Guid& guid);

}  // namespace vhdx::testing
