#include <gtest/gtest.h>

#include "base/crc32c.h"

TEST(Crc32c, CheckValue) {
  const std::string text = "123456789";
  EXPECT_EQ(vhdx::crc32c({reinterpret_cast<const std::uint8_t*>(text.data()), text.size()}),
            0xE3069283u);
}
