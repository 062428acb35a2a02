#include "image/bat_cache.h"

#include <algorithm>
#include <string>

#include "base/checked_math.h"
#include "base/endian.h"

namespace vhdx::image {

void BatCache::reset(File* file, std::uint64_t region_offset, std::uint64_t entries,
                     std::uint64_t limit_bytes) {
  file_ = file;
  region_offset_ = region_offset;
  entries_ = entries;
  resident_.clear();
  hand_ = 0;
  slots_.assign(ceil_div(entries, kEntriesPerPage), nullptr);
  set_limit(limit_bytes);
}

void BatCache::set_limit(std::uint64_t bytes) {
  max_pages_ = std::max<std::uint64_t>(1, bytes / kPageBytes);
  evict_down_to(max_pages_);
}

void BatCache::evict_down_to(std::uint64_t pages) {
  while (resident_.size() > pages) {
    // Drop from the end of the ring; the clock hand stays valid.
    slots_[resident_.back()->number] = nullptr;
    resident_.pop_back();
    if (hand_ >= resident_.size()) hand_ = 0;
  }
}

Result<BatCache::Page*> BatCache::load(std::uint64_t page_number) {
  const std::uint64_t first = page_number * kEntriesPerPage;
  const std::uint64_t count = std::min(kEntriesPerPage, entries_ - first);

  Page* page;
  if (resident_.size() < max_pages_) {
    resident_.push_back(std::make_unique<Page>());
    page = resident_.back().get();
  } else {
    // Clock: skip (and clear) recently used pages, reuse the first one that was not.
    while (resident_[hand_]->referenced) {
      resident_[hand_]->referenced = false;
      hand_ = (hand_ + 1) % resident_.size();
    }
    page = resident_[hand_].get();
    hand_ = (hand_ + 1) % resident_.size();
    slots_[page->number] = nullptr;
  }

  scratch_.resize(kPageBytes);
  std::span<std::uint8_t> bytes(scratch_.data(), count * 8);
  if (auto r = file_->read_at(region_offset_ + first * 8, bytes); !r) {
    // Give the slot back so a failed load leaves no half page behind.
    page->number = page_number;
    page->entries.clear();
    page->referenced = false;
    auto it = std::find_if(resident_.begin(), resident_.end(),
                           [&](const auto& p) { return p.get() == page; });
    resident_.erase(it);
    if (hand_ >= resident_.size()) hand_ = 0;
    return std::move(r).error().with_context("BAT page " + std::to_string(page_number));
  }
  page->entries.resize(count);
  for (std::uint64_t i = 0; i < count; ++i) page->entries[i] = load_le64(bytes, i * 8);
  page->number = page_number;
  page->referenced = false;
  slots_[page_number] = page;
  ++page_loads_;
  return page;
}

}  // namespace vhdx::image
