#include "image/parent_path.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace vhdx::image {
namespace {

format::ParentLocator locator(std::vector<std::pair<std::string, std::string>> entries) {
  format::ParentLocator l;
  l.entries = std::move(entries);
  return l;
}

// The candidates as "from|path" strings, with "*" marking a same-directory fallback.
std::vector<std::string> candidates(std::string_view child, const format::ParentLocator& l) {
  auto r = parent_path_candidates(child, l);
  EXPECT_TRUE(r) << r.error().to_string();
  std::vector<std::string> out;
  if (!r) return out;
  for (const auto& c : *r)
    out.push_back(c.from + (c.same_directory_fallback ? "*|" : "|") + c.path);
  return out;
}

Error error_of(std::string_view child, const format::ParentLocator& l) {
  auto r = parent_path_candidates(child, l);
  EXPECT_FALSE(r);
  return r ? Error(ErrorCode::kInternal, "no error") : r.error();
}

// The locator of the corpus differencing image (dissect-differencing), key for key.
TEST(ParentPath, CorpusDifferencingLocator) {
  const std::string name = "Generation 1_49C4BAF3-4B25-4406-8C4B-D39E65C32385.avhdx";
  auto l = locator({
      {"parent_linkage", "{ff34003b-11ed-4cf8-a166-b2be05e20b80}"},
      {"absolute_win32_path", "C:\\Users\\Public\\Documents\\Hyper-V\\Virtual hard disks\\" + name},
      {"relative_path", ".\\" + name},
      {"volume_path",
       "\\\\?\\Volume{0eba351e-5634-46d6-a8cf-4ddc2d6ac0b9}\\Users\\Public\\Documents\\Hyper-V\\"
       "Virtual hard disks\\" +
           name},
      {"parent_linkage2", "{00000000-0000-0000-0000-000000000000}"},
  });
  // All three keys lead to the same file next to the child: listed once.
  EXPECT_EQ(candidates("/srv/vm/differencing.avhdx", l),
            (std::vector<std::string>{"relative_path|/srv/vm/" + name}));
  EXPECT_EQ(candidates("differencing.avhdx", l),
            (std::vector<std::string>{"relative_path|" + name}));
}

TEST(ParentPath, OrderRelativeThenLinuxAbsoluteThenFileNames) {
  auto l = locator({
      {"absolute_win32_path", "\\\\?\\d:\\dir\\abs.vhdx"},
      {"volume_path", "\\\\?\\Volume{12345678-1234-1234-1234-123456789abc}\\vols\\vol.vhdx"},
      {"relative_path", "..\\base\\rel.vhdx"},
  });
  EXPECT_EQ(candidates("/images/child/c.avhdx", l),
            (std::vector<std::string>{
                "relative_path|/images/base/rel.vhdx",
                "relative_path*|/images/child/rel.vhdx",
                "volume_path*|/images/child/vol.vhdx",
                "absolute_win32_path*|/images/child/abs.vhdx",
            }));
}

TEST(ParentPath, RelativePathResolution) {
  auto one = [](std::string_view child, std::string rel) {
    auto r = parent_path_candidates(child, locator({{"relative_path", std::move(rel)}}));
    EXPECT_TRUE(r) << r.error().to_string();
    return r && !r->empty() ? r->front().path : std::string("<none>");
  };
  EXPECT_EQ(one("/a/b/c.vhdx", "p.vhdx"), "/a/b/p.vhdx");
  EXPECT_EQ(one("/a/b/c.vhdx", ".\\p.vhdx"), "/a/b/p.vhdx");
  EXPECT_EQ(one("/a/b/c.vhdx", "..\\..\\x\\p.vhdx"), "/x/p.vhdx");
  // `..` past the root stays at the root, as on Windows.
  EXPECT_EQ(one("/a/c.vhdx", "..\\..\\..\\p.vhdx"), "/p.vhdx");
  // A relative child keeps leading `..`.
  EXPECT_EQ(one("c.vhdx", "..\\p.vhdx"), "../p.vhdx");
  EXPECT_EQ(one("d/c.vhdx", "..\\..\\p.vhdx"), "../p.vhdx");
  EXPECT_EQ(one("./d/c.vhdx", "sub\\p.vhdx"), "d/sub/p.vhdx");
  // Forward slashes and doubled separators are accepted, as Windows does.
  EXPECT_EQ(one("/a//b/c.vhdx", "x/y\\\\p.vhdx"), "/a/b/x/y/p.vhdx");
  // Names keep spaces, case and UTF-8.
  EXPECT_EQ(one("/a/c.vhdx", "Dir Name\\P\xc3\xa4rent.VHDX"), "/a/Dir Name/P\xc3\xa4rent.VHDX");
}

TEST(ParentPath, WindowsAbsoluteFormsGiveTheirFileName) {
  auto name = [](std::string abs) {
    auto r = parent_path_candidates("/img/c.vhdx", locator({{"absolute_win32_path", abs}}));
    EXPECT_TRUE(r) << abs << ": " << r.error().to_string();
    EXPECT_TRUE(!r || r->size() == 1) << abs;
    return r && !r->empty() ? r->front().path : std::string("<none>");
  };
  EXPECT_EQ(name("C:\\dir\\p.vhdx"), "/img/p.vhdx");
  EXPECT_EQ(name("c:/dir/p.vhdx"), "/img/p.vhdx");
  EXPECT_EQ(name("\\\\?\\d:\\dir\\p.vhdx"), "/img/p.vhdx");
  EXPECT_EQ(name("\\\\?\\UNC\\server\\share\\dir\\p.vhdx"), "/img/p.vhdx");
  EXPECT_EQ(name("\\\\?\\unc\\server\\share\\p.vhdx"), "/img/p.vhdx");
  EXPECT_EQ(name("\\\\server\\share\\p.vhdx"), "/img/p.vhdx");
  EXPECT_EQ(name("\\\\.\\C:\\p.vhdx"), "/img/p.vhdx");
  EXPECT_EQ(name("C:p.vhdx"), "/img/p.vhdx");  // drive-relative
  EXPECT_EQ(name("\\dir\\p.vhdx"), "/img/p.vhdx");
}

TEST(ParentPath, LinuxAbsolutePathIsTriedAsIs) {
  EXPECT_EQ(
      candidates("/img/c.vhdx", locator({{"relative_path", "p.vhdx"},
                                         {"absolute_win32_path", "/srv/base/./old/../p.vhdx"}})),
      (std::vector<std::string>{"relative_path|/img/p.vhdx",
                                "absolute_win32_path|/srv/base/p.vhdx"}));
  // A leading `//` is a UNC share written with slashes, not a Linux path.
  EXPECT_EQ(candidates("/img/c.vhdx", locator({{"absolute_win32_path", "//server/share/p.vhdx"}})),
            (std::vector<std::string>{"absolute_win32_path*|/img/p.vhdx"}));
}

TEST(ParentPath, VolumePathAlone) {
  EXPECT_EQ(candidates("rel/c.vhdx", locator({{"volume_path",
                                               "\\\\?\\Volume{0eba351e-5634-46d6-a8cf-"
                                               "4ddc2d6ac0b9}\\p.vhdx"}})),
            (std::vector<std::string>{"volume_path*|rel/p.vhdx"}));
}

TEST(ParentPath, RejectsBadValues) {
  struct Case {
    std::string key, value, message;
  };
  const std::string big(kMaxLocatorPathBytes + 1, 'a');
  const std::vector<Case> cases = {
      {"relative_path", "", "parent locator relative_path: empty path"},
      {"relative_path", std::string("p\0q.vhdx", 8),
       "parent locator relative_path: path holds a NUL byte"},
      {"volume_path", big, "parent locator volume_path: path is 98302 bytes long (at most 98301)"},
      {"relative_path", "dir\\", "parent locator relative_path: path names no file: dir\\"},
      {"relative_path", "dir\\..", "parent locator relative_path: path names no file: dir\\.."},
      {"relative_path", "C:\\p.vhdx",
       "parent locator relative_path: not a relative path: C:\\p.vhdx"},
      {"relative_path", "\\\\s\\h\\p",
       "parent locator relative_path: not a relative path: \\\\s\\h\\p"},
      {"absolute_win32_path", "C:\\",
       "parent locator absolute_win32_path: path names no file: C:\\"},
      {"absolute_win32_path", "C:", "parent locator absolute_win32_path: path names no file: C:"},
      // Found by parent_locator_fuzz: once the drive is set aside, "." names a directory.
      {"volume_path", "C:.", "parent locator volume_path: path names no file: C:."},
      {"absolute_win32_path", "d:..",
       "parent locator absolute_win32_path: path names no file: d:.."},
      {"absolute_win32_path", "\\\\server\\share",
       "parent locator absolute_win32_path: path names no file: \\\\server\\share"},
      {"absolute_win32_path", "/srv/.",
       "parent locator absolute_win32_path: path names no file: /srv/."},
      {"volume_path", "\\\\?\\Volume{0eba351e-5634-46d6-a8cf-4ddc2d6ac0b9}",
       "parent locator volume_path: path names no file: "
       "\\\\?\\Volume{0eba351e-5634-46d6-a8cf-4ddc2d6ac0b9}"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.message);
    // A bad key fails the locator even when another key is fine.
    Error e =
        error_of("/img/c.vhdx",
                 locator({{"parent_linkage", "{x}"},
                          {c.key, c.value},
                          {c.key == "relative_path" ? "volume_path" : "relative_path",
                           c.key == "relative_path" ? "\\\\?\\Volume{1}\\ok.vhdx" : "ok.vhdx"}}));
    EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
    EXPECT_EQ(e.message(), c.message);
  }
}

TEST(ParentPath, RejectsLocatorWithoutPaths) {
  Error e = error_of("/img/c.vhdx", locator({{"parent_linkage", "{x}"}}));
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(e.message(),
            "parent locator has no path (relative_path, volume_path or absolute_win32_path)");
}

TEST(ParentPath, RejectsBadChildPath) {
  auto l = locator({{"relative_path", "p.vhdx"}});
  EXPECT_EQ(error_of("", l).message(), "child image path is empty");
  EXPECT_EQ(error_of(std::string_view("/a\0b", 4), l).message(),
            "child image path holds a NUL byte");
  EXPECT_EQ(error_of("/img/", l).message(), "child image path names no file: /img/");
  EXPECT_EQ(error_of("/img/..", l).message(), "child image path names no file: /img/..");
  EXPECT_EQ(error_of(std::string(kMaxLinuxPathBytes + 1, 'c'), l).message(),
            "child image path is 4096 bytes long");
  EXPECT_EQ(error_of("", l).code(), ErrorCode::kInvalidArgument);
}

TEST(ParentPath, OverlongCandidatesAreDropped) {
  // relative_path resolves past PATH_MAX; the file name next to the child still fits.
  EXPECT_EQ(
      candidates("/c.vhdx",
                 locator({{"relative_path", std::string(kMaxLinuxPathBytes, 'd') + "\\p.vhdx"}})),
      (std::vector<std::string>{"relative_path*|/p.vhdx"}));
  // A child path of exactly PATH_MAX bytes: its parent's name is longer than its own.
  const std::string long_dir(kMaxLinuxPathBytes - 8, 'd');
  Error e = error_of("/" + long_dir + "/c.vhdx", locator({{"relative_path", "parent.vhdx"}}));
  EXPECT_EQ(e.code(), ErrorCode::kCorrupt);
  EXPECT_EQ(e.message(), "parent locator: every parent path is longer than 4095 bytes");
}

}  // namespace
}  // namespace vhdx::image
