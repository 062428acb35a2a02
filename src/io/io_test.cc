#include <gtest/gtest.h>

#include "io/mem_file.h"

TEST(MemFile, ReadBackWrite) {
  vhdx::MemFile file;
  const std::uint8_t data[3] = {1, 2, 3};
  ASSERT_TRUE(file.write_at(5, data));
  std::uint8_t out[3];
  ASSERT_TRUE(file.read_at(5, out));
  EXPECT_EQ(out[2], 3);
}
