// BatCache: the BAT, loaded in 64 KiB pages on demand and kept in a bounded cache with clock
// eviction. A hit is an index into a page table plus one array load: no allocation, no lock.
// Entries are raw u64 values (decoded little-endian); the engine validates the entry it uses.
//
// Thread safety: none. The cache reads through the File it was given; it does not own it.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "vhdx/error.h"
#include "vhdx/file.h"

namespace vhdx::image {

class BatCache {
 public:
  static constexpr unsigned kPageShift = 13;  // 8192 entries: 64 KiB of BAT per page
  static constexpr std::uint64_t kEntriesPerPage = std::uint64_t{1} << kPageShift;
  static constexpr std::uint64_t kPageBytes = kEntriesPerPage * 8;

  // Serves `entries` entries of the BAT at region_offset in `file`. The caller has checked
  // that entries * 8 bytes lie inside the file. Drops anything cached before.
  void reset(File* file, std::uint64_t region_offset, std::uint64_t entries,
             std::uint64_t limit_bytes);
  // Keeps at most `bytes` of pages (at least one page); evicts at once if over.
  void set_limit(std::uint64_t bytes);

  // The raw entry at `index` (< entries()).
  Result<std::uint64_t> entry(std::uint64_t index) {
    Page* page = slots_[index >> kPageShift];
    if (page == nullptr) {
      auto loaded = load(index >> kPageShift);
      if (!loaded) return std::move(loaded).error();
      page = *loaded;
    }
    page->referenced = true;
    return page->entries[index & (kEntriesPerPage - 1)];
  }

  // Replaces the cached copy of entry `index` after the caller wrote it to the file; a page not
  // resident is left alone (it is read from the file when next needed).
  void update(std::uint64_t index, std::uint64_t raw) {
    Page* page = slots_[index >> kPageShift];
    if (page != nullptr) page->entries[index & (kEntriesPerPage - 1)] = raw;
  }

  std::uint64_t entries() const { return entries_; }
  std::uint64_t resident_pages() const { return resident_.size(); }
  std::uint64_t max_pages() const { return max_pages_; }
  // Pages read from the file so far (tests check caching and eviction with it).
  std::uint64_t page_loads() const { return page_loads_; }

 private:
  struct Page {
    std::uint64_t number = 0;
    bool referenced = false;
    std::vector<std::uint64_t> entries;
  };

  Result<Page*> load(std::uint64_t page_number);
  void evict_down_to(std::uint64_t pages);

  File* file_ = nullptr;
  std::uint64_t region_offset_ = 0;
  std::uint64_t entries_ = 0;
  std::uint64_t max_pages_ = 1;
  std::uint64_t page_loads_ = 0;
  std::vector<Page*> slots_;                     // page number -> resident page or null
  std::vector<std::unique_ptr<Page>> resident_;  // the clock ring
  std::size_t hand_ = 0;
  std::vector<std::uint8_t> scratch_;  // one page of raw bytes while loading
};

}  // namespace vhdx::image
