// Every VHDX constant, once, with the section of shared/VHDX-FORMAT.md (the project's format
// fact sheet, mirrored in docs/format-map.md) it comes from.
#pragma once

#include <cstdint>

#include "vhdx/guid.h"

namespace vhdx::format {

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * kKiB;
inline constexpr std::uint64_t kGiB = 1024 * kMiB;
inline constexpr std::uint64_t kTiB = 1024 * kGiB;

// §2 layout of the 1 MiB header section.
inline constexpr std::uint64_t kFileIdentifierOffset = 0;
inline constexpr std::uint64_t kFileIdentifierSize = 64 * kKiB;
inline constexpr std::uint64_t kHeaderOffsets[2] = {64 * kKiB, 128 * kKiB};
inline constexpr std::uint64_t kHeaderSize = 4 * kKiB;  // bytes covered by the checksum
inline constexpr std::uint64_t kRegionTableOffsets[2] = {192 * kKiB, 256 * kKiB};
inline constexpr std::uint64_t kRegionTableSize = 64 * kKiB;
inline constexpr std::uint64_t kHeaderSectionSize = 1 * kMiB;
// §2: the log, regions and blocks sit on 1 MiB boundaries.
inline constexpr std::uint64_t kObjectAlignment = 1 * kMiB;

// §1 signatures, as bytes.
inline constexpr char kFileSignature[8] = {'v', 'h', 'd', 'x', 'f', 'i', 'l', 'e'};
inline constexpr char kHeaderSignature[4] = {'h', 'e', 'a', 'd'};
inline constexpr char kRegionTableSignature[4] = {'r', 'e', 'g', 'i'};
inline constexpr char kMetadataSignature[8] = {'m', 'e', 't', 'a', 'd', 'a', 't', 'a'};
inline constexpr char kLogEntrySignature[4] = {'l', 'o', 'g', 'e'};
inline constexpr char kDataDescriptorSignature[4] = {'d', 'e', 's', 'c'};
inline constexpr char kZeroDescriptorSignature[4] = {'z', 'e', 'r', 'o'};
inline constexpr char kDataSectorSignature[4] = {'d', 'a', 't', 'a'};

// §3 file identifier: creator string, 256 UTF-16 units at offset 8.
inline constexpr std::size_t kCreatorOffset = 8;
inline constexpr std::size_t kCreatorSize = 512;

// §4 header fields.
inline constexpr std::uint16_t kHeaderVersion = 1;
inline constexpr std::uint16_t kLogVersion = 0;

// §5 region table.
inline constexpr std::size_t kRegionTableHeaderSize = 16;
inline constexpr std::size_t kRegionEntrySize = 32;
inline constexpr std::uint32_t kMaxRegionEntries = 2047;

// §6 metadata region.
inline constexpr std::uint64_t kMetadataTableSize = 64 * kKiB;
inline constexpr std::size_t kMetadataTableHeaderSize = 32;
inline constexpr std::size_t kMetadataEntrySize = 32;
inline constexpr std::uint32_t kMaxMetadataEntries = 2047;
inline constexpr std::uint32_t kMaxUserMetadataEntries = 1024;
inline constexpr std::uint32_t kMaxMetadataItemLength = 1 * kMiB;
inline constexpr std::size_t kParentLocatorHeaderSize = 20;
inline constexpr std::size_t kParentLocatorEntrySize = 12;

// §7 and §13 limits.
inline constexpr std::uint32_t kMinBlockSize = 1 * kMiB;
inline constexpr std::uint32_t kMaxBlockSize = 256 * kMiB;
inline constexpr std::uint64_t kMaxVirtualSize = 64 * kTiB;
inline constexpr std::uint64_t kSectorsPerChunk = std::uint64_t{1} << 23;
inline constexpr std::uint64_t kSectorBitmapBlockSize = 1 * kMiB;
inline constexpr std::uint64_t kBatEntrySize = 8;
inline constexpr std::uint64_t kBatOffsetMask = 0xFFFFFFFFFFF00000ull;

// §9 log.
inline constexpr std::uint64_t kLogSectorSize = 4 * kKiB;
inline constexpr std::size_t kLogEntryHeaderSize = 64;
inline constexpr std::size_t kLogDescriptorSize = 32;

// §5 region GUIDs.
inline const Guid kBatRegionGuid = *Guid::parse("2DC27766-F623-4200-9D64-115E9BFD4A08");
inline const Guid kMetadataRegionGuid = *Guid::parse("8B7CA206-4790-4B9A-B8FE-575F050F886E");

// §6 system metadata item GUIDs.
inline const Guid kFileParametersGuid = *Guid::parse("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");
inline const Guid kVirtualDiskSizeGuid = *Guid::parse("2FA54224-CD1B-4876-B211-5DBED83BF4B8");
inline const Guid kVirtualDiskIdGuid = *Guid::parse("BECA12AB-B2E6-4523-93EF-C309E000C746");
inline const Guid kLogicalSectorSizeGuid = *Guid::parse("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");
inline const Guid kPhysicalSectorSizeGuid = *Guid::parse("CDA348C7-445D-4471-9CC9-E9885251C556");
inline const Guid kParentLocatorGuid = *Guid::parse("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");
// §6 the VHDX parent locator type.
inline const Guid kVhdxParentLocatorType = *Guid::parse("B04AEFB7-D19E-4A81-B789-25B8E9445913");

}  // namespace vhdx::format
